/*
 * publisher.cpp — the "pg_poolguard publisher" dynamic background worker, one per database.
 *
 * Loop: wait on the latch (set by committing backends) → after poolguard.publish_delay take
 * this database's queued entries in chunks (from the front of its own list: the cost does not
 * depend on other databases' entries) → send each chunk as JSON payloads of at most 7999 bytes
 * with NOTIFY in one transaction → check the notification queue's fill level.  If a send fails,
 * the drained items are replaced by a resync (nothing is silently lost) and the publisher retries
 * after a backoff.  After poolguard.publisher_idle_timeout with nothing to do it exits (code 0:
 * not restarted); the next commit that invalidates in its database, or the pg_poolguard worker
 * if entries are still queued, starts a new one.  Terminated (code 1), the postmaster restarts it
 * after a second.  If it cannot connect (ALLOW_CONNECTIONS false, a database being dropped), the
 * entries stay queued and the next start waits for a growing backoff (see
 * invalidation_connect_failed); only the worker, seeing the database gone, forgets them.
 *
 * Note about locking: the publisher takes only invalidation_shared->lock (see invalidation_shmem.cpp's note),
 * never with another lock held and never across a call that can fail or wait: each function
 * below copies what it needs under the lock and does the slow part (NOTIFY, its transaction,
 * reading the clock, logging) after releasing it.
 */
#include "core/invalidation/notify_payload.h"

#include "invalidation/publisher.h"

#include "pg/guard.h"
#include "pg/guc.h"
#include "invalidation/invalidation_internal.h"
#include "stats/stats.h"
#include "pg/bgworker.h"
#include "pg/shmem.h"

