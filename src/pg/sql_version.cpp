/*
 * sql_version.cpp — compares pg_extension.extversion with the library's version.
 *
 * A server restarted with a newer library keeps the old SQL objects until ALTER EXTENSION
 * pg_poolguard UPDATE runs in each database; until then every old C entry point still works
 * (views.cpp keeps session_info's 1.0 one), and the worker says once that an update is due.
 */
#include "pg/sql_version.h"
#include "pg/version.h"

namespace poolguard
{

namespace
{

/* States across cycles of one worker life. */
enum class Checked
{
    not_yet, /* extension not created yet: look again next cycle */
    done     /* compared (and warned if needed): never again */
};
Checked checked = Checked::not_yet;

/* pg_extension.extversion of pg_poolguard, palloc'd; NULL when the extension is not created. */
char *installed_version(void)
{
    char *version = NULL;
    Relation rel = table_open(ExtensionRelationId, AccessShareLock);
    ScanKeyData key;
    ScanKeyInit(&key, Anum_pg_extension_extname, BTEqualStrategyNumber, F_NAMEEQ,
                CStringGetDatum("pg_poolguard"));
    SysScanDesc scan = systable_beginscan(rel, ExtensionNameIndexId, true, NULL, 1, &key);
    HeapTuple tuple = systable_getnext(scan);
    if (HeapTupleIsValid(tuple))
    {
        bool isnull;
        Datum d = heap_getattr(tuple, Anum_pg_extension_extversion, RelationGetDescr(rel), &isnull);
        if (!isnull)
            version = text_to_cstring(DatumGetTextPP(d));
    }
    systable_endscan(scan);
    table_close(rel, AccessShareLock);
    return version;
}

} // namespace

void warn_if_sql_version_differs(void)
{
    if (checked == Checked::done)
        return;
    char *version = installed_version();
    if (version == NULL)
        return;
    checked = Checked::done;
    if (strcmp(version, POOLGUARD_EXTVERSION) != 0)
        ereport(WARNING, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                          errmsg("pg_poolguard SQL objects in database \"%s\" are at version %s but the "
                                 "library is at version %s",
                                 get_database_name(MyDatabaseId), version, POOLGUARD_EXTVERSION),
                          errdetail("The library keeps serving the installed SQL objects; what version %s "
                                    "adds is missing until the update.",
                                    POOLGUARD_EXTVERSION),
                          errhint("Run ALTER EXTENSION pg_poolguard UPDATE in database \"%s\".",
                                  get_database_name(MyDatabaseId))));
    pfree(version);
}

} // namespace poolguard
