#include "core/invalidation/generation.h"
#include "core/invalidation/invalidation_key.h"
#include "core/invalidation/notify_payload.h"
#include "core/invalidation/entry_lists.h"

#include <gtest/gtest.h>

#include <cstring>
#include <set>
#include <string>

using namespace poolguard::core;

namespace
{

const HashSecret test_secret{0x0706050403020100ULL, 0x0f0e0d0c0b0a0908ULL};

std::uint64_t h(std::uint32_t db, const std::string &scope, const char *key,
                const HashSecret &secret = test_secret)
{
    return invalidation_hash(secret, db, scope.data(), scope.size(), key, key ? std::strlen(key) : 0);
}

} // namespace

/* The reference vector of the SipHash paper (appendix A): key 00..0f, message 00..0e. */
TEST(SipHash, ReferenceVector)
{
    unsigned char msg[15];
    for (int i = 0; i < 15; i++)
        msg[i] = static_cast<unsigned char>(i);
    EXPECT_EQ(siphash24(test_secret, msg, sizeof(msg)), 0xa129ca6149be45e5ULL);
    /* And the first vectors of the reference implementation's table (lengths 0 and 8). */
    EXPECT_EQ(siphash24(test_secret, msg, 0), 0x726fdb47dd0e0e31ULL);
    unsigned char eight[8] = {0, 1, 2, 3, 4, 5, 6, 7};
    EXPECT_EQ(siphash24(test_secret, eight, 8), 0x93f5f5799a932462ULL);
}

/*
 * Issue 19, finding 8: a key of database B found (offline) to share the slot of a key of
 * database A under one secret does not share it under another: without the server's secret the
 * search cannot be done.
 */
TEST(InvalidationHash, CollisionsDoNotSurviveANewSecret)
{
    const std::uint64_t slots = 1024;
    const HashSecret other{0x243f6a8885a308d3ULL, 0x13198a2e03707344ULL};
    int found = 0, survived = 0;
    for (int target = 0; target < 20; target++)
    {
        std::string victim = "secret-" + std::to_string(target);
        std::uint64_t want = slot_of(h(16384, "account", victim.c_str()), slots);
        for (int i = 0; i < 100000; i++)
        {
            std::string probe = "probe-" + std::to_string(target) + "-" + std::to_string(i);
            if (slot_of(h(16385, "account", probe.c_str()), slots) != want)
                continue;
            found++;
            if (slot_of(h(16385, "account", probe.c_str(), other), slots) ==
                slot_of(h(16384, "account", victim.c_str(), other), slots))
                survived++;
            break;
        }
    }
    EXPECT_EQ(found, 20);
    EXPECT_LE(survived, 1); /* chance: 1 in 1024 each */
}

TEST(InvalidationHash, DependsOnTheSecret)
{
    const HashSecret other{1, 2};
    EXPECT_NE(h(1, "mentor", "42"), h(1, "mentor", "42", other));
}

TEST(InvalidationHash, DependsOnEveryField)
{
    EXPECT_EQ(h(1, "mentor", "42"), h(1, "mentor", "42"));
    EXPECT_NE(h(1, "mentor", "42"), h(2, "mentor", "42"));
    EXPECT_NE(h(1, "mentor", "42"), h(1, "mentors", "42"));
    EXPECT_NE(h(1, "mentor", "42"), h(1, "mentor", "43"));
}

TEST(InvalidationHash, ScopeWideDiffersFromEmptyKey)
{
    EXPECT_NE(h(1, "mentor", nullptr), h(1, "mentor", ""));
}

TEST(InvalidationHash, FieldBoundariesMatter)
{
    EXPECT_NE(h(1, "ab", "c"), h(1, "a", "bc"));
}

TEST(InvalidationHash, SpreadsOverSlots)
{
    const std::uint64_t slots = 1024;
    std::set<std::uint64_t> used;
    for (int i = 0; i < 512; i++)
        used.insert(slot_of(h(5, "mentor", std::to_string(i).c_str()), slots));
    /* 512 keys into 1024 slots: a decent hash leaves few collisions (expected ~400 distinct). */
    EXPECT_GT(used.size(), 350u);
}

TEST(InvalidationHash, PowerOfTwo)
{
    EXPECT_TRUE(is_power_of_two(1));
    EXPECT_TRUE(is_power_of_two(65536));
    EXPECT_FALSE(is_power_of_two(0));
    EXPECT_FALSE(is_power_of_two(65535));
    EXPECT_EQ(slot_of(0x12345, 0x100), 0x45u);
}

