#include "core/enforce/sampling.h"

#include <gtest/gtest.h>

#include <vector>

using namespace poolguard::core;

namespace
{
constexpr int64_t second = 1000000;
}

TEST(Sampling, FirstCycleOwesOneLapCappedPerCycle)
{
    SampleBudget b;
    EXPECT_EQ(sessions_to_sample(&b, 100 * second, 5000, 60 * second, 500), 500);
    /* The rest of the first lap is carried over, still 500 at most per cycle. */
    EXPECT_EQ(sessions_to_sample(&b, 100 * second + 10000, 5000, 60 * second, 500), 500);
}

TEST(Sampling, SpreadsOneLapOverTheInterval)
{
    SampleBudget b;
    (void)sessions_to_sample(&b, second, 100, 60 * second, 1000); /* first lap: all 100 */
    int total = 0;
    for (int cycle = 1; cycle <= 600; cycle++) /* 60 s at 100 ms */
        total += sessions_to_sample(&b, second + cycle * 100000, 100, 60 * second, 1000);
    EXPECT_GE(total, 99);
    EXPECT_LE(total, 100);
}

TEST(Sampling, LongGapOwesAtMostOneLap)
{
    SampleBudget b;
    (void)sessions_to_sample(&b, second, 50, 10 * second, 1000);
    EXPECT_EQ(sessions_to_sample(&b, 3600 * second, 50, 10 * second, 1000), 50);
}

TEST(Sampling, ClockBackOrOffTakesNoneOrALap)
{
    SampleBudget b;
    EXPECT_EQ(sessions_to_sample(&b, 10 * second, 20, 0, 500), 0);
    EXPECT_EQ(sessions_to_sample(&b, 11 * second, 0, 60 * second, 500), 0);
    (void)sessions_to_sample(&b, 12 * second, 20, 60 * second, 500);
    EXPECT_EQ(sessions_to_sample(&b, 5 * second, 20, 60 * second, 500), 20);
}

TEST(Sampling, AgeBound)
{
    EXPECT_EQ(sample_age_bound(1000, 60 * second, second, 500), 61 * second);
    /* 100,000 sessions at 500 a cycle: a lap takes 200 naptimes. */
    EXPECT_EQ(sample_age_bound(100000, 60 * second, second, 500), 201 * second);
    EXPECT_EQ(sample_age_bound(1000, 0, second, 500), -1);
}

TEST(PidIndex, FindsWhatWasInserted)
{
    std::vector<PidIndex::Slot> slots(PidIndex::capacity_for(5000));
    PidIndex index(slots.data(), slots.size());
    for (int i = 0; i < 5000; i++)
        index.insert(100000 + i * 7, i);
    for (int i = 0; i < 5000; i++)
        EXPECT_EQ(index.find(100000 + i * 7), i);
    EXPECT_EQ(index.find(100001), -1);
    EXPECT_EQ(index.find(0), -1);
    EXPECT_EQ(index.find(-3), -1);
}

TEST(PidIndex, FirstInsertWinsAndBadPidsIgnored)
{
    std::vector<PidIndex::Slot> slots(PidIndex::capacity_for(4));
    PidIndex index(slots.data(), slots.size());
    index.insert(42, 1);
    index.insert(42, 2);
    index.insert(0, 3);
    index.insert(-1, 4);
    EXPECT_EQ(index.find(42), 1);
    EXPECT_EQ(index.find(0), -1);
    EXPECT_GE(PidIndex::capacity_for(4), 16u);
    EXPECT_EQ(PidIndex::capacity_for(5000), 16384u);
}

TEST(PidIndex, AssignOverwrites)
{
    std::vector<PidIndex::Slot> slots(PidIndex::capacity_for(4));
    PidIndex index(slots.data(), slots.size());
    index.insert(42, 1);
    index.assign(42, 2);
    index.assign(43, 3);
    EXPECT_EQ(index.find(42), 2);
    EXPECT_EQ(index.find(43), 3);
}
