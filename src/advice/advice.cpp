/*
 * advice.cpp — the worker's per-scan samples of every app identity (database, role,
 * application_name, client address), behind poolguard.pool_advice and the
 * poolguard_pool_advice_* metrics (poolguard.pool_advice_info() is here too).  The advice itself is
 * core/advice/pool_advice.cpp.
 *
 * Note about locking:
 *   - The table ("pg_poolguard advice", advice_capacity entries) is guarded by the LWLock of
 *     tranche "pg_poolguard advice": LW_EXCLUSIVE for the worker to record a scan, LW_SHARED to
 *     copy out.  Under it only plain data is compared and copied (no palloc, no catalog access,
 *     nothing that can error); the worker resolves names and reads memory before taking it.  It
 *     is a leaf: nothing is acquired under it, and callers hold no other pg_poolguard lock.
 *   - Bounded per database: a database holds at most advice_per_database identities; the rest
 *     of its identities (any client may choose an application_name) are sampled together in its
 *     overflow entry, so one database's clients cannot push out another's beyond that bound.  An
 *     identity with no connection for a whole window is forgotten; when the table is full, the
 *     one seen with a connection longest ago gives way.
 */
#include "advice/advice.h"

#include "enforce/enforce.h"
#include "pg/datums.h"
#include "pg/guard.h"
#include "pg/guc.h"
#include "pg/shmem.h"

