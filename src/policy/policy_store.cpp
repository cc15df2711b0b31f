/*
 * policy_store.cpp — loading, publishing and change tracking of compiled policies.
 *
 * Note about locking (every lock and the order: docs/architecture.md, "Locks"): the published
 * policies (count, array, their index, version, loaded_change_count, fingerprint) are guarded by
 * published_policies->lock
 * (LWLock tranche "pg_poolguard policies"): LW_EXCLUSIVE to publish, LW_SHARED to copy.  Under it only memcpy
 * of plain data happens, and a login's walk of the index's hash chains (policy_index_candidates:
 * no allocation, no error, bounded by the number of policies) — the SPI query, the compilation, the
 * index build and every catalog lookup (role memberships too) run before the lock is taken.  change_count is
 * an atomic that committing backends bump without any lock.  The lock is never held while another
 * pg_poolguard lock is taken.
 *
 * Trust: the loader runs as a superuser (the worker, or reload()/reap() in a superuser's
 * session) in a database whose owner may be an ordinary role.  So the policy table is used only
 * if it is the extension's own member (pg_depend), the query names no operator and no function,
 * every name in it is schema-qualified, and search_path is pinned to pg_catalog, pg_temp while
 * it runs: nothing the database owner creates can run inside it (CVE-2018-1058).
 */
#include "policy/policy.h"

#include "pg/guard.h"
#include "pg/guc.h"
#include "pg/shmem.h"

#include "core/policy/like.h"

