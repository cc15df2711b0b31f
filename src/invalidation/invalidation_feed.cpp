/*
 * invalidation_feed.cpp — poolguard.invalidations_since(): the recent invalidations of every
 * database in generation order, for readers that cannot LISTEN (hot standbys, transaction-mode
 * poolers) and for readers that were away.
 *
 * The feed is a ring of the last poolguard.feed_size items (core/invalidation/feed_ring.h).  On a primary the
 * committing backend appends its items right after it handed out their generations
 * (invalidation_publish_committed); on a standby the redo of pg_poolguard's WAL record appends
 * them (invalidation_apply_replayed), after the commit was replayed.  Either way an item is in
 * the feed only once the data it describes is visible, and items are appended in generation
 * order.  A reader whose `after` is below its database's horizon (items of ITS database were
 * evicted, or it read from before this server's start or a promotion) gets one resync row, whose
 * generation is its own database's newest (core::FeedDatabases): another database's flood
 * neither makes it resync nor shows in its rows.
 *
 * Note about locking (every lock and the order: docs/architecture.md, "Locks"):
 * - feed->lock (tranche "pg_poolguard feed", one LWLock) guards the ring and its entries.
 *   Exclusive: appenders (a committing backend, which already holds invalidation_shared->lock: the order is
 *   invalidation_shared->lock, then feed->lock; the startup process during redo, which holds no other).
 *   Shared: readers, which copy at most read_batch entries per acquisition and format rows only
 *   after releasing it.
 * - Under it: memcpy and index arithmetic only; no palloc, no ereport, no latch.  Waiters are
 *   woken with ConditionVariableBroadcast after the lock is released.
 */
#include "core/invalidation/feed_ring.h"

#include "invalidation/invalidation_internal.h"

#include "pg/guard.h"
#include "pg/guc.h"
#include "pg/shmem.h"

