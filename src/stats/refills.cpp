/*
 * refills.cpp — is a policy fighting a pool?  Logins, refills and ends per login identity and
 * per policy; poolguard.identity_status; the worker's WARNING about a fight.
 *
 * A login admitted through a policy (caps) counts as a refill when the policy ended a session of
 * the same identity (policy, login role, database, application_name) within
 * poolguard.refill_window before it; each end is matched by one login at most
 * (core::take_refill).  The ended backend counts its own end, from the emit_log_hook that adds
 * pg_poolguard's reason to its FATAL (enforce/actions.cpp): that runs before the message is sent,
 * so its client cannot log in again before the end is counted.  The ended backend also knows
 * whether it ever ran a statement (its pgstat entry's statement start is still 0 if not).
 *
 * Note about locking:
 *   - refill_lock (LWLock tranche "pg_poolguard refills") guards the whole "pg_poolguard refills"
 *     struct: the identity table and the per-policy windows with their name index (a hash: a
 *     login or an end finds its policy's window in O(1), not by a scan of 2 * max_policies).  LW_EXCLUSIVE to
 * count or to decide a warning, LW_SHARED to copy out.  Under it only plain data is compared and copied: no
 *     palloc, no catalog, nothing that can error (role names are resolved after it is released).
 *   - It is a leaf: callers hold no pg_poolguard lock, and nothing is acquired under it.  The
 *     per-policy stats counters (stats.cpp's lock) are counted after it is released.
 *   - refills_count_end runs inside error reporting (a FATAL being emitted): it takes only this
 *     lock, for a few comparisons, and cannot raise an error.
 *
 * Bounds: the identity table has a fixed number of entries shared by all databases; one
 * database may fill at most half of it (beyond that its own least recently used entry is
 * reused), so a database that invents application names cannot push out every other one.  The
 * view is for pg_monitor only.
 */
#include "stats/stats.h"

#include "pg/guard.h"
#include "pg/guc.h"
#include "pg/shmem.h"

#include "core/policy/churn.h"
#include "core/policy/name_index.h"