namespace poolguard
{

namespace
{

struct PolicyStore
{
    LWLock *lock;                  /* tranche "pg_poolguard policies": everything below but change_count */
    pg_atomic_uint64 change_count; /* committed policy changes (and reload requests) */
    uint64 loaded_change_count;    /* change_count the published policies reflect */
    uint64 version;                /* bumped on every publication */
    uint64 fingerprint;            /* of the table contents the published policies reflect */
    int count;
    core::PolicyIndexHeader index; /* of policies[0..count); its arrays follow the policies */
    CompiledPolicy policies[FLEXIBLE_ARRAY_MEMBER];
    /* then int32 index_heads[index_buckets()], int32 index_next[max_policies] */
};

PolicyStore *published_policies = nullptr; /* "pg_poolguard policies" in shared memory */
int32 *published_heads = nullptr;          /* the index's arrays, in the same shared memory */
int32 *published_next = nullptr;
/* The published policies' LWLock tranche; their shared memory has the same name. */
constexpr const char *policies_tranche = "pg_poolguard policies";
bool change_pending = false; /* this transaction changed poolguard.policy */
bool xact_callback_registered = false;

uint32 index_buckets(void)
{
    return core::policy_index_buckets(guc_max_policies);
}

Size policies_size(void)
{
    return MAXALIGN(
        add_size(offsetof(PolicyStore, policies), mul_size(sizeof(CompiledPolicy), guc_max_policies)));
}

Size store_size(void)
{
    return add_size(policies_size(), mul_size(sizeof(int32), add_size(index_buckets(), guc_max_policies)));
}

void store_init(void)
{
    bool found;

    published_policies = static_cast<PolicyStore *>(ShmemInitStruct(policies_tranche, store_size(), &found));
    published_heads =
        reinterpret_cast<int32 *>(reinterpret_cast<char *>(published_policies) + policies_size());
    published_next = published_heads + index_buckets();
    if (!found)
    {
        published_policies->lock = &(GetNamedLWLockTranche(policies_tranche))->lock;
        pg_atomic_init_u64(&published_policies->change_count, 1); /* the worker loads once at start */
        published_policies->loaded_change_count = 0;
        published_policies->version = 0;
        published_policies->fingerprint = 0;
        published_policies->count = 0;
        published_policies->index = core::PolicyIndexHeader();
        published_policies->index.nbuckets = index_buckets();
        core::policy_index_build(nullptr, 0, &published_policies->index, published_heads, published_next);
    }
}

/*
 * At commit of a transaction that changed poolguard.policy: tell the worker.  A prepared
 * transaction forgets the change here (it must not leak into this session's next commit); its
 * COMMIT PREPARED, possibly in another session, is noticed by the worker's fingerprint check.
 */
void policy_xact_callback(XactEvent event, void *arg)
{
    switch (event)
    {
    case XACT_EVENT_PREPARE:
        change_pending = false;
        break;
    case XACT_EVENT_COMMIT:
    case XACT_EVENT_PARALLEL_COMMIT:
        if (change_pending && published_policies != nullptr)
        {
            pg_atomic_fetch_add_u64(&published_policies->change_count, 1);
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

/* Column n (1-based) of the current SPI row as text (its type's output function), or NULL. */
char *column_text(HeapTuple tuple, TupleDesc desc, int n)
{
    return SPI_getvalue(tuple, desc, n);
}

/* An integer column (int4 or int8), core::inherit when NULL. */
int64 column_int64(HeapTuple tuple, TupleDesc desc, int n)
{
    bool isnull;
    Datum d = SPI_getbinval(tuple, desc, n, &isnull);
    if (isnull)
        return core::inherit;
    return SPI_gettypeid(desc, n) == INT8OID ? DatumGetInt64(d) : (int64)DatumGetInt32(d);
}

/* An interval column as whole microseconds, core::inherit when NULL. */
int64 column_interval(HeapTuple tuple, TupleDesc desc, int n)
{
    bool isnull;
    Datum d = SPI_getbinval(tuple, desc, n, &isnull);
    if (isnull)
        return core::inherit;
    const Interval *iv = DatumGetIntervalP(d);
    return core::interval_micros(iv->month, iv->day, iv->time);
}

bool column_bool(HeapTuple tuple, TupleDesc desc, int n)
{
    bool isnull;
    Datum d = SPI_getbinval(tuple, desc, n, &isnull);
    return !isnull && DatumGetBool(d);
}

void compile_row(CompiledPolicy *p, HeapTuple tuple, TupleDesc desc)
{
    char *text;

    *p = CompiledPolicy();
    strlcpy(p->name, column_text(tuple, desc, 1), sizeof(p->name));
    p->priority = (int32)column_int64(tuple, desc, 2);
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
            ereport(ERROR, (errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
                            errmsg("policy \"%s\" has an unreadable client_addr \"%s\"", p->name, text)));
        p->has_client = true;
        p->client = *cidr;
    }
    p->rules.idle_timeout = column_interval(tuple, desc, 7);
    p->rules.idle_in_transaction_timeout = column_interval(tuple, desc, 8);
    p->rules.max_connection_age = column_interval(tuple, desc, 9);
    p->rules.max_query_duration = column_interval(tuple, desc, 10);
    p->rules.max_idle = column_int64(tuple, desc, 11);
    p->rules.max_idle_memory = column_int64(tuple, desc, 12);
    p->max_connections = column_int64(tuple, desc, 13);
    text = column_text(tuple, desc, 14);
    p->on_limit = OnLimit::reject;
    if (text != NULL && strcmp(text, "evict_idle") == 0)
        p->on_limit = OnLimit::evict_idle;
    else if (text != NULL && strcmp(text, "wait") == 0)
        p->on_limit = OnLimit::wait;
    p->dry_run = column_bool(tuple, desc, 15);
    /* 1.2's columns (absent while the installed SQL is older: the query then leaves them out). */
    p->rules.idle_memory_budget = core::inherit;
    if (desc->natts >= 18)
    {
        p->rules.idle_memory_budget = column_int64(tuple, desc, 16);
        p->rules.min_idle = column_int64(tuple, desc, 17);
        int64 wait = column_interval(tuple, desc, 18);
        p->login_wait = wait == core::inherit ? 0 : wait;
    }
    if (p->on_limit == OnLimit::wait && p->login_wait <= 0)
        p->on_limit = OnLimit::reject; /* policy_validate refuses this; a hand-edited catalog still caps */
}

/*
 * Plain column references only: no operator, no function, no cast, every name qualified
 * (ORDER BY takes each type's default btree ordering, which no search_path can change).
 * Intervals are converted in C (core::interval_micros).
 */
#define POLICY_COLUMNS                                                                                       \
    "SELECT name, priority, role_name, database_name, application_name, client_addr, "                       \
    "       idle_timeout, idle_in_transaction_timeout, max_connection_age, max_query_duration, "             \
    "       max_idle, max_idle_memory, max_connections, on_limit, dry_run"
#define POLICY_FROM                                                                                          \
    " FROM poolguard.policy WHERE enabled ORDER BY priority DESC, name COLLATE pg_catalog.\"C\""
const char *load_query = POLICY_COLUMNS ", idle_memory_budget, min_idle, login_wait" POLICY_FROM;
/* The table as 1.0 and 1.1 created it (no idle_memory_budget, min_idle, login_wait), until ALTER EXTENSION
 * UPDATE. */
const char *load_query_before_1_2 = POLICY_COLUMNS POLICY_FROM;
#undef POLICY_COLUMNS
#undef POLICY_FROM

/*
 * A cheap digest of the table's visible rows under the active snapshot: every insert, update
 * and delete changes some row's (xmin, ctid), so a changed digest means changed contents.  It
 * lets the worker notice changes no trigger told it about (COMMIT PREPARED in another session).
 * Order-independent; 0 when there is no table.
 */
uint64 table_fingerprint(Oid relid)
{
    if (!OidIsValid(relid))
        return 0;
    uint64 digest = hash_bytes_uint32_extended((uint32)relid, 0);
    uint64 rows = 0;
    Relation rel = table_open(relid, AccessShareLock);
    TableScanDesc scan = table_beginscan(rel, GetActiveSnapshot(), 0, NULL);
    HeapTuple tuple;
    while ((tuple = heap_getnext(scan, ForwardScanDirection)) != NULL)
    {
        uint32 identity[3] = {HeapTupleHeaderGetRawXmin(tuple->t_data),
                              ItemPointerGetBlockNumberNoCheck(&tuple->t_self),
                              ItemPointerGetOffsetNumberNoCheck(&tuple->t_self)};
        digest += hash_bytes_extended(reinterpret_cast<const unsigned char *>(identity), sizeof(identity), 1);
        rows++;
    }
    table_endscan(scan);
    table_close(rel, AccessShareLock);
    return digest ^ hash_bytes_uint32_extended((uint32)rows, 2);
}

/*
 * How often, at most, this process reads the whole table for its fingerprint when no change was
 * committed or requested.  The fingerprint catches only what no trigger reports (a COMMIT
 * PREPARED in another session, triggers disabled), so those changes apply within this long;
 * every other change applies at the next cycle.  With a short naptime the worker would
 * otherwise read every policy row each cycle (the largest fixed cost of a scan).
 */
constexpr long fingerprint_interval_ms = 1000;
TimestampTz fingerprint_read_at = 0;

/* search_path while the loader's query runs: nothing a database owner creates comes first. */
constexpr const char *pinned_search_path = "pg_catalog, pg_temp";

} // namespace

void policy_store_register(void)
{
    shmem_register(store_size, store_init);
    shmem_register_lwlocks(policies_tranche, 1);
}

void policy_store_snapshot(PolicySnapshot *snapshot)
{
    require_shared_memory();
    uint32 nbuckets = index_buckets();
    /* Allocate for the count seen, copy under the lock if it still fits (nothing is palloc'd under it). */
    for (;;)
    {
        LWLockAcquire(published_policies->lock, LW_SHARED);
        int room = published_policies->count;
        LWLockRelease(published_policies->lock);

        CompiledPolicy *policies =
            static_cast<CompiledPolicy *>(palloc(sizeof(CompiledPolicy) * Max(room, 1)));
        int32 *heads = static_cast<int32 *>(palloc(sizeof(int32) * nbuckets));
        int32 *next = static_cast<int32 *>(palloc(sizeof(int32) * Max(room, 1)));

        LWLockAcquire(published_policies->lock, LW_SHARED);
        int count = published_policies->count;
        if (count <= room)
        {
            snapshot->version = published_policies->version;
            snapshot->count = count;
            memcpy(policies, published_policies->policies, sizeof(CompiledPolicy) * count);
            snapshot->index = published_policies->index;
            memcpy(heads, published_heads, sizeof(int32) * nbuckets);
            memcpy(next, published_next, sizeof(int32) * count);
        }
        LWLockRelease(published_policies->lock);
        if (count <= room)
        {
            snapshot->policies = policies;
            snapshot->index_heads = heads;
            snapshot->index_next = next;
            return;
        }
        pfree(policies); /* more were published in between: again, with room for them */
        pfree(heads);
        pfree(next);
    }
}

uint64 policy_store_loaded_change_count(void)
{
    uint64 loaded;

    LWLockAcquire(published_policies->lock, LW_SHARED);
    loaded = published_policies->loaded_change_count;
    LWLockRelease(published_policies->lock);
    return loaded;
}

namespace
{

/* A policy role not looked up yet (Oids are 32-bit; this one is never assigned). */
constexpr Oid unresolved_role = ~(Oid)0;

/*
 * policy_table_oid()'s answer, cached per process (a backend stays in one database).  Safe
 * because every change that can alter the answer sends a relcache invalidation that reaches
 * policy_table_relcache_callback before the next catalog access (a transaction's start, a lock,
 * a CommandCounterIncrement in the changing transaction, its abort):
 *   - the table created (CREATE EXTENSION) or an impostor created: a new pg_class row fires an
 *     invalidation for its relid — so a cached "not found" is dropped on any relid;
 *   - the table dropped (DROP EXTENSION, DROP TABLE), renamed, moved to another schema, its owner
 *     or kind changed: its pg_class row changes, an invalidation for the cached relid;
 *   - a lost invalidation (sinval queue overflow) resets every cache: relid InvalidOid.
 * Two changes send no invalidation for the table: ALTER EXTENSION pg_poolguard DROP TABLE (a
 * pg_depend change) and ALTER SCHEMA poolguard RENAME (a pg_namespace change).  They leave the
 * cached relid in use until the next invalidation; both need the extension's owner or the
 * schema's, a superuser (superuser = true in the control file), and the table stays the one the
 * extension created, owned by that superuser (after a schema rename the loader's query, which
 * names poolguard.policy, fails as it did before).  The trust rule is unchanged: only the
 * extension's own table is ever used.
 */
bool table_oid_known = false;
Oid table_oid_cached = InvalidOid;
bool relcache_callback_registered = false;

void policy_table_relcache_callback(Datum arg, Oid relid)
{
    if (!OidIsValid(relid) || !OidIsValid(table_oid_cached) || relid == table_oid_cached)
        table_oid_known = false;
}

Oid lookup_policy_table(void)
{
    /*
     * Only the extension's own table: a database owner can create a schema "poolguard" and a
     * look-alike "policy" (a view calling a function of theirs) before or without the extension.
     */
    Oid extension = get_extension_oid("pg_poolguard", true);
    if (!OidIsValid(extension))
        return InvalidOid;
    Oid nsp = get_namespace_oid("poolguard", true);
    Oid relid = OidIsValid(nsp) ? get_relname_relid("policy", nsp) : InvalidOid;
    if (!OidIsValid(relid) || get_rel_relkind(relid) != RELKIND_RELATION ||
        getExtensionOfObject(RelationRelationId, relid) != extension)
        return InvalidOid;
    return relid;
}

/* The match columns of policies[0..count) as the core index sees them (palloc'd; points into them). */
core::PolicyMatchKeys *match_keys(const CompiledPolicy *policies, int count)
{
    core::PolicyMatchKeys *keys =
        static_cast<core::PolicyMatchKeys *>(palloc(sizeof(core::PolicyMatchKeys) * Max(count, 1)));
    for (int i = 0; i < count; i++)
    {
        const CompiledPolicy *p = &policies[i];
        keys[i] = core::PolicyMatchKeys();
        keys[i].role = p->has_role ? NameStr(p->role_name) : nullptr;
        keys[i].database = p->has_database ? NameStr(p->database_name) : nullptr;
        keys[i].application = p->has_application ? p->application_pattern : nullptr;
        keys[i].client = p->has_client ? &p->client : nullptr;
    }
    return keys;
}

/* A login role's name and those of every role it is (recursively) a member of: palloc'd. */
struct RoleNames
{
    int count;
    const char **names;
};

/*
 * The names the index is asked for: userid's own, every role reachable through pg_auth_members
 * from it (all grants, whatever their INHERIT option), and — once connected to a database —
 * pg_database_owner with what it is a member of (is_member_of_role counts the database's owner
 * as one, and only when MyDatabaseId is set: not yet at ClientAuthentication_hook).  A superset
 * of the roles role_matches() accepts is all the index needs: each candidate is then checked with
 * role_matches() itself.  Catalog access: call with no LWLock held.
 */
RoleNames role_names_of(Oid userid)
{
    int capacity = 8, nroles = 0;
    Oid *roles = static_cast<Oid *>(palloc(sizeof(Oid) * capacity));
    roles[nroles++] = userid;
    if (OidIsValid(MyDatabaseId) && userid != ROLE_PG_DATABASE_OWNER)
        roles[nroles++] = ROLE_PG_DATABASE_OWNER;
    for (int i = 0; i < nroles; i++)
    {
        CatCList *grants = SearchSysCacheList1(AUTHMEMMEMROLE, ObjectIdGetDatum(roles[i]));
        for (int g = 0; g < grants->n_members; g++)
        {
            Oid granted = ((Form_pg_auth_members)GETSTRUCT(&grants->members[g]->tuple))->roleid;
            bool seen = false;
            for (int k = 0; k < nroles && !seen; k++)
                seen = roles[k] == granted;
            if (seen)
                continue;
            if (nroles == capacity)
            {
                capacity *= 2;
                roles = static_cast<Oid *>(repalloc(roles, sizeof(Oid) * capacity));
            }
            roles[nroles++] = granted;
        }
        ReleaseSysCacheList(grants);
    }
    RoleNames result;
    result.count = 0;
    result.names = static_cast<const char **>(palloc(sizeof(char *) * nroles));
    for (int i = 0; i < nroles; i++)
    {
        HeapTuple tuple = SearchSysCache1(AUTHOID, ObjectIdGetDatum(roles[i]));
        if (!HeapTupleIsValid(tuple))
            continue; /* dropped meanwhile */
        result.names[result.count++] = pstrdup(NameStr(((Form_pg_authid)GETSTRUCT(tuple))->rolname));
        ReleaseSysCache(tuple);
    }
    pfree(roles);
    return result;
}

core::LoginKeys login_keys(const RoleNames &roles, const char *database_name, const char *application_name,
                           const core::IpAddress &client)
{
    core::LoginKeys login;
    login.role_names = roles.names;
    login.nroles = roles.count;
    login.database = database_name;
    login.application = application_name != NULL ? application_name : "";
    login.client = client;
    return login;
}

/* Does the policy accept the login?  Its role through the catalog (role_matches), the rest in core. */
bool accepts(const CompiledPolicy *p, Oid *role_oid, Oid userid, const core::LoginKeys &login)
{
    if (p->has_role)
    {
        if (*role_oid == unresolved_role)
            *role_oid = get_role_oid(NameStr(p->role_name), true);
        if (!role_matches(userid, *role_oid))
            return false;
    }
    core::PolicyMatchKeys keys = core::PolicyMatchKeys();
    keys.database = p->has_database ? NameStr(p->database_name) : nullptr;
    keys.application = p->has_application ? p->application_pattern : nullptr;
    keys.client = p->has_client ? &p->client : nullptr;
    return core::policy_matches_except_role(keys, login);
}

/*
 * The worker's (and any long-lived backend's) role names by login role, kept across scans: a
 * scan of 5,000 sessions then resolves no membership twice.  Any change of pg_authid or
 * pg_auth_members (a grant, a revoke, a rename, a drop) drops all of it (syscache callbacks), so
 * a role granted into a group is matched from the next scan on, as before.
 */
struct RoleNamesEntry
{
    Oid userid; /* hash key */
    RoleNames names;
};
constexpr long role_names_cache_limit =
    20000; /* entries (about 100 bytes each); past it the cache starts over */
MemoryContext role_names_context = nullptr;
HTAB *role_names_cache = nullptr;
bool role_names_valid = false;
bool role_names_callbacks_registered = false;

void role_names_invalidate(Datum arg, int cacheid, uint32 hashvalue)
{
    role_names_valid = false;
}

/* role_names_of(userid), from the cache when still valid (the result lives until it is dropped). */
RoleNames cached_role_names(Oid userid)
{
    if (!role_names_callbacks_registered)
    {
        CacheRegisterSyscacheCallback(AUTHOID, role_names_invalidate, (Datum)0);
        CacheRegisterSyscacheCallback(AUTHMEMMEMROLE, role_names_invalidate, (Datum)0);
        role_names_callbacks_registered = true;
    }
    if (role_names_context == nullptr)
        role_names_context =
            AllocSetContextCreate(TopMemoryContext, "pg_poolguard role names", ALLOCSET_DEFAULT_SIZES);
    if (role_names_cache != nullptr &&
        (!role_names_valid || hash_get_num_entries(role_names_cache) >= role_names_cache_limit))
    {
        MemoryContextReset(role_names_context); /* the hash table lives in it too */
        role_names_cache = nullptr;
    }
    if (role_names_cache == nullptr)
    {
        HASHCTL ctl;
        memset(&ctl, 0, sizeof(ctl));
        ctl.keysize = sizeof(Oid);
        ctl.entrysize = sizeof(RoleNamesEntry);
        ctl.hcxt = role_names_context;
        role_names_cache =
            hash_create("pg_poolguard role names", 256, &ctl, HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
        role_names_valid = true;
    }
    RoleNamesEntry *entry =
        static_cast<RoleNamesEntry *>(hash_search(role_names_cache, &userid, HASH_FIND, NULL));
    if (entry != NULL)
        return entry->names;

    /* Resolved in the caller's context: catalog access may process an invalidation meanwhile. */
    RoleNames names = role_names_of(userid);
    if (!role_names_valid)
        return names; /* stale before it was stored: not kept (the next call starts over) */
    MemoryContext old = MemoryContextSwitchTo(role_names_context);
    RoleNames kept;
    kept.count = names.count;
    kept.names = static_cast<const char **>(palloc(sizeof(char *) * Max(names.count, 1)));
    for (int i = 0; i < names.count; i++)
        kept.names[i] = pstrdup(names.names[i]);
    bool found;
    entry = static_cast<RoleNamesEntry *>(hash_search(role_names_cache, &userid, HASH_ENTER, &found));
    entry->names = kept;
    MemoryContextSwitchTo(old);
    return kept;
}

} // namespace

struct PolicyMatchCache
{
    Oid *role_oids; /* per policy, unresolved_role until needed */
    int32 *scratch; /* candidates, room for every policy */
};

Oid policy_table_oid(void)
{
    if (!relcache_callback_registered)
    {
        CacheRegisterRelcacheCallback(policy_table_relcache_callback, (Datum)0);
        relcache_callback_registered = true;
    }
    if (!table_oid_known)
    {
        Oid relid = lookup_policy_table(); /* may error: the cache is set only after */
        table_oid_cached = relid;
        table_oid_known = true;
    }
    return table_oid_cached;
}

PolicyMatchCache *policy_match_cache(const PolicySnapshot *snapshot)
{
    PolicyMatchCache *cache = static_cast<PolicyMatchCache *>(palloc0(sizeof(PolicyMatchCache)));
    cache->role_oids = static_cast<Oid *>(palloc(sizeof(Oid) * Max(snapshot->count, 1)));
    for (int i = 0; i < snapshot->count; i++)
        cache->role_oids[i] = snapshot->policies[i].has_role ? unresolved_role : InvalidOid;
    cache->scratch = static_cast<int32 *>(palloc(sizeof(int32) * Max(snapshot->count, 1)));
    return cache;
}

bool role_matches(Oid userid, Oid role)
{
    return OidIsValid(role) && (userid == role || is_member_of_role_nosuper(userid, role));
}

int policy_match(const PolicySnapshot *snapshot, PolicyMatchCache *cache, Oid userid,
                 const char *database_name, const char *application_name, const core::IpAddress &client)
{
    if (snapshot->count == 0)
        return -1;
    /* Role names only when some policy is filed under a role (else no catalog access at all). */
    RoleNames roles = {0, nullptr};
    if (snapshot->index.by_role > 0)
        roles = cached_role_names(userid);
    core::LoginKeys login = login_keys(roles, database_name, application_name, client);
    int n = core::policy_index_candidates(snapshot->index, snapshot->index_heads, snapshot->index_next, login,
                                          cache->scratch);
    /* Candidates in match order; the first the full predicate accepts is the linear scan's answer. */
    for (int k = 0; k < n; k++)
    {
        int i = cache->scratch[k];
        if (accepts(&snapshot->policies[i], &cache->role_oids[i], userid, login))
            return i;
    }
    return -1;
}

bool policy_match_login(Oid userid, const char *database_name, const char *application_name,
                        const core::IpAddress &client, CompiledPolicy *policy)
{
    require_shared_memory();
    /* Catalog first (memberships), no lock held — and only if some policy is filed under a role. */
    LWLockAcquire(published_policies->lock, LW_SHARED);
    bool need_roles = published_policies->index.by_role > 0;
    LWLockRelease(published_policies->lock);
    RoleNames roles = {0, nullptr};
    if (need_roles)
        roles = role_names_of(userid);
    int32 *candidates = static_cast<int32 *>(palloc(sizeof(int32) * Max(guc_max_policies, 1)));
    int room = 16; /* one role per tenant: its policy, a few catch-alls */
    CompiledPolicy *copies = static_cast<CompiledPolicy *>(palloc(sizeof(CompiledPolicy) * room));
    core::LoginKeys login;
    int n;
    for (;;)
    {
        login = login_keys(roles, database_name, application_name, client);
        /* Under the lock: walk the chains (plain data, no allocation) and copy only the candidates. */
        LWLockAcquire(published_policies->lock, LW_SHARED);
        bool roles_missing = !need_roles && published_policies->index.by_role > 0;
        n = roles_missing ? 0
                          : core::policy_index_candidates(published_policies->index, published_heads,
                                                          published_next, login, candidates);
        bool fits = !roles_missing && n <= room;
        if (fits)
            for (int k = 0; k < n; k++)
                copies[k] = published_policies->policies[candidates[k]];
        LWLockRelease(published_policies->lock);
        if (fits)
            break;
        if (roles_missing)
        {
            /* Policies with a role were published meanwhile: resolve the names, look again. */
            need_roles = true;
            roles = role_names_of(userid);
            continue;
        }
        pfree(copies); /* more candidates than room (policies without a role or database): again */
        room = Max(guc_max_policies, 1);
        copies = static_cast<CompiledPolicy *>(palloc(sizeof(CompiledPolicy) * room));
    }
    bool found = false;
    for (int k = 0; k < n && !found; k++)
    {
        Oid role_oid = copies[k].has_role ? unresolved_role : InvalidOid;
        if (accepts(&copies[k], &role_oid, userid, login))
        {
            *policy = copies[k];
            found = true;
        }
    }
    pfree(copies);
    pfree(candidates);
    return found;
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
    uint64 fingerprint = 0;
    CompiledPolicy *compiled = nullptr;
    core::PolicyIndexHeader index;
    index.nbuckets = index_buckets();
    int32 *heads = nullptr, *next = nullptr;
    Oid table = policy_table_oid();

    PushActiveSnapshot(GetTransactionSnapshot());
    if (OidIsValid(table))
    {
        int save_nestlevel = NewGUCNestLevel();
        (void)set_config_option("search_path", pinned_search_path, PGC_USERSET, PGC_S_SESSION,
                                GUC_ACTION_SAVE, true, 0, false);
        if (SPI_connect() != SPI_OK_CONNECT)
            elog(ERROR, "pg_poolguard: SPI_connect failed");
        bool has_1_2_columns = get_attnum(table, "idle_memory_budget") != InvalidAttrNumber &&
                               get_attnum(table, "login_wait") != InvalidAttrNumber;
        int rc = SPI_execute(has_1_2_columns ? load_query : load_query_before_1_2, true, 0);
        if (rc != SPI_OK_SELECT)
            elog(ERROR, "pg_poolguard could not read poolguard.policy: %s", SPI_result_code_string(rc));
        total = (int)SPI_processed;
        kept = Min(total, guc_max_policies);
        compiled = static_cast<CompiledPolicy *>(
            MemoryContextAlloc(CurTransactionContext, sizeof(CompiledPolicy) * Max(kept, 1)));
        for (int i = 0; i < kept; i++)
            compile_row(&compiled[i], SPI_tuptable->vals[i], SPI_tuptable->tupdesc);
        SPI_finish();
        AtEOXact_GUC(true, save_nestlevel);
        /* The index, built here (no lock): O(policies). */
        core::PolicyMatchKeys *keys = match_keys(compiled, kept);
        index.nbuckets = index_buckets();
        heads =
            static_cast<int32 *>(MemoryContextAlloc(CurTransactionContext, sizeof(int32) * index.nbuckets));
        next = static_cast<int32 *>(MemoryContextAlloc(CurTransactionContext, sizeof(int32) * Max(kept, 1)));
        core::policy_index_build(keys, kept, &index, heads, next);
        pfree(keys);
        fingerprint = table_fingerprint(table); /* same snapshot as the query */
        fingerprint_read_at = GetCurrentTimestamp();
    }
    PopActiveSnapshot();
    if (total > kept)
        ereport(WARNING,
                (errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
                 errmsg("pg_poolguard uses only the first %d of %d enabled policies", kept, total),
                 errhint("Raise poolguard.max_policies (needs a restart) or disable some policies.")));

    LWLockAcquire(published_policies->lock, LW_EXCLUSIVE);
    /* A load that started before a newer one published must not overwrite it. */
    if (change_count >= published_policies->loaded_change_count)
    {
        if (kept > 0)
        {
            memcpy(published_policies->policies, compiled, sizeof(CompiledPolicy) * kept);
            memcpy(published_next, next, sizeof(int32) * kept);
        }
        if (heads != nullptr)
            memcpy(published_heads, heads, sizeof(int32) * index.nbuckets);
        else
            core::policy_index_build(nullptr, 0, &index, published_heads, published_next); /* no table */
        published_policies->index = index;
        published_policies->count = kept;
        published_policies->fingerprint = fingerprint;
        published_policies->version++;
        published_policies->loaded_change_count = change_count;
    }
    int in_force = published_policies->count;
    LWLockRelease(published_policies->lock);
    return in_force;
}

bool policy_store_refresh(bool force)
{
    require_shared_memory();
    if (!in_policy_database())
        return false;

    uint64 wanted = force ? pg_atomic_add_fetch_u64(&published_policies->change_count, 1)
                          : pg_atomic_read_u64(&published_policies->change_count);
    if (!force)
    {
        PushActiveSnapshot(GetTransactionSnapshot());
        uint64 fingerprint = table_fingerprint(policy_table_oid());
        PopActiveSnapshot();
        fingerprint_read_at = GetCurrentTimestamp();
        LWLockAcquire(published_policies->lock, LW_SHARED);
        bool current = published_policies->loaded_change_count >= wanted &&
                       published_policies->fingerprint == fingerprint;
        LWLockRelease(published_policies->lock);
        if (current)
            return false;
    }
    int n = policy_store_load(wanted);
    ereport(DEBUG1, (errmsg("pg_poolguard loaded %d policies", n)));
    return true;
}

bool policy_store_refresh_due(void)
{
    require_shared_memory();
    uint64 wanted = pg_atomic_read_u64(&published_policies->change_count);
    LWLockAcquire(published_policies->lock, LW_SHARED);
    bool current = published_policies->loaded_change_count >= wanted;
    LWLockRelease(published_policies->lock);
    return !current || TimestampDifferenceExceeds(fingerprint_read_at, GetCurrentTimestamp(),
                                                  (int)fingerprint_interval_ms);
}

bool policy_change_pending(void)
{
    return change_pending;
}

int policy_store_count(void)
{
    require_shared_memory();
    LWLockAcquire(published_policies->lock, LW_SHARED);
    int n = published_policies->count;
    LWLockRelease(published_policies->lock);
    return n;
}

uint64 policy_store_request_load(void)
{
    require_shared_memory();
    return pg_atomic_add_fetch_u64(&published_policies->change_count, 1);
}

} // namespace poolguard

using namespace poolguard;

/* AFTER ... FOR EACH STATEMENT trigger on poolguard.policy. */
POOLGUARD_FUNCTION(poolguard_policy_changed)
{
    if (!CALLED_AS_TRIGGER(fcinfo))
        ereport(ERROR, (errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
                        errmsg("poolguard.policy_changed() must be called as a trigger")));
    /* Only changes of the extension's own table may wake the worker (it reloads for them). */
    TriggerData *trigdata = (TriggerData *)fcinfo->context;
    if (RelationGetRelid(trigdata->tg_relation) != policy_table_oid())
        ereport(ERROR, (errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
                        errmsg("poolguard.policy_changed() may only be a trigger of table poolguard.policy"),
                        errdetail("Table \"%s\" is not the pg_poolguard policy table.",
                                  RelationGetRelationName(trigdata->tg_relation))));
    if (!xact_callback_registered)
    {
        RegisterXactCallback(policy_xact_callback, NULL);
        xact_callback_registered = true;
    }
    change_pending = true;
    return PointerGetDatum(NULL);
}
