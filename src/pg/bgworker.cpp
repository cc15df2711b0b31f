/*
 * bgworker.cpp — the BackgroundWorker setup every pg_poolguard worker shares, and the one way
 * they connect to a database.
 *
 * Trust: a background process runs as the bootstrap superuser in a database whose owner may be
 * an ordinary role.  InitPostgres applies pg_db_role_setting (ALTER DATABASE ... SET, ALTER ROLE
 * ... [IN DATABASE ...] SET) to every connection, background workers included, and no
 * BackgroundWorkerInitializeConnection flag skips it: `ALTER DATABASE d SET role = 'owner'` would
 * make the worker run as the owner, `search_path` would put the owner's objects first, and
 * `default_transaction_read_only` or `statement_timeout` would switch it off.  So
 * connect_background_worker() remembers every setting before connecting, puts back each one an
 * in-database setting changed (PGC_S_OVERRIDE: nothing in the session outranks it, and RESET
 * keeps it), pins the identity and the settings the workers' SQL depends on, and verifies the
 * result before the process does anything.
 */
#include "pg/bgworker.h"

namespace poolguard
{

namespace
{

/* A setting's value as the server configuration gave it, before the connection. */
struct RememberedSetting
{
    const char *name; /* the GUC record's own name (lives as long as the process) */
    char *value;      /* NULL: the record had no value */
};

RememberedSetting *remembered = nullptr;
int nremembered = 0;

/* Settings pinned whatever the configuration says: what the workers' own SQL relies on. */
struct PinnedSetting
{
    const char *name;
    const char *value;
};
constexpr PinnedSetting pinned_settings[] = {
    {"search_path", "pg_catalog, pg_temp"},
    {"default_transaction_read_only", "off"},
    {"default_transaction_isolation", "read committed"},
    {"statement_timeout", "0"},
    {"lock_timeout", "0"},
    {"idle_in_transaction_session_timeout", "0"},
    {"idle_session_timeout", "0"},
    {"transaction_timeout", "0"}, /* PostgreSQL 17 on; skipped where it does not exist */
};

/* A setting that would change who the process is: always a WARNING (someone tried). */
bool identity_setting(const char *name)
{
    return strcmp(name, "role") == 0 || strcmp(name, "session_authorization") == 0;
}

bool from_database_settings(GucSource source)
{
    return source >= PGC_S_GLOBAL && source <= PGC_S_DATABASE_USER;
}

void remember_server_settings(void)
{
    int n;
    struct config_generic **vars = poolguard_guc_variables(&n);
    remembered = static_cast<RememberedSetting *>(
        MemoryContextAllocZero(TopMemoryContext, sizeof(RememberedSetting) * n));
    nremembered = 0;
    for (int i = 0; i < n; i++)
    {
        const char *value = GetConfigOption(vars[i]->name, true, false);
        remembered[nremembered].name = vars[i]->name;
        remembered[nremembered].value = value ? MemoryContextStrdup(TopMemoryContext, value) : nullptr;
        nremembered++;
    }
}

const RememberedSetting *find_remembered(const char *name)
{
    for (int i = 0; i < nremembered; i++)
        if (strcmp(remembered[i].name, name) == 0)
            return &remembered[i];
    return nullptr;
}

void override_setting(const char *name, const char *value, GucContext record_context)
{
    GucContext context =
        (record_context == PGC_BACKEND || record_context == PGC_SU_BACKEND) ? PGC_BACKEND : PGC_SUSET;
    (void)set_config_option(name, value, context, PGC_S_OVERRIDE, GUC_ACTION_SET, true, ERROR, false);
}

/*
 * Connected: undo every in-database setting, pin identity and settings, verify.  In a
 * transaction (role lookups and some check hooks read the catalog).
 */
void pin_background_settings(const char *who, int settings_elevel)
{
    StartTransactionCommand();

    /* 1. Say what is ignored (the role and session_authorization too: they are put right next). */
    int n;
    struct config_generic **vars = poolguard_guc_variables(&n);
    for (int i = 0; i < n; i++)
        if (from_database_settings(vars[i]->source))
            ereport(
                identity_setting(vars[i]->name) ? WARNING : settings_elevel,
                (errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
                 errmsg("%s ignores the in-database setting of \"%s\"", who, vars[i]->name),
                 errdetail("Background processes of pg_poolguard use the server configuration only; "
                           "settings made with ALTER DATABASE or ALTER ROLE ... SET do not apply to them."),
                 errhint("Remove the setting with ALTER DATABASE ... RESET or ALTER ROLE ... RESET.")));

    /* 2. Identity: the bootstrap superuser, as session user and as current user. */
    char *superuser_name = GetUserNameFromId(BOOTSTRAP_SUPERUSERID, false);
    override_setting("session_authorization", superuser_name, PGC_USERSET);
    override_setting("role", "none", PGC_USERSET);

    /* 3. Every other setting an ALTER DATABASE / ALTER ROLE ... SET changed: back to the server's. */
    vars = poolguard_guc_variables(&n);
    for (int i = 0; i < n; i++)
    {
        struct config_generic *var = vars[i];
        if (!from_database_settings(var->source))
            continue;
        const RememberedSetting *before = find_remembered(var->name);
        if (before != nullptr && before->value != nullptr)
            override_setting(var->name, before->value, var->context);
    }

    /* 4. What the workers' SQL relies on, whatever the configuration says. */
    for (const PinnedSetting &p : pinned_settings)
        if (GetConfigOption(p.name, true, false) != NULL)
            override_setting(p.name, p.value, PGC_USERSET);

    /* 5. Verify: anything else would mean a setting we could not undo. */
    vars = poolguard_guc_variables(&n);
    const char *left = nullptr;
    for (int i = 0; i < n && left == nullptr; i++)
        if (from_database_settings(vars[i]->source) && (vars[i]->flags & GUC_CUSTOM_PLACEHOLDER) == 0)
            left = vars[i]->name;
    if (GetSessionUserId() != BOOTSTRAP_SUPERUSERID || GetUserId() != BOOTSTRAP_SUPERUSERID || !superuser() ||
        left != nullptr)
        ereport(FATAL, (errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
                        errmsg("%s could not take its own identity and settings", who),
                        errdetail("Setting \"%s\" or the session's role still comes from ALTER DATABASE or "
                                  "ALTER ROLE ... SET.",
                                  left ? left : "role"),
                        errhint("Remove the in-database settings of this database and of the bootstrap "
                                "superuser.")));
    CommitTransactionCommand();
}

} // namespace

void init_background_worker(BackgroundWorker *worker, const char *function, const char *type,
                            int restart_seconds)
{
    memset(worker, 0, sizeof(*worker));
    worker->bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
    worker->bgw_start_time = BgWorkerStart_RecoveryFinished;
    worker->bgw_restart_time = restart_seconds;
    strlcpy(worker->bgw_library_name, "pg_poolguard", BGW_MAXLEN);
    strlcpy(worker->bgw_function_name, function, BGW_MAXLEN);
    strlcpy(worker->bgw_name, type, BGW_MAXLEN);
    strlcpy(worker->bgw_type, type, BGW_MAXLEN);
}

void connect_background_worker(const char *database_name, Oid database, const char *who, int settings_elevel)
{
    remember_server_settings();
    if (database_name != nullptr)
        BackgroundWorkerInitializeConnection(database_name, NULL, 0);
    else
        BackgroundWorkerInitializeConnectionByOid(database, InvalidOid, 0);
    pin_background_settings(who, settings_elevel);
}

} // namespace poolguard
