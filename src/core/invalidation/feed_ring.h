/*
 * feed_ring.h — the positions of the invalidation feed: the last `capacity` items, in generation
 * order, in a fixed ring of slots.
 *
 * The ring itself only orders slots and generations; the caller stores each item in its own
 * array at the slot feed_push() returns.  `horizon` is the greatest generation the ring can no
 * longer vouch for: an item with a generation at or below it may have been dropped (evicted to
 * make room, or handed out before this server started), so a reader that has seen only up to a
 * generation below the horizon must resync.  Generations are strictly increasing from the oldest
 * item to the newest; an item that would break that is refused (feed_accepts), and the horizon
 * covers it.
 */
#ifndef POOLGUARD_CORE_FEED_RING_H
#define POOLGUARD_CORE_FEED_RING_H

/* Plain C++ (the unit tests build it without a server); included by glue headers, like entry_lists.h. */
#include <cstdint>

namespace poolguard
{
namespace core
{

struct FeedRing
{
    std::uint32_t capacity; /* slots */
    std::uint32_t head;     /* the slot the next item takes */
    std::uint32_t count;    /* items held */
    std::uint64_t horizon;  /* items at or below it may be missing */
};

inline FeedRing feed_make(std::uint32_t capacity, std::uint64_t horizon)
{
    return FeedRing{capacity, 0, 0, horizon};
}

/* The slot of the i-th oldest item (i < count). */
inline std::uint32_t feed_slot(const FeedRing &r, std::uint32_t i)
{
    return (r.head + r.capacity - r.count + i) % r.capacity;
}

/* The newest generation the ring knows of: its newest item's, or the horizon when empty. */
inline std::uint64_t feed_newest(const FeedRing &r, const std::uint64_t *generations)
{
    if (r.count == 0)
        return r.horizon;
    std::uint64_t g = generations[feed_slot(r, r.count - 1)];
    return g > r.horizon ? g : r.horizon;
}

/* Whether an item of this generation can be appended (it is newer than everything held). */
inline bool feed_accepts(const FeedRing &r, const std::uint64_t *generations, std::uint64_t generation)
{
    return r.capacity > 0 && generation > feed_newest(r, generations);
}

/*
 * Appends an item (feed_accepts must hold) and returns its slot; when the ring is full the oldest
 * item is evicted and the horizon rises to its generation.
 */
inline std::uint32_t feed_push(FeedRing &r, std::uint64_t *generations, std::uint64_t generation)
{
    if (r.count == r.capacity)
    {
        std::uint64_t evicted = generations[feed_slot(r, 0)];
        if (evicted > r.horizon)
            r.horizon = evicted;
        r.count--;
    }
    std::uint32_t slot = r.head;
    generations[slot] = generation;
    r.head = (r.head + 1) % r.capacity;
    r.count++;
    return slot;
}

/* Everything at or below `generation` may be missing from now on (a floor was raised). */
inline void feed_raise_horizon(FeedRing &r, std::uint64_t generation)
{
    if (generation > r.horizon)
        r.horizon = generation;
}

/* Whether a reader that has seen everything up to `after` must resync. */
inline bool feed_needs_resync(const FeedRing &r, std::uint64_t after)
{
    return after < r.horizon;
}

/* The position (0 .. count) of the oldest item with a generation greater than `after`. */
inline std::uint32_t feed_first_after(const FeedRing &r, const std::uint64_t *generations,
                                      std::uint64_t after)
{
    std::uint32_t lo = 0, hi = r.count;
    while (lo < hi)
    {
        std::uint32_t mid = lo + (hi - lo) / 2;
        if (generations[feed_slot(r, mid)] <= after)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

} // namespace core
} // namespace poolguard

#endif
