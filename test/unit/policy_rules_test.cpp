#include "core/policy/rules.h"

#include <gtest/gtest.h>

#include <vector>

using namespace poolguard::core;

namespace
{

constexpr Micros s = 1000000;

SessionFacts idle(Micros since, Micros started = 0)
{
    SessionFacts f;
    f.state = SessionState::idle;
    f.state_since = since;
    f.backend_start = started;
    return f;
}

} // namespace

TEST(Rules, InheritanceAndOff)
{
    DefaultRules d{10 * s, 20 * s};
    PolicyRules p;
    Rules r = effective_rules(p, d);
    EXPECT_EQ(r.idle_timeout, 10 * s);
    EXPECT_EQ(r.idle_in_transaction_timeout, 20 * s);
    EXPECT_EQ(r.max_connection_age, 0);
    p.idle_timeout = 0; /* '0' disables the rule for this policy, even with a GUC default */
    p.max_idle = 3;
    r = effective_rules(p, d);
    EXPECT_EQ(r.idle_timeout, 0);
    EXPECT_EQ(r.max_idle, 3);
    EXPECT_EQ(default_rules(d).idle_timeout, 10 * s);
}

TEST(Rules, IdleTimeoutFiresAtItsDeadline)
{
    Rules r;
    r.idle_timeout = 2 * s;
    Verdict v = evaluate(idle(100 * s), r, 101 * s, 5 * s);
    EXPECT_EQ(v.reason, Reason::none);
    EXPECT_EQ(v.deadline, 102 * s);
    v = evaluate(idle(100 * s), r, 102 * s, 5 * s);
    EXPECT_EQ(v.reason, Reason::idle_timeout);
    EXPECT_EQ(v.limit, 2 * s);
    EXPECT_STREQ(reason_name(v.reason), "idle_timeout");
}

TEST(Rules, IdleInTransaction)
{
    Rules r;
    r.idle_in_transaction_timeout = 3 * s;
    r.idle_timeout = 1 * s; /* does not apply to idle in transaction */
    SessionFacts f = idle(0);
    f.state = SessionState::idle_in_transaction_aborted;
    EXPECT_EQ(evaluate(f, r, 2 * s, 0).reason, Reason::none);
    EXPECT_EQ(evaluate(f, r, 2 * s, 0).deadline, 3 * s);
    EXPECT_EQ(evaluate(f, r, 3 * s, 0).reason, Reason::idle_in_transaction_timeout);
}

TEST(Rules, MaxConnectionAgeWaitsForIdleAndGrace)
{
    Rules r;
    r.max_connection_age = 60 * s;
    SessionFacts f = idle(100 * s, 0);
    /* old enough, but idle only 2 s of a 5 s grace */
    Verdict v = evaluate(f, r, 102 * s, 5 * s);
    EXPECT_EQ(v.reason, Reason::none);
    EXPECT_EQ(v.deadline, 105 * s);
    EXPECT_EQ(evaluate(f, r, 105 * s, 5 * s).reason, Reason::max_connection_age);
    /* an active session is never ended for its age */
    f.state = SessionState::active;
    EXPECT_EQ(evaluate(f, r, 500 * s, 5 * s).reason, Reason::none);
}

TEST(Rules, MaxIdleMemory)
{
    Rules r;
    r.max_idle_memory = 100 << 20;
    SessionFacts f = idle(0);
    Verdict v = evaluate(f, r, 1 * s, 5 * s);
    EXPECT_FALSE(v.wants_memory);
    EXPECT_EQ(v.deadline, 5 * s);
    v = evaluate(f, r, 6 * s, 5 * s);
    EXPECT_TRUE(v.wants_memory);
    EXPECT_EQ(v.reason, Reason::none); /* not measured yet */
    f.private_memory = 50 << 20;
    EXPECT_EQ(evaluate(f, r, 6 * s, 5 * s).reason, Reason::none);
    f.private_memory = 200 << 20;
    EXPECT_EQ(evaluate(f, r, 6 * s, 5 * s).reason, Reason::max_idle_memory);
}

