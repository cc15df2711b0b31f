#include "core/invalidation/feed_ring.h"

#include <gtest/gtest.h>

#include <vector>

using namespace poolguard::core;

TEST(FeedRing, EmptyRingNeedsResyncBelowItsHorizonOnly)
{
    std::vector<std::uint64_t> g(4);
    FeedRing r = feed_make(4, 100);
    EXPECT_TRUE(feed_needs_resync(r, 99));
    EXPECT_FALSE(feed_needs_resync(r, 100));
    EXPECT_EQ(feed_newest(r, g.data()), 100u);
    EXPECT_FALSE(feed_accepts(r, g.data(), 100));
    EXPECT_TRUE(feed_accepts(r, g.data(), 101));
    EXPECT_EQ(feed_first_after(r, g.data(), 0), 0u);
}

TEST(FeedRing, KeepsOrderAndFindsTheFirstNewerItem)
{
    std::vector<std::uint64_t> g(8);
    FeedRing r = feed_make(8, 10);
    for (std::uint64_t gen : {11, 15, 20, 21})
        feed_push(r, g.data(), gen);
    EXPECT_EQ(r.count, 4u);
    EXPECT_EQ(feed_first_after(r, g.data(), 10), 0u);
    EXPECT_EQ(feed_first_after(r, g.data(), 11), 1u);
    EXPECT_EQ(feed_first_after(r, g.data(), 14), 1u);
    EXPECT_EQ(feed_first_after(r, g.data(), 20), 3u);
    EXPECT_EQ(feed_first_after(r, g.data(), 21), 4u);
    EXPECT_EQ(feed_newest(r, g.data()), 21u);
    EXPECT_FALSE(feed_accepts(r, g.data(), 21));
}

TEST(FeedRing, EvictionRaisesTheHorizonAcrossWraparound)
{
    std::vector<std::uint64_t> g(3);
    FeedRing r = feed_make(3, 0);
    for (std::uint64_t gen = 1; gen <= 10; gen++)
    {
        ASSERT_TRUE(feed_accepts(r, g.data(), gen));
        feed_push(r, g.data(), gen);
    }
    EXPECT_EQ(r.count, 3u);
    EXPECT_EQ(r.horizon, 7u); /* 8, 9, 10 are held */
    EXPECT_TRUE(feed_needs_resync(r, 6));
    EXPECT_FALSE(feed_needs_resync(r, 7));
    for (std::uint32_t i = 0; i < r.count; i++)
        EXPECT_EQ(g[feed_slot(r, i)], 8u + i);
    EXPECT_EQ(feed_first_after(r, g.data(), 8), 1u);
}

TEST(FeedRing, RaisedHorizonCoversOlderItems)
{
    std::vector<std::uint64_t> g(4);
    FeedRing r = feed_make(4, 0);
    feed_push(r, g.data(), 5);
    feed_raise_horizon(r, 50);
    EXPECT_TRUE(feed_needs_resync(r, 5));
    EXPECT_EQ(feed_newest(r, g.data()), 50u);
    EXPECT_FALSE(feed_accepts(r, g.data(), 40));
    EXPECT_TRUE(feed_accepts(r, g.data(), 51));
}

TEST(FeedRing, ZeroCapacityAcceptsNothing)
{
    FeedRing r = feed_make(0, 0);
    EXPECT_FALSE(feed_accepts(r, nullptr, 1));
}

#include "core/invalidation/generation.h"
#include "core/invalidation/wal_items.h"

#include <string>

TEST(ReplayedGeneration, KeepsThePrimarysUnlessNotNewer)
{
    EXPECT_EQ(replayed_generation(500, 100), 500u);
    EXPECT_EQ(replayed_generation(100, 100), 101u);
    EXPECT_EQ(replayed_generation(50, 100), 101u);
}

TEST(WalItems, RoundTripWithWholeScopeAndEmptyKey)
{
    char buf[256];
    std::size_t len = 0;
    len += wal_item_write(buf + len, "mentor", 6, "42", 2);
    len += wal_item_write(buf + len, "mentor", 6, nullptr, 0);
    len += wal_item_write(buf + len, "s", 1, "", 0);
    EXPECT_EQ(len, wal_item_size(6, "42", 2) + wal_item_size(6, nullptr, 0) + wal_item_size(1, "", 0));

    std::size_t pos = 0;
    WalItem it;
    ASSERT_TRUE(wal_item_read(buf, len, &pos, &it));
    EXPECT_EQ(std::string(it.scope, it.scope_len), "mentor");
    ASSERT_NE(it.key, nullptr);
    EXPECT_EQ(std::string(it.key, it.key_len), "42");
    ASSERT_TRUE(wal_item_read(buf, len, &pos, &it));
    EXPECT_EQ(it.key, nullptr);
    ASSERT_TRUE(wal_item_read(buf, len, &pos, &it));
    ASSERT_NE(it.key, nullptr);
    EXPECT_EQ(it.key_len, 0u);
    EXPECT_FALSE(wal_item_read(buf, len, &pos, &it));
}

TEST(WalItems, TruncatedRecordStops)
{
    char buf[64];
    std::size_t len = wal_item_write(buf, "mentor", 6, "42", 2);
    std::size_t pos = 0;
    WalItem it;
    EXPECT_FALSE(wal_item_read(buf, len - 1, &pos, &it));
    EXPECT_EQ(pos, 0u);
}
