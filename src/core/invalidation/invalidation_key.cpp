/*
 * invalidation_key.cpp — hashing of (database, scope, key) for the generation table.
 *
 * FNV-1a over length-prefixed fields (so "ab"+"c" and "a"+"bc" differ), finished with a
 * 64-bit avalanche mix so the low bits used as the slot index depend on every input byte.
 */
#include "core/invalidation/invalidation_key.h"

#include "core/no_server_headers.h" /* last: fails the build if a server header slipped in */

namespace poolguard
{
namespace core
{

namespace
{

constexpr std::uint64_t fnv_offset = 14695981039346656037ULL;
constexpr std::uint64_t fnv_prime = 1099511628211ULL;

std::uint64_t mix_bytes(std::uint64_t h, const void *data, std::size_t len)
{
    const unsigned char *p = static_cast<const unsigned char *>(data);
    for (std::size_t i = 0; i < len; i++)
    {
        h ^= p[i];
        h *= fnv_prime;
    }
    return h;
}

std::uint64_t mix_u64(std::uint64_t h, std::uint64_t v)
{
    unsigned char bytes[8];
    for (int i = 0; i < 8; i++)
        bytes[i] = static_cast<unsigned char>(v >> (8 * i));
    return mix_bytes(h, bytes, sizeof(bytes));
}

/* splitmix64's finalizer. */
std::uint64_t avalanche(std::uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

} // namespace

std::uint64_t invalidation_hash(std::uint32_t database, const char *scope, std::size_t scope_len,
                                const char *key, std::size_t key_len)
{
    std::uint64_t h = fnv_offset;
    h = mix_u64(h, database);
    h = mix_u64(h, scope_len);
    h = mix_bytes(h, scope, scope_len);
    if (key == nullptr)
        h = mix_u64(h, ~0ULL); /* no key: a length no real key can have */
    else
    {
        h = mix_u64(h, key_len);
        h = mix_bytes(h, key, key_len);
    }
    return avalanche(h);
}

} // namespace core
} // namespace poolguard