TEST(Generation, SeedFromClock)
{
    EXPECT_EQ(generation_seed(1732890000000123), 1732890000000123u);
    EXPECT_EQ(generation_seed(0), 1u);
    EXPECT_EQ(generation_seed(-5), 1u);
}

TEST(Generation, EffectiveIsTheLaterOfKeyAndScope)
{
    EXPECT_EQ(effective_generation(10, 7), 10u);
    EXPECT_EQ(effective_generation(7, 10), 10u);
    EXPECT_TRUE(generation_is_fresh(10, 10));
    EXPECT_FALSE(generation_is_fresh(10, 11));
}

TEST(EntryLists, FifoPerListAndConservedEntries)
{
    std::uint32_t next[8];
    EntryList free_list, a = empty_entry_list(), b = empty_entry_list();
    list_fill(free_list, next, 8);
    EXPECT_EQ(free_list.count, 8u);
    for (int i = 0; i < 3; i++)
    {
        list_push_back(a, next, list_pop_front(free_list, next));
        list_push_back(b, next, list_pop_front(free_list, next));
    }
    EXPECT_EQ(a.count + b.count + free_list.count, 8u);
    /* Each list gives its entries back in the order they were appended. */
    EXPECT_EQ(list_pop_front(a, next), 0u);
    EXPECT_EQ(list_pop_front(a, next), 2u);
    EXPECT_EQ(list_pop_front(b, next), 1u);
    list_push_front(free_list, next, 0);
    list_push_front(free_list, next, 2);
    list_push_front(free_list, next, 1);
    EXPECT_EQ(free_list.first, 1u); /* the entry freed last is reused first */
    EXPECT_EQ(a.count, 1u);
    EXPECT_EQ(list_pop_front(a, next), 4u);
    EXPECT_EQ(list_pop_front(a, next), no_entry);
    EXPECT_EQ(a.first, no_entry);
    EXPECT_EQ(a.last, no_entry);
}

TEST(EntryLists, AppendAllMovesAWholeList)
{
    std::uint32_t next[6];
    EntryList free_list, a = empty_entry_list(), b = empty_entry_list();
    list_fill(free_list, next, 6);
    for (int i = 0; i < 4; i++)
        list_push_back(a, next, list_pop_front(free_list, next));
    list_push_back(b, next, list_pop_front(free_list, next));
    list_append_all(free_list, a, next);
    EXPECT_EQ(a.count, 0u);
    EXPECT_EQ(a.first, no_entry);
    EXPECT_EQ(free_list.count, 5u);
    std::set<std::uint32_t> seen;
    for (std::uint32_t e = free_list.first; e != no_entry; e = next[e])
        seen.insert(e);
    EXPECT_EQ(seen, (std::set<std::uint32_t>{0, 1, 2, 3, 5}));
    EXPECT_EQ(free_list.last, 3u);
    /* Appending an empty list changes nothing; appending to an empty list takes it over. */
    list_append_all(free_list, a, next);
    EXPECT_EQ(free_list.count, 5u);
    list_append_all(a, b, next);
    EXPECT_EQ(a.count, 1u);
    EXPECT_EQ(a.first, 4u);
    EXPECT_EQ(a.last, 4u);
}

TEST(Payload, SingleItems)
{
    Payload p;
    payload_reset(p);
    ASSERT_TRUE(payload_append(p, "mentor", 6, "42", 2, 17));
    EXPECT_STREQ(payload_finish(p), R"([{"scope":"mentor","key":"42","generation":17}])");

    payload_reset(p);
    ASSERT_TRUE(payload_append(p, "mentor", 6, nullptr, 0, 18));
    ASSERT_TRUE(payload_append_resync(p, 19));
    EXPECT_STREQ(payload_finish(p), R"([{"scope":"mentor","key":null,"generation":18},)"
                                    R"({"scope":null,"key":null,"generation":19,"resync":true}])");
}

TEST(Payload, EmptyArray)
{
    Payload p;
    payload_reset(p);
    EXPECT_STREQ(payload_finish(p), "[]");
}

TEST(Payload, Escaping)
{
    Payload p;
    payload_reset(p);
    const char key[] = "a\"b\\c\n\x01\xc3\xa9";
    ASSERT_TRUE(payload_append(p, "s", 1, key, sizeof(key) - 1, 1));
    std::string out = payload_finish(p);
    EXPECT_EQ(out, "[{\"scope\":\"s\",\"key\":\"a\\\"b\\\\c\\n\\u0001\xc3\xa9\",\"generation\":1}]");
    EXPECT_EQ(json_escaped_length(key, sizeof(key) - 1), std::string("a\\\"b\\\\c\\n\\u0001\xc3\xa9").size());
}

