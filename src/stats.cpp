/*
 * stats.cpp — the counters and poolguard.stats / poolguard.reset_stats().
 *
 * Note about locking: "pg_poolguard stats" holds only 64-bit atomics, read and written with no
 * lock; a reader may see counters of a scan half-recorded, never a torn value.
 * reset_stats() zeroes them one by one and then calls caps_reset_counters(), which takes
 * caps_lock (see caps.cpp) with nothing else held.
 */
#include "stats.h"

#include "caps.h"
#include "guard.h"
#include "shmem.h"

namespace poolguard {

namespace {

struct Stats
{
    pg_atomic_uint64 counters[(int) Counter::count_];
    pg_atomic_uint64 last_scan;          /* TimestampTz, 0 = never */
    pg_atomic_uint64 last_scan_duration; /* µs */
    pg_atomic_uint64 stats_reset;        /* TimestampTz */
};

Stats *stats = nullptr;

Size stats_size(void)
{
    return MAXALIGN(sizeof(Stats));
}

void stats_init(void)
{
    bool found;

    stats = static_cast<Stats *>(ShmemInitStruct("pg_poolguard stats", stats_size(), &found));
    if (!found)
    {
        for (auto &c : stats->counters)
            pg_atomic_init_u64(&c, 0);
        pg_atomic_init_u64(&stats->last_scan, 0);
        pg_atomic_init_u64(&stats->last_scan_duration, 0);
        pg_atomic_init_u64(&stats->stats_reset, (uint64) GetCurrentTimestamp());
    }
}

}  // namespace

void stats_register(void)
{
    shmem_register(stats_size, stats_init);
}

void stats_add(Counter counter, uint64 n)
{
    if (stats != nullptr)
        pg_atomic_fetch_add_u64(&stats->counters[(int) counter], n);
}

uint64 stats_get(Counter counter)
{
    return stats ? pg_atomic_read_u64(&stats->counters[(int) counter]) : 0;
}

int64 stats_last_scan_duration(void)
{
    return stats ? (int64) pg_atomic_read_u64(&stats->last_scan_duration) : 0;
}

void stats_scan_done(TimestampTz end, int64 duration_us)
{
    if (stats == nullptr)
        return;
    pg_atomic_fetch_add_u64(&stats->counters[(int) Counter::scans], 1);
    pg_atomic_write_u64(&stats->last_scan, (uint64) end);
    pg_atomic_write_u64(&stats->last_scan_duration, (uint64) duration_us);
}

}  // namespace poolguard

using namespace poolguard;

POOLGUARD_FUNCTION(poolguard_stats)
{
    require_shared_memory();
    TupleDesc desc;
    if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
        elog(ERROR, "poolguard.stats: return type must be a row type");

    Datum values[11];
    bool nulls[11];
    memset(nulls, 0, sizeof(nulls));
    auto counter = [](Counter c) { return Int64GetDatum((int64) pg_atomic_read_u64(&stats->counters[(int) c])); };

    values[0] = counter(Counter::scans);
    TimestampTz last = (TimestampTz) pg_atomic_read_u64(&stats->last_scan);
    if (last != 0)
    {
        values[1] = TimestampTzGetDatum(last);
        Interval *iv = static_cast<Interval *>(palloc0(sizeof(Interval)));
        iv->time = (int64) pg_atomic_read_u64(&stats->last_scan_duration);
        values[2] = IntervalPGetDatum(iv);
    }
    else
        nulls[1] = nulls[2] = true;
    values[3] = counter(Counter::terminated);
    values[4] = counter(Counter::cancelled);
    values[5] = counter(Counter::dry_run_actions);
    values[6] = counter(Counter::rejected_connections);
    values[7] = counter(Counter::evicted_connections);
    values[8] = counter(Counter::invalidations);
    values[9] = counter(Counter::notifications_sent);
    values[10] = TimestampTzGetDatum((TimestampTz) pg_atomic_read_u64(&stats->stats_reset));

    desc = BlessTupleDesc(desc);
    PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(desc, values, nulls)));
}

/* poolguard.reset_stats(): zero every counter (history is kept); returns the reset time. */
POOLGUARD_FUNCTION(poolguard_reset_stats)
{
    require_shared_memory();
    TimestampTz now = GetCurrentTimestamp();
    for (auto &c : stats->counters)
        pg_atomic_write_u64(&c, 0);
    pg_atomic_write_u64(&stats->last_scan, 0);
    pg_atomic_write_u64(&stats->last_scan_duration, 0);
    pg_atomic_write_u64(&stats->stats_reset, (uint64) now);
    caps_reset_counters();
    PG_RETURN_TIMESTAMPTZ(now);
}
