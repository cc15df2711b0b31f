/*
 * invalidation_shmem.cpp — the shared half of cache invalidation: generation table, queue,
 * publisher slots and stats, the commit-time publication that fills them, and the worker's
 * tending of publishers that are missing.
 *
 * Why publication is split this way: a transaction that runs NOTIFY holds a cluster-wide lock
 * from its pre-commit to the end of its commit, which serializes every writer.  Here the
 * committing backend only bumps atomics and copies its items into the queue under a short
 * LWLock; the NOTIFY happens later, in the database's publisher.
 *
 * Note about locking (all of pg_poolguard's locks and their order: docs/architecture.md, "Locks"):
 * - invalidation_shared->lock (tranche "pg_poolguard invalidation", one LWLock) guards everything in
 *   InvalidationShared except the counter, plus the queue (next[] and the entries).  Exclusive:
 *   committing backends (generations are handed out under it, so each database's list is in
 *   generation order), the publisher's drain/claim/detach/stats, the worker's tending.  Shared:
 *   readers of slots and stats (invalidation_publishers, invalidation_stats, metrics, a
 *   publisher's has_work).  Work under it is bounded: O(items of the commit), O(items a drain
 *   takes), O(max_publishers) for the slot table (once more per database that gives its entries
 *   up when a commit does not fit); a database's list is freed in O(1).
 * - The counter and the generation table are atomics, read and written without the lock
 *   (cache_generation() takes no lock).  The counter is only advanced with the lock held.
 * - The only pg_poolguard lock taken while it is held is the feed's (invalidation_feed.cpp), by a
 *   committing backend appending its items (order: invalidation_shared->lock, then feed->lock); no other
 *   pg_poolguard lock (policy_store.cpp's policies lock, caps.cpp's caps_lock, the worker latch spinlock)
 *   is taken while it is held, nor is it taken while holding one of them.  A committing backend
 *   also inserts its WAL record under it (invalidation_wal.cpp: WAL insertion locks come last,
 *   as under any buffer lock), so that records are in WAL in generation order.
 * - Nothing that can fail or is slow runs under it: no palloc, no ereport, no catalog access,
 *   no GetCurrentTimestamp (callers read the clock first), no SetLatch (latches are set after
 *   release; a latch set after its owner left only causes a spurious wakeup), no worker
 *   registration (RegisterDynamicBackgroundWorker takes BackgroundWorkerLock: done after release).
 *
 * A database that cannot publish (its publisher cannot start or cannot connect) holds only its
 * own entries (core/entry_lists.h: one list per database, no shared tail to pin).  Its bound is
 * the free space of the queue: it keeps its entries for as long as other databases' commits
 * still fit, and when one does not, the databases with no running publisher give theirs up first,
 * each as ONE resync for that database alone (its listeners drop their cache once; nothing is
 * silently lost).  A fixed share or age limit would only turn items into resyncs earlier while
 * the space is not needed.  A running publisher's entries are never taken: it is draining them.
 */
#include "core/invalidation/generation.h"
#include "core/invalidation/invalidation_key.h"
#include "core/invalidation/entry_lists.h"
#include "core/invalidation/wal_items.h"

#include "invalidation/invalidation_internal.h"
#include "stats/stats.h"

#include "pg/guc.h"
#include "invalidation/publisher.h"
#include "pg/shmem.h"

