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
    login_admitted,     /* a login counted to the policy */
    login_refill,       /* ... within poolguard.refill_window after the policy ended one of the identity */
    ended_unused,       /* a session the policy ended that ran no statement after its login */
    login_waited,       /* a login that waited (on_limit = wait) and was admitted */
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
    int64 logins;
    int64 refills;
    int64 ended_unused;
    int64 waited;
};

/* The name sessions no policy matches are counted under (never a valid policy name). */
constexpr const char *unmatched_policy_key = "\x01";

/* Adds one to a policy's counter ("" = sessions no policy matches).  Takes the stats lock. */
void stats_count_policy_event(const char *policy, PolicyEvent event,
                              core::Reason reason = core::Reason::none);

/* Copies the per-policy counters (palloc'd); returns how many entries (free ones have name ""). */
int stats_copy_policy_counters(PolicyCounters **counters);

/* ---- logins, refills and ends per login identity (refills.cpp) ---- */

void refills_register(void);

/*
 * A login admitted through policy (never ""): counts it, and a refill if the policy ended a
 * session of the same identity within poolguard.refill_window; remembers the identity for this
 * backend's own end.  Takes the refills lock, then the stats lock; call it holding no lock.
 */
void refills_count_login(const char *policy, Oid roleid, const char *database_name,
                         const char *application_name);

/*
 * This backend is being ended by policy for reason (called while its FATAL is emitted, before
 * the client hears of it): counts the end for its login identity, and whether it ever ran a
 * statement.  Cannot raise an error.
 */
void refills_count_end(const char *policy, core::Reason reason);

/* The worker: one WARNING per policy per refill window when most of what it ends comes back. */
void refills_warn_fights(void);

/* One login identity's counters, as copied out. */
struct IdentityCounters
{
    char policy[NAMEDATALEN];
    Oid roleid;
    char database_name[NAMEDATALEN];
    char application_name[NAMEDATALEN];
    int64 logins;
    int64 refills;
    int64 ended;
    int64 ended_unused;
    TimestampTz last_login;
    TimestampTz last_end;
};

/* Copies the identities counted (palloc'd); returns how many. */
int refills_copy_identities(IdentityCounters **rows);

/* reset_stats(): zeroes the identities' counters and forgets the ends not refilled yet. */
void refills_reset(void);
/* What is counted per app identity (app_stats.cpp). */
enum class AppEvent
{
    session_terminated, /* by reason */
    query_cancelled,
    login_rejected,
    invalidations, /* n items published by the identity's commits */
};

/*
 * The counters of one app identity: the login's database and role names and its
 * application_name (as the client sent it; at most NAMEDATALEN - 1 bytes).  Each database keeps
 * at most app_stats_per_database identities; the rest of its identities count together in its
 * overflow entry (other = true, role and application_name "").
 */
struct AppCounters
{
    char database[NAMEDATALEN]; /* "" = free entry */
    char role[NAMEDATALEN];
    char application_name[NAMEDATALEN];
    bool other;
    int64 terminated;
    int64 cancelled;
    int64 rejected;
    int64 invalidations;
    int64 by_reason[core::reason_count]; /* terminations and cancels by reason */
    TimestampTz last_event;
};

constexpr int app_stats_capacity = 256;
constexpr int app_stats_per_database = 32;

/*
 * Adds to an app identity's counters.  Takes the app stats lock (a leaf); the caller holds no
 * pg_poolguard lock.  NULL names count as "".
 */
void stats_count_app_event(const char *database, const char *role, const char *application_name,
                           AppEvent event, core::Reason reason = core::Reason::none, int64 n = 1);

/* Copies the app identities' counters (palloc'd); returns how many entries (free: database ""). */
int stats_copy_app_counters(AppCounters **counters);

/* When the counters were last reset (reset_stats()). */
TimestampTz stats_reset_time(void);

/* Zeroes the app identities' counters (reset_stats()). */
void stats_reset_app_counters(void);

} // namespace poolguard

#endif
