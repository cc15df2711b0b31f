/*
 * stats.h — cumulative counters behind poolguard.stats (shared memory, atomics only, so that
 * counting never takes a lock on a hot path).
 */
#ifndef POOLGUARD_STATS_H
#define POOLGUARD_STATS_H

#include "pg/postgres_headers.h"

namespace poolguard {

enum class Counter : int
{
    scans,
    terminated,
    cancelled,
    dry_run_actions,
    rejected_connections,
    evicted_connections,
    invalidations,
    notifications_sent,
    count_ /* number of counters */
};

void stats_register(void);

/* Adds n to a counter (no-op without shared memory). */
void stats_add(Counter counter, uint64 n = 1);

/* Current value of a counter (0 without shared memory). */
uint64 stats_get(Counter counter);

/* Duration of the last worker scan in µs (0 if none yet). */
int64 stats_last_scan_duration(void);

/* Records a finished worker scan: its end time and duration. */
void stats_scan_done(TimestampTz end, int64 duration_us);

}  // namespace poolguard

#endif
