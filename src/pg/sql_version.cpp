/*
 * sql_version.cpp — compares pg_extension.extversion with the library's version.
 *
 * A server restarted with a newer library keeps the old SQL objects until ALTER EXTENSION
 * pg_poolguard UPDATE runs in each database; until then every old C entry point still works
 * (views.cpp keeps session_info's 1.0 one), and the worker says once that an update is due.
 *
 * Every database, not only the worker's: an older SQL version can keep objects open that a
 * newer one restricts (1.0's metrics() and policy_status were PUBLIC), so the worker checks its
 * own database in its cycle and, once per worker life, every other database that accepts
 * connections through "pg_poolguard version check" background workers, one at a time (each
 * connects with connect_background_worker, reads pg_extension, warns, exits).
 */
#include "pg/sql_version.h"
#include "pg/bgworker.h"
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

void warn_about(const char *version)
{
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
}

/* The other databases: the one being checked now, and how far the walk (by oid) has come. */
BackgroundWorkerHandle *check_handle = nullptr;
Oid checked_up_to = InvalidOid;
bool all_checked = false;

/* The smallest database oid above after that accepts connections, other than ours; or InvalidOid. */
Oid next_database(Oid after)
{
    Oid next = InvalidOid;
    Relation rel = table_open(DatabaseRelationId, AccessShareLock);
    TableScanDesc scan = table_beginscan_catalog(rel, 0, NULL);
    HeapTuple tuple;
    while ((tuple = heap_getnext(scan, ForwardScanDirection)) != NULL)
    {
        Form_pg_database db = (Form_pg_database)GETSTRUCT(tuple);
        if (db->oid > after && db->oid != MyDatabaseId && db->datallowconn &&
            (next == InvalidOid || db->oid < next))
            next = db->oid;
    }
    table_endscan(scan);
    table_close(rel, AccessShareLock);
    return next;
}

void check_other_databases(void)
{
    if (all_checked)
        return;
    if (check_handle != nullptr)
    {
        pid_t pid;
        if (GetBackgroundWorkerPid(check_handle, &pid) != BGWH_STOPPED)
            return; /* one at a time */
        pfree(check_handle);
        check_handle = nullptr;
    }
    Oid database = next_database(checked_up_to);
    if (!OidIsValid(database))
    {
        all_checked = true;
        return;
    }

    BackgroundWorker worker;
    init_background_worker(&worker, "poolguard_version_check_main", "pg_poolguard version check",
                           BGW_NEVER_RESTART);
    snprintf(worker.bgw_name, BGW_MAXLEN, "pg_poolguard version check of database %u", database);
    worker.bgw_main_arg = ObjectIdGetDatum(database);
    worker.bgw_notify_pid = MyProcPid;
    MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);
    bool registered = RegisterDynamicBackgroundWorker(&worker, &check_handle);
    MemoryContextSwitchTo(old);
    if (registered)
        checked_up_to = database; /* else: no free worker slot now, try again next cycle */
    else
        check_handle = nullptr;
}

} // namespace

void warn_if_sql_version_differs(void)
{
    check_other_databases();
    if (checked == Checked::done)
        return;
    char *version = installed_version();
    if (version == NULL)
        return;
    checked = Checked::done;
    warn_about(version);
    pfree(version);
}

} // namespace poolguard

using namespace poolguard;

/* "pg_poolguard version check": one database's pg_extension against the library, then exit. */
extern "C" void poolguard_version_check_main(Datum database)
{
    pqsignal(SIGTERM, die);
    BackgroundWorkerUnblockSignals();
    connect_background_worker(nullptr, DatumGetObjectId(database), "pg_poolguard version check", DEBUG1);
    StartTransactionCommand();
    char *version = installed_version();
    if (version != NULL)
        warn_about(version);
    CommitTransactionCommand();
    proc_exit(0);
}
