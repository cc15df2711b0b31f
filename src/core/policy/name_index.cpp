/*
 * name_index.cpp — chained hash from names to fixed-array entries (see name_index.h).
 */
#include "core/policy/name_index.h"

#include "core/no_server_headers.h" /* last: fails the build if a server header slipped in */

namespace poolguard::core
{

uint32_t name_index_buckets(int capacity)
{
    uint32_t n = 16;
    while (n < 2u * static_cast<uint32_t>(capacity > 0 ? capacity : 1) && n < (1u << 30))
        n <<= 1;
    return n;
}

uint32_t name_index_bucket(const char *name, uint32_t nbuckets)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a, then mixed: its low bits are weak */
    for (const char *c = name; *c != '\0'; c++)
        h = (h ^ static_cast<unsigned char>(*c)) * 1099511628211ULL;
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    return static_cast<uint32_t>(h) & (nbuckets - 1);
}

void name_index_clear(int32_t *heads, uint32_t nbuckets)
{
    for (uint32_t b = 0; b < nbuckets; b++)
        heads[b] = -1;
}

void name_index_insert(int32_t *heads, uint32_t nbuckets, int32_t *next, int32_t entry, const char *name)
{
    int32_t *head = &heads[name_index_bucket(name, nbuckets)];
    next[entry] = *head;
    *head = entry;
}

void name_index_remove(int32_t *heads, uint32_t nbuckets, int32_t *next, int32_t entry, const char *name)
{
    for (int32_t *link = &heads[name_index_bucket(name, nbuckets)]; *link >= 0; link = &next[*link])
        if (*link == entry)
        {
            *link = next[entry];
            next[entry] = -1;
            return;
        }
}

} // namespace poolguard::core
