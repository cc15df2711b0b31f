/*
 * rules.h — what the reaper decides about one session, and when it must look again (pure C++).
 *
 * Times are microseconds on one clock (the glue uses PostgreSQL's TimestampTz).  A rule value of
 * 0 means "off"; the policy table's NULL ("inherit the GUC default") is resolved by
 * effective_rules() before evaluation.
 */
#ifndef POOLGUARD_CORE_RULES_H
#define POOLGUARD_CORE_RULES_H

#include <cstdint>
#include <limits>

namespace poolguard::core
{

using Micros = int64_t;
constexpr Micros never = std::numeric_limits<Micros>::max();
constexpr int64_t inherit = -1; /* a NULL rule column in poolguard.policy */

/* Why a session is ended or cancelled.  The names are the contract shown in the views. */
enum class Reason : uint8_t
{
    none = 0,
    idle_timeout,
    idle_in_transaction_timeout,
    max_connection_age,
    max_idle,
    max_idle_memory,
    max_query_duration,
    evict_idle,
    idle_memory_budget,
};
constexpr int reason_count = 9;

/* "idle_timeout" ... ; "" for Reason::none. */
const char *reason_name(Reason reason);

enum class SessionState : uint8_t
{
    active,
    idle,
    idle_in_transaction,
    idle_in_transaction_aborted,
    other, /* fastpath, disabled, starting ... : never reaped */
};

/* Rule values as stored in a policy row: inherit (-1), 0 = off, or a limit. */
struct PolicyRules
{
    int64_t idle_timeout = inherit;                /* µs */
    int64_t idle_in_transaction_timeout = inherit; /* µs */
    int64_t max_connection_age = inherit;          /* µs */
    int64_t max_query_duration = inherit;          /* µs */
    int64_t max_idle = inherit;                    /* sessions */
    int64_t max_idle_memory = inherit;             /* bytes */
    int64_t min_idle = inherit;                    /* sessions the idle rules leave (warm floor) */
    int64_t idle_memory_budget = inherit;          /* bytes, all the policy's idle sessions together */
};

/* The server-wide defaults (GUCs) that NULL rule columns inherit; 0 = off. */
struct DefaultRules
{
    Micros idle_timeout = 0;
    Micros idle_in_transaction_timeout = 0;
};

/* Effective limits for one session; 0 = off. */
struct Rules
{
    Micros idle_timeout = 0;
    Micros idle_in_transaction_timeout = 0;
    Micros max_connection_age = 0;
    Micros max_query_duration = 0;
    int64_t max_idle = 0;
    int64_t max_idle_memory = 0;
    int64_t min_idle = 0;
    int64_t idle_memory_budget = 0;
};

Rules effective_rules(const PolicyRules &policy, const DefaultRules &defaults);

/*
 * An interval (months, days, microseconds) as whole microseconds, exactly as
 * extract(epoch FROM interval) counts it: a year of months is 365.25 days, a remaining month
 * 30 days, a day 24 hours.  Policy durations are bounded (100 years), so this cannot overflow.
 * Computed here rather than in the policy query so that the query needs no operator at all
 * (operators resolve through search_path: CVE-2018-1058).
 */
int64_t interval_micros(int32_t months, int32_t days, int64_t micros);

/* Rules for a session matched by no policy: the GUC defaults only. */
Rules default_rules(const DefaultRules &defaults);

struct SessionFacts
{
    SessionState state = SessionState::other;
    Micros state_since = 0;      /* when the current state began */
    Micros backend_start = 0;    /* when the session started */
    Micros query_start = 0;      /* when the running query started (active only) */
    int64_t private_memory = -1; /* bytes, -1 = not measured */
};

struct Verdict
{
    Reason reason = Reason::none; /* the rule that fires now, if any */
    int64_t limit = 0;            /* that rule's limit (µs or bytes) */
    Micros deadline = never;      /* when the earliest rule not firing now would fire */
    bool wants_memory = false;    /* idle long enough that max_idle_memory needs a reading */
};

/*
 * Evaluates the per-session rules (all but max_idle, which is decided across sessions by
 * select_surplus_idle).  idle_grace protects sessions idle less than it from
 * max_connection_age and max_idle_memory.  When several rules fire, the first in this order
 * wins: idle_in_transaction_timeout, idle_timeout, max_query_duration, max_connection_age,
 * max_idle_memory.
 */
Verdict evaluate(const SessionFacts &session, const Rules &rules, Micros now, Micros idle_grace);

/* An idle session of one policy, for max_idle. */
struct IdleCandidate
{
    int index = 0;         /* caller's row index */
    Micros idle_since = 0; /* state_since of the idle state */
    bool taken = false;    /* already ended by another rule this scan */
    bool surplus = false;  /* out: end it for max_idle */
};

/*
 * max_idle: of the candidates (all idle sessions of one policy), keep at most max_idle and mark
 * the longest-idle of the rest as surplus — only those idle at least idle_grace.  Candidates
 * already taken by another rule count as gone.  Sorts the array in place (longest idle first).
 * Returns when the next candidate becomes eligible if the policy is still over its limit only
 * because of the grace period (never otherwise).
 */
Micros select_surplus_idle(IdleCandidate *candidates, int count, int64_t max_idle, Micros now,
                           Micros idle_grace);

/* An idle session under an idle-memory budget (a policy's, or the server's). */
struct BudgetCandidate
{
    int index = 0;         /* caller's row index */
    Micros idle_since = 0; /* state_since of the idle state */
    int64_t memory = -1;   /* private memory in bytes, -1 = not measured (counts 0, never chosen) */
    bool taken = false;    /* already ended by another rule this scan */
    bool victim = false;   /* out: end it for idle_memory_budget */
};

/*
 * idle_memory_budget: while the private memory of the candidates (the idle, non-exempt sessions
 * under one budget) adds up to more than budget, mark victims — the largest first, then the
 * longest idle — skipping those idle less than idle_grace (they still count).  Candidates already
 * taken by another rule count as gone.  Sorts the array in place.  Returns when a graced
 * candidate becomes eligible if the total is still over the budget after this pass (never
 * otherwise).  budget <= 0 is off.
 */
Micros select_over_budget(BudgetCandidate *candidates, int count, int64_t budget, Micros now,
                          Micros idle_grace);

} // namespace poolguard::core

#endif
