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

TEST(FeedRing, EvictionReportsTheEvictedGenerationAcrossWraparound)
{
    std::vector<std::uint64_t> g(3);
    FeedRing r = feed_make(3, 0);
    std::uint64_t evicted = 99;
    for (std::uint64_t gen = 1; gen <= 10; gen++)
    {
        ASSERT_TRUE(feed_accepts(r, g.data(), gen));
        std::uint32_t slot = feed_push(r, g.data(), gen, &evicted);
        EXPECT_EQ(evicted, gen > 3 ? gen - 3 : 0u);
        EXPECT_EQ(g[slot], gen);
    }
    EXPECT_EQ(r.count, 3u);
    EXPECT_EQ(r.horizon, 0u); /* evictions are a database's own loss: the global horizon stays */
    for (std::uint32_t i = 0; i < r.count; i++)
        EXPECT_EQ(g[feed_slot(r, i)], 8u + i);
    EXPECT_EQ(feed_first_after(r, g.data(), 8), 1u);
}

/* Issue 19, finding 3: one database's flood makes only its own readers resync. */
TEST(FeedDatabases, OneDatabasesEvictionsAreItsOwn)
{
    std::vector<std::uint64_t> g(4);
    std::vector<std::uint32_t> db(4);
    FeedRing r = feed_make(4, 100);
    static FeedDatabases t; /* zero-initialized, as the shared memory is */
    auto push = [&](std::uint32_t database, std::uint64_t gen)
    {
        std::uint64_t evicted = 0;
        std::uint32_t slot = feed_push(r, g.data(), gen, &evicted);
        if (evicted != 0)
            feed_database_evicted(t, db[slot], evicted);
        db[slot] = database;
        feed_database_appended(t, database, gen);
    };
    push(2, 101); /* database "other" */
    for (std::uint64_t gen = 102; gen < 102 + 1100; gen++)
        push(1, gen); /* database "tenant" floods */
    std::uint64_t at = 0;
    EXPECT_TRUE(feed_database_needs_resync(r, t, 1, 101, &at)) << "the flooding database lost items";
    EXPECT_EQ(at, 1201u);
    EXPECT_TRUE(feed_database_needs_resync(r, t, 2, 100, &at)) << "its own item was evicted";
    EXPECT_EQ(at, 101u) << "the resync row shows its own newest, not the flood's";
    EXPECT_FALSE(feed_database_needs_resync(r, t, 2, 101, &at)) << "a reader that saw its item lost nothing";
    EXPECT_FALSE(feed_database_needs_resync(r, t, 3, 100, &at)) << "a database that never appended";
    EXPECT_TRUE(feed_database_needs_resync(r, t, 3, 0, &at));
    EXPECT_EQ(at, 100u) << "before the server's start: the global horizon only";
}

TEST(FeedDatabases, PastTheProbeWindowDatabasesShareTheOverflowRow)
{
    static FeedDatabases t;
    /* Fill every row: 512 databases claim one each (probing finds a free one in reach). */
    std::uint32_t claimed = 0;
    for (std::uint32_t d = 1; claimed < feed_database_rows && d < 100000; d++)
        if (feed_database_row(t, d, true) != &t.overflow)
            claimed++;
    EXPECT_EQ(claimed, feed_database_rows);
    FeedDatabase *a = feed_database_row(t, 200001, true);
    FeedDatabase *b = feed_database_row(t, 200002, true);
    EXPECT_EQ(a, &t.overflow);
    EXPECT_EQ(b, &t.overflow);
    EXPECT_NE(feed_database_row(t, 1, false), &t.overflow);
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
