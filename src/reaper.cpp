/*
 * reaper.cpp — the worker's cycle and poolguard.reap(): load policies when they changed, scan,
 * act, and tell the worker loop when the next rule can fire.
 */
#include "actions.h"
#include "caps.h"
#include "guard.h"
#include "srf.h"
#include "guc.h"
#include "invalidation.h"
#include "policy_store.h"
#include "sessions.h"
#include "shmem.h"
#include "stats.h"
#include "worker.h"

namespace poolguard {

namespace {

uint64 loaded_change_count = 0;
Oid loaded_table = InvalidOid;
MemoryCache *memory_cache = nullptr;
ActionMemo *action_memo = nullptr;

/*
 * Reloads when a change committed, reload() asked, or the table appeared or vanished.
 * Returns true if it loaded.
 */
bool load_policies_if_changed(void)
{
    uint64 wanted = policy_store_change_count();
    Oid table = policy_table_oid();
    if (wanted == loaded_change_count && table == loaded_table)
        return false;
    int n = policy_store_load(wanted);
    if (table != loaded_table || n > 0 || loaded_change_count != 0)
        ereport(DEBUG1, (errmsg("pg_poolguard worker loaded %d policies", n)));
    loaded_change_count = wanted;
    loaded_table = table;
    return true;
}

}  // namespace

long worker_cycle(void)
{
    if (memory_cache == nullptr)
    {
        memory_cache = memory_cache_create();
        action_memo = action_memo_create();
    }

    TimestampTz started = GetCurrentTimestamp();
    StartTransactionCommand();
    /* Publishers that should run and do not (no worker slot, failed connection): retried here. */
    long publisher_retry_ms = invalidation_tend_publishers();
    bool loaded = load_policies_if_changed();

    SessionScan scan;
    scan_sessions(&scan, MemoryReads::as_rules_need, memory_cache);
    if (loaded)
        caps_reconcile(&scan);
    if (guc_enabled)
        (void) act_on_scan(&scan, false, action_memo, nullptr, nullptr);
    CommitTransactionCommand();
    TimestampTz finished = GetCurrentTimestamp();
    stats_scan_done(finished, finished - started);

    long wait_ms = guc_naptime_ms;
    if (scan.next_deadline != DT_NOEND)
        wait_ms = Max((long) ((scan.next_deadline - GetCurrentTimestamp() + 999) / 1000), 0L);
    if (publisher_retry_ms >= 0)
        wait_ms = Min(wait_ms, publisher_retry_ms);
    return wait_ms;
}

}  // namespace poolguard

using namespace poolguard;

namespace {

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

}  // namespace

/* poolguard.reap(dry_run bool default false): one pass now, in this backend. */
POOLGUARD_FUNCTION(poolguard_reap)
{
    require_shared_memory();
    if (PG_ARGISNULL(0))
        ereport(ERROR,
                (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
                 errmsg("dry_run must not be NULL"),
                 errhint("Call poolguard.reap() to act, or poolguard.reap(true) to see what would be done.")));
    bool dry_run = PG_GETARG_BOOL(0);

    ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
    materialized_srf(fcinfo);
    ReapResults results = {rsinfo->setResult, rsinfo->setDesc};

    if (in_policy_database() && policy_store_loaded_change_count() < policy_store_change_count())
        (void) policy_store_load(policy_store_change_count());

    SessionScan scan;
    scan_sessions(&scan, MemoryReads::as_rules_need, nullptr);
    (void) act_on_scan(&scan, dry_run, nullptr, reap_sink, &results);
    return (Datum) 0;
}
