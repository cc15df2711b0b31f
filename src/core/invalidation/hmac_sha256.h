/*
 * hmac_sha256.h — SHA-256 (FIPS 180-4) and HMAC-SHA256 (RFC 2104) in plain C++, for the
 * authentication tag of pg_poolguard's logical decoding messages (invalidation_wal.cpp).
 *
 * Written here rather than taken from the server because the tag is computed on the commit path,
 * after the commit, under a lock, where nothing may allocate or raise an error: these functions
 * use only the caller's memory and cannot fail.
 */
#ifndef POOLGUARD_CORE_HMAC_SHA256_H
#define POOLGUARD_CORE_HMAC_SHA256_H

#include <cstddef>
#include <cstdint>

namespace poolguard
{
namespace core
{

constexpr std::size_t sha256_bytes = 32;

struct Sha256
{
    std::uint32_t state[8];
    std::uint64_t length; /* bytes hashed so far */
    unsigned char block[64];
    std::size_t used; /* bytes in block */
};

void sha256_init(Sha256 &c);
void sha256_update(Sha256 &c, const void *data, std::size_t len);
void sha256_final(Sha256 &c, unsigned char out[sha256_bytes]);

/* HMAC-SHA256 of data under key (any length). */
void hmac_sha256(const void *key, std::size_t key_len, const void *data, std::size_t len,
                 unsigned char out[sha256_bytes]);

/* Lower-case hex of bytes into out (2 * len characters and a NUL). */
void to_hex(const unsigned char *bytes, std::size_t len, char *out);

} // namespace core
} // namespace poolguard

#endif