namespace poolguard
{

InvalidationShared *invalidation_shared = nullptr;
pg_atomic_uint64 *inval_generations = nullptr;
uint32 *inval_next = nullptr;
QueueEntry *inval_entries = nullptr;

namespace
{

constexpr const char *tranche_name = "pg_poolguard invalidation";

/* A registered publisher that has not shown up after this long is presumed lost. */
constexpr long start_timeout_ms = 10000;
/*
 * After a failed registration (no free worker slot) the next start is tried after this long, by
 * the next commit in the database or by the pg_poolguard worker, whichever comes first.
 */
constexpr long start_retry_ms = 1000;
/* After a publisher could not connect: retry after 1 s, doubling up to this (one FATAL line each). */
constexpr int max_connect_retry_ms = 60000;

Size generations_offset(void)
{
    return MAXALIGN(sizeof(InvalidationShared));
}

Size links_offset(void)
{
    return add_size(generations_offset(),
                    MAXALIGN(mul_size(sizeof(pg_atomic_uint64), guc_invalidation_slots)));
}

Size entries_offset(void)
{
    return add_size(links_offset(), MAXALIGN(mul_size(sizeof(uint32), guc_invalidation_queue_size)));
}

Size invalidation_shmem_size(void)
{
    return add_size(entries_offset(), mul_size(sizeof(QueueEntry), guc_invalidation_queue_size));
}

/* A time as microseconds since the Unix epoch, the unit of seeds and floors. */
uint64 clock_generation(TimestampTz at)
{
    return core::generation_seed((int64)at +
                                 (int64)(POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * USECS_PER_DAY);
}

void invalidation_shmem_init(void)
{
    bool found;
    char *base = static_cast<char *>(ShmemInitStruct(tranche_name, invalidation_shmem_size(), &found));

    invalidation_shared = reinterpret_cast<InvalidationShared *>(base);
    inval_generations = reinterpret_cast<pg_atomic_uint64 *>(base + generations_offset());
    inval_next = reinterpret_cast<uint32 *>(base + links_offset());
    inval_entries = reinterpret_cast<QueueEntry *>(base + entries_offset());
    if (found)
        return;

    memset(invalidation_shared, 0, sizeof(InvalidationShared));
    invalidation_shared->lock = &(GetNamedLWLockTranche(tranche_name))->lock;
    /*
     * Seeded from the clock: every generation after a restart exceeds every generation before
     * it, and a slot never bumped since the start reads as "changed at start".
     */
    invalidation_shared->seed = clock_generation(GetCurrentTimestamp());
    pg_atomic_init_u64(&invalidation_shared->counter, invalidation_shared->seed);
    pg_atomic_init_u64(&invalidation_shared->floor, invalidation_shared->seed);
    invalidation_shared->replayed = invalidation_shared->seed;
    /* Raised again by the first reader once recovery is over (a standby: at its promotion). */
    pg_atomic_init_u32(&invalidation_shared->floor_pending, 1);
    pg_atomic_init_u64(&invalidation_shared->walwriter_woken_at, 0);
    /*
     * The slot hash's secret: a role that cannot read shared memory cannot find keys of its own
     * that share another database's slot (core/invalidation/invalidation_key.h).
     */
    if (!pg_strong_random(&invalidation_shared->hash_secret, sizeof(invalidation_shared->hash_secret)))
        ereport(FATAL, (errcode(ERRCODE_INTERNAL_ERROR),
                        errmsg("pg_poolguard could not generate the secret of its generation table"),
                        errdetail("pg_strong_random() failed.")));
    invalidation_cdc_load_secret(invalidation_shared->cdc_secret);
    invalidation_shared->slots = (uint32)guc_invalidation_slots;
    invalidation_shared->queue_size = (uint32)guc_invalidation_queue_size;
    for (uint32 i = 0; i < invalidation_shared->slots; i++)
        pg_atomic_init_u64(&inval_generations[i], invalidation_shared->seed);
    for (int i = 0; i < max_publishers; i++)
        invalidation_shared->publishers[i].items = core::empty_entry_list();
    memset(inval_entries, 0, sizeof(QueueEntry) * (Size)invalidation_shared->queue_size);
    core::list_fill(invalidation_shared->free_entries, inval_next, invalidation_shared->queue_size);
}

/* An empty slot for database (caller holds the lock). */
void reset_slot(PublisherSlot *s, Oid database)
{
    memset(s, 0, sizeof(PublisherSlot));
    s->database = database;
    s->items = core::empty_entry_list();
}

void atomic_max(pg_atomic_uint64 *slot, uint64 v)
{
    invalidation_atomic_max(slot, v);
}

/*
 * Stats row of (MyDatabaseId, scope): found or claimed; the shared overflow row when the table is
 * full or this database already has max_scope_stats_per_database rows (issue 19: one database
 * cannot take every row).  Probing stops at the first free row (a row is never freed, so the
 * scope's row, if any, comes before it); counting this database's rows happens only when one is
 * claimed, at most max_scope_stats times per server life.
 */
ScopeStats *scope_stats(const char *scope, int scope_len)
{
    uint64 h = invalidation_scope_hash(scope, scope_len);
    for (int probe = 0; probe < max_scope_stats; probe++)
    {
        ScopeStats *s = &invalidation_shared->scopes[(h + probe) & (max_scope_stats - 1)];
        if (s->database == InvalidOid)
        {
            int own = 0;
            for (int i = 0; i < max_scope_stats; i++)
                own += invalidation_shared->scopes[i].database == MyDatabaseId ? 1 : 0;
            if (own >= max_scope_stats_per_database)
                break;
            s->database = MyDatabaseId;
            s->encoding = GetDatabaseEncoding();
            memcpy(s->scope, scope, scope_len);
            s->scope[scope_len] = '\0';
            return s;
        }
        if (s->database == MyDatabaseId && strncmp(s->scope, scope, scope_len) == 0 &&
            s->scope[scope_len] == '\0')
            return s;
    }
    return &invalidation_shared->other_scopes;
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
            PublisherSlot *s = &invalidation_shared->publishers[i];
            bool reusable =
                pass == 0 ? s->database == InvalidOid
                          : s->pid == 0 && s->items.count == 0 && !s->resync_pending && !s->start_requested;
            if (reusable)
            {
                reset_slot(s, database);
                return s;
            }
        }
    return nullptr;
}

/* Whether a publisher of the slot's database should be registered now (caller holds the lock). */
bool start_due(const PublisherSlot *s, TimestampTz now)
{
    if (s->pid != 0)
        return false;
    if (s->start_requested)
        return TimestampDifferenceExceeds(s->start_requested_at, now, start_timeout_ms);
    return now >= s->next_start_attempt;
}

/* Milliseconds until start_due() turns true (caller holds the lock; the slot has no publisher). */
long ms_until_start_due(const PublisherSlot *s, TimestampTz now)
{
    TimestampTz at = s->start_requested ? TimestampTzPlusMilliseconds(s->start_requested_at, start_timeout_ms)
                                        : s->next_start_attempt;
    return at <= now ? 0 : TimestampDifferenceMilliseconds(now, at);
}

/* A database whose entries were collapsed under pressure, to be logged after the lock is released. */
struct Collapse
{
    Oid database;
    uint32 entries;
};

/*
 * Makes room for `need` entries of `slot`'s commit (caller holds the lock exclusively): the
 * databases with no running publisher give their entries up first, largest first; then the
 * committing database's own older entries if it has no publisher either (its resync then covers
 * this commit too).  A database with a running publisher keeps its entries: it is draining them.
 */
int make_room(PublisherSlot *slot, uint32 need, Collapse *logged)
{
    int nlogged = 0;
    while (invalidation_shared->free_entries.count < need)
    {
        PublisherSlot *victim = nullptr;
        for (int i = 0; i < max_publishers; i++)
        {
            PublisherSlot *s = &invalidation_shared->publishers[i];
            if (s != slot && s->database != InvalidOid && s->pid == 0 && s->items.count > 0 &&
                (victim == nullptr || s->items.count > victim->items.count))
                victim = s;
        }
        if (victim == nullptr && slot->pid == 0 && slot->items.count > 0)
            victim = slot;
        if (victim == nullptr)
            break;
        uint32 n = invalidation_collapse(victim);
        if (!victim->collapse_logged)
        {
            victim->collapse_logged = true;
            logged[nlogged++] = Collapse{victim->database, n};
        }
    }
    return nlogged;
}

void log_collapses(const Collapse *logged, int n)
{
    for (int i = 0; i < n; i++)
        ereport(
            LOG,
            (errmsg("pg_poolguard replaced %u queued invalidations of database %u by one resync",
                    logged[i].entries, logged[i].database),
             errdetail(
                 "The database has no running publisher and another database's invalidations needed the "
                 "space in the queue. Its listeners get one resync once its publisher runs."),
             errhint(
                 "See the earlier log lines about its publisher; poolguard.invalidation_queue_size sets the "
                 "size of the queue.")));
}

/*
 * Registers a publisher for database (not under the lock) and records the outcome; the caller
 * has set start_requested.  A failure is logged once per streak.
 */
void launch_publisher(Oid database, TimestampTz now)
{
    bool started = publisher_launch(database);

    LWLockAcquire(invalidation_shared->lock, LW_EXCLUSIVE);
    bool first_failure = false;
    PublisherSlot *slot = invalidation_find_publisher(database);
    if (slot != nullptr)
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
    LWLockRelease(invalidation_shared->lock);

    if (first_failure)
        ereport(
            LOG,
            (errmsg(
                 "pg_poolguard could not start a publisher for database %u: no free background worker slot",
                 database),
             errdetail(
                 "Generations are correct; notifications wait in the queue (or become one resync for this "
                 "database when other databases need the space) until a publisher starts. The pg_poolguard "
                 "worker and the next commit that invalidates retry every second."),
             errhint("Raise max_worker_processes: it must cover the pg_poolguard worker, one publisher per "
                     "database "
                     "that invalidates, and parallel workers.")));
}

/* Forgets the entries and the slot of a database that no longer exists (caller holds the lock). */
uint32 forget_database(PublisherSlot *slot)
{
    uint32 n = slot->items.count;
    core::list_append_all(invalidation_shared->free_entries, slot->items, inval_next);
    reset_slot(slot, InvalidOid);
    return n;
}

/* Whether database still exists and can be connected to some day (an interrupted DROP DATABASE
 * leaves an invalid database that can only be dropped). */
bool database_usable(Oid database)
{
    HeapTuple tuple = SearchSysCache1(DATABASEOID, ObjectIdGetDatum(database));
    if (!HeapTupleIsValid(tuple))
        return false;
    bool usable = true;
#ifdef DATCONNLIMIT_INVALID_DB
    usable = ((Form_pg_database)GETSTRUCT(tuple))->datconnlimit != DATCONNLIMIT_INVALID_DB;
#endif
    ReleaseSysCache(tuple);
    return usable;
}

} // namespace

void invalidation_register_shmem(void)
{
    shmem_register(invalidation_shmem_size, invalidation_shmem_init);
    shmem_register_lwlocks(tranche_name, 1);
}

void invalidation_atomic_max(pg_atomic_uint64 *slot, uint64 v)
{
    uint64 current = pg_atomic_read_u64(slot);
    while (current < v && !pg_atomic_compare_exchange_u64(slot, &current, v))
    {
        /* current now holds the newer value; retry while ours is still greater */
    }
}

uint64 invalidation_key_hash(Oid database, const char *scope, int scope_len, const char *key, int key_len)
{
    return core::invalidation_hash(invalidation_shared->hash_secret, database, scope, (std::size_t)scope_len,
                                   key, key == nullptr ? 0 : (std::size_t)key_len);
}

uint64 invalidation_scope_hash(const char *scope, int scope_len)
{
    /* Backend-local: this backend's last scope (the secret is fixed while shared memory lives). */
    static core::ScopeHashMemo memo;
    return core::scope_hash(memo, invalidation_shared->hash_secret, MyDatabaseId, scope,
                            (std::size_t)scope_len);
}

uint64 invalidation_seed(void)
{
    return invalidation_shared->seed;
}

/*
 * Redo runs in the startup process only, one record at a time, in WAL order; readers on a hot
 * standby read the slots with atomics as on a primary.  Each item gets the primary's generation,
 * or just above the last one applied when that is not newer (core::replayed_generation: a
 * standby that restarted replays WAL from before its start, below its clock-seeded floor).
 */
void invalidation_apply_replayed(Oid database, uint64 first, const char *items, Size len, uint32 count)
{
    if (invalidation_shared == nullptr)
        return;
    uint64 slots = invalidation_shared->slots;
    Size pos = 0;
    core::WalItem item;
    invalidation_feed_lock();
    for (uint32 i = 0; i < count && core::wal_item_read(items, len, &pos, &item); i++)
    {
        uint64 generation = core::replayed_generation(first + i, invalidation_shared->replayed);
        invalidation_shared->replayed = generation;
        uint64 hash =
            invalidation_key_hash(database, item.scope, (int)item.scope_len, item.key, (int)item.key_len);
        atomic_max(&inval_generations[core::slot_of(hash, slots)], generation);
        atomic_max(&invalidation_shared->counter, generation);
        invalidation_feed_push(database, generation, item.scope, (int)item.scope_len, item.key,
                               (int)item.key_len);
    }
    invalidation_feed_unlock();
    invalidation_feed_wake();
}

void invalidation_apply_replayed_floor(uint64 floor)
{
    if (invalidation_shared == nullptr)
        return;
    invalidation_shared->replayed = Max(invalidation_shared->replayed, floor);
    atomic_max(&invalidation_shared->counter, floor);
    atomic_max(&invalidation_shared->floor, floor);
    invalidation_feed_lock();
    invalidation_feed_raise_horizon(floor);
    invalidation_feed_unlock();
    invalidation_feed_wake();
}

PublisherSlot *invalidation_find_publisher(Oid database)
{
    for (int i = 0; i < max_publishers; i++)
        if (invalidation_shared->publishers[i].database == database)
            return &invalidation_shared->publishers[i];
    return nullptr;
}

void invalidation_raise_floor_after_recovery(void)
{
    if (likely(pg_atomic_read_u32(&invalidation_shared->floor_pending) == 0) || RecoveryInProgress())
        return;
    /*
     * Every backend that gets here raises the floor before anyone clears the flag, so whoever
     * sees the flag cleared also sees the raised floor.
     */
    uint64 now = clock_generation(GetCurrentTimestamp());
    atomic_max(&invalidation_shared->floor, now);
    atomic_max(&invalidation_shared->counter, now);
    /*
     * Standbys raise theirs when they replay this (the items of commits this server made before
     * a crash may never have reached WAL); readers of the feed from before get a resync.
     */
    bool failed = false;
    XLogRecPtr lsn = invalidation_wal_log_floor(now, &failed);
    invalidation_feed_lock();
    invalidation_feed_raise_horizon(now);
    invalidation_feed_unlock();
    pg_write_barrier();
    pg_atomic_write_u32(&invalidation_shared->floor_pending, 0);
    invalidation_wal_finish(lsn, failed, GetCurrentTimestamp());
    invalidation_feed_wake();
}

int invalidation_take(PublisherSlot *slot, QueueEntry *out, int max)
{
    int n = 0;
    while (n < max)
    {
        uint32 e = core::list_pop_front(slot->items, inval_next);
        if (e == core::no_entry)
            break;
        out[n++] = inval_entries[e];
        core::list_push_front(invalidation_shared->free_entries, inval_next, e);
    }
    return n;
}

uint32 invalidation_collapse(PublisherSlot *slot)
{
    uint32 n = slot->items.count;
    core::list_append_all(invalidation_shared->free_entries, slot->items, inval_next);
    slot->resync_pending = true;
    if (n > 0)
        slot->ring_overflows++;
    return n;
}

void invalidation_connect_failed(Oid database)
{
    TimestampTz now = GetCurrentTimestamp();
    uint32 kept = 0;
    int retry_ms = 0;
    bool resync = false;

    LWLockAcquire(invalidation_shared->lock, LW_EXCLUSIVE);
    PublisherSlot *slot = invalidation_find_publisher(database);
    if (slot != nullptr && slot->pid == 0)
    {
        /*
         * The postmaster restarts the failed publisher after bgw_restart_time (FATAL exits with
         * code 1): that restart is the pending start; it gives up if the backoff is not over.
         */
        slot->start_requested = true;
        slot->start_requested_at = now;
        slot->start_failures++;
        slot->connect_retry_ms = slot->connect_retry_ms == 0
                                     ? (int)start_retry_ms
                                     : Min(slot->connect_retry_ms * 2, max_connect_retry_ms);
        slot->next_start_attempt = TimestampTzPlusMilliseconds(now, slot->connect_retry_ms);
        kept = slot->items.count;
        resync = slot->resync_pending;
        retry_ms = slot->connect_retry_ms;
    }
    LWLockRelease(invalidation_shared->lock);

    if (retry_ms > 0)
        ereport(LOG,
                (errmsg("pg_poolguard publisher could not connect to database %u", database),
                 errdetail(
                     "Its %u queued invalidations%s are kept; a publisher tries again in %d ms. They are "
                     "forgotten only when the pg_poolguard worker finds that the database no longer exists.",
                     kept, resync ? " and a resync" : "", retry_ms)));
}

long invalidation_tend_publishers(void)
{
    if (invalidation_shared == nullptr)
        return -1;

    Oid due[max_publishers];
    int ndue = 0;
    long next_ms = -1;
    TimestampTz now = GetCurrentTimestamp();

    LWLockAcquire(invalidation_shared->lock, LW_SHARED);
    for (int i = 0; i < max_publishers; i++)
    {
        const PublisherSlot *s = &invalidation_shared->publishers[i];
        if (s->database == InvalidOid || s->pid != 0 || (s->items.count == 0 && !s->resync_pending))
            continue;
        if (start_due(s, now))
            due[ndue++] = s->database;
        else
        {
            long ms = ms_until_start_due(s, now);
            next_ms = next_ms < 0 ? ms : Min(next_ms, ms);
        }
    }
    LWLockRelease(invalidation_shared->lock);

    for (int i = 0; i < ndue; i++)
    {
        /* Catalog access: with no lock held. */
        bool usable = database_usable(due[i]);

        bool launch = false;
        uint32 forgotten = 0;
        bool forgot = false;
        LWLockAcquire(invalidation_shared->lock, LW_EXCLUSIVE);
        PublisherSlot *slot = invalidation_find_publisher(due[i]);
        if (slot != nullptr && slot->pid == 0 && (slot->items.count > 0 || slot->resync_pending) &&
            start_due(slot, now))
        {
            if (!usable)
            {
                forgotten = forget_database(slot);
                forgot = true;
            }
            else
            {
                launch = true;
                slot->start_requested = true;
                slot->start_requested_at = now;
            }
        }
        LWLockRelease(invalidation_shared->lock);

        if (forgot)
            ereport(LOG, (errmsg("pg_poolguard dropped %u queued invalidations of database %u: the database "
                                 "no longer exists",
                                 forgotten, due[i])));
        if (launch)
        {
            launch_publisher(due[i], now);
            /* If it failed, the next attempt is due in start_retry_ms; if it started, nothing is due. */
            next_ms = next_ms < 0 ? start_retry_ms : Min(next_ms, start_retry_ms);
        }
    }
    return next_ms;
}

uint64 invalidation_current_generation(const char *scope, int scope_len, const char *key, int key_len)
{
    invalidation_raise_floor_after_recovery();
    uint64 slots = invalidation_shared->slots;
    uint64 scope_gen = pg_atomic_read_u64(
        &inval_generations[core::slot_of(invalidation_scope_hash(scope, scope_len), slots)]);
    uint64 key_gen = scope_gen;
    if (key != nullptr)
        key_gen = pg_atomic_read_u64(&inval_generations[core::slot_of(
            invalidation_key_hash(MyDatabaseId, scope, scope_len, key, key_len), slots)]);
    uint64 floor = pg_atomic_read_u64(&invalidation_shared->floor);
    /* Whatever the caller reads next (its data snapshot) must not be ordered before this read. */
    pg_read_barrier();
    return core::effective_generation(core::effective_generation(key_gen, scope_gen), floor);
}

void invalidation_publish_committed(const PendingInvalidation *items, int count)
{
    if (count <= 0 || invalidation_shared == nullptr)
        return;

    invalidation_raise_floor_after_recovery();
    TimestampTz now = GetCurrentTimestamp();
    uint64 clock = Max(clock_generation(now), pg_atomic_read_u64(&invalidation_shared->floor));
    Latch *wake = nullptr;
    bool launch = false;
    bool no_slot = false;
    Collapse collapsed[max_publishers];
    int ncollapsed = 0;

    LWLockAcquire(invalidation_shared->lock, LW_EXCLUSIVE);

    /*
     * Generations are taken here, after the commit is visible, and under the queue lock so that
     * each database's list is in generation order (= the order in which commits published).
     * Never below the clock: a server whose counter was seeded before another server of the
     * cluster handed out generations (a standby promoted later) still hands out newer ones.
     */
    uint64 current = pg_atomic_read_u64(&invalidation_shared->counter);
    uint64 base;
    do
        base = Max(current, clock);
    while (!pg_atomic_compare_exchange_u64(&invalidation_shared->counter, &current, base + (uint64)count));
    for (int i = 0; i < count; i++)
    {
        const PendingInvalidation *it = &items[i];
        uint64 generation = base + 1 + (uint64)i;
        atomic_max(&inval_generations[core::slot_of(it->hash, invalidation_shared->slots)], generation);

        ScopeStats *stats = scope_stats(it->scope, it->scope_len);
        stats->invalidations++;
        stats_add(GlobalCounter::invalidations); /* poolguard.stats: an atomic add, cannot fail */
        stats->last_generation = generation;
        stats->last_invalidated_at = now;
    }

    /*
     * Replication and the feed, still under the lock so that both are in generation order
     * (invalidation_wal.cpp explains why the WAL record is written here).
     */
    bool wal_failed = false;
    XLogRecPtr wal_end = invalidation_wal_log_committed(base + 1, items, count, &wal_failed);
    invalidation_feed_lock();
    for (int i = 0; i < count; i++)
        invalidation_feed_push(MyDatabaseId, base + 1 + (uint64)i, items[i].scope, items[i].scope_len,
                               items[i].key, items[i].key_len);
    invalidation_feed_unlock();

    PublisherSlot *slot = claim_publisher(MyDatabaseId);
    if (slot == nullptr)
    {
        invalidation_shared->unslotted += (uint64)count;
        no_slot = true;
    }
    else
    {
        if (invalidation_shared->free_entries.count < (uint32)count)
            ncollapsed = make_room(slot, (uint32)count, collapsed);

        if (slot->resync_pending && slot->pid == 0)
        {
            /*
             * A resync is owed and nobody sends it yet: its generation is read when it is sent,
             * so it covers these items too.  Queueing them would only take space.
             */
        }
        else if (invalidation_shared->free_entries.count < (uint32)count)
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
                uint32 index = core::list_pop_front(invalidation_shared->free_entries, inval_next);
                QueueEntry *e = &inval_entries[index];
                e->database = MyDatabaseId;
                e->generation = base + 1 + (uint64)i;
                e->scope_len = (uint16)it->scope_len;
                memcpy(e->scope, it->scope, it->scope_len);
                e->scope[it->scope_len] = '\0';
                e->key_null = it->key == nullptr;
                e->key_len = e->key_null ? 0 : (uint16)it->key_len;
                if (!e->key_null)
                    memcpy(e->key, it->key, it->key_len);
                e->key[e->key_len] = '\0';
                core::list_push_back(slot->items, inval_next, index);
            }
        }

        if (slot->pid != 0 && slot->latch != nullptr)
            wake = slot->latch;
        else if (start_due(slot, now))
        {
            launch = true;
            slot->start_requested = true;
            slot->start_requested_at = now;
        }
    }
    LWLockRelease(invalidation_shared->lock);

    /* The committing app identity's count (its own leaf lock, taken with no other held). */
    if (MyProcPort != nullptr)
        stats_count_app_event(MyProcPort->database_name, MyProcPort->user_name, application_name,
                              AppEvent::invalidations, core::Reason::none, count);

    invalidation_wal_finish(wal_end, wal_failed, now);
    invalidation_feed_wake();
    if (wake != nullptr)
        SetLatch(wake);

    log_collapses(collapsed, ncollapsed);

    if (no_slot)
        ereport(
            WARNING,
            (errmsg("pg_poolguard could not publish invalidations of database %u", MyDatabaseId),
             errdetail("All %d publisher slots are in use. Generations were updated, but listeners of this "
                       "database are not notified.",
                       max_publishers),
             errhint("Fewer databases may publish invalidations at the same time.")));

    if (launch)
        launch_publisher(MyDatabaseId, now);
}

} // namespace poolguard
