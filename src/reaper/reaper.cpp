/*
 * reaper.cpp — the worker's cycle, poolguard.reap() and poolguard.reload(): load policies when
 * they changed, scan, reconcile the caps, act, and tell the worker loop when the next rule can
 * fire.
 */
#include "reaper/reaper.h"

#include "advice/advice.h"
#include "caps/caps.h"
#include "pg/guard.h"
#include "pg/guc.h"
#include "invalidation/invalidation.h"
#include "policy/policy.h"
#include "enforce/enforce.h"
#include "pg/shmem.h"
#include "pg/sql_version.h"
#include "stats/stats.h"

namespace poolguard
{

namespace
{

MemoryCache *memory_cache = nullptr;
ActionMemo *action_memo = nullptr;
/* When the worker last did its housekeeping (advice sample, memory samples, refill warnings). */
TimestampTz housekept_at = 0;
/* How long housekeeping may yield to due deadlines (reaper_cycle). */
constexpr int64 housekeeping_max_delay_ms = 1000;
/*
 * How often, at most, the housekeeping runs: its figures are per second or slower (advice
 * windows, a memory sample per session per poolguard.memory_sample_interval), and with a short
 * naptime it would otherwise cost more than the scan itself.
 */
constexpr int64 housekeeping_min_interval_ms = 100;
/* Scans a cycle adds for sessions that came due while it signalled (reaper_cycle). */
constexpr int max_rescans = 16;

/*
 * The one load → scan → reconcile sequence of reload() and reap() (the worker's cycle does the
 * same, but keeps the last good policies when the load fails):
 * load the policies if they changed (always when force), judge every session against the
 * policies in force, and recount the caps when a new set was loaded (never ends anyone).
 */
void refresh_and_scan(SessionScan *scan, bool force, MemoryCache *cache)
{
    bool loaded = policy_store_refresh(force);
    scan_sessions(scan, MemoryReads::as_rules_need, cache);
    if (loaded)
        caps_reconcile(scan);
}

/*
 * The worker's load: a failed load (a broken table, a privilege taken away, a setting gone
 * wrong) must not switch the guard off.  The policies published last stay in force and every
 * cycle says so, loudly, until a load succeeds; after a server restart nothing was published
 * yet, and the warning says that no policy is in force.
 */
bool refresh_keeping_last_good(void)
{
    /* After a failed load, every cycle tries again; otherwise only when there is something to see. */
    static bool last_load_failed = false;
    if (!last_load_failed && !policy_store_refresh_due())
        return false;
    bool loaded = false;
    MemoryContext context = CurrentMemoryContext;
    ErrorData *error = run_in_subtransaction(context, [&loaded]() { loaded = policy_store_refresh(false); });
    last_load_failed = error != nullptr;
    if (error == nullptr)
        return loaded;
    int in_force = policy_store_count();
    bool ever_loaded = policy_store_loaded_change_count() > 0;
    if (ever_loaded)
        ereport(
            WARNING,
            (errcode(error->sqlerrcode),
             errmsg("pg_poolguard worker could not load the policies: %s", error->message),
             errdetail("The %d policies loaded last stay in force until a load succeeds; the worker tries "
                       "again every cycle.",
                       in_force),
             errhint("Check poolguard.policy in database \"%s\" and the server log.", guc_database)));
    else
        ereport(
            WARNING,
            (errcode(error->sqlerrcode),
             errmsg("pg_poolguard worker could not load the policies: %s", error->message),
             errdetail("No policy is in force: none was loaded since the server started, so no cap applies "
                       "and sessions are judged by the server-wide defaults only."),
             errhint("Check poolguard.policy in database \"%s\" and the server log.", guc_database)));
    FreeErrorData(error);
    return false;
}

} // namespace

long reaper_cycle(void)
{
    if (memory_cache == nullptr)
    {
        memory_cache = memory_cache_create();
        action_memo = action_memo_create();
    }

    TimestampTz started = GetCurrentTimestamp();
    StartTransactionCommand();
    warn_if_sql_version_differs();
    /* Publishers that should run and do not (no worker slot, failed connection): retried here. */
    long publisher_retry_ms = invalidation_tend_publishers();

    SessionScan scan;
    bool loaded = refresh_keeping_last_good();
    scan_sessions(&scan, MemoryReads::as_rules_need, memory_cache);
    if (loaded)
        caps_reconcile(&scan);
    /*
     * Act first: nothing whose cost grows with the sessions (the advice's pass over them, up to
     * max_per_cycle /proc reads for the memory samples) stands between a deadline and its signal.
     * Sessions that came due meanwhile are scanned and signalled at once, before the bookkeeping
     * of the ones signalled before them (at most max_rescans times a cycle).
     */
    TimestampTz next_deadline = scan.next_deadline;
    if (guc_enabled)
    {
        ActionBatch *batch = action_batch_create();
        act_signal(batch, &scan, false, action_memo);
        if (next_deadline != DT_NOEND && next_deadline <= GetCurrentTimestamp())
        {
            /* In a subtransaction: a failed rescan must not cost the records of what was signalled. */
            MemoryContext outer = CurrentMemoryContext;
            MemoryContext rescan_context =
                AllocSetContextCreate(outer, "pg_poolguard rescan", ALLOCSET_DEFAULT_SIZES);
            ErrorData *error = run_in_subtransaction(
                outer,
                [&]()
                {
                    for (int rescans = 0; rescans < max_rescans && next_deadline != DT_NOEND &&
                                          next_deadline <= GetCurrentTimestamp();
                         rescans++)
                    {
                        MemoryContextReset(rescan_context);
                        MemoryContextSwitchTo(rescan_context);
                        SessionScan again;
                        scan_sessions(&again, MemoryReads::as_rules_need, memory_cache);
                        act_signal(batch, &again, false, action_memo);
                        next_deadline = again.next_deadline;
                        MemoryContextSwitchTo(outer);
                    }
                });
            MemoryContextSwitchTo(outer);
            MemoryContextDelete(rescan_context);
            if (error != nullptr)
            {
                ereport(
                    WARNING,
                    (errcode(error->sqlerrcode),
                     errmsg("pg_poolguard worker could not scan again for sessions due: %s", error->message),
                     errdetail("The sessions signalled so far are recorded; the next cycle scans again.")));
                FreeErrorData(error);
            }
        }
        (void)act_record(batch, nullptr, nullptr);
    }
    /*
     * Housekeeping yields to a deadline already due: when sessions come due one after the other
     * (a thousand going idle over a few hundred milliseconds), the next scan runs at once and the
     * housekeeping waits for a cycle with time to spare, at most housekeeping_max_delay_ms.  It
     * runs at most every housekeeping_min_interval_ms.
     */
    TimestampTz acted = GetCurrentTimestamp();
    bool due_now = next_deadline != DT_NOEND && next_deadline <= acted;
    int64 since = acted - housekept_at;
    if ((!due_now && since >= housekeeping_min_interval_ms * 1000) ||
        since >= housekeeping_max_delay_ms * 1000 || since < 0)
    {
        housekept_at = acted;
        /*
         * From the scan's rows, taken before acting: what the apps held and used, whatever the
         * policies just ended (the memory samples of the ended ones are still published: the next
         * memory_samples_take clears them).
         */
        advice_sample(&scan, memory_cache);
        /* Memory figures for the views and /metrics: a bounded share of the sessions each cycle. */
        memory_samples_take(&scan);
        refills_warn_fights();
    }
    CommitTransactionCommand();
    TimestampTz finished = GetCurrentTimestamp();
    stats_scan_done(finished, finished - started);

    long wait_ms = guc_naptime_ms;
    if (next_deadline != DT_NOEND)
        wait_ms = Max((long)((next_deadline - GetCurrentTimestamp() + 999) / 1000), 0L);
    if (publisher_retry_ms >= 0)
        wait_ms = Min(wait_ms, publisher_retry_ms);
    return wait_ms;
}

} // namespace poolguard

