/*
 * invalidation_shmem.cpp — the shared half of cache invalidation: generation table, ring,
 * publisher slots and stats, and the commit-time publication that fills them.
 *
 * Why publication is split this way: a transaction that runs NOTIFY holds a cluster-wide lock
 * from its pre-commit to the end of its commit, which serializes every writer.  Here the
 * committing backend only bumps atomics and copies its items into the ring under a short
 * LWLock; the NOTIFY happens later, in the database's publisher.
 */
#include "core/generation.h"
#include "core/invalidation_key.h"
#include "core/ring.h"

#include "invalidation.h"
#include "stats.h"

#include "guc.h"
#include "publisher.h"
#include "shmem.h"

namespace poolguard {

InvalidationShared *inval = nullptr;
pg_atomic_uint64 *inval_generations = nullptr;
RingEntry *inval_ring = nullptr;

namespace {

constexpr const char *tranche_name = "pg_poolguard invalidation";

/* A registered publisher that has not shown up after this long is presumed lost. */
constexpr long start_timeout_ms = 10000;
/* After a failed registration (no free worker slot), the next commit retries after this long. */
constexpr long start_retry_ms = 1000;

Size generations_offset(void)
{
    return MAXALIGN(sizeof(InvalidationShared));
}

Size ring_offset(void)
{
    return add_size(generations_offset(), MAXALIGN(mul_size(sizeof(pg_atomic_uint64), guc_invalidation_slots)));
}

Size invalidation_shmem_size(void)
{
    return add_size(ring_offset(), mul_size(sizeof(RingEntry), guc_invalidation_queue_size));
}

/* A time as microseconds since the Unix epoch, the unit of seeds and floors. */
uint64 clock_generation(TimestampTz at)
{
    return core::generation_seed((int64) at + (int64) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * USECS_PER_DAY);
}

void invalidation_shmem_init(void)
{
    bool found;
    char *base = static_cast<char *>(ShmemInitStruct("pg_poolguard invalidation", invalidation_shmem_size(), &found));

    inval = reinterpret_cast<InvalidationShared *>(base);
    inval_generations = reinterpret_cast<pg_atomic_uint64 *>(base + generations_offset());
    inval_ring = reinterpret_cast<RingEntry *>(base + ring_offset());
    if (found)
        return;

    memset(inval, 0, sizeof(InvalidationShared));
    inval->lock = &(GetNamedLWLockTranche(tranche_name))->lock;
    /*
     * Seeded from the clock: every generation after a restart exceeds every generation before
     * it, and a slot never bumped since the start reads as "changed at start".
     */
    inval->seed = clock_generation(GetCurrentTimestamp());
    pg_atomic_init_u64(&inval->counter, inval->seed);
    pg_atomic_init_u64(&inval->floor, inval->seed);
    /* Raised again by the first reader once recovery is over (a standby: at its promotion). */
    pg_atomic_init_u32(&inval->floor_pending, 1);
    inval->slots = (uint32) guc_invalidation_slots;
    inval->queue_size = (uint32) guc_invalidation_queue_size;
    for (uint32 i = 0; i < inval->slots; i++)
        pg_atomic_init_u64(&inval_generations[i], inval->seed);
    memset(inval_ring, 0, sizeof(RingEntry) * (Size) inval->queue_size);
}

/* Raises *slot to at least v (never lowers it: generations only grow). */
void atomic_max(pg_atomic_uint64 *slot, uint64 v)
{
    uint64 current = pg_atomic_read_u64(slot);
    while (current < v && !pg_atomic_compare_exchange_u64(slot, &current, v))
    {
        /* current now holds the newer value; retry while ours is still greater */
    }
}

/* Stats row of (MyDatabaseId, scope): found or claimed; the shared overflow row when full. */
ScopeStats *scope_stats(const char *scope, int scope_len)
{
    uint64 h = core::invalidation_hash(MyDatabaseId, scope, scope_len, nullptr, 0);
    for (int probe = 0; probe < max_scope_stats; probe++)
    {
        ScopeStats *s = &inval->scopes[(h + probe) & (max_scope_stats - 1)];
        if (s->database == InvalidOid)
        {
            s->database = MyDatabaseId;
            memcpy(s->scope, scope, scope_len);
            s->scope[scope_len] = '\0';
            return s;
        }
        if (s->database == MyDatabaseId && strncmp(s->scope, scope, scope_len) == 0 && s->scope[scope_len] == '\0')
            return s;
    }
    return &inval->other_scopes;
}

PublisherSlot *claim_publisher(Oid database)
{
    PublisherSlot *slot = invalidation_find_publisher(database);
    if (slot != nullptr)
        return slot;
    /* A free slot, else the slot of a database with no publisher and nothing to publish. */
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < max_publishers; i++)
        {
            PublisherSlot *s = &inval->publishers[i];
            bool reusable = pass == 0 ? s->database == InvalidOid
                                      : s->pid == 0 && s->pending == 0 && !s->resync_pending && !s->start_requested;
            if (reusable)
            {
                memset(s, 0, sizeof(PublisherSlot));
                s->database = database;
                return s;
            }
        }
    return nullptr;
}

}  // namespace