namespace poolguard
{

namespace
{

constexpr const char *advice_tranche = "pg_poolguard advice";

struct AdviceTable
{
    LWLock *lock;
    AdviceEntry entries[advice_capacity];
};

AdviceTable *advice_table = nullptr;

Size advice_size(void)
{
    return MAXALIGN(sizeof(AdviceTable));
}

void advice_init(void)
{
    bool found;

    advice_table = static_cast<AdviceTable *>(ShmemInitStruct("pg_poolguard advice", advice_size(), &found));
    if (!found)
    {
        advice_table->lock = &(GetNamedLWLockTranche(advice_tranche))->lock;
        memset(static_cast<void *>(advice_table->entries), 0, sizeof(advice_table->entries));
    }
}

bool same(const char *a, const char *b)
{
    return strncmp(a, b, NAMEDATALEN) == 0;
}

bool same_address(const core::IpAddress &a, const core::IpAddress &b)
{
    return a.family == b.family && memcmp(a.bytes, b.bytes, sizeof(a.bytes)) == 0;
}

/* One identity's counts in this scan (worker-local). */
struct ScanAgg
{
    Oid dbid;
    Oid userid;
    char database[NAMEDATALEN];
    char role[NAMEDATALEN];
    char application_name[NAMEDATALEN];
    core::IpAddress client;
    int held, active, idle;
    int64 memory; /* -1 = none measured */
};

AdviceEntry *claim(AdviceEntry *e, const ScanAgg *a, bool other, TimestampTz now)
{
    memset(static_cast<void *>(e), 0, sizeof(AdviceEntry));
    strlcpy(e->database, a->database, NAMEDATALEN);
    if (!other)
    {
        strlcpy(e->role, a->role, NAMEDATALEN);
        strlcpy(e->application_name, a->application_name, NAMEDATALEN);
        e->client = a->client;
    }
    e->other = other;
    e->idle_memory = -1;
    e->last_held = now;
    return e;
}

/* The entry of an identity, created when missing.  Caller holds the lock exclusively. */
AdviceEntry *advice_entry(const ScanAgg *a, TimestampTz now)
{
    AdviceEntry *free_entry = nullptr, *oldest = nullptr, *overflow = nullptr;
    int in_database = 0;
    for (int i = 0; i < advice_capacity; i++)
    {
        AdviceEntry *e = &advice_table->entries[i];
        if (e->database[0] == '\0')
        {
            if (free_entry == nullptr)
                free_entry = e;
            continue;
        }
        if (same(e->database, a->database))
        {
            if (e->other)
                overflow = e;
            else if (same(e->role, a->role) && same(e->application_name, a->application_name) &&
                     same_address(e->client, a->client))
                return e;
            else
                in_database++;
        }
        if (!e->other && (oldest == nullptr || e->last_held < oldest->last_held))
            oldest = e;
    }
    bool other = in_database >= advice_per_database;
    if (other && overflow != nullptr)
        return overflow;
    if (free_entry == nullptr && oldest == nullptr)
        return nullptr; /* only overflow entries left: cannot happen with capacity > databases */
    return claim(free_entry != nullptr ? free_entry : oldest, a, other, now);
}

} // namespace

void advice_register(void)
{
    shmem_register(advice_size, advice_init);
    shmem_register_lwlocks(advice_tranche, 1);
}

void advice_sample(const SessionScan *scan, MemoryCache *cache)
{
    if (advice_table == nullptr)
        return;
    /*
     * The idle sessions' memory: every advice_memory_interval_ms, from the worker's memory
     * samples (samples.cpp; a figure a rule read this scan first), never a /proc read per
     * session (at 5,000 sessions that was a 100 ms cycle every 10 s).
     */
    static TimestampTz memory_read_at = 0;
    bool read_memory =
        scan->now - memory_read_at >= (int64)advice_memory_interval_ms * 1000 || scan->now < memory_read_at;
    if (read_memory)
        memory_read_at = scan->now;
    MemorySample *samples = nullptr;
    int nsamples = read_memory ? memory_samples_copy(&samples) : 0;

    /*
     * Group by identity (database, role by OID; application_name; client) through a hash, then
     * look the names up once per group, with no lock held (catalog lookups).
     */
    /* Not zeroed: an entry is written when its identity is first seen (a scan has few identities). */
    ScanAgg *aggs = static_cast<ScanAgg *>(palloc(sizeof(ScanAgg) * Max(scan->count, 1)));
    uint32 mask = 15;
    while (mask + 1 < 2 * (uint32)Max(scan->count, 1))
        mask = mask * 2 + 1;
    int *buckets = static_cast<int *>(palloc(sizeof(int) * (mask + 1)));
    for (uint32 b = 0; b <= mask; b++)
        buckets[b] = -1;
    int naggs = 0;
    for (int i = 0; i < scan->count; i++)
    {
        const SessionRow *row = &scan->rows[i];
        if (row->is_self || row->walsender || !OidIsValid(row->dbid) || !OidIsValid(row->userid))
            continue;
        uint32 h = hash_bytes(reinterpret_cast<const unsigned char *>(row->application_name),
                              (int)strlen(row->application_name));
        h = hash_combine(h, hash_bytes_uint32(row->dbid));
        h = hash_combine(h, hash_bytes_uint32(row->userid));
        h = hash_combine(
            h, hash_bytes(reinterpret_cast<const unsigned char *>(&row->client), sizeof(row->client)));
        uint32 b = h & mask;
        int k;
        while ((k = buckets[b]) >= 0 && !(aggs[k].dbid == row->dbid && aggs[k].userid == row->userid &&
                                          same(aggs[k].application_name, row->application_name) &&
                                          same_address(aggs[k].client, row->client)))
            b = (b + 1) & mask;
        if (k < 0)
        {
            k = naggs++;
            buckets[b] = k;
            ScanAgg *a = &aggs[k];
            a->dbid = row->dbid;
            a->userid = row->userid;
            strlcpy(a->application_name, row->application_name, NAMEDATALEN);
            a->client = row->client;
            a->held = a->active = a->idle = 0;
            a->memory = -1;
        }
        ScanAgg *a = &aggs[k];
        a->held++;
        if (row->state == core::SessionState::active)
            a->active++;
        else if (row->state == core::SessionState::idle)
        {
            a->idle++;
            int64 mem = -1;
            if (read_memory && row->private_memory >= 0)
                mem = row->private_memory;
            else if (read_memory)
            {
                const MemorySample *sample =
                    memory_sample_find(samples, nsamples, row->pid, row->backend_start);
                mem = sample != nullptr ? sample->bytes : -1;
            }
            if (mem >= 0)
                a->memory = Max(a->memory, 0) + mem;
        }
    }
    pfree(buckets);
    /* Names once per identity; a role or database dropped meanwhile: its sessions are not counted. */
    int named = 0;
    for (int k = 0; k < naggs; k++)
    {
        const char *db = get_database_name(aggs[k].dbid);
        const char *role = GetUserNameFromId(aggs[k].userid, true);
        if (db == nullptr || role == nullptr)
            continue;
        if (named != k)
            aggs[named] = aggs[k];
        strlcpy(aggs[named].database, db, NAMEDATALEN);
        strlcpy(aggs[named].role, role, NAMEDATALEN);
        named++;
    }
    naggs = named;
    int64 window_us = (int64)guc_advice_window_s * USECS_PER_SEC;
    TimestampTz now = scan->now;

    LWLockAcquire(advice_table->lock, LW_EXCLUSIVE);
    for (int i = 0; i < advice_capacity; i++)
    {
        AdviceEntry *e = &advice_table->entries[i];
        e->scan_held = e->scan_active = e->scan_idle = 0;
        e->scan_memory = -1;
    }
    for (int k = 0; k < naggs; k++)
    {
        AdviceEntry *e = advice_entry(&aggs[k], now);
        if (e == nullptr)
            continue;
        e->scan_held += aggs[k].held;
        e->scan_active += aggs[k].active;
        e->scan_idle += aggs[k].idle;
        if (aggs[k].memory >= 0)
            e->scan_memory = Max(e->scan_memory, 0) + aggs[k].memory;
    }
    for (int i = 0; i < advice_capacity; i++)
    {
        AdviceEntry *e = &advice_table->entries[i];
        if (e->database[0] == '\0')
            continue;
        if (e->scan_held > 0)
            e->last_held = now;
        else if (e->last_held < now - window_us)
        {
            memset(static_cast<void *>(e), 0,
                   sizeof(AdviceEntry)); /* no connection for a whole window: forgotten */
            continue;
        }
        core::advice_record(&e->ring, now, e->scan_held, e->scan_active, window_us);
        e->held_now = e->scan_held;
        e->idle_now = e->scan_idle;
        if (read_memory)
        {
            e->idle_memory = e->scan_memory;
            e->idle_memory_at = now;
        }
        e->sampled_at = now;
    }
    LWLockRelease(advice_table->lock);
    pfree(aggs);
}

int advice_copy(AdviceEntry **entries)
{
    require_shared_memory();
    AdviceEntry *copy = static_cast<AdviceEntry *>(palloc(sizeof(AdviceEntry) * advice_capacity));
    LWLockAcquire(advice_table->lock, LW_SHARED);
    memcpy(copy, advice_table->entries, sizeof(AdviceEntry) * advice_capacity);
    LWLockRelease(advice_table->lock);
    *entries = copy;
    return advice_capacity;
}

core::Advice advice_of(const AdviceEntry *entry, TimestampTz now)
{
    core::AdviceFacts facts;
    facts.now_us = now;
    facts.window_us = (int64)guc_advice_window_s * USECS_PER_SEC;
    /* Figures of the latest scan; none when the identity was not sampled inside the window. */
    bool current = entry->sampled_at >= now - facts.window_us;
    facts.held_now = current ? entry->held_now : 0;
    facts.idle_now = current ? entry->idle_now : 0;
    facts.idle_memory = current ? entry->idle_memory : 0;
    return core::advise(entry->ring, facts);
}

} // namespace poolguard

