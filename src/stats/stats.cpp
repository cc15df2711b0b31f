/*
 * stats.cpp — the counters, the per-policy counters, poolguard.stats / poolguard.reset_stats().
 *
 * Note about locking (every lock and the order: docs/architecture.md, "Locks"):
 *   - The global counters ("pg_poolguard stats") are 64-bit atomics, read and written with no
 *     lock; a reader may see counters of a scan half-recorded, never a torn value.
 *   - The per-policy counters ("pg_poolguard policy stats", 2 * max_policies names) are guarded
 *     by the LWLock of tranche "pg_poolguard policy stats", with their name index (a hash, so that a
 *     count finds its entry in O(1), not by a scan of 2 * max_policies names): LW_EXCLUSIVE to count
 *     or reset, LW_SHARED to copy out.  Under it only plain data is compared and copied (no palloc, nothing
 *     that can error).  It is a leaf: nothing is acquired under it, and callers hold no other
 *     pg_poolguard lock when they take it.
 *   - reset_stats() zeroes the atomics one by one, then the per-policy counters under their lock.
 */
#include "stats/stats.h"

#include "pg/guard.h"
#include "pg/guc.h"
#include "pg/shmem.h"

#include "core/policy/name_index.h"

namespace poolguard
{

namespace
{

struct Stats
{
    pg_atomic_uint64 counters[(int)GlobalCounter::count_];
    pg_atomic_uint64 last_scan;          /* TimestampTz, 0 = never */
    pg_atomic_uint64 last_scan_duration; /* µs */
    pg_atomic_uint64 stats_reset;        /* TimestampTz */
};

Stats *global_counters = nullptr; /* "pg_poolguard stats" in shared memory */

constexpr const char *policy_stats_tranche = "pg_poolguard policy stats";

struct PolicyStatsTable
{
    LWLock *lock;
    int capacity;    /* 2 * max_policies: room for renamed and removed policies */
    int first_free;  /* entries below it all hold a name (names are replaced, never cleared) */
    uint32 nbuckets; /* the entries' name index (core/policy/name_index.h), under lock */
    PolicyCounters entries[FLEXIBLE_ARRAY_MEMBER];
    /* then int32 heads[nbuckets], int32 next[capacity] */
};

PolicyStatsTable *policy_stats = nullptr;
int32 *policy_stats_heads = nullptr; /* in the same shared memory */
int32 *policy_stats_next = nullptr;

Size stats_size(void)
{
    return MAXALIGN(sizeof(Stats));
}

int policy_stats_capacity(void)
{
    return 2 * guc_max_policies;
}

Size policy_stats_entries_size(void)
{
    return MAXALIGN(add_size(offsetof(PolicyStatsTable, entries),
                             mul_size(sizeof(PolicyCounters), policy_stats_capacity())));
}

Size policy_stats_size(void)
{
    return add_size(policy_stats_entries_size(),
                    mul_size(sizeof(int32), add_size(core::name_index_buckets(policy_stats_capacity()),
                                                     policy_stats_capacity())));
}

void policy_stats_init(void)
{
    bool found;

    policy_stats =
        static_cast<PolicyStatsTable *>(ShmemInitStruct(policy_stats_tranche, policy_stats_size(), &found));
    uint32 nbuckets = core::name_index_buckets(policy_stats_capacity());
    policy_stats_heads =
        reinterpret_cast<int32 *>(reinterpret_cast<char *>(policy_stats) + policy_stats_entries_size());
    policy_stats_next = policy_stats_heads + nbuckets;
    if (!found)
    {
        policy_stats->lock = &(GetNamedLWLockTranche(policy_stats_tranche))->lock;
        policy_stats->capacity = policy_stats_capacity();
        policy_stats->first_free = 0;
        policy_stats->nbuckets = nbuckets;
        memset(policy_stats->entries, 0, sizeof(PolicyCounters) * policy_stats->capacity);
        core::name_index_clear(policy_stats_heads, nbuckets);
    }
}

int64 events_of(const PolicyCounters *c)
{
    return c->rejected + c->evicted + c->terminated + c->cancelled + c->logins;
}

/*
 * The entry of a policy name, created when missing: in a free entry, or when the table is full
 * in the one with the fewest events (its counts are the least to lose).  Caller holds the lock
 * exclusively.  Plain data only.
 */
PolicyCounters *policy_entry(const char *name)
{
    PolicyCounters *entries = policy_stats->entries;
    int found = core::name_index_find(policy_stats_heads, policy_stats->nbuckets, policy_stats_next, name,
                                      [entries](int32 i) { return entries[i].name; });
    if (found >= 0)
        return &entries[found];
    /* A new name: the first free entry, else the one with the fewest events (a scan only when full). */
    int i = -1;
    if (policy_stats->first_free < policy_stats->capacity)
        i = policy_stats->first_free++;
    if (i < 0)
    {
        for (int k = 0; k < policy_stats->capacity; k++)
            if (i < 0 || events_of(&entries[k]) < events_of(&entries[i]))
                i = k;
        core::name_index_remove(policy_stats_heads, policy_stats->nbuckets, policy_stats_next, i,
                                entries[i].name);
    }
    PolicyCounters *c = &entries[i];
    memset(c, 0, sizeof(PolicyCounters));
    strlcpy(c->name, name, NAMEDATALEN);
    core::name_index_insert(policy_stats_heads, policy_stats->nbuckets, policy_stats_next, i, c->name);
    return c;
}

void reset_policy_counters(void)
{
    LWLockAcquire(policy_stats->lock, LW_EXCLUSIVE);
    for (int i = 0; i < policy_stats->capacity; i++)
    {
        PolicyCounters *c = &policy_stats->entries[i];
        c->rejected = c->evicted = c->terminated = c->cancelled = 0;
        c->logins = c->refills = c->ended_unused = c->waited = 0;
        memset(c->by_reason, 0, sizeof(c->by_reason));
    }
    LWLockRelease(policy_stats->lock);
}

void stats_init(void)
{
    bool found;

    global_counters = static_cast<Stats *>(ShmemInitStruct("pg_poolguard stats", stats_size(), &found));
    if (!found)
    {
        for (auto &c : global_counters->counters)
            pg_atomic_init_u64(&c, 0);
        pg_atomic_init_u64(&global_counters->last_scan, 0);
        pg_atomic_init_u64(&global_counters->last_scan_duration, 0);
        pg_atomic_init_u64(&global_counters->stats_reset, (uint64)GetCurrentTimestamp());
    }
}

} // namespace

void app_stats_register(void);

void stats_register(void)
{
    app_stats_register();
    shmem_register(stats_size, stats_init);
    shmem_register(policy_stats_size, policy_stats_init);
    shmem_register_lwlocks(policy_stats_tranche, 1);
    refills_register();
}

void stats_count_policy_event(const char *policy, PolicyEvent event, core::Reason reason)
{
    if (policy_stats == nullptr || policy == nullptr)
        return;
    LWLockAcquire(policy_stats->lock, LW_EXCLUSIVE);
    PolicyCounters *c = policy_entry(policy[0] ? policy : unmatched_policy_key);
    switch (event)
    {
    case PolicyEvent::login_rejected:
        c->rejected++;
        break;
    case PolicyEvent::login_evicted:
        c->evicted++;
        break;
    case PolicyEvent::session_terminated:
        c->terminated++;
        break;
    case PolicyEvent::query_cancelled:
        c->cancelled++;
        break;
    case PolicyEvent::login_admitted:
        c->logins++;
        break;
    case PolicyEvent::login_refill:
        c->refills++;
        break;
    case PolicyEvent::ended_unused:
        c->ended_unused++;
        break;
    case PolicyEvent::login_waited:
        c->waited++;
        break;
    }
    if (reason != core::Reason::none)
        c->by_reason[(int)reason]++;
    LWLockRelease(policy_stats->lock);
}

int stats_copy_policy_counters(PolicyCounters **counters)
{
    require_shared_memory();
    int n = policy_stats->capacity;
    PolicyCounters *copy = static_cast<PolicyCounters *>(palloc(sizeof(PolicyCounters) * n));
    LWLockAcquire(policy_stats->lock, LW_SHARED);
    memcpy(copy, policy_stats->entries, sizeof(PolicyCounters) * n);
    LWLockRelease(policy_stats->lock);
    *counters = copy;
    return n;
}

void stats_add(GlobalCounter counter, uint64 n)
{
    if (global_counters != nullptr)
        pg_atomic_fetch_add_u64(&global_counters->counters[(int)counter], n);
}

uint64 stats_get(GlobalCounter counter)
{
    return global_counters ? pg_atomic_read_u64(&global_counters->counters[(int)counter]) : 0;
}

TimestampTz stats_reset_time(void)
{
    return global_counters ? (TimestampTz)pg_atomic_read_u64(&global_counters->stats_reset) : 0;
}

int64 stats_last_scan_duration(void)
{
    return global_counters ? (int64)pg_atomic_read_u64(&global_counters->last_scan_duration) : 0;
}

void stats_scan_done(TimestampTz end, int64 duration_us)
{
    if (global_counters == nullptr)
        return;
    pg_atomic_fetch_add_u64(&global_counters->counters[(int)GlobalCounter::scans], 1);
    pg_atomic_write_u64(&global_counters->last_scan, (uint64)end);
    pg_atomic_write_u64(&global_counters->last_scan_duration, (uint64)duration_us);
}

} // namespace poolguard

