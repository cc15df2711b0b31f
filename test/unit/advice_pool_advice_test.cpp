#include "core/advice/pool_advice.h"

#include <gtest/gtest.h>

#include <cstring>
#include <string>

using namespace poolguard::core;

namespace
{

constexpr int64_t sec = 1000000;

AdviceRing empty_ring()
{
    AdviceRing r;
    std::memset(&r, 0, sizeof(r));
    return r;
}

AdviceFacts facts(int64_t now, int64_t window, int held, int idle, int64_t idle_memory)
{
    AdviceFacts f;
    f.now_us = now;
    f.window_us = window;
    f.held_now = held;
    f.idle_now = idle;
    f.idle_memory = idle_memory;
    return f;
}

} // namespace

TEST(PoolAdvice, Headroom)
{
    EXPECT_EQ(advice_headroom(0), 1);
    EXPECT_EQ(advice_headroom(1), 1);
    EXPECT_EQ(advice_headroom(2), 1);
    EXPECT_EQ(advice_headroom(4), 1);
    EXPECT_EQ(advice_headroom(5), 2);
    EXPECT_EQ(advice_headroom(8), 2);
    EXPECT_EQ(advice_headroom(9), 3);
}

TEST(PoolAdvice, ScansCloserThanASlotMergeKeepingMaxima)
{
    AdviceRing r = empty_ring();
    int64_t window = 64 * sec; /* slots of 1 s */
    advice_record(&r, 100 * sec, 5, 1, window);
    advice_record(&r, 100 * sec + 300000, 6, 3, window);
    advice_record(&r, 100 * sec + 600000, 4, 0, window);
    EXPECT_EQ(r.count, 1);
    EXPECT_EQ(r.slots[r.newest].held_max, 6);
    EXPECT_EQ(r.slots[r.newest].active_max, 3);
    advice_record(&r, 101 * sec, 4, 0, window);
    EXPECT_EQ(r.count, 2);
    EXPECT_EQ(r.slots[r.newest].active_max, 0);
}

TEST(PoolAdvice, ActiveNeverExceedsHeld)
{
    AdviceRing r = empty_ring();
    advice_record(&r, sec, 2, 7, 64 * sec);
    EXPECT_EQ(r.slots[r.newest].active_max, 2);
    advice_record(&r, 3 * sec, -1, -1, 64 * sec);
    EXPECT_EQ(r.slots[r.newest].held_max, 0);
    EXPECT_EQ(r.slots[r.newest].active_max, 0);
}

TEST(PoolAdvice, RingWrapsAndTheWindowDropsOldSlots)
{
    AdviceRing r = empty_ring();
    int64_t window = 64 * sec;
    /* 100 slots: the ring keeps the newest 64; the first 36 (with 9 active) are gone. */
    for (int i = 0; i < 100; i++)
        advice_record(&r, (int64_t)i * sec, 10, i < 36 ? 9 : 2, window);
    EXPECT_EQ(r.count, advice_slots);
    Advice a = advise(r, facts(99 * sec, window, 10, 8, 8 * 100 * 1024 * 1024));
    EXPECT_EQ(a.active_max, 2);
    EXPECT_EQ(a.samples, 64);
    /* Later, a shorter look: slots older than the window are not counted. */
    Advice b = advise(r, facts(99 * sec, 10 * sec, 10, 8, -1));
    EXPECT_EQ(b.samples, 11);
    EXPECT_FALSE(advice_expired(r, 99 * sec, window));
    EXPECT_TRUE(advice_expired(r, 200 * sec, window));
    EXPECT_TRUE(advice_expired(empty_ring(), 0, window));
}

