/*
 * invalidation.h — transactional cache invalidation: shared state and the API between its files.
 *
 *   invalidation_shmem.cpp    generation table, ring, publisher slots and stats in shared memory
 *   invalidation_xact.cpp     poolguard.invalidate(): the per-transaction pending list, published
 *                             by the commit callback once the commit is visible to others
 *   invalidation_sql.cpp      cache_generation(), the trigger function, the stats functions
 *   publisher.cpp             the per-database "pg_poolguard publisher" background worker
 *
 * Shared memory layout (one ShmemInitStruct "pg_poolguard invalidation"):
 *   InvalidationShared | pg_atomic_uint64 generations[invalidation_slots] | RingEntry ring[queue_size]
 * The generation table is read and bumped with atomics only; everything else is guarded by the
 * tranche "pg_poolguard invalidation" (one LWLock), held for a few microseconds per commit.
 */
#ifndef POOLGUARD_INVALIDATION_H
#define POOLGUARD_INVALIDATION_H

#include "postgres_headers.h"

namespace poolguard {

/* Limits of the interface (bytes); equal to core/invalidation_key.h's (checked where both are seen). */
constexpr int max_scope_bytes = 63;
constexpr int max_key_bytes = 1000;

constexpr int max_publishers = 64;   /* databases with a publisher slot at the same time */
constexpr int max_scope_stats = 256; /* (database, scope) pairs with their own stats row */

/* One invalidation waiting in the ring for its database's publisher. */
struct RingEntry
{
    Oid database;
    bool consumed; /* taken by the publisher; the tail skips it */
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
    Oid database;           /* InvalidOid: the slot is free */
    int pid;                /* 0 while no publisher runs */
    Latch *latch;           /* the running publisher's latch */
    bool start_requested;   /* a worker was registered and has not claimed the slot yet */
    bool start_failing;     /* the last registration failed (logged once per streak) */
    bool resync_pending;    /* items were dropped: the publisher must send a resync */
    TimestampTz start_requested_at;
    TimestampTz next_start_attempt;
    uint64 pending;         /* entries of this database in the ring */
    /* stats */
    uint64 publisher_starts;
    uint64 start_failures;
    uint64 notifications;
    uint64 items_published;
    uint64 resyncs;
    uint64 ring_overflows;
    uint64 queue_warnings;
    double last_queue_usage;
    TimestampTz last_publish_at;
};

struct ScopeStats
{
    Oid database; /* InvalidOid: unused */
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
    uint32 slots;             /* entries in the generation table */
    uint32 queue_size;        /* entries in the ring */
    uint64 head;              /* ring positions (core/ring.h) */
    uint64 tail;
    uint64 unslotted;         /* invalidations whose database found no free publisher slot */
    ScopeStats other_scopes;  /* scopes past max_scope_stats, counted together */
    PublisherSlot publishers[max_publishers];
    ScopeStats scopes[max_scope_stats];
};

extern InvalidationShared *inval;
extern pg_atomic_uint64 *inval_generations;
extern RingEntry *inval_ring;

/* One invalidation of the committing transaction (see invalidation_xact.cpp). */
struct PendingInvalidation
{
    SubTransactionId subxact; /* the (sub)transaction that asked for it first */
    uint64 hash;              /* core::invalidation_hash of (database, scope, key) */
    int scope_len;
    int key_len;              /* -1: the whole scope */
    char scope[max_scope_bytes + 1];
    char *key;                /* in TopTransactionContext; NULL for the whole scope */
};

/* Registers the shared memory and its lock tranche (invalidation_shmem.cpp). */
void invalidation_register_shmem(void);

/* Registers GUC-sized shared memory, the lock tranche and the transaction callbacks (_PG_init). */
void invalidation_init(void);

/*
 * Publishes a committed transaction's invalidations: bumps their generations, appends them to
 * the ring and wakes or starts the database's publisher.  Runs after the commit is visible and
 * never raises an error.
 */
void invalidation_publish_committed(const PendingInvalidation *items, int count);

/*
 * Once this server is out of recovery (at start, or when a standby is promoted), raises the
 * floor of every generation and the counter to the wall clock: a promoted standby then reads
 * every key as changed after anything the old primary handed out.  Cheap; called by readers,
 * publishers and the worker.
 */
void invalidation_raise_floor_after_recovery(void);

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

/* Advances the ring's tail over consumed entries (caller holds inval->lock exclusively). */
void invalidation_ring_reclaim(void);

/* The publisher slot of a database, or nullptr (caller holds inval->lock). */
PublisherSlot *invalidation_find_publisher(Oid database);

}  // namespace poolguard

#endif
