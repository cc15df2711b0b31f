/*
 * invalidation_key.h — where an invalidation (database, scope, key) lives in the generation table.
 *
 * The generation table is a fixed array of 64-bit counters indexed by a hash of (database,
 * scope, key).  Two keys that collide share a counter: bumping one makes the other look changed
 * (a spurious invalidation), never the reverse, so collisions cost cache hits, not correctness.
 * A scope-wide entry (key NULL) hashes differently from every key, including the empty string.
 *
 * The hash is keyed (SipHash-2-4) by a per-server secret drawn at startup from a strong random
 * source, kept in shared memory and never shown (issue 19): without it a role in database B
 * could compute offline, from public database OIDs, keys of its own that share a slot with a
 * guessed key of database A, and watch cache_generation() to learn when A's key changed (or
 * collide on purpose).  Slots are a per-server-life mapping: every slot is seeded with the
 * clock at start (generation.h), so a new secret after a restart moves no generation backwards;
 * WAL records carry the scope and key bytes, never a slot, so a standby hashes replayed items
 * with its own secret.
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

/* The per-server secret key of the hash (128 bits). */
struct HashSecret
{
    std::uint64_t k0;
    std::uint64_t k1;
};

/* SipHash-2-4 of data under secret. */
std::uint64_t siphash24(const HashSecret &secret, const void *data, std::size_t len);

/* 64-bit keyed hash of (database, scope, key); key == nullptr means "the whole scope". */
std::uint64_t invalidation_hash(const HashSecret &secret, std::uint32_t database, const char *scope,
                                std::size_t scope_len, const char *key, std::size_t key_len);

/*
 * The last scope-wide hash a backend computed (cache_generation() reads a scope's slot on every
 * call, and an application reads few scopes): scope_hash returns invalidation_hash(secret,
 * database, scope, scope_len, nullptr, 0), from the memo when it is the same secret, database and
 * scope, saving one SipHash per call.  Zero-initialized: empty.
 */
struct ScopeHashMemo
{
    bool valid;
    HashSecret secret;
    std::uint32_t database;
    std::size_t scope_len;
    std::uint64_t hash;
    char scope[max_scope_bytes];
};

std::uint64_t scope_hash(ScopeHashMemo &memo, const HashSecret &secret, std::uint32_t database,
                         const char *scope, std::size_t scope_len);

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