TEST(Rules, MaxQueryDuration)
{
    Rules r;
    r.max_query_duration = 30 * s;
    SessionFacts f;
    f.state = SessionState::active;
    f.query_start = 10 * s;
    EXPECT_EQ(evaluate(f, r, 20 * s, 0).deadline, 40 * s);
    EXPECT_EQ(evaluate(f, r, 40 * s, 0).reason, Reason::max_query_duration);
    f.state = SessionState::other; /* fastpath etc. never */
    EXPECT_EQ(evaluate(f, r, 40 * s, 0).reason, Reason::none);
}

TEST(Rules, FirstFiringRuleWins)
{
    Rules r;
    r.idle_timeout = 1 * s;
    r.max_connection_age = 1 * s;
    EXPECT_EQ(evaluate(idle(0), r, 100 * s, 0).reason, Reason::idle_timeout);
}

TEST(Rules, NoOverflowNearNever)
{
    Rules r;
    r.idle_timeout = never - 5;
    EXPECT_EQ(evaluate(idle(100 * s), r, 200 * s, 0).reason, Reason::none);
}

TEST(MaxIdle, EndsLongestIdleFirst)
{
    IdleCandidate c[5];
    Micros since[5] = {50, 10, 40, 20, 30};
    for (int i = 0; i < 5; i++)
    {
        c[i].index = i;
        c[i].idle_since = since[i] * s;
    }
    Micros next = select_surplus_idle(c, 5, 2, 100 * s, 5 * s);
    EXPECT_EQ(next, never);
    int surplus = 0;
    for (auto &x : c)
        if (x.surplus)
        {
            surplus++;
            EXPECT_TRUE(x.index == 1 || x.index == 3 || x.index == 4) << x.index;
        }
    EXPECT_EQ(surplus, 3);
}

TEST(MaxIdle, GraceProtectsYoungSessions)
{
    IdleCandidate c[3];
    for (int i = 0; i < 3; i++)
    {
        c[i].index = i;
        c[i].idle_since = (97 + i) * s; /* idle 3 s, 2 s, 1 s */
    }
    Micros next = select_surplus_idle(c, 3, 1, 100 * s, 5 * s);
    EXPECT_EQ(next, 102 * s); /* the oldest becomes eligible at 97 + 5 */
    for (auto &x : c)
        EXPECT_FALSE(x.surplus);
}

TEST(MaxIdle, TakenCountAsGoneAndZeroIsOff)
{
    IdleCandidate c[3];
    for (int i = 0; i < 3; i++)
    {
        c[i].index = i;
        c[i].idle_since = i * s;
    }
    c[0].taken = true;
    select_surplus_idle(c, 3, 1, 100 * s, 0);
    EXPECT_FALSE(c[0].surplus);
    EXPECT_TRUE(c[1].surplus);
    EXPECT_FALSE(c[2].surplus);

    IdleCandidate d[2];
    EXPECT_EQ(select_surplus_idle(d, 2, 0, 100 * s, 0), never);
    EXPECT_FALSE(d[0].surplus || d[1].surplus);
}

TEST(Rules, IntervalMicrosCountsLikeExtractEpoch)
{
    /* Values checked against SELECT extract(epoch FROM interval '...') * 1000000. */
    EXPECT_EQ(interval_micros(0, 0, 1500000), 1500000);       /* 1.5 s */
    EXPECT_EQ(interval_micros(0, 1, 0), 86400 * s);           /* 1 day */
    EXPECT_EQ(interval_micros(1, 0, 0), 30 * 86400 * s);      /* 1 mon */
    EXPECT_EQ(interval_micros(12, 0, 0), 31557600 * s);       /* 1 year */
    EXPECT_EQ(interval_micros(1200, 0, 0), 3155760000LL * s); /* 100 years */
    EXPECT_EQ(interval_micros(14, 3, 4000000), (31557600 + 60 * 86400 + 3 * 86400 + 4) * s);
    EXPECT_EQ(interval_micros(0, 0, 0), 0);
}

