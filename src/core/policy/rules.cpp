/*
 * rules.cpp — per-session verdicts, deadlines and max_idle selection.
 */
#include "core/policy/rules.h"

#include <algorithm>

#include "core/no_server_headers.h" /* last: fails the build if a server header slipped in */

namespace poolguard::core
{

const char *reason_name(Reason reason)
{
    switch (reason)
    {
    case Reason::none:
        return "";
    case Reason::idle_timeout:
        return "idle_timeout";
    case Reason::idle_in_transaction_timeout:
        return "idle_in_transaction_timeout";
    case Reason::max_connection_age:
        return "max_connection_age";
    case Reason::max_idle:
        return "max_idle";
    case Reason::max_idle_memory:
        return "max_idle_memory";
    case Reason::max_query_duration:
        return "max_query_duration";
    case Reason::evict_idle:
        return "evict_idle";
    case Reason::idle_memory_budget:
        return "idle_memory_budget";
    }
    return "";
}

namespace
{

int64_t inherit_or(int64_t value, int64_t fallback)
{
    return value == inherit ? fallback : value;
}

/* Tracks the firing rule (first wins) and the earliest future deadline. */
struct Judge
{
    Verdict verdict;
    Micros now;

    /* A time-based rule: fires at `at` (never if off). */
    void rule(Reason reason, int64_t limit, Micros at)
    {
        if (limit <= 0 || at == never)
            return;
        if (at <= now)
        {
            if (verdict.reason == Reason::none)
            {
                verdict.reason = reason;
                verdict.limit = limit;
            }
        }
        else
            verdict.deadline = std::min(verdict.deadline, at);
    }
};

Micros plus(Micros a, Micros b)
{
    return (b > 0 && a > never - b) ? never : a + b;
}

} // namespace

Rules effective_rules(const PolicyRules &p, const DefaultRules &d)
{
    Rules r;
    r.idle_timeout = inherit_or(p.idle_timeout, d.idle_timeout);
    r.idle_in_transaction_timeout = inherit_or(p.idle_in_transaction_timeout, d.idle_in_transaction_timeout);
    r.max_connection_age = inherit_or(p.max_connection_age, 0);
    r.max_query_duration = inherit_or(p.max_query_duration, 0);
    r.max_idle = inherit_or(p.max_idle, 0);
    r.max_idle_memory = inherit_or(p.max_idle_memory, 0);
    r.min_idle = inherit_or(p.min_idle, 0);
    r.idle_memory_budget = inherit_or(p.idle_memory_budget, 0);
    return r;
}

int64_t interval_micros(int32_t months, int32_t days, int64_t micros)
{
    constexpr int64_t second = 1000000;
    constexpr int64_t day = 86400 * second;
    constexpr int64_t year = 31557600 * second; /* 365.25 days */
    return micros + (months / 12) * year + (months % 12) * 30 * day + days * day;
}

Rules default_rules(const DefaultRules &defaults)
{
    return effective_rules(PolicyRules{}, defaults);
}

Verdict evaluate(const SessionFacts &s, const Rules &r, Micros now, Micros idle_grace)
{
    Judge judge{Verdict{}, now};

    switch (s.state)
    {
    case SessionState::idle_in_transaction:
    case SessionState::idle_in_transaction_aborted:
        judge.rule(Reason::idle_in_transaction_timeout, r.idle_in_transaction_timeout,
                   plus(s.state_since, r.idle_in_transaction_timeout));
        break;
    case SessionState::idle:
    {
        judge.rule(Reason::idle_timeout, r.idle_timeout, plus(s.state_since, r.idle_timeout));
        /* The protected rules wait for both their own limit and the grace period. */
        Micros graced = plus(s.state_since, idle_grace);
        judge.rule(Reason::max_connection_age, r.max_connection_age,
                   std::max(plus(s.backend_start, r.max_connection_age), graced));
        if (r.max_idle_memory > 0)
        {
            if (graced > now)
                judge.verdict.deadline = std::min(judge.verdict.deadline, graced);
            else
            {
                judge.verdict.wants_memory = true;
                if (s.private_memory > r.max_idle_memory)
                    judge.rule(Reason::max_idle_memory, r.max_idle_memory, now);
            }
        }
        break;
    }
    case SessionState::active:
        judge.rule(Reason::max_query_duration, r.max_query_duration,
                   plus(s.query_start, r.max_query_duration));
        break;
    case SessionState::other:
        break;
    }
    return judge.verdict;
}

Micros select_surplus_idle(IdleCandidate *candidates, int count, int64_t max_idle, Micros now,
                           Micros idle_grace)
{
    if (max_idle <= 0)
        return never;

    std::sort(candidates, candidates + count,
              [](const IdleCandidate &a, const IdleCandidate &b)
              {
                  if (a.idle_since != b.idle_since)
                      return a.idle_since < b.idle_since;
                  return a.index < b.index;
              });

    int64_t remaining = 0;
    for (int i = 0; i < count; i++)
        if (!candidates[i].taken)
            remaining++;

    Micros next = never;
    for (int i = 0; i < count && remaining > max_idle; i++)
    {
        IdleCandidate &c = candidates[i];
        if (c.taken)
            continue;
        Micros eligible_at = plus(c.idle_since, idle_grace);
        if (eligible_at > now)
        {
            /* Longest-idle first: everyone after this one is even younger. */
            next = eligible_at;
            break;
        }
        c.surplus = true;
        remaining--;
    }
    return next;
}

Micros select_over_budget(BudgetCandidate *candidates, int count, int64_t budget, Micros now,
                          Micros idle_grace)
{
    if (budget <= 0)
        return never;

    int64_t total = 0;
    for (int i = 0; i < count; i++)
        if (!candidates[i].taken && candidates[i].memory > 0)
            total += candidates[i].memory;
    if (total <= budget)
        return never;

    std::sort(candidates, candidates + count,
              [](const BudgetCandidate &a, const BudgetCandidate &b)
              {
                  if (a.memory != b.memory)
                      return a.memory > b.memory;
                  if (a.idle_since != b.idle_since)
                      return a.idle_since < b.idle_since;
                  return a.index < b.index;
              });

    Micros next = never;
    for (int i = 0; i < count && total > budget; i++)
    {
        BudgetCandidate &c = candidates[i];
        if (c.taken || c.memory <= 0)
            continue;
        Micros eligible_at = plus(c.idle_since, idle_grace);
        if (eligible_at > now)
        {
            /* Still counts; a smaller session idle long enough may be ended instead. */
            next = std::min(next, eligible_at);
            continue;
        }
        c.victim = true;
        total -= c.memory;
    }
    return total > budget ? next : never;
}

} // namespace poolguard::core