TEST(Payload, LengthPredictionMatchesOutput)
{
    Payload p;
    payload_reset(p);
    const char key[] = "k\t\"x";
    std::size_t predicted = item_json_length("scope", 5, key, 4, 1234567890123456ULL);
    ASSERT_TRUE(payload_append(p, "scope", 5, key, 4, 1234567890123456ULL));
    EXPECT_EQ(p.len, 1 + predicted);
}

TEST(Payload, WorstCaseItemFits)
{
    std::string scope(max_scope_bytes, '\x01');
    std::string key(max_key_bytes, '\x02');
    std::uint64_t g = ~0ULL;
    EXPECT_LT(item_json_length(scope.data(), scope.size(), key.data(), key.size(), g) + 2, max_payload_bytes);
    Payload p;
    payload_reset(p);
    EXPECT_TRUE(payload_append(p, scope.data(), scope.size(), key.data(), key.size(), g));
    EXPECT_LE(std::strlen(payload_finish(p)), max_payload_bytes);
}

TEST(Payload, BatchesNeverExceedTheLimit)
{
    Payload p;
    payload_reset(p);
    std::string key(300, 'k');
    int sent_items = 0, payloads = 0;
    for (int i = 0; i < 100; i++)
    {
        if (!payload_append(p, "mentor", 6, key.data(), key.size(), 1000 + i))
        {
            const char *text = payload_finish(p);
            EXPECT_LE(std::strlen(text), max_payload_bytes);
            EXPECT_EQ(text[std::strlen(text) - 1], ']');
            sent_items += static_cast<int>(p.items);
            payloads++;
            payload_reset(p);
            ASSERT_TRUE(payload_append(p, "mentor", 6, key.data(), key.size(), 1000 + i));
        }
    }
    sent_items += static_cast<int>(p.items);
    payloads++;
    EXPECT_EQ(sent_items, 100);
    EXPECT_GE(payloads, 4); /* ~340 bytes an item: about 23 per payload */
    EXPECT_LE(payloads, 5);
}

TEST(WalWriterWake, AtMostOncePerInterval)
{
    const std::int64_t delay = 200000; /* wal_writer_delay = 200ms, in microseconds */
    EXPECT_TRUE(walwriter_wake_due(5000000, 0, delay)) << "the first record of the start wakes it";
    EXPECT_FALSE(walwriter_wake_due(5000001, 5000000, delay)) << "a commit right after: no second wake";
    EXPECT_FALSE(walwriter_wake_due(5000000 + delay - 1, 5000000, delay));
    EXPECT_TRUE(walwriter_wake_due(5000000 + delay, 5000000, delay))
        << "one interval later it may flush again";
    /* Commits read the clock before the lock: a slightly older `now` than the last wake is no wake. */
    EXPECT_FALSE(walwriter_wake_due(4999990, 5000000, delay));
    /* A clock that went back by more than the interval does not hold wakes off until it catches up. */
    EXPECT_TRUE(walwriter_wake_due(5000000 - delay, 5000000, delay));
    EXPECT_TRUE(walwriter_wake_due(1000, 5000000, delay));
}

TEST(ScopeHashMemo, SameAsTheScopeWideHash)
{
    ScopeHashMemo memo{};
    const HashSecret other{1, 2};
    struct
    {
        std::uint32_t db;
        const char *scope;
        const HashSecret *secret;
    } calls[] = {{5, "item", &test_secret}, {5, "item", &test_secret}, {5, "items", &test_secret},
                 {5, "ite", &test_secret},  {6, "ite", &test_secret},  {6, "ite", &other},
                 {6, "ite", &test_secret},  {5, "", &test_secret},     {5, "item", &test_secret}};
    for (const auto &c : calls)
        EXPECT_EQ(scope_hash(memo, *c.secret, c.db, c.scope, std::strlen(c.scope)),
                  invalidation_hash(*c.secret, c.db, c.scope, std::strlen(c.scope), nullptr, 0))
            << c.db << "/" << c.scope;
    /* Longer than the limit: cut as invalidation_hash cuts it, and never read past the memo. */
    std::string long_scope(max_scope_bytes + 10, 'x');
    EXPECT_EQ(scope_hash(memo, test_secret, 5, long_scope.data(), long_scope.size()),
              invalidation_hash(test_secret, 5, long_scope.data(), long_scope.size(), nullptr, 0));
    EXPECT_EQ(scope_hash(memo, test_secret, 5, long_scope.data(), max_scope_bytes),
              invalidation_hash(test_secret, 5, long_scope.data(), max_scope_bytes, nullptr, 0));
}
