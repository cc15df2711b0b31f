/*
 * name_index.h — a chained hash from names to the entries of a fixed array (pure C++).
 *
 * The per-policy tables in shared memory (caps' session counts, the policy event counters, the
 * refill windows) hold 2 × max_policies named entries each; finding a policy's entry by a linear
 * strcmp scan costs O(max_policies) under an exclusive LWLock at every login and session end.
 * This index finds it in O(1): heads[nbuckets] and next[capacity] are plain int32 arrays (they
 * live in the same shared memory, under the table's lock), -1 ends a chain.  An entry is in the
 * index while it holds a name; the caller removes it (with the name it was inserted under)
 * before it overwrites or clears the name.  Allocates nothing and cannot fail.
 */
#ifndef POOLGUARD_CORE_NAME_INDEX_H
#define POOLGUARD_CORE_NAME_INDEX_H

#include <cstdint>
#include <cstring>

namespace poolguard::core
{

/* A power of two, at least 2 × capacity (and 16). */
uint32_t name_index_buckets(int capacity);

uint32_t name_index_bucket(const char *name, uint32_t nbuckets);

/* Every chain empty (heads[nbuckets] = -1; next is written on insert). */
void name_index_clear(int32_t *heads, uint32_t nbuckets);

/* The entry holding name, -1 if none; name_of(entry) returns an entry's name. */
template <typename NameOf>
int32_t name_index_find(const int32_t *heads, uint32_t nbuckets, const int32_t *next, const char *name,
                        NameOf name_of)
{
    for (int32_t e = heads[name_index_bucket(name, nbuckets)]; e >= 0; e = next[e])
        if (strcmp(name_of(e), name) == 0)
            return e;
    return -1;
}

/* Files entry under name (it must not be in the index already). */
void name_index_insert(int32_t *heads, uint32_t nbuckets, int32_t *next, int32_t entry, const char *name);

/* Takes entry out of name's chain (name: what it was inserted under); nothing if it is not there. */
void name_index_remove(int32_t *heads, uint32_t nbuckets, int32_t *next, int32_t entry, const char *name);

} // namespace poolguard::core

#endif
