/*
 * invalidation_key.h — where an invalidation (database, scope, key) lives in the generation table.
 *
 * The generation table is a fixed array of 64-bit counters indexed by a hash of (database,
 * scope, key).  Two keys that collide share a counter: bumping one makes the other look changed
 * (a spurious invalidation), never the reverse, so collisions cost cache hits, not correctness.
 * A scope-wide entry (key NULL) hashes differently from every key, including the empty string.
 */
#ifndef POOLGUARD_CORE_INVALIDATION_KEY_H
#define POOLGUARD_CORE_INVALIDATION_KEY_H

#include <cstddef>
#include <cstdint>

namespace poolguard
{
namespace core
{

/* Limits of the interface (bytes): a scope fits in a NAME, a key in one notification item. */
constexpr std::size_t max_scope_bytes = 63;
constexpr std::size_t max_key_bytes = 1000;

/* 64-bit hash of (database, scope, key); key == nullptr means "the whole scope". */
std::uint64_t invalidation_hash(std::uint32_t database, const char *scope, std::size_t scope_len,
                                const char *key, std::size_t key_len);

/* True when n is a power of two (n > 0): table sizes must be, so a mask replaces a modulo. */
constexpr bool is_power_of_two(std::uint64_t n)
{
    return n != 0 && (n & (n - 1)) == 0;
}

/* The slot of a hash in a table of `slots` entries (a power of two). */
constexpr std::uint64_t slot_of(std::uint64_t hash, std::uint64_t slots)
{
    return hash & (slots - 1);
}

} // namespace core
} // namespace poolguard

#endif