/* Advances the tail over entries every publisher is done with (caller holds the lock). */
void invalidation_ring_reclaim(void)
{
    while (inval->tail < inval->head && inval_ring[core::ring_index(inval->tail, inval->queue_size)].consumed)
        inval->tail++;
}

void invalidation_register_shmem(void)
{
    shmem_register(invalidation_shmem_size, invalidation_shmem_init);
    shmem_register_lwlocks(tranche_name, 1);
}

PublisherSlot *invalidation_find_publisher(Oid database)
{
    for (int i = 0; i < max_publishers; i++)
        if (inval->publishers[i].database == database)
            return &inval->publishers[i];
    return nullptr;
}

void invalidation_raise_floor_after_recovery(void)
{
    if (likely(pg_atomic_read_u32(&inval->floor_pending) == 0) || RecoveryInProgress())
        return;
    /*
     * Every backend that gets here raises the floor before anyone clears the flag, so whoever
     * sees the flag cleared also sees the raised floor.
     */
    uint64 now = clock_generation(GetCurrentTimestamp());
    atomic_max(&inval->floor, now);
    atomic_max(&inval->counter, now);
    pg_write_barrier();
    pg_atomic_write_u32(&inval->floor_pending, 0);
}

uint64 invalidation_current_generation(const char *scope, int scope_len, const char *key, int key_len)
{
    invalidation_raise_floor_after_recovery();
    uint64 slots = inval->slots;
    uint64 scope_gen = pg_atomic_read_u64(
        &inval_generations[core::slot_of(core::invalidation_hash(MyDatabaseId, scope, scope_len, nullptr, 0), slots)]);
    uint64 key_gen = scope_gen;
    if (key != nullptr)
        key_gen = pg_atomic_read_u64(
            &inval_generations[core::slot_of(core::invalidation_hash(MyDatabaseId, scope, scope_len, key, key_len), slots)]);
    uint64 floor = pg_atomic_read_u64(&inval->floor);
    /* Whatever the caller reads next (its data snapshot) must not be ordered before this read. */
    pg_read_barrier();
    return core::effective_generation(core::effective_generation(key_gen, scope_gen), floor);
}

