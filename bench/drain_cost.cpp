/*
 * drain_cost.cpp — the cost of one publisher drain() under the queue lock, side by side: the
 * former ring scan (every entry from the tail to the head is looked at) against the per-database
 * lists (core/invalidation/entry_lists.h: only the entries taken are touched).  Pure C++ on the same entry
 * layout as shared memory (QueueEntry, ~1.1 kB); no server.
 *
 * Scenario: a queue of Q entries, all but `mine` of them belonging to other databases that are
 * not being drained (a stuck database, or busy ones), and `mine` entries of the draining
 * database queued last.  One drain takes up to 256 entries (publisher.cpp's chunk).  Printed:
 * the median time of one drain, in microseconds, for each layout, caches evicted before each.
 *
 * Usage: drain_cost QUEUE_SIZE MINE ROUNDS
 */
#include "core/invalidation/entry_lists.h"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

using namespace poolguard::core;

namespace
{

/* invalidation.h's QueueEntry, with the former ring's `consumed` flag. */
struct Entry
{
    std::uint32_t database;
    bool consumed;
    bool key_null;
    std::uint16_t scope_len;
    std::uint16_t key_len;
    std::uint64_t generation;
    char scope[64];
    char key[1001];
};

constexpr int chunk_entries = 256;
constexpr std::uint32_t me = 2;
constexpr std::uint32_t other = 1;

double median(std::vector<double> v)
{
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

/* Evicts the caches (a committing backend's drain does not find the queue warm either). */
void evict_caches()
{
    static std::vector<char> buffer(64u << 20);
    for (std::size_t i = 0; i < buffer.size(); i += 64)
        buffer[i]++;
}

double micros_since(std::chrono::steady_clock::time_point t0)
{
    return std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count();
}

} // namespace

int main(int argc, char **argv)
{
    if (argc != 4)
    {
        std::fprintf(stderr, "usage: %s QUEUE_SIZE MINE ROUNDS\n", argv[0]);
        return 2;
    }
    const std::uint32_t q = static_cast<std::uint32_t>(std::atol(argv[1]));
    const std::uint32_t mine = static_cast<std::uint32_t>(std::atol(argv[2]));
    const int rounds = std::atoi(argv[3]);
    std::vector<Entry> entries(q);
    std::vector<Entry> chunk(chunk_entries);
    std::memset(entries.data(), 0, sizeof(Entry) * q);
    std::vector<double> ring_us, list_us;
    volatile std::uint64_t sink = 0;

    /* Former ring: tail at 0, head at q; other databases' entries first, ours last. */
    for (int r = 0; r < rounds; r++)
    {
        for (std::uint32_t i = 0; i < q; i++)
        {
            entries[i].database = i < q - mine ? other : me;
            entries[i].consumed = false;
        }
        std::uint64_t tail = 0, head = q;
        evict_caches();
        auto t0 = std::chrono::steady_clock::now();
        int n = 0;
        for (std::uint64_t pos = tail; pos < head && n < chunk_entries; pos++)
        {
            Entry *e = &entries[pos & (q - 1)];
            if (e->database != me || e->consumed)
                continue;
            chunk[n++] = *e;
            e->consumed = true;
        }
        while (tail < head && entries[tail & (q - 1)].consumed) /* reclaim: pinned by the others */
            tail++;
        ring_us.push_back(micros_since(t0));
        sink += n + tail;
    }

    /* Per-database lists: the same entries, ours on their own list. */
    std::vector<std::uint32_t> next(q);
    for (int r = 0; r < rounds; r++)
    {
        EntryList free_list = empty_entry_list(), others = empty_entry_list(), list = empty_entry_list();
        for (std::uint32_t i = 0; i < q; i++)
            list_push_back(i < q - mine ? others : list, next.data(), i);
        evict_caches();
        auto t0 = std::chrono::steady_clock::now();
        int n = 0;
        while (n < chunk_entries)
        {
            std::uint32_t e = list_pop_front(list, next.data());
            if (e == no_entry)
                break;
            chunk[n++] = entries[e];
            list_push_front(free_list, next.data(), e);
        }
        list_us.push_back(micros_since(t0));
        sink += n + free_list.count;
    }

    std::printf("%u %u %.2f %.2f\n", q, mine, median(ring_us), median(list_us));
    return sink == 0 ? 1 : 0;
}