namespace poolguard
{

namespace
{

constexpr int chunk_entries = 256; /* queued entries drained per lock round and transaction */
constexpr long error_backoff_ms = 1000;
constexpr double queue_warn_usage = 0.5; /* warn when the NOTIFY queue is this full */
constexpr long queue_warn_interval_ms = 60000;

Oid my_database = InvalidOid;
bool connected = false;
bool in_flight = false; /* drained items not yet committed as notifications */
QueueEntry *chunk = nullptr;
core::Payload *payload = nullptr;
TimestampTz last_queue_warning = 0;

/*
 * on_shmem_exit: the database could not be connected to (ALLOW_CONNECTIONS false, being dropped,
 * or gone).  Its entries stay: only the worker, which can look the database up, may forget them.
 */
void note_connect_failure(int code, Datum arg)
{
    if (connected || invalidation_shared == nullptr)
        return;
    LWLockReleaseAll();
    invalidation_connect_failed(my_database);
}

/* before_shmem_exit: leave the slot; what was drained but not sent becomes a resync. */
void publisher_detach(int code, Datum arg)
{
    LWLockReleaseAll();
    LWLockAcquire(invalidation_shared->lock, LW_EXCLUSIVE);
    PublisherSlot *slot = invalidation_find_publisher(my_database);
    if (slot != nullptr && slot->pid == MyProcPid)
    {
        slot->pid = 0;
        slot->latch = nullptr;
        if (in_flight)
            slot->resync_pending = true;
    }
    LWLockRelease(invalidation_shared->lock);
}

/*
 * Whether this publisher should try to connect: its database still has a slot, no publisher
 * serves it, and a failed connection's backoff is over (the postmaster restarts a publisher
 * whose connection failed after a second; it must not retry sooner than the backoff).
 */
bool start_allowed(void)
{
    TimestampTz now = GetCurrentTimestamp();
    LWLockAcquire(invalidation_shared->lock, LW_EXCLUSIVE);
    PublisherSlot *slot = invalidation_find_publisher(my_database);
    bool allowed = slot != nullptr && slot->pid == 0 && now >= slot->next_start_attempt;
    /* Giving up: the worker (or the next commit) registers a publisher when the retry is due. */
    if (!allowed && slot != nullptr && slot->pid == 0)
        slot->start_requested = false;
    LWLockRelease(invalidation_shared->lock);
    return allowed;
}

/* Takes the database's slot; false if another publisher already serves it. */
bool claim_slot(void)
{
    bool claimed = false;
    LWLockAcquire(invalidation_shared->lock, LW_EXCLUSIVE);
    PublisherSlot *slot = invalidation_find_publisher(my_database);
    if (slot != nullptr && (slot->pid == 0 || slot->pid == MyProcPid))
    {
        slot->pid = MyProcPid;
        slot->latch = MyLatch;
        slot->start_requested = false;
        slot->start_failing = false;
        slot->collapse_logged = false;
        slot->connect_retry_ms = 0;
        slot->next_start_attempt = 0;
        slot->publisher_starts++;
        claimed = true;
    }
    LWLockRelease(invalidation_shared->lock);
    return claimed;
}

bool has_work(void)
{
    LWLockAcquire(invalidation_shared->lock, LW_SHARED);
    PublisherSlot *slot = invalidation_find_publisher(my_database);
    bool work = slot != nullptr && (slot->items.count > 0 || slot->resync_pending);
    LWLockRelease(invalidation_shared->lock);
    return work;
}

/* Gives the slot up when there is nothing left to publish; true if the publisher may exit. */
bool retire(void)
{
    bool retired = false;
    LWLockAcquire(invalidation_shared->lock, LW_EXCLUSIVE);
    PublisherSlot *slot = invalidation_find_publisher(my_database);
    if (slot == nullptr || (slot->items.count == 0 && !slot->resync_pending))
    {
        if (slot != nullptr && slot->pid == MyProcPid)
        {
            slot->pid = 0;
            slot->latch = nullptr;
        }
        retired = true;
    }
    LWLockRelease(invalidation_shared->lock);
    return retired;
}

/*
 * Moves up to chunk_entries of this database's oldest entries into `chunk` (O(entries taken)).
 * A pending resync swallows the drained items (its generation covers them).
 */
int drain(bool *resync, uint64 *resync_generation)
{
    int n = 0;
    *resync = false;
    LWLockAcquire(invalidation_shared->lock, LW_EXCLUSIVE);
    PublisherSlot *slot = invalidation_find_publisher(my_database);
    if (slot != nullptr)
    {
        n = invalidation_take(slot, chunk, chunk_entries);
        if (slot->resync_pending)
        {
            *resync = true;
            slot->resync_pending = false;
            /* Read under the lock that assigns generations: covers every dropped item. */
            *resync_generation = pg_atomic_read_u64(&invalidation_shared->counter);
        }
        in_flight = n > 0 || *resync;
    }
    LWLockRelease(invalidation_shared->lock);
    return n;
}

void notify(const char *text)
{
    Async_Notify(guc_notify_channel, text);
}

double notification_queue_usage(void)
{
    LOCAL_FCINFO(fc, 0);
    InitFunctionCallInfoData(*fc, NULL, 0, InvalidOid, NULL, NULL);
    return DatumGetFloat8(pg_notification_queue_usage(fc));
}

/*
 * Whether NOTIFY payloads write bytes >= 0x80 as \u00XX (issue 19): in a SQL_ASCII database they
 * have no encoding and would reach clients as invalid UTF-8; in a LATIN1 one the escape is the
 * same character.  Other encodings are sent as they are: the server converts a notification to
 * each client's encoding.
 */
bool escape_high_bytes(void)
{
    int encoding = GetDatabaseEncoding();
    return encoding == PG_SQL_ASCII || encoding == PG_LATIN1;
}

/* Sends what drain() returned, in one transaction; returns the number of payloads. */
int send(int n, bool resync, uint64 resync_generation)
{
    int payloads = 0;

    SetCurrentStatementStartTimestamp();
    StartTransactionCommand();
    pgstat_report_activity(STATE_RUNNING, "publishing cache invalidations");
    core::payload_reset(*payload, escape_high_bytes());
    if (resync)
    {
        core::payload_append_resync(*payload, resync_generation);
    }
    else
    {
        for (int i = 0; i < n; i++)
        {
            const QueueEntry *e = &chunk[i];
            const char *key = e->key_null ? nullptr : e->key;
            if (core::payload_append(*payload, e->scope, e->scope_len, key, e->key_len, e->generation))
                continue;
            notify(core::payload_finish(*payload));
            payloads++;
            core::payload_reset(*payload, escape_high_bytes());
            core::payload_append(*payload, e->scope, e->scope_len, key, e->key_len, e->generation);
        }
    }
    if (payload->items > 0)
    {
        notify(core::payload_finish(*payload));
        payloads++;
    }
    CommitTransactionCommand();
    in_flight = false;
    pgstat_report_activity(STATE_IDLE, NULL);
    return payloads;
}

void record_publication(int payloads, int items, bool resync, double queue_usage, bool warn)
{
    stats_add(GlobalCounter::notifications_sent, (uint64)payloads);
    TimestampTz now = GetCurrentTimestamp(); /* not under the lock */
    LWLockAcquire(invalidation_shared->lock, LW_EXCLUSIVE);
    PublisherSlot *slot = invalidation_find_publisher(my_database);
    if (slot != nullptr)
    {
        slot->notifications += (uint64)payloads;
        slot->items_published += (uint64)(resync ? 0 : items);
        slot->resyncs += resync ? 1 : 0;
        slot->last_queue_usage = queue_usage;
        slot->queue_warnings += warn ? 1 : 0;
        slot->last_publish_at = now;
    }
    LWLockRelease(invalidation_shared->lock);
}

/* Drains and sends until the database has nothing left in the queue. */
void publish_all(void)
{
    for (;;)
    {
        bool resync;
        uint64 resync_generation = 0;
        int n = drain(&resync, &resync_generation);
        if (n == 0 && !resync)
            return;
        int payloads = send(n, resync, resync_generation);

        double usage = notification_queue_usage();
        bool warn = usage > queue_warn_usage;
        record_publication(payloads, n, resync, usage, warn);
        TimestampTz now = GetCurrentTimestamp();
        if (warn && (last_queue_warning == 0 ||
                     TimestampDifferenceExceeds(last_queue_warning, now, queue_warn_interval_ms)))
        {
            last_queue_warning = now;
            ereport(
                WARNING,
                (errmsg("pg_poolguard publisher: the notification queue is %.0f%% full", usage * 100),
                 errdetail(
                     "A session that LISTENs and does not consume its notifications, or a long transaction "
                     "in a listening session, keeps the queue from being truncated."),
                 errhint("Find the listening sessions with pg_listening_channels() in pg_stat_activity's "
                         "applications and make them read their notifications; when the queue is full, "
                         "listeners get a resync instead of the items.")));
        }
    }
}

/* publish_all with errors caught: the items of a failed send become a resync, retried later. */
bool publish_all_safely(MemoryContext context)
{
    MemoryContext old = MemoryContextSwitchTo(context);
    ErrorData *error = run_catching_errors("publisher", context, []() { publish_all(); });
    if (error != nullptr)
    {
        if (in_flight)
        {
            LWLockAcquire(invalidation_shared->lock, LW_EXCLUSIVE);
            PublisherSlot *slot = invalidation_find_publisher(my_database);
            if (slot != nullptr)
                slot->resync_pending = true;
            LWLockRelease(invalidation_shared->lock);
            in_flight = false;
        }
        ereport(LOG,
                (errcode(error->sqlerrcode),
                 errmsg("pg_poolguard publisher could not send invalidations: %s", error->message),
                 error->detail ? errdetail("%s", error->detail) : 0,
                 errhint("Listeners will get a resync; the publisher retries in %ld ms.", error_backoff_ms)));
    }
    MemoryContextSwitchTo(old);
    MemoryContextReset(context);
    return error == nullptr;
}

/*
 * Sleeps ms milliseconds to batch.  Commits during the sleep only set the latch (no wakeup: the
 * sleep does not wait on it), so a busy database costs one publisher wakeup per delay.
 */
void sleep_ms(long ms)
{
    TimestampTz until = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), ms);
    for (;;)
    {
        long left = TimestampDifferenceMilliseconds(GetCurrentTimestamp(), until);
        if (left <= 0)
            return;
        /* At most 100 ms at a time, so that SIGTERM is honoured promptly. */
        (void)WaitLatch(NULL, WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, Min(left, 100L), PG_WAIT_EXTENSION);
        CHECK_FOR_INTERRUPTS();
    }
}

} // namespace

