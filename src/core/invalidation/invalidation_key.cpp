/*
 * invalidation_key.cpp — hashing of (database, scope, key) for the generation table.
 *
 * SipHash-2-4 (Aumasson & Bernstein), keyed by the server's secret, over an unambiguous encoding
 * of the fields: database (4 bytes), scope length (8), scope, then either key length (8) and
 * key, or 8 bytes of 0xFF (no key: a length no real key can have).  So "ab"+"c" and "a"+"bc"
 * differ, and the whole scope differs from the empty key.
 */
#include "core/invalidation/invalidation_key.h"

#include <cstring>

#include "core/no_server_headers.h" /* last: fails the build if a server header slipped in */

namespace poolguard
{
namespace core
{

namespace
{

inline std::uint64_t rotl(std::uint64_t x, int b)
{
    return (x << b) | (x >> (64 - b));
}

inline std::uint64_t load_le64(const unsigned char *p)
{
    std::uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

inline void sipround(std::uint64_t &v0, std::uint64_t &v1, std::uint64_t &v2, std::uint64_t &v3)
{
    v0 += v1;
    v1 = rotl(v1, 13);
    v1 ^= v0;
    v0 = rotl(v0, 32);
    v2 += v3;
    v3 = rotl(v3, 16);
    v3 ^= v2;
    v0 += v3;
    v3 = rotl(v3, 21);
    v3 ^= v0;
    v2 += v1;
    v1 = rotl(v1, 17);
    v1 ^= v2;
    v2 = rotl(v2, 32);
}

void put_le(unsigned char *out, std::uint64_t v, int bytes)
{
    for (int i = 0; i < bytes; i++)
        out[i] = static_cast<unsigned char>(v >> (8 * i));
}

} // namespace

std::uint64_t siphash24(const HashSecret &secret, const void *data, std::size_t len)
{
    const unsigned char *in = static_cast<const unsigned char *>(data);
    std::uint64_t v0 = 0x736f6d6570736575ULL ^ secret.k0;
    std::uint64_t v1 = 0x646f72616e646f6dULL ^ secret.k1;
    std::uint64_t v2 = 0x6c7967656e657261ULL ^ secret.k0;
    std::uint64_t v3 = 0x7465646279746573ULL ^ secret.k1;
    std::size_t whole = len - (len % 8);
    for (std::size_t i = 0; i < whole; i += 8)
    {
        std::uint64_t m = load_le64(in + i);
        v3 ^= m;
        sipround(v0, v1, v2, v3);
        sipround(v0, v1, v2, v3);
        v0 ^= m;
    }
    std::uint64_t b = static_cast<std::uint64_t>(len) << 56;
    for (std::size_t i = 0; i < len % 8; i++)
        b |= static_cast<std::uint64_t>(in[whole + i]) << (8 * i);
    v3 ^= b;
    sipround(v0, v1, v2, v3);
    sipround(v0, v1, v2, v3);
    v0 ^= b;
    v2 ^= 0xff;
    for (int i = 0; i < 4; i++)
        sipround(v0, v1, v2, v3);
    return v0 ^ v1 ^ v2 ^ v3;
}

std::uint64_t invalidation_hash(const HashSecret &secret, std::uint32_t database, const char *scope,
                                std::size_t scope_len, const char *key, std::size_t key_len)
{
    /* Callers validate the lengths; anything longer is cut (still deterministic, never overrun). */
    if (scope_len > max_scope_bytes)
        scope_len = max_scope_bytes;
    if (key != nullptr && key_len > max_key_bytes)
        key_len = max_key_bytes;
    unsigned char buf[4 + 8 + max_scope_bytes + 8 + max_key_bytes];
    std::size_t n = 0;
    put_le(buf + n, database, 4);
    n += 4;
    put_le(buf + n, scope_len, 8);
    n += 8;
    if (scope_len > 0)
        std::memcpy(buf + n, scope, scope_len);
    n += scope_len;
    if (key == nullptr)
    {
        put_le(buf + n, ~0ULL, 8);
        n += 8;
    }
    else
    {
        put_le(buf + n, key_len, 8);
        n += 8;
        if (key_len > 0)
            std::memcpy(buf + n, key, key_len);
        n += key_len;
    }
    return siphash24(secret, buf, n);
}

std::uint64_t scope_hash(ScopeHashMemo &memo, const HashSecret &secret, std::uint32_t database,
                         const char *scope, std::size_t scope_len)
{
    if (scope_len > max_scope_bytes)
        scope_len = max_scope_bytes; /* as invalidation_hash cuts it */
    if (memo.valid && memo.database == database && memo.scope_len == scope_len &&
        memo.secret.k0 == secret.k0 && memo.secret.k1 == secret.k1 &&
        (scope_len == 0 || std::memcmp(memo.scope, scope, scope_len) == 0))
        return memo.hash;
    memo.hash = invalidation_hash(secret, database, scope, scope_len, nullptr, 0);
    memo.secret = secret;
    memo.database = database;
    memo.scope_len = scope_len;
    if (scope_len > 0)
        std::memcpy(memo.scope, scope, scope_len);
    memo.valid = true;
    return memo.hash;
}

} // namespace core
} // namespace poolguard