using namespace poolguard;

POOLGUARD_FUNCTION(poolguard_stats_info)
{
    require_shared_memory();
    TupleDesc desc;
    if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
        elog(ERROR, "poolguard.stats: return type must be a row type");

    Datum values[11];
    bool nulls[11];
    memset(nulls, 0, sizeof(nulls));
    auto counter = [](GlobalCounter c)
    { return Int64GetDatum((int64)pg_atomic_read_u64(&global_counters->counters[(int)c])); };

    values[0] = counter(GlobalCounter::scans);
    TimestampTz last = (TimestampTz)pg_atomic_read_u64(&global_counters->last_scan);
    if (last != 0)
    {
        values[1] = TimestampTzGetDatum(last);
        Interval *iv = static_cast<Interval *>(palloc0(sizeof(Interval)));
        iv->time = (int64)pg_atomic_read_u64(&global_counters->last_scan_duration);
        values[2] = IntervalPGetDatum(iv);
    }
    else
        nulls[1] = nulls[2] = true;
    values[3] = counter(GlobalCounter::terminated);
    values[4] = counter(GlobalCounter::cancelled);
    values[5] = counter(GlobalCounter::dry_run_actions);
    values[6] = counter(GlobalCounter::rejected_connections);
    values[7] = counter(GlobalCounter::evicted_connections);
    values[8] = counter(GlobalCounter::invalidations);
    values[9] = counter(GlobalCounter::notifications_sent);
    values[10] = TimestampTzGetDatum((TimestampTz)pg_atomic_read_u64(&global_counters->stats_reset));

    desc = BlessTupleDesc(desc);
    PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(desc, values, nulls)));
}

/* poolguard.reset_stats(): zero every counter (history is kept); returns the reset time. */
POOLGUARD_FUNCTION(poolguard_reset_stats)
{
    require_shared_memory();
    TimestampTz now = GetCurrentTimestamp();
    for (auto &c : global_counters->counters)
        pg_atomic_write_u64(&c, 0);
    pg_atomic_write_u64(&global_counters->last_scan, 0);
    pg_atomic_write_u64(&global_counters->last_scan_duration, 0);
    pg_atomic_write_u64(&global_counters->stats_reset, (uint64)now);
    reset_policy_counters();
    refills_reset();
    stats_reset_app_counters();
    PG_RETURN_TIMESTAMPTZ(now);
}

/* 1.0's name of stats_info() (same signature): its SQL still calls it until the update. */
POOLGUARD_LEGACY_ENTRY(poolguard_stats, poolguard_stats_info)
