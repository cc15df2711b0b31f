/*
 * invalidation_internal.h — transactional cache invalidation: shared state and the API between its
 * files (private to src/invalidation/; the rest of pg_poolguard uses invalidation.h).
 *
 *   invalidation_shmem.cpp    generation table, queue, publisher slots and stats in shared memory;
 *                             the commit-time publication that fills them; the worker's tending
 *                             of publishers that are missing
 *   invalidation_xact.cpp     poolguard.invalidate(): the per-transaction pending list, published
 *                             by the commit callback once the commit is visible to others
 *   invalidation_sql.cpp      cache_generation(), the trigger function, the stats functions
 *   publisher.cpp             the per-database "pg_poolguard publisher" background worker
 *   invalidation_wal.cpp      the custom WAL resource manager that replicates generations to
 *                             standbys in commit order, and the logical decoding messages
 *   invalidation_feed.cpp     the feed of recent items behind poolguard.invalidations_since()
 *
 * Shared memory layout (one ShmemInitStruct "pg_poolguard invalidation"):
 *   InvalidationShared | pg_atomic_uint64 generations[invalidation_slots]
 *                      | uint32 next[queue_size] | QueueEntry entries[queue_size]
 * The generation table is read and bumped with atomics only; everything else is guarded by the
 * tranche "pg_poolguard invalidation" (one LWLock, see the note at the top of
 * invalidation_shmem.cpp), held for a few microseconds per commit.
 *
 * The queue (poolguard.invalidation_queue_size entries) is a pool: each database with something
 * to publish owns one FIFO list of entries in commit order (core/entry_lists.h), the rest are on
 * a free list.  A database that cannot publish holds only its own entries, and gives them up
 * (one resync instead) as soon as another database's commit needs the space.
 */
#ifndef POOLGUARD_INVALIDATION_INTERNAL_H
#define POOLGUARD_INVALIDATION_INTERNAL_H

#include "invalidation/invalidation.h"

#include "core/invalidation/entry_lists.h"

namespace poolguard
{

constexpr int max_publishers = 64;   /* databases with a publisher slot at the same time */
constexpr int max_scope_stats = 256; /* (database, scope) pairs with their own stats row */
/* Rows one database may take, so that one database cannot take them all (issue 19). */
constexpr int max_scope_stats_per_database = max_scope_stats / 4;

/* One invalidation waiting in the queue for its database's publisher. */
struct QueueEntry
{
    Oid database;
    bool key_null; /* the whole scope */
    uint16 scope_len;
    uint16 key_len;
    uint64 generation;
    char scope[max_scope_bytes + 1];
    char key[max_key_bytes + 1];
};

/* A database's publisher: its process and its counters. */
struct PublisherSlot
{
    Oid database;         /* InvalidOid: the slot is free */
    int pid;              /* 0 while no publisher runs */
    Latch *latch;         /* the running publisher's latch */
    bool start_requested; /* a worker was registered and has not claimed the slot yet */
    bool start_failing;   /* the last registration failed (logged once per streak) */
    bool resync_pending;  /* items were dropped: the publisher must send a resync */
    bool collapse_logged; /* a collapse was logged since a publisher last ran */
    TimestampTz start_requested_at;
    TimestampTz next_start_attempt; /* no new start before this (a failed start or connection) */
    int connect_retry_ms;           /* backoff after a publisher could not connect; 0 after a success */
    core::EntryList items;          /* this database's entries in the queue, oldest first */
    /* stats */
    uint64 publisher_starts;
    uint64 start_failures;
    uint64 notifications;
    uint64 items_published;
    uint64 resyncs;
    uint64 ring_overflows; /* times entries were replaced by a resync: queue full, or collapsed */
    uint64 queue_warnings;
    double last_queue_usage;
    TimestampTz last_publish_at;
};

struct ScopeStats
{
    Oid database; /* InvalidOid: unused */
    int encoding; /* the database's encoding: scope holds bytes of it */
    char scope[max_scope_bytes + 1];
    uint64 invalidations;
    uint64 last_generation;
    TimestampTz last_invalidated_at;
};

struct InvalidationShared
{
    LWLock *lock;
    pg_atomic_uint64 counter; /* last generation handed out */
    uint64 seed;              /* the counter's value at server start */
    pg_atomic_uint64 floor;   /* every generation read is at least this (raised at start and promotion) */
    pg_atomic_uint32 floor_pending; /* the floor must be raised once recovery is over */
    uint64 replayed;                /* the last generation redo applied (the startup process only) */
    core::HashSecret hash_secret;   /* keys the slot hash; random at start, never shown */
    unsigned char cdc_secret[32];   /* the cluster's logical-message key (invalidation_wal.cpp) */
    uint32 slots;                   /* entries in the generation table */
    uint32 queue_size;              /* entries in the queue */

