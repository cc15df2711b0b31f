/*
 * ring.h — index arithmetic of the fixed-size invalidation ring in shared memory.
 *
 * Positions are 64-bit counters that only grow (head: next write, tail: oldest entry still
 * needed); the array index is position mod capacity (a power of two).  head - tail is the number
 * of entries in use, so "full" and "empty" are never confused and nothing wraps in practice.
 */
#ifndef POOLGUARD_CORE_RING_H
#define POOLGUARD_CORE_RING_H

#include <cstdint>

namespace poolguard {
namespace core {

struct RingPositions
{
    std::uint64_t head; /* position of the next entry to write */
    std::uint64_t tail; /* position of the oldest entry not yet consumed */
};

constexpr std::uint64_t ring_used(RingPositions r)
{
    return r.head - r.tail;
}

constexpr std::uint64_t ring_free(RingPositions r, std::uint64_t capacity)
{
    return capacity - ring_used(r);
}

/* Whether n more entries fit. */
constexpr bool ring_fits(RingPositions r, std::uint64_t capacity, std::uint64_t n)
{
    return n <= ring_free(r, capacity);
}

/* Array index of a position (capacity is a power of two). */
constexpr std::uint64_t ring_index(std::uint64_t position, std::uint64_t capacity)
{
    return position & (capacity - 1);
}

}  // namespace core
}  // namespace poolguard

#endif
