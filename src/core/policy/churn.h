/*
 * churn.h — is a policy fighting a connection pool?  Refills, the warning rule and the warm
 * floor (pure C++).
 *
 * A refill is a login of the same identity within the refill window after the policy ended one
 * of its sessions: each end is matched by at most one login, so a pool that opens one session
 * for each one ended counts exactly one refill per end, and an app that went away counts none.
 */
#ifndef POOLGUARD_CORE_CHURN_H
#define POOLGUARD_CORE_CHURN_H

#include "core/policy/rules.h"

namespace poolguard::core
{

/* The ends of one identity not matched by a login yet, oldest first (a fixed-size memory). */
constexpr int recent_ends_capacity = 32;
struct RecentEnds
{
    int count = 0;
    Micros at[recent_ends_capacity] = {};
};

/* Remembers an end at `at` (forgets the oldest when full). */
void note_end(RecentEnds &ends, Micros at);

/*
 * A login at `now`: forgets ends older than the window, then matches the oldest end left.
 * Returns true (a refill) if there was one.
 */
bool take_refill(RecentEnds &ends, Micros now, Micros window);

/* What a policy ended and what came back, over the current and the previous window. */
struct ChurnWindow
{
    Micros bucket_start = 0;  /* start of the current bucket; 0 = nothing counted yet */
    int64_t ends[2] = {0, 0}; /* [0] current bucket, [1] previous */
    int64_t refills[2] = {0, 0};
    int64_t unused[2] = {0, 0}; /* ended sessions that never ran a statement */
    int64_t by_reason[2][reason_count] = {};
    Micros warned_at = 0; /* 0 = never */
};

/* Moves the buckets on to `now` (one bucket per window). */
void roll(ChurnWindow &w, Micros now, Micros window);

void count_end(ChurnWindow &w, Micros now, Micros window, Reason reason, bool unused);
void count_refill(ChurnWindow &w, Micros now, Micros window);

/* The fewest ends in a window before a fight is named (one end that comes back is no pattern). */
constexpr int64_t fight_min_ends = 3;

/* The totals over the current and previous buckets. */
struct ChurnTotals
{
    int64_t ends = 0;
    int64_t refills = 0;
    int64_t unused = 0;
    int64_t by_reason[reason_count] = {};
};
ChurnTotals totals(const ChurnWindow &w);

/*
 * Warn now?  When at least fight_min_ends sessions were ended over the last two windows and
 * most of them (more than half) came straight back, and no warning was given in the last
 * window.  Marks the warning given (warned_at = now) when it returns true.
 */
bool should_warn(ChurnWindow &w, Micros now, Micros window);

/* The likely cause, by the rule that did most of the ending. */
enum class FightCause : uint8_t
{
    pool_minimum_above_max_idle, /* mostly max_idle */
    idle_rule_vs_pool,           /* mostly idle_timeout / max_connection_age */
    memory_rule,                 /* mostly max_idle_memory */
    cap_evictions,               /* mostly evict_idle */
};
FightCause likely_cause(const ChurnTotals &t);

/* An idle session of one policy, for the warm floor (min_idle). */
struct WarmCandidate
{
    int index = 0;
    Micros idle_since = 0;
    Reason reason = Reason::none; /* the verdict: none = kept */
    bool spared = false;          /* out: the floor keeps it */
};

/* May min_idle spare a session ended for this reason?  (Memory and the caps are never spared.) */
bool floor_spares(Reason reason);

/*
 * min_idle: of one policy's idle sessions, keep at least min_idle — those the rules would end
 * for an idle reason (idle_timeout, max_idle, max_connection_age) are spared, most recently
 * used first, until min_idle are kept.  Returns how many were spared.  Sorts the array.
 */
int keep_warm_floor(WarmCandidate *candidates, int count, int64_t min_idle);

} // namespace poolguard::core

#endif
