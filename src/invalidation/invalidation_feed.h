/*
 * invalidation_feed.h — the feed of recent items behind poolguard.invalidations_since()
 * (invalidation_feed.cpp); private to src/invalidation/.
 */
#ifndef POOLGUARD_INVALIDATION_FEED_H
#define POOLGUARD_INVALIDATION_FEED_H

#include "pg/postgres_headers.h"

namespace poolguard
{

void invalidation_feed_register_shmem(void);

/* The feed's lock, taken exclusively around invalidation_feed_push / raise_horizon (after
 * invalidation_shared->lock). */
void invalidation_feed_lock(void);
void invalidation_feed_unlock(void);

/* Appends an item (key == nullptr: the whole scope); ignored unless newer than the feed's newest. */
void invalidation_feed_push(Oid database, uint64 generation, const char *scope, int scope_len,
                            const char *key, int key_len);

/* Items at or below generation may be missing from now on: readers behind it get a resync. */
void invalidation_feed_raise_horizon(uint64 generation);

/* Wakes invalidations_since() waiters (no lock held). */
void invalidation_feed_wake(void);

} // namespace poolguard

#endif