namespace poolguard
{

namespace
{

constexpr const char *tranche_name = "pg_poolguard feed";
constexpr int read_batch = 64;                       /* entries copied per lock acquisition */
constexpr int64 max_wait_limit_us = 600LL * 1000000; /* invalidations_since waits at most 10 minutes */

struct FeedShared
{
    LWLock *lock;
    ConditionVariable appended; /* broadcast after items were appended or the horizon raised */
    core::FeedRing ring;
    core::FeedDatabases databases; /* per-database horizons: one database's evictions are its own */
};

FeedShared *feed = nullptr;
uint64 *feed_generations = nullptr;
QueueEntry *feed_entries = nullptr;

Size generations_offset(void)
{
    return MAXALIGN(sizeof(FeedShared));
}

Size entries_offset(void)
{
    return add_size(generations_offset(), MAXALIGN(mul_size(sizeof(uint64), guc_feed_size)));
}

Size feed_shmem_size(void)
{
    return add_size(entries_offset(), mul_size(sizeof(QueueEntry), guc_feed_size));
}

void feed_shmem_init(void)
{
    bool found;
    char *base = static_cast<char *>(ShmemInitStruct(tranche_name, feed_shmem_size(), &found));
    feed = reinterpret_cast<FeedShared *>(base);
    feed_generations = reinterpret_cast<uint64 *>(base + generations_offset());
    feed_entries = reinterpret_cast<QueueEntry *>(base + entries_offset());
    if (found)
        return;
    memset(feed, 0, sizeof(FeedShared));
    feed->lock = &(GetNamedLWLockTranche(tranche_name))->lock;
    ConditionVariableInit(&feed->appended);
    /*
     * Nothing before this server's start is known: every generation up to the counter's seed
     * (the shared memory of invalidation_shmem.cpp is initialized first) needs a resync.
     */
    feed->ring = core::feed_make((uint32)guc_feed_size, invalidation_seed());
}

/* One row of invalidations_since(). */
void put_row(Tuplestorestate *store, TupleDesc desc, const char *kind, uint64 generation, const QueueEntry *e)
{
    Datum values[4];
    bool nulls[4] = {false, false, false, false};
    values[0] = CStringGetTextDatum(kind);
    values[1] = Int64GetDatum((int64)generation);
    if (e == nullptr)
    {
        nulls[2] = nulls[3] = true;
    }
    else
    {
        values[2] = PointerGetDatum(cstring_to_text_with_len(e->scope, e->scope_len));
        if (e->key_null)
            nulls[3] = true;
        else
            values[3] = PointerGetDatum(cstring_to_text_with_len(e->key, e->key_len));
    }
    tuplestore_putvalues(store, desc, values, nulls);
}

/*
 * Copies up to read_batch of this database's items after *cursor into out; advances *cursor past
 * every item looked at (other databases' too).  Sets *resync (and *resync_generation) instead
 * when *cursor is below the horizon.  Returns the number copied; *more is set when items past
 * the batch remain.
 */
int read_some(uint64 *cursor, QueueEntry *out, bool *resync, uint64 *resync_generation, bool *more)
{
    int n = 0;
    *resync = false;
    *more = false;
    LWLockAcquire(feed->lock, LW_SHARED);
    const core::FeedRing &r = feed->ring;
    if (core::feed_database_needs_resync(r, feed->databases, MyDatabaseId, *cursor, resync_generation))
        *resync = true;
    else
    {
        uint32 i = core::feed_first_after(r, feed_generations, *cursor);
        for (; i < r.count && n < read_batch; i++)
        {
            uint32 slot = core::feed_slot(r, i);
            *cursor = feed_generations[slot];
            if (feed_entries[slot].database == MyDatabaseId)
                out[n++] = feed_entries[slot];
        }
        *more = i < r.count;
    }
    LWLockRelease(feed->lock);
    return n;
}

/* max_wait as microseconds, with clear errors for what cannot be a bounded wait. */
int64 max_wait_micros(const Interval *iv)
{
    bool negative = iv->month < 0 || (iv->month == 0 && iv->day < 0);
    bool huge = iv->month > 0 || iv->day > 1;
    int64 total = 0;
    if (!negative && !huge)
    {
        total = (int64)iv->day * USECS_PER_DAY + iv->time;
        negative = total < 0;
        huge = total > max_wait_limit_us;
    }
    if (negative)
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE), errmsg("max_wait must not be negative"),
                        errhint("Pass '0' to return at once, or how long to wait for the first invalidation, "
                                "such as '25 seconds'.")));
    if (huge)
        ereport(ERROR,
                (errcode(ERRCODE_INVALID_PARAMETER_VALUE), errmsg("max_wait must be at most 10 minutes"),
                 errdetail("A long poll holds a connection (and, behind a pooler, a server connection) while "
                           "it waits."),
                 errhint("Wait up to a minute and call again with the last generation you received.")));
    return total;
}

} // namespace

void invalidation_feed_register_shmem(void)
{
    shmem_register(feed_shmem_size, feed_shmem_init);
    shmem_register_lwlocks(tranche_name, 1);
}

void invalidation_feed_lock(void)
{
    LWLockAcquire(feed->lock, LW_EXCLUSIVE);
}

void invalidation_feed_unlock(void)
{
    LWLockRelease(feed->lock);
}

void invalidation_feed_push(Oid database, uint64 generation, const char *scope, int scope_len,
                            const char *key, int key_len)
{
    if (!core::feed_accepts(feed->ring, feed_generations, generation))
    {
        /* Older than what the feed already vouches for (replay of WAL from before a restart). */
        return;
    }
    uint64 evicted = 0;
    uint32 slot = core::feed_push(feed->ring, feed_generations, generation, &evicted);
    QueueEntry *e = &feed_entries[slot];
    /* The evicted item (its slot is the new one) is its own database's loss alone. */
    if (evicted != 0)
        core::feed_database_evicted(feed->databases, e->database, evicted);
    core::feed_database_appended(feed->databases, database, generation);
    e->database = database;
    e->generation = generation;
    e->scope_len = (uint16)scope_len;
    memcpy(e->scope, scope, scope_len);
    e->scope[scope_len] = '\0';
    e->key_null = key == nullptr;
    e->key_len = key == nullptr ? 0 : (uint16)key_len;
    if (key != nullptr)
        memcpy(e->key, key, key_len);
    e->key[e->key_len] = '\0';
}