namespace
{

constexpr int64_t MB = 1 << 20;

/* Candidates idle since since[i] s, holding mb[i] MB. */
void budget_candidates(BudgetCandidate *c, int n, const int *since, const int64_t *mb)
{
    for (int i = 0; i < n; i++)
    {
        c[i].index = i;
        c[i].idle_since = since[i] * s;
        c[i].memory = mb[i] < 0 ? -1 : mb[i] * MB;
    }
}

/* The victims' indexes in the order the sorted array holds them. */
std::vector<int> victims(const BudgetCandidate *c, int n)
{
    std::vector<int> out;
    for (int i = 0; i < n; i++)
        if (c[i].victim)
            out.push_back(c[i].index);
    return out;
}

} // namespace

TEST(IdleMemoryBudget, InheritsOffAndIsPerPolicy)
{
    PolicyRules p;
    EXPECT_EQ(effective_rules(p, DefaultRules{}).idle_memory_budget, 0);
    p.idle_memory_budget = 500 * MB;
    EXPECT_EQ(effective_rules(p, DefaultRules{}).idle_memory_budget, 500 * MB);
    EXPECT_STREQ(reason_name(Reason::idle_memory_budget), "idle_memory_budget");
}

TEST(IdleMemoryBudget, LargestFirstUntilUnder)
{
    /* 100 + 40 + 300 + 200 + 10 = 650 MB against 300 MB: end 300, then 200 (150 left). */
    BudgetCandidate c[5];
    int since[] = {10, 20, 30, 40, 50};
    int64_t mb[] = {100, 40, 300, 200, 10};
    budget_candidates(c, 5, since, mb);
    EXPECT_EQ(select_over_budget(c, 5, 300 * MB, 100 * s, 5 * s), never);
    EXPECT_EQ(victims(c, 5), (std::vector<int>{2, 3}));
}

TEST(IdleMemoryBudget, EqualSizesLongestIdleFirst)
{
    BudgetCandidate c[3];
    int since[] = {30, 10, 20};
    int64_t mb[] = {100, 100, 100};
    budget_candidates(c, 3, since, mb);
    select_over_budget(c, 3, 150 * MB, 100 * s, 0);
    EXPECT_EQ(victims(c, 3), (std::vector<int>{1, 2})); /* idle since 10, then 20 */
}

TEST(IdleMemoryBudget, UnderOrAtBudgetOrOffEndsNobody)
{
    BudgetCandidate c[2];
    int since[] = {10, 20};
    int64_t mb[] = {100, 100};
    budget_candidates(c, 2, since, mb);
    EXPECT_EQ(select_over_budget(c, 2, 200 * MB, 100 * s, 0), never);
    EXPECT_EQ(select_over_budget(c, 2, 0, 100 * s, 0), never);
    EXPECT_EQ(select_over_budget(c, 2, -1, 100 * s, 0), never);
    EXPECT_TRUE(victims(c, 2).empty());
}

TEST(IdleMemoryBudget, GraceProtectsButStillCounts)
{
    /* The largest (300 MB) is idle 2 s of a 5 s grace: it counts, the next ones go instead. */
    BudgetCandidate c[3];
    int since[] = {98, 10, 20};
    int64_t mb[] = {300, 100, 50};
    budget_candidates(c, 3, since, mb);
    EXPECT_EQ(select_over_budget(c, 3, 320 * MB, 100 * s, 5 * s), never); /* 450 -> 350 -> 300 */
    EXPECT_EQ(victims(c, 3), (std::vector<int>{1, 2}));

    /* Only graced sessions could bring it under: nobody now, look again when the first is due. */
    BudgetCandidate d[2];
    int since_d[] = {98, 97};
    int64_t mb_d[] = {300, 300};
    budget_candidates(d, 2, since_d, mb_d);
    EXPECT_EQ(select_over_budget(d, 2, 100 * MB, 100 * s, 5 * s), 102 * s);
    EXPECT_TRUE(victims(d, 2).empty());
}

TEST(IdleMemoryBudget, TakenAndUnmeasuredAreNeverChosen)
{
    /* Taken (ended by another rule) counts as gone; unmeasured counts 0 and is never chosen. */
    BudgetCandidate c[4];
    int since[] = {10, 20, 30, 40};
    int64_t mb[] = {500, -1, 200, 100};
    budget_candidates(c, 4, since, mb);
    c[0].taken = true;
    EXPECT_EQ(select_over_budget(c, 4, 250 * MB, 100 * s, 0), never);
    EXPECT_EQ(victims(c, 4), (std::vector<int>{2}));
}
