/*
 * worker.cpp — the life cycle of the "pg_poolguard worker" background worker.
 *
 * It connects to poolguard.database, then loops: run one cycle (reaper_cycle, errors caught and
 * logged so one bad cycle never kills it), sleep on its latch until the next deadline, reload the
 * configuration on SIGHUP.  SIGTERM exits with code 1 so the postmaster restarts it after
 * bgw_restart_time (pg_terminate_backend on the worker is survivable; shutdown is not affected).
 *
 * A missing poolguard.database must not become a crash loop or a log flood: the first failed
 * connection marks shared memory, and the restarted worker then connects to no database, polls
 * pg_database each second and logs one error per backoff step (1 s, 2 s, 4 s ... 5 min) until
 * the database exists, then restarts itself connected to it.
 */
#include "worker/worker.h"

#include "pg/bgworker.h"
#include "reaper/reaper.h"
#include "pg/guard.h"
#include "pg/guc.h"
#include "invalidation/invalidation.h"
#include "pg/shmem.h"
#include "enforce/enforce.h"

#include <malloc.h>

namespace poolguard
{

namespace
{

constexpr int restart_seconds = 1;
constexpr long database_poll_ms = 1000;
constexpr long max_log_backoff_ms = 5L * 60 * 1000;
constexpr long error_backoff_ms = 5000;

bool connected_to_database = false; /* BackgroundWorkerInitializeConnection returned */

/* on_shmem_exit: remembers that connecting to poolguard.database failed (FATAL in InitPostgres). */
void note_connect_failure(int code, Datum arg)
{
    if (!connected_to_database && worker_state != nullptr)
        pg_atomic_write_u32(&worker_state->database_missing, 1);
}

/* before_shmem_exit: forget our latch so nobody sets it after we are gone. */
void worker_detach(int code, Datum arg)
{
    if (worker_state == nullptr)
        return;
    SpinLockAcquire(&worker_state->latch_mutex);
    worker_state->worker_latch = nullptr;
    SpinLockRelease(&worker_state->latch_mutex);
    pg_atomic_write_u32(&worker_state->worker_pid, 0);
}

/*
 * Connected to no database, only a heap scan of the shared catalog works (the autovacuum
 * launcher reads pg_database the same way); get_database_oid's index scan does not.
 */
bool database_exists(const char *name)
{
    bool exists = false;

    StartTransactionCommand();
    (void)GetTransactionSnapshot();
    Relation rel = table_open(DatabaseRelationId, AccessShareLock);
    TableScanDesc scan = table_beginscan_catalog(rel, 0, NULL);
    HeapTuple tuple;
    while (!exists && (tuple = heap_getnext(scan, ForwardScanDirection)) != NULL)
    {
        Form_pg_database db = (Form_pg_database)GETSTRUCT(tuple);
        exists = strcmp(NameStr(db->datname), name) == 0;
    }
    table_endscan(scan);
    table_close(rel, AccessShareLock);
    CommitTransactionCommand();
    return exists;
}

/* Connected to no database: wait until poolguard.database exists, then exit to be restarted. */
void wait_for_database(void)
{
    long log_interval_ms = 1000;
    TimestampTz next_log = 0;

    BackgroundWorkerInitializeConnection(NULL, NULL, 0);
    pgstat_report_appname("pg_poolguard worker");

    for (;;)
    {
        CHECK_FOR_INTERRUPTS();
        if (ConfigReloadPending)
        {
            ConfigReloadPending = false;
            ProcessConfigFile(PGC_SIGHUP);
        }
        if (database_exists(guc_database))
        {
            pg_atomic_write_u32(&worker_state->database_missing, 0);
            ereport(LOG, (errmsg("pg_poolguard worker found database \"%s\"", guc_database),
                          errdetail("The worker restarts to connect to it.")));
            proc_exit(1);
        }
        TimestampTz now = GetCurrentTimestamp();
        if (now >= next_log)
        {
            ereport(LOG, (errcode(ERRCODE_UNDEFINED_DATABASE),
                          errmsg("pg_poolguard worker could not connect to database \"%s\"", guc_database),
                          errdetail("The database does not exist. The worker checks again every second and "
                                    "logs this again in %ld s.",
                                    log_interval_ms / 1000),
                          errhint("Create the database or set poolguard.database in postgresql.conf and "
                                  "restart the server.")));
            next_log = TimestampTzPlusMilliseconds(now, log_interval_ms);
            log_interval_ms = Min(log_interval_ms * 2, max_log_backoff_ms);
        }
        (void)WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, database_poll_ms,
                        PG_WAIT_EXTENSION);
        ResetLatch(MyLatch);
    }
}

/* Runs one cycle; an ERROR is logged and turned into a backoff, never into an exit. */
long run_cycle_safely(MemoryContext cycle_context)
{
    long sleep_ms = error_backoff_ms;
    MemoryContext old = MemoryContextSwitchTo(cycle_context);

    ErrorData *error = run_catching_errors("worker cycle", cycle_context,
                                           [&sleep_ms]()
                                           {
                                               sleep_ms = reaper_cycle();
                                               /* The shared segment's residency for poolguard.memory and
                                                * /metrics (a mincore() walk). */
                                               memory_sample_segment_if_due();
                                           });
    if (error != nullptr)
    {
        ereport(LOG, (errcode(error->sqlerrcode),
                      errmsg("pg_poolguard worker could not complete a cycle: %s", error->message),
                      error->detail ? errdetail("%s", error->detail) : 0,
                      errhint("The worker retries in %ld ms.", (long)error_backoff_ms)));
        sleep_ms = error_backoff_ms;
    }

    MemoryContextSwitchTo(old);
    MemoryContextReset(cycle_context);
    return sleep_ms;
}

} // namespace

