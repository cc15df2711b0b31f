/*
 * policy_store.cpp — loading, publishing and change tracking of compiled policies.
 */
#include "policy_store.h"

#include "caps.h"
#include "guard.h"
#include "guc.h"
#include "sessions.h"
#include "shmem.h"

#include "core/like.h"

namespace poolguard {

namespace {

struct PolicyStore
{
    pg_atomic_uint64 change_count; /* committed policy changes (and reload requests) */
    uint64 loaded_change_count;    /* change_count the published policies reflect */
    uint64 version;                /* bumped on every publication */
    int count;
    CompiledPolicy policies[FLEXIBLE_ARRAY_MEMBER];
};

PolicyStore *store = nullptr;
bool change_pending = false; /* this transaction changed poolguard.policy */
bool xact_callback_registered = false;

Size store_size(void)
{
    return add_size(offsetof(PolicyStore, policies), mul_size(sizeof(CompiledPolicy), guc_max_policies));
}

void store_init(void)
{
    bool found;

    store = static_cast<PolicyStore *>(ShmemInitStruct("pg_poolguard policies", store_size(), &found));
    if (!found)
    {
        pg_atomic_init_u64(&store->change_count, 1); /* the worker loads once at start */
        store->loaded_change_count = 0;
        store->version = 0;
        store->count = 0;
    }
}

/* At commit of a transaction that changed poolguard.policy: tell the worker. */
void policy_xact_callback(XactEvent event, void *arg)
{
    switch (event)
    {
        case XACT_EVENT_COMMIT:
        case XACT_EVENT_PARALLEL_COMMIT:
            if (change_pending && store != nullptr)
            {
                pg_atomic_fetch_add_u64(&store->change_count, 1);
                wake_worker();
            }
            change_pending = false;
            break;
        case XACT_EVENT_ABORT:
        case XACT_EVENT_PARALLEL_ABORT:
            change_pending = false;
            break;
        default:
            break;
    }
}

/* Column n (1-based) of the current SPI row as text, or NULL. */
char *column_text(HeapTuple tuple, TupleDesc desc, int n)
{
    return SPI_getvalue(tuple, desc, n);
}

int64 column_int64(HeapTuple tuple, TupleDesc desc, int n)
{
    bool isnull;
    Datum d = SPI_getbinval(tuple, desc, n, &isnull);
    return isnull ? core::inherit : DatumGetInt64(d);
}

void compile_row(CompiledPolicy *p, HeapTuple tuple, TupleDesc desc)
{
    char *text;

    *p = CompiledPolicy();
    strlcpy(p->name, column_text(tuple, desc, 1), sizeof(p->name));
    p->priority = (int32) column_int64(tuple, desc, 2);
    if ((text = column_text(tuple, desc, 3)) != NULL)
    {
        p->has_role = true;
        namestrcpy(&p->role_name, text);
    }
    if ((text = column_text(tuple, desc, 4)) != NULL)
    {
        p->has_database = true;
        namestrcpy(&p->database_name, text);
    }
    if ((text = column_text(tuple, desc, 5)) != NULL)
    {
        p->has_application = true;
        strlcpy(p->application_pattern, text, sizeof(p->application_pattern));
    }
    if ((text = column_text(tuple, desc, 6)) != NULL)
    {
        auto cidr = core::parse_cidr(text);
        if (!cidr)
            ereport(ERROR,
                    (errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
                     errmsg("policy \"%s\" has an unreadable client_addr \"%s\"", p->name, text)));
        p->has_client = true;
        p->client = *cidr;
    }
    p->rules.idle_timeout = column_int64(tuple, desc, 7);
    p->rules.idle_in_transaction_timeout = column_int64(tuple, desc, 8);
    p->rules.max_connection_age = column_int64(tuple, desc, 9);
    p->rules.max_query_duration = column_int64(tuple, desc, 10);
    p->rules.max_idle = column_int64(tuple, desc, 11);
    p->rules.max_idle_memory = column_int64(tuple, desc, 12);
    p->max_connections = column_int64(tuple, desc, 13);
    text = column_text(tuple, desc, 14);
    p->on_limit = (text != NULL && strcmp(text, "evict_idle") == 0) ? OnLimit::evict_idle : OnLimit::reject;
    text = column_text(tuple, desc, 15);
    p->dry_run = text != NULL && text[0] == 't';
}

/* Intervals become whole microseconds (a month counts 30 days, as interval arithmetic does). */
const char *load_query =
    "SELECT name, priority::int8, role_name::text, database_name::text, application_name, "
    "       client_addr::text, "
    "       (extract(epoch FROM idle_timeout) * 1000000)::int8, "
    "       (extract(epoch FROM idle_in_transaction_timeout) * 1000000)::int8, "
    "       (extract(epoch FROM max_connection_age) * 1000000)::int8, "
    "       (extract(epoch FROM max_query_duration) * 1000000)::int8, "
    "       max_idle::int8, max_idle_memory, max_connections::int8, on_limit, dry_run::text "
    "  FROM poolguard.policy WHERE enabled "
    " ORDER BY priority DESC, name COLLATE \"C\"";

}  // namespace

void policy_store_register(void)
{
    shmem_register(store_size, store_init);
}

void policy_store_snapshot(PolicySnapshot *snapshot)
{
    require_shared_memory();
    LWLockAcquire(shared->lock, LW_SHARED);
    snapshot->version = store->version;
    snapshot->count = store->count;
    snapshot->policies = static_cast<CompiledPolicy *>(palloc(sizeof(CompiledPolicy) * Max(store->count, 1)));
    memcpy(snapshot->policies, store->policies, sizeof(CompiledPolicy) * store->count);
    LWLockRelease(shared->lock);
}

uint64 policy_store_change_count(void)
{
    return store ? pg_atomic_read_u64(&store->change_count) : 0;
}

uint64 policy_store_loaded_change_count(void)
{
    uint64 loaded;

    LWLockAcquire(shared->lock, LW_SHARED);
    loaded = store->loaded_change_count;
    LWLockRelease(shared->lock);
    return loaded;
}

namespace {

/* A policy role not looked up yet (Oids are 32-bit; this one is never assigned). */
constexpr Oid unresolved_role = ~(Oid) 0;

}  // namespace

Oid policy_table_oid(void)
{
    Oid nsp = get_namespace_oid("poolguard", true);
    return OidIsValid(nsp) ? get_relname_relid("policy", nsp) : InvalidOid;
}

Oid *policy_role_oids(const PolicySnapshot *snapshot)
{
    Oid *oids = static_cast<Oid *>(palloc(sizeof(Oid) * Max(snapshot->count, 1)));
    for (int i = 0; i < snapshot->count; i++)
        oids[i] = snapshot->policies[i].has_role ? unresolved_role : InvalidOid;
    return oids;
}

bool role_matches(Oid userid, Oid role)
{
    return OidIsValid(role) && (userid == role || is_member_of_role_nosuper(userid, role));
}

int policy_match(const PolicySnapshot *snapshot, Oid *role_oids, Oid userid,
                 const char *database_name, const char *application_name, const core::IpAddress &client)
{
    for (int i = 0; i < snapshot->count; i++)
    {
        const CompiledPolicy *p = &snapshot->policies[i];
        if (p->has_role)
        {
            /* Looked up on first need: a login that matches an early policy pays for no others. */
            if (role_oids[i] == unresolved_role)
                role_oids[i] = get_role_oid(NameStr(p->role_name), true);
            if (!role_matches(userid, role_oids[i]))
                continue;
        }
        if (p->has_database &&
            (database_name == NULL || strcmp(database_name, NameStr(p->database_name)) != 0))
            continue;
        if (p->has_application &&
            !core::like_match(application_name ? application_name : "", p->application_pattern))
            continue;
        if (p->has_client && !core::cidr_contains(p->client, client))
            continue;
        return i;
    }
    return -1;
}

bool in_policy_database(void)
{
    if (guc_database == nullptr || !OidIsValid(MyDatabaseId))
        return false;
    char *name = get_database_name(MyDatabaseId);
    return name != NULL && strcmp(name, guc_database) == 0;
}

int policy_store_load(uint64 change_count)
{
    require_shared_memory();

    int total = 0, kept = 0;
    CompiledPolicy *compiled = nullptr;

    if (OidIsValid(policy_table_oid()))
    {
        if (SPI_connect() != SPI_OK_CONNECT)
            elog(ERROR, "pg_poolguard: SPI_connect failed");
        PushActiveSnapshot(GetTransactionSnapshot());
        int rc = SPI_execute(load_query, true, 0);
        if (rc != SPI_OK_SELECT)
            elog(ERROR, "pg_poolguard: reading poolguard.policy failed: %s", SPI_result_code_string(rc));
        total = (int) SPI_processed;
        kept = Min(total, guc_max_policies);
        compiled = static_cast<CompiledPolicy *>(
            MemoryContextAlloc(CurTransactionContext, sizeof(CompiledPolicy) * Max(kept, 1)));
        for (int i = 0; i < kept; i++)
            compile_row(&compiled[i], SPI_tuptable->vals[i], SPI_tuptable->tupdesc);
        PopActiveSnapshot();
        SPI_finish();
    }
    if (total > kept)
        ereport(WARNING,
                (errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
                 errmsg("pg_poolguard uses only the first %d of %d enabled policies", kept, total),
                 errhint("Raise poolguard.max_policies (needs a restart) or disable some policies.")));

    LWLockAcquire(shared->lock, LW_EXCLUSIVE);
    if (kept > 0)
        memcpy(store->policies, compiled, sizeof(CompiledPolicy) * kept);
    store->count = kept;
    store->version++;
    if (change_count > store->loaded_change_count)
        store->loaded_change_count = change_count;
    LWLockRelease(shared->lock);
    return kept;
}

}  // namespace poolguard