bool publisher_launch(Oid database)
{
    BackgroundWorker worker;

    /*
     * Exit code 0 (idle, or another publisher serves the database) is final; a publisher that was
     * terminated (exit code 1) comes back after a second and drains what was left.
     */
    init_background_worker(&worker, "poolguard_publisher_main", "pg_poolguard publisher", 1);
    snprintf(worker.bgw_name, BGW_MAXLEN, "pg_poolguard publisher for database %u", database);
    worker.bgw_main_arg = ObjectIdGetDatum(database);
    worker.bgw_notify_pid = 0;
    /* No handle: asking for one would palloc, and this runs after commit where errors are not allowed. */
    return RegisterDynamicBackgroundWorker(&worker, nullptr);
}

} // namespace poolguard

using namespace poolguard;

extern "C" void poolguard_publisher_main(Datum database)
{
    my_database = DatumGetObjectId(database);
    pqsignal(SIGHUP, SignalHandlerForConfigReload);
    pqsignal(SIGTERM, die);
    BackgroundWorkerUnblockSignals();

    /*
     * A restart after the database lost its slot (it was dropped), after another publisher took
     * over, or before a failed connection's backoff is over, has nothing to do: exit 0 (not
     * restarted); the worker or the next commit starts one when it is due.
     */
    if (!start_allowed())
        proc_exit(0);

    on_shmem_exit(note_connect_failure, (Datum)0);
    connect_background_worker(nullptr, my_database, "pg_poolguard publisher", DEBUG1);
    connected = true;
    pgstat_report_appname("pg_poolguard publisher");
    /*
     * Notifications are not durable (the queue does not survive a restart; generations do the
     * job after one), so the publisher's commits need not wait for a WAL flush: that keeps it
     * from competing with the writers for fsyncs.
     */
    SetConfigOption("synchronous_commit", "off", PGC_SUSET, PGC_S_OVERRIDE);

    if (!claim_slot())
        proc_exit(0); /* another publisher serves this database */
    before_shmem_exit(publisher_detach, (Datum)0);

    chunk =
        static_cast<QueueEntry *>(MemoryContextAlloc(TopMemoryContext, sizeof(QueueEntry) * chunk_entries));
    payload = static_cast<core::Payload *>(MemoryContextAlloc(TopMemoryContext, sizeof(core::Payload)));
    MemoryContext context =
        AllocSetContextCreate(TopMemoryContext, "pg_poolguard publisher", ALLOCSET_DEFAULT_SIZES);

    ereport(DEBUG1, (errmsg("pg_poolguard publisher started for database %u", my_database)));

    TimestampTz idle_since = GetCurrentTimestamp();
    for (;;)
    {
        CHECK_FOR_INTERRUPTS();
        if (ConfigReloadPending)
        {
            ConfigReloadPending = false;
            ProcessConfigFile(PGC_SIGHUP);
        }

        /* Reset before looking for work: a commit after the look sets the latch again. */
        ResetLatch(MyLatch);
        if (has_work())
        {
            if (guc_publish_delay_ms > 0)
                sleep_ms(guc_publish_delay_ms);
            if (!publish_all_safely(context))
                sleep_ms(error_backoff_ms);
            idle_since = GetCurrentTimestamp();
            continue;
        }

        long idle_left = TimestampDifferenceMilliseconds(
            GetCurrentTimestamp(), TimestampTzPlusMilliseconds(idle_since, guc_publisher_idle_timeout_ms));
        if (idle_left <= 0 && retire())
            proc_exit(0);
        (void)WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, Max(idle_left, 1L),
                        PG_WAIT_EXTENSION);
    }
}
