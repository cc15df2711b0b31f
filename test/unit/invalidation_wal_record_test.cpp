/*
 * The decoder of the INVALIDATIONS WAL record (core/invalidation/wal_items.h): redo and rm_desc
 * share it, and it must refuse every record whose lengths do not hold (issue 19, finding 11).
 */
#include "core/invalidation/wal_items.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

using namespace poolguard::core;

namespace
{

std::vector<char> record(std::uint32_t database, std::uint32_t count, std::uint64_t first,
                         const std::string &items)
{
    WalRecordHeader h{database, count, first};
    std::vector<char> out(sizeof(h) + items.size());
    std::memcpy(out.data(), &h, sizeof(h));
    std::memcpy(out.data() + sizeof(h), items.data(), items.size());
    return out;
}

std::string item(const std::string &scope, const char *key)
{
    std::string out(wal_item_size(scope.size(), key, key ? std::strlen(key) : 0), '\0');
    wal_item_write(&out[0], scope.data(), scope.size(), key, key ? std::strlen(key) : 0);
    return out;
}

/* An item header with the given raw lengths and `body` bytes after it. */
std::string raw_item(std::uint16_t scope_len, std::uint16_t key_len, std::size_t body)
{
    std::uint16_t lens[2] = {scope_len, key_len};
    std::string out(4 + body, 'x');
    std::memcpy(&out[0], lens, 4);
    return out;
}

WalRecordProblem check(const std::vector<char> &r)
{
    WalRecordHeader h;
    const char *items = nullptr;
    std::size_t items_len = 0;
    return wal_record_check(r.data(), r.size(), &h, &items, &items_len);
}

} // namespace

TEST(WalRecord, AcceptsWhatThePrimaryWrites)
{
    auto r = record(5, 3, 1000, item("mentor", "42") + item("mentor", nullptr) + item("s", ""));
    WalRecordHeader h;
    const char *items = nullptr;
    std::size_t items_len = 0;
    ASSERT_EQ(wal_record_check(r.data(), r.size(), &h, &items, &items_len), WalRecordProblem::none);
    EXPECT_EQ(h.database, 5u);
    EXPECT_EQ(h.count, 3u);
    EXPECT_EQ(h.first_generation, 1000u);
    std::size_t pos = 0;
    WalItem it;
    int n = 0;
    while (wal_item_read(items, items_len, &pos, &it))
        n++;
    EXPECT_EQ(n, 3);
    EXPECT_EQ(pos, items_len);
}

TEST(WalRecord, AcceptsTheLimits)
{
    std::string scope(max_scope_bytes, 's');
    std::string key(max_key_bytes, 'k');
    EXPECT_EQ(check(record(1, 1, 1, item(scope, key.c_str()))), WalRecordProblem::none);
}

/* The old decoder accepted a scope of up to 65535 bytes: redo copied it into a 64-byte entry. */
TEST(WalRecord, RefusesScopeLongerThanTheLimit)
{
    std::string body = raw_item(static_cast<std::uint16_t>(max_scope_bytes + 1), 0, max_scope_bytes + 1);
    std::size_t pos = 0;
    WalItem it;
    EXPECT_FALSE(wal_item_read(body.data(), body.size(), &pos, &it));
    EXPECT_EQ(pos, 0u);
    EXPECT_EQ(check(record(1, 1, 1, body)), WalRecordProblem::bad_item);
    std::string huge = raw_item(60000, 0, 60000);
    EXPECT_EQ(check(record(1, 1, 1, huge)), WalRecordProblem::bad_item);
}

TEST(WalRecord, RefusesKeyLongerThanTheLimit)
{
    std::string body = raw_item(1, static_cast<std::uint16_t>(max_key_bytes + 1), 1 + max_key_bytes + 1);
    std::size_t pos = 0;
    WalItem it;
    EXPECT_FALSE(wal_item_read(body.data(), body.size(), &pos, &it));
    EXPECT_EQ(check(record(1, 1, 1, body)), WalRecordProblem::bad_item);
}

