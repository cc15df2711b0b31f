/*
 * stats.h — the stats feature's public interface: the cumulative counters behind poolguard.stats
 * (atomics, so that counting never takes a lock on a hot path) and the counters kept per policy
 * name across reloads (behind policy_status and the metrics), both zeroed by reset_stats().
 */
#ifndef POOLGUARD_STATS_H
#define POOLGUARD_STATS_H

#include "pg/postgres_headers.h"

#include "core/policy/rules.h"

namespace poolguard
{

/* Counters over all policies (poolguard.stats). */
enum class GlobalCounter : int
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
void stats_add(GlobalCounter counter, uint64 n = 1);

/* Current value of a counter (0 without shared memory). */
uint64 stats_get(GlobalCounter counter);

/* Duration of the last worker scan in µs (0 if none yet). */
int64 stats_last_scan_duration(void);

/* Records a finished worker scan: its end time and duration. */
void stats_scan_done(TimestampTz end, int64 duration_us);

/* What is counted per policy name. */
enum class PolicyEvent
{
    login_rejected,
    login_evicted,      /* an idle session ended to admit a login (evict_idle) */
    session_terminated, /* also counted by reason */
    query_cancelled,    /* also counted by reason */
};

/* The counters of one policy name; sessions no policy matches count under unmatched_policy_key. */
struct PolicyCounters
{
    char name[NAMEDATALEN]; /* "" = free entry */
    int64 rejected;
    int64 evicted;
    int64 terminated;
    int64 cancelled;
    int64 by_reason[core::reason_count]; /* terminations and cancels by reason */
};

/* The name sessions no policy matches are counted under (never a valid policy name). */
constexpr const char *unmatched_policy_key = "\x01";

/* Adds one to a policy's counter ("" = sessions no policy matches).  Takes the stats lock. */
void stats_count_policy_event(const char *policy, PolicyEvent event,
                              core::Reason reason = core::Reason::none);

/* Copies the per-policy counters (palloc'd); returns how many entries (free ones have name ""). */
int stats_copy_policy_counters(PolicyCounters **counters);

} // namespace poolguard

#endif