void invalidation_publish_committed(const PendingInvalidation *items, int count)
{
    if (count <= 0 || inval == nullptr)
        return;

    invalidation_raise_floor_after_recovery();
    TimestampTz now = GetCurrentTimestamp();
    uint64 clock = Max(clock_generation(now), pg_atomic_read_u64(&inval->floor));
    Latch *wake = nullptr;
    bool launch = false;
    bool no_slot = false;

    LWLockAcquire(inval->lock, LW_EXCLUSIVE);

    /*
     * Generations are taken here, after the commit is visible, and under the ring lock so that
     * ring order is generation order (= the order in which commits published).  Never below
     * the clock: a server whose counter was seeded before another server of the cluster
     * handed out generations (a standby promoted later) still hands out newer ones.
     */
    uint64 current = pg_atomic_read_u64(&inval->counter);
    uint64 base;
    do
        base = Max(current, clock);
    while (!pg_atomic_compare_exchange_u64(&inval->counter, &current, base + (uint64) count));
    for (int i = 0; i < count; i++)
    {
        const PendingInvalidation *it = &items[i];
        uint64 generation = base + 1 + (uint64) i;
        atomic_max(&inval_generations[core::slot_of(it->hash, inval->slots)], generation);

        ScopeStats *stats = scope_stats(it->scope, it->scope_len);
        stats->invalidations++;
        stats_add(Counter::invalidations); /* poolguard.stats: an atomic add, cannot fail */
        stats->last_generation = generation;
        stats->last_invalidated_at = now;
    }

    PublisherSlot *slot = claim_publisher(MyDatabaseId);
    if (slot == nullptr)
    {
        inval->unslotted += (uint64) count;
        no_slot = true;
    }
    else
    {
        invalidation_ring_reclaim();
        core::RingPositions pos{inval->head, inval->tail};
        if (!core::ring_fits(pos, inval->queue_size, (uint64) count))
        {
            /* Generations are already correct; listeners get one resync instead of the items. */
            slot->resync_pending = true;
            slot->ring_overflows++;
        }
        else
        {
            for (int i = 0; i < count; i++)
            {
                const PendingInvalidation *it = &items[i];
                RingEntry *e = &inval_ring[core::ring_index(inval->head, inval->queue_size)];
                e->database = MyDatabaseId;
                e->consumed = false;
                e->generation = base + 1 + (uint64) i;
                e->scope_len = (uint16) it->scope_len;
                memcpy(e->scope, it->scope, it->scope_len);
                e->scope[it->scope_len] = '\0';
                e->key_null = it->key == nullptr;
                e->key_len = e->key_null ? 0 : (uint16) it->key_len;
                if (!e->key_null)
                    memcpy(e->key, it->key, it->key_len);
                e->key[e->key_len] = '\0';
                inval->head++;
            }
            slot->pending += (uint64) count;
        }

        if (slot->pid != 0 && slot->latch != nullptr)
            wake = slot->latch;
        else if (slot->start_requested
                     ? TimestampDifferenceExceeds(slot->start_requested_at, now, start_timeout_ms)
                     : now >= slot->next_start_attempt)
        {
            launch = true;
            slot->start_requested = true;
            slot->start_requested_at = now;
        }
    }
    if (wake != nullptr)
        SetLatch(wake);
    LWLockRelease(inval->lock);

    if (no_slot)
        ereport(WARNING,
                (errmsg("pg_poolguard cannot publish invalidations of database %u: all %d publisher slots are in use",
                        MyDatabaseId, max_publishers),
                 errdetail("Generations were updated, but listeners of this database are not notified."),
                 errhint("Fewer databases may publish invalidations at the same time.")));

    if (!launch)
        return;

    bool started = publisher_launch(MyDatabaseId);

    LWLockAcquire(inval->lock, LW_EXCLUSIVE);
    bool first_failure = false;
    if (slot->database == MyDatabaseId)
    {
        if (started)
        {
            slot->start_failing = false;
        }
        else
        {
            slot->start_requested = false;
            slot->start_failures++;
            slot->next_start_attempt = TimestampTzPlusMilliseconds(now, start_retry_ms);
            first_failure = !slot->start_failing;
            slot->start_failing = true;
        }
    }
    LWLockRelease(inval->lock);

    if (first_failure)
        ereport(LOG,
                (errmsg("pg_poolguard could not start a publisher for database %u: no free background worker slot",
                        MyDatabaseId),
                 errdetail("Generations are correct; notifications wait in the ring (or become a resync) until a publisher starts. "
                           "The next commit that invalidates retries."),
                 errhint("Raise max_worker_processes: it must cover the pg_poolguard worker, one publisher per database "
                         "that invalidates, and parallel workers.")));
}

}  // namespace poolguard