namespace poolguard
{

namespace
{

constexpr int identity_capacity = 512;
constexpr const char *refill_tranche = "pg_poolguard refills";

struct IdentityEntry
{
    IdentityCounters counts; /* counts.policy "" = free */
    TimestampTz last_used;   /* for reuse: the least recently used entry goes first */
    core::RecentEnds recent_ends;
};

struct PolicyWindow
{
    char policy[NAMEDATALEN]; /* "" = free */
    core::ChurnWindow window;
    Oid last_refill_role; /* the identity of the latest refill, for the warning */
    char last_refill_database[NAMEDATALEN];
    char last_refill_application[NAMEDATALEN];
};

struct RefillTable
{
    LWLock *lock;
    int nwindows;    /* 2 * max_policies */
    int first_free;  /* windows below it all hold a policy name (names are replaced, never cleared) */
    uint32 nbuckets; /* the windows' name index (core/policy/name_index.h) */
    IdentityEntry identities[identity_capacity];
    PolicyWindow windows[FLEXIBLE_ARRAY_MEMBER];
    /* then int32 heads[nbuckets], int32 next[nwindows] */
};

RefillTable *refill_table = nullptr; /* "pg_poolguard refills" in shared memory */
int32 *window_heads = nullptr;       /* in the same shared memory */
int32 *window_next = nullptr;

/* This backend's login identity, once admitted through a policy. */
struct MyLogin
{
    bool valid;
    char policy[NAMEDATALEN];
    Oid roleid;
    char database_name[NAMEDATALEN];
    char application_name[NAMEDATALEN];
};
MyLogin my_login = {false, "", InvalidOid, "", ""};

int window_capacity(void)
{
    return 2 * guc_max_policies;
}

Size windows_size(void)
{
    return MAXALIGN(
        add_size(offsetof(RefillTable, windows), mul_size(sizeof(PolicyWindow), window_capacity())));
}

Size refills_size(void)
{
    return add_size(
        windows_size(),
        mul_size(sizeof(int32), add_size(core::name_index_buckets(window_capacity()), window_capacity())));
}

void refills_init(void)
{
    bool found;
    refill_table = static_cast<RefillTable *>(ShmemInitStruct(refill_tranche, refills_size(), &found));
    uint32 nbuckets = core::name_index_buckets(window_capacity());
    window_heads = reinterpret_cast<int32 *>(reinterpret_cast<char *>(refill_table) + windows_size());
    window_next = window_heads + nbuckets;
    if (!found)
    {
        refill_table->first_free = 0;
        refill_table->nbuckets = nbuckets;
        core::name_index_clear(window_heads, nbuckets);
        for (IdentityEntry &e : refill_table->identities)
            e = IdentityEntry();
        for (int i = 0; i < window_capacity(); i++)
            refill_table->windows[i] = PolicyWindow();
        refill_table->lock = &(GetNamedLWLockTranche(refill_tranche))->lock;
        refill_table->nwindows = window_capacity();
    }
}

core::Micros window_us(void)
{
    return (core::Micros)guc_refill_window_ms * 1000;
}

/* Under refill_lock (exclusive).  Plain data only. */
IdentityEntry *identity_entry(const char *policy, Oid roleid, const char *database_name,
                              const char *application_name, TimestampTz now)
{
    IdentityEntry *free_entry = nullptr, *oldest = nullptr, *oldest_same_db = nullptr;
    int same_db = 0;
    for (int i = 0; i < identity_capacity; i++)
    {
        IdentityEntry *e = &refill_table->identities[i];
        if (e->counts.policy[0] == '\0')
        {
            if (free_entry == nullptr)
                free_entry = e;
            continue;
        }
        bool db = strcmp(e->counts.database_name, database_name) == 0;
        if (db && e->counts.roleid == roleid && strcmp(e->counts.policy, policy) == 0 &&
            strcmp(e->counts.application_name, application_name) == 0)
            return e;
        if (db)
        {
            same_db++;
            if (oldest_same_db == nullptr || e->last_used < oldest_same_db->last_used)
                oldest_same_db = e;
        }
        if (oldest == nullptr || e->last_used < oldest->last_used)
            oldest = e;
    }
    IdentityEntry *e = same_db >= identity_capacity / 2 ? oldest_same_db
                       : free_entry != nullptr          ? free_entry
                                                        : oldest;
    *e = IdentityEntry();
    strlcpy(e->counts.policy, policy, NAMEDATALEN);
    e->counts.roleid = roleid;
    strlcpy(e->counts.database_name, database_name, NAMEDATALEN);
    strlcpy(e->counts.application_name, application_name, NAMEDATALEN);
    e->last_used = now;
    return e;
}

/* Under refill_lock (exclusive).  Plain data only. */
PolicyWindow *policy_window(const char *policy)
{
    PolicyWindow *windows = refill_table->windows;
    int found = core::name_index_find(window_heads, refill_table->nbuckets, window_next, policy,
                                      [windows](int32 i) { return windows[i].policy; });
    if (found >= 0)
        return &windows[found];
    /* A new name: the first free window, else the stalest (a scan only when all are named). */
    int i = core::name_index_claim(
        window_heads, refill_table->nbuckets, window_next, refill_table->first_free, refill_table->nwindows,
        policy, [windows](int32 k) { return windows[k].policy; },
        [windows]()
        {
            int stalest = 0;
            for (int k = 1; k < refill_table->nwindows; k++)
                if (windows[k].window.bucket_start < windows[stalest].window.bucket_start)
                    stalest = k;
            return stalest;
        });
    PolicyWindow *w = &windows[i];
    *w = PolicyWindow();
    strlcpy(w->policy, policy, NAMEDATALEN);
    return w;
}

/* Did this backend run any statement since its login?  (pgstat's statement start is 0 until then.) */
bool ran_a_statement(void)
{
    return MyBEEntry == NULL || MyBEEntry->st_activity_start_timestamp != 0;
}

} // namespace

void refills_register(void)
{
    shmem_register(refills_size, refills_init);
    shmem_register_lwlocks(refill_tranche, 1);
}

void refills_count_login(const char *policy, Oid roleid, const char *database_name,
                         const char *application_name)
{
    if (refill_table == nullptr || policy == nullptr || policy[0] == '\0')
        return;
    my_login.valid = true;
    strlcpy(my_login.policy, policy, NAMEDATALEN);
    my_login.roleid = roleid;
    strlcpy(my_login.database_name, database_name ? database_name : "", NAMEDATALEN);
    strlcpy(my_login.application_name, application_name ? application_name : "", NAMEDATALEN);

    TimestampTz now = GetCurrentTimestamp();
    LWLockAcquire(refill_table->lock, LW_EXCLUSIVE);
    IdentityEntry *e = identity_entry(policy, roleid, my_login.database_name, my_login.application_name, now);
    e->counts.logins++;
    e->counts.last_login = now;
    e->last_used = now;
    bool refill = core::take_refill(e->recent_ends, now, window_us());
    if (refill)
    {
        e->counts.refills++;
        PolicyWindow *w = policy_window(policy);
        core::count_refill(w->window, now, window_us());
        w->last_refill_role = roleid;
        strlcpy(w->last_refill_database, my_login.database_name, NAMEDATALEN);
        strlcpy(w->last_refill_application, my_login.application_name, NAMEDATALEN);
    }
    LWLockRelease(refill_table->lock);

    stats_count_policy_event(policy, PolicyEvent::login_admitted);
    if (refill)
        stats_count_policy_event(policy, PolicyEvent::login_refill);
}

void refills_count_end(const char *policy, core::Reason reason)
{
    if (refill_table == nullptr || !my_login.valid || policy == nullptr || policy[0] == '\0')
        return;
    bool unused = !ran_a_statement();
    TimestampTz now = GetCurrentTimestamp();
    LWLockAcquire(refill_table->lock, LW_EXCLUSIVE);
    /* Counted under the policy that ended it (a reload may have moved the session). */
    IdentityEntry *e =
        identity_entry(policy, my_login.roleid, my_login.database_name, my_login.application_name, now);
    e->counts.ended++;
    if (unused)
        e->counts.ended_unused++;
    e->counts.last_end = now;
    e->last_used = now;
    core::note_end(e->recent_ends, now);
    core::count_end(policy_window(policy)->window, now, window_us(), reason, unused);
    LWLockRelease(refill_table->lock);
    if (unused)
        stats_count_policy_event(policy, PolicyEvent::ended_unused);
    my_login.valid = false; /* one end per backend */
}

namespace
{

/* A warning decided under the lock, reported after it. */
struct Fight
{
    char policy[NAMEDATALEN];
    core::ChurnTotals totals;
    Oid role;
    char database_name[NAMEDATALEN];
    char application_name[NAMEDATALEN];
};

const char *fight_hint(core::FightCause cause)
{
    switch (cause)
    {
    case core::FightCause::pool_minimum_above_max_idle:
        return "The pool keeps more idle connections than the policy's max_idle allows: set the pool's "
               "minimum of idle connections (minimumIdle, min_size) at or below max_idle, or raise max_idle.";
    case core::FightCause::idle_rule_vs_pool:
        return "The pool refills to its minimum after each end, or its health check runs less often than "
               "the idle rule: set the pool's minimum of idle connections to 0 and its idle timeout below "
               "the rule, run the health check more often than the rule, or set min_idle on the policy to "
               "keep a warm floor.";
    case core::FightCause::memory_rule:
        return "Refilled sessions grow past max_idle_memory again: raise max_idle_memory, or let the pool "
               "retire connections itself (its maximum lifetime).";
    case core::FightCause::cap_evictions:
        return "The pool wants more connections than the policy's max_connections: make the pool smaller, "
               "or set on_limit = 'wait' with a login_wait so that logins wait instead of evicting.";
    }
    return "";
}

} // namespace

void refills_warn_fights(void)
{
    if (refill_table == nullptr)
        return;
    TimestampTz now = GetCurrentTimestamp();
    /*
     * Only the windows below first_free hold a policy (it only grows): the worker runs this each
     * cycle, so it must cost what the policies that ended sessions cost, not 2 × max_policies.
     */
    LWLockAcquire(refill_table->lock, LW_SHARED);
    int n = refill_table->first_free;
    LWLockRelease(refill_table->lock);
    if (n == 0)
        return;
    Fight *fights = static_cast<Fight *>(palloc(sizeof(Fight) * n));
    int nfights = 0;
    LWLockAcquire(refill_table->lock, LW_EXCLUSIVE);
    n = Min(n, refill_table->first_free);
    for (int i = 0; i < n; i++)
    {
        PolicyWindow *w = &refill_table->windows[i];
        if (w->policy[0] == '\0' || !core::should_warn(w->window, now, window_us()))
            continue;
        Fight *f = &fights[nfights++];
        strlcpy(f->policy, w->policy, NAMEDATALEN);
        f->totals = core::totals(w->window);
        f->role = w->last_refill_role;
        strlcpy(f->database_name, w->last_refill_database, NAMEDATALEN);
        strlcpy(f->application_name, w->last_refill_application, NAMEDATALEN);
    }
    LWLockRelease(refill_table->lock);

    for (int i = 0; i < nfights; i++)
    {
        const Fight *f = &fights[i];
        const char *role = GetUserNameFromId(f->role, true);
        ereport(
            WARNING,
            (errcode(ERRCODE_WARNING),
             errmsg("pg_poolguard policy \"%s\" is fighting a connection pool", f->policy),
             errdetail("Of the %ld sessions the policy ended in the last %d s, %ld were replaced by a login "
                       "of the same identity within poolguard.refill_window, and %ld had run no statement "
                       "since their login; the latest refill was role \"%s\", database \"%s\", "
                       "application_name \"%s\".",
                       (long)f->totals.ends, 2 * guc_refill_window_ms / 1000, (long)f->totals.refills,
                       (long)f->totals.unused, role ? role : "?", f->database_name, f->application_name),
             errhint("%s", fight_hint(core::likely_cause(f->totals)))));
    }
    pfree(fights);
}

int refills_copy_identities(IdentityCounters **rows)
{
    require_shared_memory();
    IdentityCounters *out =
        static_cast<IdentityCounters *>(palloc(sizeof(IdentityCounters) * identity_capacity));
    int n = 0;
    LWLockAcquire(refill_table->lock, LW_SHARED);
    for (int i = 0; i < identity_capacity; i++)
    {
        const IdentityEntry *e = &refill_table->identities[i];
        if (e->counts.policy[0] == '\0')
            continue;
        out[n++] = e->counts;
    }
    LWLockRelease(refill_table->lock);
    *rows = out;
    return n;
}

void refills_reset(void)
{
    if (refill_table == nullptr)
        return;
    LWLockAcquire(refill_table->lock, LW_EXCLUSIVE);
    for (int i = 0; i < identity_capacity; i++)
    {
        IdentityEntry *e = &refill_table->identities[i];
        e->counts.logins = e->counts.refills = e->counts.ended = e->counts.ended_unused = 0;
        e->recent_ends = core::RecentEnds(); /* ends before the reset are no refills after it */
    }
    for (int i = 0; i < refill_table->nwindows; i++)
        refill_table->windows[i].window = core::ChurnWindow();
    LWLockRelease(refill_table->lock);
}

} // namespace poolguard