using namespace poolguard;

/* AFTER ... FOR EACH STATEMENT trigger on poolguard.policy. */
POOLGUARD_FUNCTION(poolguard_policy_changed)
{
    if (!CALLED_AS_TRIGGER(fcinfo))
        ereport(ERROR,
                (errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
                 errmsg("poolguard.policy_changed() must be called as a trigger")));
    if (!xact_callback_registered)
    {
        RegisterXactCallback(policy_xact_callback, NULL);
        xact_callback_registered = true;
    }
    change_pending = true;
    return PointerGetDatum(NULL);
}

/*
 * poolguard.reload(): in poolguard.database, load now in this backend; elsewhere, ask the
 * worker and wait (bounded) until it has loaded.
 */
POOLGUARD_FUNCTION(poolguard_reload)
{
    require_shared_memory();

    uint64 wanted = pg_atomic_add_fetch_u64(&store->change_count, 1);
    if (in_policy_database())
    {
        int n = policy_store_load(wanted);
        SessionScan scan;
        scan_sessions(&scan, MemoryReads::as_rules_need, nullptr);
        caps_reconcile(&scan);
        wake_worker();
        PG_RETURN_INT32(n);
    }

    wake_worker();
    TimestampTz give_up = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), 10000);
    while (policy_store_loaded_change_count() < wanted)
    {
        if (GetCurrentTimestamp() >= give_up)
            ereport(ERROR,
                    (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                     errmsg("the pg_poolguard worker did not load the policies within 10 seconds"),
                     errdetail("Policies live in database \"%s\"; from here, reload() asks the worker to load them.",
                               guc_database),
                     errhint("Check that the worker runs (poolguard.worker_pid()), or call reload() in database \"%s\".",
                             guc_database)));
        (void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 10, PG_WAIT_EXTENSION);
        ResetLatch(MyLatch);
        CHECK_FOR_INTERRUPTS();
    }
    LWLockAcquire(shared->lock, LW_SHARED);
    int n = store->count;
    LWLockRelease(shared->lock);
    PG_RETURN_INT32(n);
}