void invalidation_feed_raise_horizon(uint64 generation)
{
    core::feed_raise_horizon(feed->ring, generation);
}

void invalidation_feed_wake(void)
{
    if (feed != nullptr)
        ConditionVariableBroadcast(&feed->appended);
}

} // namespace poolguard

using namespace poolguard;

/*
 * poolguard.invalidations_since(after bigint, max_wait interval default '0')
 *   RETURNS TABLE (kind text, generation bigint, scope text, key text)
 * This database's items with a generation greater than `after`, oldest first ('item' rows), or
 * one 'resync' row (generation: this database's newest the feed vouches for; continue from it)
 * when items of this database after `after` may be missing.  With nothing to return, waits up to max_wait for
 * the first item.
 */
POOLGUARD_FUNCTION(poolguard_invalidations_since)
{
    require_shared_memory();
    if (PG_ARGISNULL(0))
        ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED), errmsg("after must not be NULL"),
                        errhint("Pass 0 the first time: the answer is a resync row whose generation is where "
                                "to continue from.")));
    if (PG_ARGISNULL(1))
        ereport(ERROR,
                (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED), errmsg("max_wait must not be NULL"),
                 errhint("Pass '0' to return at once, or how long to wait for the first invalidation.")));
    int64 after_arg = PG_GETARG_INT64(0);
    if (after_arg < 0)
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE), errmsg("after must not be negative"),
                        errhint("Pass 0 the first time, then the greatest generation received so far.")));
    int64 wait_us = max_wait_micros(PG_GETARG_INTERVAL_P(1));
    /* After a start or a promotion, the floor (and the feed's horizon) rise before the first read. */
    invalidation_raise_floor_after_recovery();

    InitMaterializedSRF(fcinfo, 0);
    ReturnSetInfo *rsinfo = (ReturnSetInfo *)fcinfo->resultinfo;
    MemoryContext old = MemoryContextSwitchTo(rsinfo->econtext->ecxt_per_query_memory);
    QueueEntry *batch = static_cast<QueueEntry *>(palloc(sizeof(QueueEntry) * read_batch));
    MemoryContextSwitchTo(old);

    TimestampTz deadline = GetCurrentTimestamp() + wait_us;
    uint64 cursor = (uint64)after_arg;
    bool sleeping = false;
    int rows = 0;
    for (;;)
    {
        bool resync, more;
        uint64 resync_generation = 0;
        int n = read_some(&cursor, batch, &resync, &resync_generation, &more);
        old = MemoryContextSwitchTo(rsinfo->econtext->ecxt_per_query_memory);
        for (int i = 0; i < n; i++)
            put_row(rsinfo->setResult, rsinfo->setDesc, "item", batch[i].generation, &batch[i]);
        if (resync)
            put_row(rsinfo->setResult, rsinfo->setDesc, "resync", resync_generation, nullptr);
        MemoryContextSwitchTo(old);
        rows += n + (resync ? 1 : 0);
        if (resync)
            break;
        if (more)
            continue;
        if (rows > 0)
            break;

        long left_ms = TimestampDifferenceMilliseconds(GetCurrentTimestamp(), deadline);
        if (left_ms <= 0 && GetCurrentTimestamp() >= deadline)
            break;
        if (!sleeping)
        {
            /* Prepare, then look again: an append between the look and the sleep is not missed. */
            ConditionVariablePrepareToSleep(&feed->appended);
            sleeping = true;
            continue;
        }
        /* Interruptible (cancel, statement_timeout, termination): it checks for interrupts. */
        (void)ConditionVariableTimedSleep(&feed->appended, Max(left_ms, 1L), PG_WAIT_EXTENSION);
    }
    if (sleeping)
        ConditionVariableCancelSleep();
    return (Datum)0;
}