TEST(PoolAdvice, MotivatingCase)
{
    /*
     * 11 idle connections (2.29 GiB by RSS, 53 MiB of it private: docs/monitoring.md), never more
     * than 2 busy at once.
     */
    AdviceRing r = empty_ring();
    int64_t window = 3600 * sec;
    for (int i = 0; i < 64; i++)
        advice_record(&r, (int64_t)i * 60 * sec, 11, i % 8 == 0 ? 2 : (i % 2), window);
    int64_t idle_memory = (int64_t)53 * 1024 * 1024;
    Advice a = advise(r, facts(63 * 60 * sec, window, 11, 11, idle_memory));
    EXPECT_EQ(a.held_peak, 11);
    EXPECT_EQ(a.active_max, 2);
    EXPECT_EQ(a.active_p95, 2);
    EXPECT_EQ(a.active_p50, 1);
    EXPECT_EQ(a.recommended_max, 3);
    EXPECT_EQ(a.surplus, 8);
    EXPECT_EQ(a.memory_freed, idle_memory / 11 * 8);
    EXPECT_FALSE(a.saturated);
    std::string why = a.why;
    /* Quoted in docs/monitoring.md, "Pool advice". */
    EXPECT_EQ(why,
              "holds 11 connections (peak 11, 11 idle holding 53.00 MiB) but at most 2 were active at once "
              "in the last 60 min (p95 2, 61 samples): max 3 (2 + headroom 1) would close 8 idle connections "
              "and free about 38.55 MiB");
}

TEST(PoolAdvice, PercentilesAreNearestRank)
{
    AdviceRing r = empty_ring();
    int64_t window = 100 * sec;
    /* 20 slots: 18 with 1 active, one with 4, one with 10. */
    for (int i = 0; i < 20; i++)
        advice_record(&r, (int64_t)i * 2 * sec, 20, i == 5 ? 10 : i == 7 ? 4 : 1, window);
    Advice a = advise(r, facts(40 * sec, window, 20, 20, -1));
    EXPECT_EQ(a.samples, 20);
    EXPECT_EQ(a.active_p50, 1);
    EXPECT_EQ(a.active_p95, 4);
    EXPECT_EQ(a.active_max, 10);
    EXPECT_EQ(a.recommended_max, 10 + 3);
    EXPECT_EQ(a.memory_freed, -1) << "idle memory not measured: unknown, not zero";
}

TEST(PoolAdvice, SaturatedPoolKeepsItsSize)
{
    AdviceRing r = empty_ring();
    advice_record(&r, sec, 3, 3, 64 * sec);
    Advice a = advise(r, facts(sec, 64 * sec, 3, 0, 0));
    EXPECT_TRUE(a.saturated);
    EXPECT_EQ(a.recommended_max, 3);
    EXPECT_EQ(a.surplus, 0);
    EXPECT_EQ(a.memory_freed, 0);
    EXPECT_NE(std::string(a.why).find("saturated"), std::string::npos);
}

TEST(PoolAdvice, NeverAboveThePeakNorClosingBusyConnections)
{
    AdviceRing r = empty_ring();
    int64_t window = 64 * sec;
    advice_record(&r, sec, 2, 1, window);
    Advice a = advise(r, facts(sec, window, 2, 1, 1000));
    EXPECT_EQ(a.recommended_max, 2); /* 1 + 1, and the peak is 2 */
    EXPECT_EQ(a.surplus, 0);
    /* 6 held, 5 in transactions (not idle): only the one idle connection counts as surplus. */
    AdviceRing q = empty_ring();
    advice_record(&q, sec, 6, 1, window);
    Advice b = advise(q, facts(sec, window, 6, 1, 4096));
    EXPECT_EQ(b.recommended_max, 2);
    EXPECT_EQ(b.surplus, 1);
    EXPECT_EQ(b.memory_freed, 4096);
}

TEST(PoolAdvice, NoSamples)
{
    Advice a = advise(empty_ring(), facts(sec, 64 * sec, 0, 0, 0));
    EXPECT_EQ(a.samples, 0);
    EXPECT_EQ(a.recommended_max, -1);
    EXPECT_NE(std::string(a.why).find("no sample"), std::string::npos);
}

TEST(PoolAdvice, Formats)
{
    char b[32];
    format_bytes(512, b, sizeof(b));
    EXPECT_STREQ(b, "512 bytes");
    format_bytes(512 * 1024, b, sizeof(b));
    EXPECT_STREQ(b, "512 kB");
    format_bytes((int64_t)(2.29 * 1024 * 1024 * 1024), b, sizeof(b));
    EXPECT_STREQ(b, "2.29 GiB");
    format_duration(45 * sec, b, sizeof(b));
    EXPECT_STREQ(b, "45 s");
    format_duration(3600 * sec, b, sizeof(b));
    EXPECT_STREQ(b, "60 min");
}
