#include "core/policy/churn.h"

#include <gtest/gtest.h>

using namespace poolguard::core;

namespace
{
constexpr Micros s = 1000000;
constexpr Micros window = 30 * s;
} // namespace

TEST(Refills, EachEndIsMatchedByOneLogin)
{
    RecentEnds ends;
    note_end(ends, 100 * s);
    note_end(ends, 100 * s);
    EXPECT_TRUE(take_refill(ends, 101 * s, window));
    EXPECT_TRUE(take_refill(ends, 101 * s, window));
    EXPECT_FALSE(take_refill(ends, 101 * s, window)); /* growth of the pool, not a refill */
    EXPECT_EQ(ends.count, 0);
}

TEST(Refills, EndsOlderThanTheWindowAreForgotten)
{
    RecentEnds ends;
    note_end(ends, 100 * s);
    note_end(ends, 120 * s);
    EXPECT_TRUE(take_refill(ends, 140 * s, window)); /* 100 s expired, 120 s matched */
    EXPECT_EQ(ends.count, 0);
    note_end(ends, 200 * s);
    EXPECT_FALSE(take_refill(ends, 200 * s + window + 1, window));
    EXPECT_TRUE(take_refill(ends, 0, window) == false);
}

TEST(Refills, FullMemoryForgetsTheOldest)
{
    RecentEnds ends;
    for (int i = 0; i < recent_ends_capacity + 5; i++)
        note_end(ends, (100 + i) * s);
    EXPECT_EQ(ends.count, recent_ends_capacity);
    EXPECT_EQ(ends.at[0], 105 * s);
}

TEST(FightWarning, MostEndsComingBackWarnsOncePerWindow)
{
    ChurnWindow w;
    for (int i = 0; i < 3; i++)
    {
        count_end(w, (10 + i) * s, window, Reason::idle_timeout, true);
        if (i < 2)
        {
            EXPECT_FALSE(should_warn(w, (10 + i) * s, window)); /* fewer than 3 ends, or not refilled yet */
        }
        count_refill(w, (10 + i) * s + 1, window);
    }
    EXPECT_TRUE(should_warn(w, 13 * s, window));
    EXPECT_FALSE(should_warn(w, 14 * s, window));
    ChurnTotals t = totals(w);
    EXPECT_EQ(t.ends, 3);
    EXPECT_EQ(t.refills, 3);
    EXPECT_EQ(t.unused, 3);
    EXPECT_EQ(likely_cause(t), FightCause::idle_rule_vs_pool);
    /* Still fighting a window later: one more warning. */
    for (int i = 0; i < 3; i++)
    {
        count_end(w, (45 + i) * s, window, Reason::idle_timeout, false);
        count_refill(w, (45 + i) * s, window);
    }
    EXPECT_TRUE(should_warn(w, 48 * s, window));
}

TEST(FightWarning, AnAppThatWentAwayIsNoFight)
{
    ChurnWindow w;
    for (int i = 0; i < 10; i++)
        count_end(w, (10 + i) * s, window, Reason::idle_timeout, false);
    count_refill(w, 21 * s, window);
    EXPECT_FALSE(should_warn(w, 22 * s, window));
    EXPECT_FALSE(should_warn(w, 200 * s, window));
}

TEST(FightWarning, TwoWindowsAgoIsForgotten)
{
    ChurnWindow w;
    for (int i = 0; i < 3; i++)
    {
        count_end(w, 10 * s, window, Reason::max_idle, false);
        count_refill(w, 10 * s, window);
    }
    EXPECT_EQ(likely_cause(totals(w)), FightCause::pool_minimum_above_max_idle);
    roll(w, 10 * s + 2 * window, window);
    EXPECT_EQ(totals(w).ends, 0);
    EXPECT_FALSE(should_warn(w, 10 * s + 2 * window, window));
}

TEST(WarmFloor, SparesTheMostRecentlyUsedUpToTheFloor)
{
    WarmCandidate c[5];
    for (int i = 0; i < 5; i++)
    {
        c[i].index = i;
        c[i].idle_since = i * s; /* 4 is the most recently used */
        c[i].reason = Reason::idle_timeout;
    }
    c[0].reason = Reason::max_idle_memory; /* memory is never spared */
    EXPECT_EQ(keep_warm_floor(c, 5, 2), 2);
    for (const WarmCandidate &x : c)
        EXPECT_EQ(x.spared, x.index == 4 || x.index == 3) << x.index;
}

TEST(WarmFloor, KeptSessionsCountTowardTheFloor)
{
    WarmCandidate c[3];
    for (int i = 0; i < 3; i++)
    {
        c[i].index = i;
        c[i].idle_since = i * s;
        c[i].reason = i == 2 ? Reason::none : Reason::max_idle;
    }
    EXPECT_EQ(keep_warm_floor(c, 3, 2), 1);
    EXPECT_EQ(keep_warm_floor(c, 3, 0), 0);
    EXPECT_FALSE(floor_spares(Reason::evict_idle));
}