    /* TimestampTz of the last wake of the WAL writer for a record (invalidation_wal_finish). */
    pg_atomic_uint64 walwriter_woken_at;

    core::EntryList free_entries;
    uint64 unslotted;        /* invalidations whose database found no free publisher slot */
    ScopeStats other_scopes; /* scopes past max_scope_stats, counted together */
    PublisherSlot publishers[max_publishers];
    ScopeStats scopes[max_scope_stats];
};

extern InvalidationShared *invalidation_shared;
extern pg_atomic_uint64 *inval_generations;
extern uint32 *inval_next; /* queue links (core/entry_lists.h) */
extern QueueEntry *inval_entries;

/* One invalidation of the committing transaction (see invalidation_xact.cpp). */
struct PendingInvalidation
{
    SubTransactionId subxact; /* the (sub)transaction that asked for it first */
    uint64 hash;              /* core::invalidation_hash of (database, scope, key) */
    int scope_len;
    int key_len; /* -1: the whole scope */
    char scope[max_scope_bytes + 1];
    char *key; /* in TopTransactionContext; NULL for the whole scope */
};

/* Registers the shared memory and its lock tranche (invalidation_shmem.cpp). */
void invalidation_register_shmem(void);

/*
 * Publishes a committed transaction's invalidations: bumps their generations, appends them to
 * the queue and wakes or starts the database's publisher.  Runs after the commit is visible and
 * never raises an error.
 */
void invalidation_publish_committed(const PendingInvalidation *items, int count);

/* The generation of (MyDatabaseId, scope, key): max of the key's slot and the scope's slot. */
uint64 invalidation_current_generation(const char *scope, int scope_len, const char *key, int key_len);

/*
 * Validates scope and key (ereport ERROR on bad input).  for_publication also checks that the
 * item fits in one notification; cache_generation() skips that (it publishes nothing, and it is
 * on every cache read's path).
 */
void invalidation_validate(const char *scope, int scope_len, const char *key, int key_len,
                           bool for_publication = true);

/* Adds one invalidation to the current transaction's pending list (deduplicated). */
void invalidation_schedule(const char *scope, int scope_len, const char *key, int key_len);

/* The publisher slot of a database, or nullptr (caller holds invalidation_shared->lock). */
PublisherSlot *invalidation_find_publisher(Oid database);

/*
 * Moves up to max of the slot's oldest entries into out, in commit order, and frees them
 * (caller holds invalidation_shared->lock exclusively).  O(entries taken): the other databases'
 * entries are never looked at.
 */
int invalidation_take(PublisherSlot *slot, QueueEntry *out, int max);

/*
 * Replaces every entry of the slot by one resync (frees them, sets resync_pending; caller holds
 * invalidation_shared->lock exclusively).  O(1).  Returns the number of entries given up.
 */
uint32 invalidation_collapse(PublisherSlot *slot);

/*
 * Records that a publisher of the slot's database could not connect (not under the lock: takes
 * it).  Its entries stay queued; the next start waits for a growing backoff.
 */
void invalidation_connect_failed(Oid database);

/* The keyed hash of (database, scope, key) that places it in the generation table. */
uint64 invalidation_key_hash(Oid database, const char *scope, int scope_len, const char *key, int key_len);

/* invalidation_key_hash(MyDatabaseId, scope, scope_len, nullptr, 0), memoized for the last scope. */
uint64 invalidation_scope_hash(const char *scope, int scope_len);

/* The counter's value at server start (every generation before it is unknown here). */
uint64 invalidation_seed(void);

/* Raises *slot to at least v (never lowers it: generations only grow). */
void invalidation_atomic_max(pg_atomic_uint64 *slot, uint64 v);

/*
 * Redo of pg_poolguard's WAL records (startup process, invalidation_wal.cpp): raises the slots
 * of `count` items (core/invalidation/wal_items.h) of `database`, the first with generation `first`, and
 * appends them to the feed; or raises the floor.
 */
void invalidation_apply_replayed(Oid database, uint64 first, const char *items, Size len, uint32 count);
void invalidation_apply_replayed_floor(uint64 floor);

} // namespace poolguard

#include "invalidation/invalidation_wal.h"
#include "invalidation/invalidation_feed.h"

#endif