using namespace poolguard;

namespace
{

struct ReapResults
{
    Tuplestorestate *store;
    TupleDesc desc;
};

void reap_sink(const ActionRecord *rec, void *arg)
{
    ReapResults *results = static_cast<ReapResults *>(arg);
    Datum values[4];
    bool nulls[4] = {false, false, false, false};

    values[0] = Int32GetDatum(rec->pid);
    values[1] = CStringGetTextDatum(core::reason_name(rec->reason));
    if (rec->policy[0])
        values[2] = CStringGetTextDatum(rec->policy);
    else
        nulls[2] = true;
    values[3] = CStringGetTextDatum(action_name(rec->action));
    tuplestore_putvalues(results->store, results->desc, values, nulls);
}

} // namespace

/* poolguard.reap(dry_run bool default false): one pass now, in this backend. */
POOLGUARD_FUNCTION(poolguard_reap)
{
    require_shared_memory();
    if (PG_ARGISNULL(0))
        ereport(
            ERROR,
            (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED), errmsg("dry_run must not be NULL"),
             errhint("Call poolguard.reap() to act, or poolguard.reap(true) to see what would be done.")));
    bool dry_run = PG_GETARG_BOOL(0);

    ReturnSetInfo *rsinfo = (ReturnSetInfo *)fcinfo->resultinfo;
    InitMaterializedSRF(fcinfo, 0);
    ReapResults results = {rsinfo->setResult, rsinfo->setDesc};

    SessionScan scan;
    refresh_and_scan(&scan, false, nullptr);
    (void)act_on_scan(&scan, dry_run, nullptr, reap_sink, &results);
    return (Datum)0;
}

/*
 * poolguard.reload(): in poolguard.database, load now in this backend; elsewhere, or when this
 * transaction changed the policies itself (its own snapshot would see the uncommitted rows),
 * ask the worker — which sees committed policies only — and wait (bounded) until it has loaded.
 */
POOLGUARD_FUNCTION(poolguard_reload)
{
    require_shared_memory();

    if (in_policy_database() && !policy_change_pending())
    {
        SessionScan scan;
        refresh_and_scan(&scan, true, nullptr);
        wake_worker();
        PG_RETURN_INT32(policy_store_count());
    }

    uint64 wanted = policy_store_request_load();
    wake_worker();
    TimestampTz give_up = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), 10000);
    while (policy_store_loaded_change_count() < wanted)
    {
        if (GetCurrentTimestamp() >= give_up)
            ereport(
                ERROR,
                (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                 errmsg("the pg_poolguard worker did not load the policies within 10 seconds"),
                 errdetail(
                     "Policies live in database \"%s\"; from here, reload() asks the worker to load them.",
                     guc_database),
                 errhint("Check that the worker runs (poolguard.worker_pid()), or call reload() in database "
                         "\"%s\".",
                         guc_database)));
        (void)WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 10, PG_WAIT_EXTENSION);
        ResetLatch(MyLatch);
        CHECK_FOR_INTERRUPTS();
    }
    PG_RETURN_INT32(policy_store_count());
}
