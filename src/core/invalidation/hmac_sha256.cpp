/*
 * hmac_sha256.cpp — SHA-256 and HMAC-SHA256 (see hmac_sha256.h).
 */
#include "core/invalidation/hmac_sha256.h"

#include <cstring>

#include "core/no_server_headers.h" /* last: fails the build if a server header slipped in */

namespace poolguard
{
namespace core
{

namespace
{

constexpr std::uint32_t k[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

inline std::uint32_t rotr(std::uint32_t x, int n)
{
    return (x >> n) | (x << (32 - n));
}

void compress(std::uint32_t state[8], const unsigned char block[64])
{
    std::uint32_t w[64];
    for (int i = 0; i < 16; i++)
        w[i] = (std::uint32_t)block[4 * i] << 24 | (std::uint32_t)block[4 * i + 1] << 16 |
               (std::uint32_t)block[4 * i + 2] << 8 | (std::uint32_t)block[4 * i + 3];
    for (int i = 16; i < 64; i++)
    {
        std::uint32_t s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3);
        std::uint32_t s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    std::uint32_t a = state[0], b = state[1], c = state[2], d = state[3], e = state[4], f = state[5],
                  g = state[6], h = state[7];
    for (int i = 0; i < 64; i++)
    {
        std::uint32_t t1 = h + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + k[i] + w[i];
        std::uint32_t t2 = (rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
        h = g;
        g = f;
        f = e;
        e = d + t1;
        d = c;
        c = b;
        b = a;
        a = t1 + t2;
    }
    state[0] += a;
    state[1] += b;
    state[2] += c;
    state[3] += d;
    state[4] += e;
    state[5] += f;
    state[6] += g;
    state[7] += h;
}

} // namespace

void sha256_init(Sha256 &c)
{
    static const std::uint32_t init[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                          0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    std::memcpy(c.state, init, sizeof(init));
    c.length = 0;
    c.used = 0;
}

void sha256_update(Sha256 &c, const void *data, std::size_t len)
{
    const unsigned char *p = static_cast<const unsigned char *>(data);
    c.length += len;
    while (len > 0)
    {
        std::size_t n = 64 - c.used < len ? 64 - c.used : len;
        std::memcpy(c.block + c.used, p, n);
        c.used += n;
        p += n;
        len -= n;
        if (c.used == 64)
        {
            compress(c.state, c.block);
            c.used = 0;
        }
    }
}

void sha256_final(Sha256 &c, unsigned char out[sha256_bytes])
{
    std::uint64_t bits = c.length * 8;
    unsigned char pad = 0x80;
    sha256_update(c, &pad, 1);
    unsigned char zero = 0;
    while (c.used != 56)
        sha256_update(c, &zero, 1);
    unsigned char len_be[8];
    for (int i = 0; i < 8; i++)
        len_be[i] = static_cast<unsigned char>(bits >> (56 - 8 * i));
    sha256_update(c, len_be, 8);
    for (int i = 0; i < 8; i++)
    {
        out[4 * i] = static_cast<unsigned char>(c.state[i] >> 24);
        out[4 * i + 1] = static_cast<unsigned char>(c.state[i] >> 16);
        out[4 * i + 2] = static_cast<unsigned char>(c.state[i] >> 8);
        out[4 * i + 3] = static_cast<unsigned char>(c.state[i]);
    }
}

void hmac_sha256(const void *key, std::size_t key_len, const void *data, std::size_t len,
                 unsigned char out[sha256_bytes])
{
    unsigned char k0[64] = {0};
    if (key_len > 64)
    {
        Sha256 c;
        sha256_init(c);
        sha256_update(c, key, key_len);
        sha256_final(c, k0);
    }
    else if (key_len > 0)
        std::memcpy(k0, key, key_len);
    unsigned char pad[64];
    unsigned char inner[sha256_bytes];
    Sha256 c;
    for (int i = 0; i < 64; i++)
        pad[i] = k0[i] ^ 0x36;
    sha256_init(c);
    sha256_update(c, pad, 64);
    sha256_update(c, data, len);
    sha256_final(c, inner);
    for (int i = 0; i < 64; i++)
        pad[i] = k0[i] ^ 0x5c;
    sha256_init(c);
    sha256_update(c, pad, 64);
    sha256_update(c, inner, sizeof(inner));
    sha256_final(c, out);
}

void to_hex(const unsigned char *bytes, std::size_t len, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (std::size_t i = 0; i < len; i++)
    {
        out[2 * i] = digits[bytes[i] >> 4];
        out[2 * i + 1] = digits[bytes[i] & 15];
    }
    out[2 * len] = '\0';
}

} // namespace core
} // namespace poolguard