void worker_register(void)
{
    BackgroundWorker worker;

    init_background_worker(&worker, "poolguard_worker_main", "pg_poolguard worker", restart_seconds);
    /*
     * From a consistent state on: a hot standby reaps and caps as a primary does (it only reads
     * the replicated policy table; nothing it does writes), and the worker carries on unchanged
     * when the standby is promoted.
     */
    worker.bgw_start_time = BgWorkerStart_ConsistentState;
    RegisterBackgroundWorker(&worker);
}

} // namespace poolguard

using namespace poolguard;

extern "C" void poolguard_worker_main(Datum arg)
{
    pqsignal(SIGHUP, SignalHandlerForConfigReload);
    pqsignal(SIGTERM, die);
    BackgroundWorkerUnblockSignals();

    /*
     * Every scan builds and frees PostgreSQL's backend-status snapshot (about 1.5 KB per
     * backend slot).  With glibc's default thresholds those blocks are mmap'd and unmapped each
     * time, so every scan pays fresh page faults; keeping them in the heap makes the memory
     * reusable from one scan to the next.
     */
#ifdef M_MMAP_THRESHOLD
    mallopt(M_MMAP_THRESHOLD, 64 * 1024 * 1024);
    mallopt(M_TRIM_THRESHOLD, 128 * 1024 * 1024);
#endif

    pg_atomic_fetch_add_u64(&worker_state->worker_starts, 1);

    if (pg_atomic_read_u32(&worker_state->database_missing) != 0)
        wait_for_database();

    on_shmem_exit(note_connect_failure, (Datum)0);
    connect_background_worker(guc_database, InvalidOid, "pg_poolguard worker", LOG);
    connected_to_database = true;
    pgstat_report_appname("pg_poolguard worker");

    before_shmem_exit(worker_detach, (Datum)0);
    SpinLockAcquire(&worker_state->latch_mutex);
    worker_state->worker_latch = MyLatch;
    SpinLockRelease(&worker_state->latch_mutex);
    pg_atomic_write_u32(&worker_state->worker_pid, (uint32)MyProcPid);

    ereport(LOG, (errmsg("pg_poolguard worker started in database \"%s\"", guc_database)));

    MemoryContext cycle_context =
        AllocSetContextCreate(TopMemoryContext, "pg_poolguard cycle", ALLOCSET_DEFAULT_SIZES);

    for (;;)
    {
        CHECK_FOR_INTERRUPTS();
        if (ConfigReloadPending)
        {
            ConfigReloadPending = false;
            ProcessConfigFile(PGC_SIGHUP);
            ereport(LOG, (errmsg("pg_poolguard worker reloaded its configuration (naptime %d ms, enabled %s)",
                                 guc_naptime_ms, guc_enabled ? "on" : "off")));
        }

        /* Promoted since the last cycle?  Then every generation must read newer (no reader needed). */
        invalidation_raise_floor_after_recovery();
        long sleep_ms = run_cycle_safely(cycle_context);
        if (sleep_ms < 0)
            sleep_ms = 0;
        sleep_ms = Min(sleep_ms, (long)guc_naptime_ms);

        (void)WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, sleep_ms,
                        PG_WAIT_EXTENSION);
        ResetLatch(MyLatch);
    }
}

/* poolguard.worker_pid(): the running worker's pid, NULL when none runs. */
POOLGUARD_FUNCTION(poolguard_worker_pid)
{
    poolguard::require_shared_memory();
    uint32 pid = pg_atomic_read_u32(&poolguard::worker_state->worker_pid);
    if (pid == 0)
        PG_RETURN_NULL();
    PG_RETURN_INT32((int32)pid);
}