using namespace poolguard;

/*
 * poolguard.pool_advice_info(): each app identity's connections, concurrently active sessions
 * over poolguard.advice_window and the pool max it would need (advice/advice.cpp).  Rows of roles
 * whose privileges the caller has; pg_read_all_stats (pg_monitor) sees all, including each
 * database's overflow row (role NULL).
 */
POOLGUARD_FUNCTION(poolguard_pool_advice_info)
{
    require_shared_memory();
    ReturnSetInfo *rsinfo = (ReturnSetInfo *)fcinfo->resultinfo;
    InitMaterializedSRF(fcinfo, 0);

    AdviceEntry *entries;
    int count = advice_copy(&entries);
    TimestampTz now = GetCurrentTimestamp();
    for (int i = 0; i < count; i++)
    {
        const AdviceEntry *e = &entries[i];
        if (!app_identity_visible(e->database, e->role, e->other))
            continue;
        core::Advice a = advice_of(e, now);
        constexpr int ncols = 19;
        Datum values[ncols];
        bool nulls[ncols] = {};
        app_identity_columns(e->database, e->role, e->application_name, e->other, values, nulls);
        nulls[3] = e->other || !inet_datum(e->client, &values[3]);
        values[4] = Int32GetDatum(e->held_now);
        values[5] = Int32GetDatum(a.held_peak);
        values[6] = Int32GetDatum(a.active_p50);
        values[7] = Int32GetDatum(a.active_p95);
        values[8] = Int32GetDatum(a.active_max);
        values[9] = Int32GetDatum(e->idle_now);
        values[10] = Int64GetDatum(e->idle_memory);
        nulls[10] = e->idle_memory < 0;
        values[18] = TimestampTzGetDatum(e->idle_memory_at);
        nulls[18] = e->idle_memory_at == 0;
        values[11] = Int32GetDatum(a.recommended_max);
        nulls[11] = a.recommended_max < 0;
        values[12] = Int64GetDatum(a.memory_freed);
        nulls[12] = a.memory_freed < 0;
        values[13] = Int32GetDatum(a.samples);
        values[14] = interval_datum(a.covered_us);
        values[15] = TimestampTzGetDatum(e->sampled_at);
        nulls[15] = e->sampled_at == 0;
        values[16] = BoolGetDatum(a.saturated);
        values[17] = CStringGetTextDatum(a.why);
        tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
    }
    return (Datum)0;
}
