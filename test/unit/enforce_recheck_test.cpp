#include "core/enforce/recheck.h"

#include <gtest/gtest.h>

using namespace poolguard::core;

namespace
{

constexpr int idle = 1;
constexpr int active = 2;

BackendFacts judged_idle()
{
    BackendFacts f;
    f.pid = 4242;
    f.client_backend = true;
    f.userid = 16384;
    f.backend_start = 1000;
    f.state = idle;
    f.state_change = 5000;
    f.query_start = 4000;
    return f;
}

} // namespace

TEST(Recheck, UnchangedSessionStillQualifies)
{
    BackendFacts j = judged_idle();
    EXPECT_TRUE(still_as_judged(j, j, Watch::state_change));
    EXPECT_TRUE(still_as_judged(j, j, Watch::query_start));
}

TEST(Recheck, TurnedActiveIsSkipped)
{
    BackendFacts j = judged_idle();
    BackendFacts f = j;
    f.state = active; /* ran a query since the decision */
    f.state_change = 6000;
    f.query_start = 6000;
    EXPECT_FALSE(still_as_judged(j, f, Watch::state_change));
}

TEST(Recheck, IdleAgainSinceALaterMomentIsSkipped)
{
    /* It ran a query and went idle again between the decision and the signal: same state, but
     * its idle time restarted. */
    BackendFacts j = judged_idle();
    BackendFacts f = j;
    f.state_change = 7000;
    f.query_start = 6500;
    EXPECT_FALSE(still_as_judged(j, f, Watch::state_change));
}

TEST(Recheck, NewQueryIsSkippedForQueryRules)
{
    BackendFacts j = judged_idle();
    j.state = active;
    j.query_start = 5000;
    BackendFacts f = j;
    f.query_start = 9000; /* the long query ended, a new one started: still active */
    EXPECT_FALSE(still_as_judged(j, f, Watch::query_start));
    f.query_start = j.query_start;
    f.state_change = 9000; /* the state timestamp alone does not matter for query rules */
    EXPECT_TRUE(still_as_judged(j, f, Watch::query_start));
}

TEST(Recheck, ReusedPidOrOtherProcessIsSkipped)
{
    BackendFacts j = judged_idle();
    BackendFacts f = j;
    f.backend_start = 2000; /* same pid, another process */
    EXPECT_FALSE(still_as_judged(j, f, Watch::state_change));
    f = j;
    f.pid = 4243;
    EXPECT_FALSE(still_as_judged(j, f, Watch::state_change));
    f = j;
    f.pid = 0; /* gone: no entry found */
    EXPECT_FALSE(still_as_judged(j, f, Watch::state_change));
}

TEST(Recheck, OnlyClientBackendsOfTheSameRole)
{
    BackendFacts j = judged_idle();
    BackendFacts f = j;
    f.client_backend = false;
    EXPECT_FALSE(still_as_judged(j, f, Watch::state_change));
    f = j;
    f.userid = 10;
    EXPECT_FALSE(still_as_judged(j, f, Watch::state_change));
    BackendFacts not_client = j;
    not_client.client_backend = false;
    EXPECT_FALSE(still_as_judged(not_client, not_client, Watch::state_change));
}