using namespace poolguard;

/* poolguard.identity_status: one row per login identity counted (pg_monitor only). */
POOLGUARD_FUNCTION(poolguard_identity_status_info)
{
    require_shared_memory();
    ReturnSetInfo *rsinfo = (ReturnSetInfo *)fcinfo->resultinfo;
    InitMaterializedSRF(fcinfo, 0);
    IdentityCounters *rows;
    int n = refills_copy_identities(&rows);
    for (int i = 0; i < n; i++)
    {
        const IdentityCounters *r = &rows[i];
        Datum values[10];
        bool nulls[10] = {false, false, false, false, false, false, false, false, false, false};
        values[0] = CStringGetTextDatum(r->policy);
        const char *role = OidIsValid(r->roleid) ? GetUserNameFromId(r->roleid, true) : NULL;
        if (role != NULL)
        {
            Name name = static_cast<Name>(palloc0(NAMEDATALEN));
            namestrcpy(name, role);
            values[1] = NameGetDatum(name);
        }
        else
            nulls[1] = true;
        Name db = static_cast<Name>(palloc0(NAMEDATALEN));
        namestrcpy(db, r->database_name);
        values[2] = NameGetDatum(db);
        values[3] = CStringGetTextDatum(r->application_name);
        values[4] = Int64GetDatum(r->logins);
        values[5] = Int64GetDatum(r->refills);
        values[6] = Int64GetDatum(r->ended);
        values[7] = Int64GetDatum(r->ended_unused);
        if (r->last_login != 0)
            values[8] = TimestampTzGetDatum(r->last_login);
        else
            nulls[8] = true;
        if (r->last_end != 0)
            values[9] = TimestampTzGetDatum(r->last_end);
        else
            nulls[9] = true;
        tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
    }
    return (Datum)0;
}