TEST(WalRecord, RefusesEmptyScope)
{
    EXPECT_EQ(check(record(1, 1, 1, raw_item(0, 0, 0))), WalRecordProblem::bad_item);
}

TEST(WalRecord, RefusesShortAndInconsistentRecords)
{
    std::vector<char> tiny(15, 0);
    EXPECT_EQ(check(tiny), WalRecordProblem::short_header);
    EXPECT_EQ(check(record(1, 0, 1, item("a", "b"))), WalRecordProblem::bad_count);
    EXPECT_EQ(check(record(1, 2, 1, item("a", "b"))), WalRecordProblem::bad_count);
    EXPECT_EQ(check(record(1, 1, 1, item("a", "b") + item("a", "c"))), WalRecordProblem::trailing_bytes);
    EXPECT_EQ(check(record(1, 0xFFFFFFFFu, 1, item("a", "b"))), WalRecordProblem::bad_count);
    EXPECT_EQ(check(record(1, 2, UINT64_MAX - 1, item("a", "b") + item("a", "c"))),
              WalRecordProblem::generation_wraps);
    /* A truncated item: its lengths claim more than the record holds. */
    std::string cut = item("mentor", "42");
    cut.pop_back();
    EXPECT_EQ(check(record(1, 1, 1, cut)), WalRecordProblem::bad_item);
    WalRecordHeader h;
    const char *items;
    std::size_t items_len;
    EXPECT_EQ(wal_record_check(nullptr, 100, &h, &items, &items_len), WalRecordProblem::short_header);
}

/*
 * Random bytes (fuzz-ish, fixed seed): the decoder never reads outside the record (ASan checks
 * it in the sanitized build), and every item of an accepted record is within the limits.
 */
TEST(WalRecord, RandomBytesNeverOverrun)
{
    std::mt19937_64 rng(19);
    int accepted = 0;
    for (int round = 0; round < 20000; round++)
    {
        std::size_t len = rng() % 96;
        std::vector<char> r(len);
        for (auto &c : r)
            c = static_cast<char>(rng());
        /* Half the time a plausible header, so that item parsing is reached. */
        if (len >= sizeof(WalRecordHeader) && (round & 1))
        {
            WalRecordHeader h{1, static_cast<std::uint32_t>(1 + rng() % 4), rng() % 1000};
            std::memcpy(r.data(), &h, sizeof(h));
            for (std::size_t i = sizeof(h); i + 1 < len; i += 4 + (rng() % 8))
            {
                std::uint16_t lens[2] = {static_cast<std::uint16_t>(rng() % 8),
                                         static_cast<std::uint16_t>(rng() % 3 == 0 ? 0xFFFF : rng() % 8)};
                std::memcpy(r.data() + i, lens, std::min<std::size_t>(4, len - i));
            }
        }
        /* An exact-size heap copy: ASan flags any read past its end. */
        std::unique_ptr<char[]> exact(new char[len == 0 ? 1 : len]);
        if (len > 0)
            std::memcpy(exact.get(), r.data(), len);
        WalRecordHeader h;
        const char *items = nullptr;
        std::size_t items_len = 0;
        if (wal_record_check(exact.get(), len, &h, &items, &items_len) != WalRecordProblem::none)
            continue;
        accepted++;
        std::size_t pos = 0;
        WalItem it;
        std::uint32_t n = 0;
        while (wal_item_read(items, items_len, &pos, &it))
        {
            EXPECT_GE(it.scope_len, 1u);
            EXPECT_LE(it.scope_len, max_scope_bytes);
            EXPECT_LE(it.key_len, max_key_bytes);
            EXPECT_LE(it.scope + it.scope_len, exact.get() + len);
            n++;
        }
        EXPECT_EQ(n, h.count);
        EXPECT_EQ(pos, items_len);
    }
    EXPECT_GT(accepted, 0);
}
