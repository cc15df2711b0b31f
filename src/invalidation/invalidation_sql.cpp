/*
 * invalidation_sql.cpp — the SQL face of cache invalidation besides invalidate():
 * cache_generation(), the invalidation_trigger() and tracking_trigger() trigger functions
 * (tracking_trigger is what poolguard.track_table() installs), the stats functions and
 * publisher_pids() (how a listener tells the publisher's notifications from forged ones).
 */
#include "core/invalidation/entry_lists.h"
#include "core/invalidation/row_key.h"

#include "invalidation/invalidation_internal.h"

#include "pg/guard.h"
#include "pg/shmem.h"

namespace
{

using namespace poolguard;

/* Schedules the invalidation of `column`'s value in `tuple` (NULL: nothing to invalidate). */
char *column_key(HeapTuple tuple, TupleDesc desc, int attnum)
{
    if (tuple == nullptr)
        return nullptr;
    return SPI_getvalue(tuple, desc, attnum); /* NULL for a NULL value */
}

/*
 * Row keys a transaction's tracking triggers publish one by one; past this, each further row
 * publishes its whole row scope instead (one de-duplicated item), so that a bulk write costs
 * the commit (which publishes its items under the invalidation lock) a bounded number of items.
 */
constexpr int max_tracked_keys_per_transaction = 1000;
TransactionId tracked_keys_xid = InvalidTransactionId;
int tracked_keys = 0;

void schedule_key(const char *scope, int scope_len, const char *key)
{
    if (key == nullptr)
        return;
    int key_len = (int)strlen(key);
    invalidation_validate(scope, scope_len, key, key_len);
    invalidation_schedule(scope, scope_len, key, key_len);
}

/* What the rows of one statement share in tracking_trigger() (in fn_extra). */
struct TrackingPlan
{
    Oid tgoid;
    Oid relid;
    const char *row_scope;
    const char *table_scope;
    int row_scope_len;
    int table_scope_len;
    int ncolumns;
    int *attnums;
    FmgrInfo *output; /* the key columns' output functions */
};

TrackingPlan *tracking_plan(FmgrInfo *flinfo, Trigger *trigger, Relation rel, bool for_statement)
{
    const char *name = trigger->tgname;
    MemoryContext mcxt = flinfo->fn_mcxt;
    TrackingPlan *plan = static_cast<TrackingPlan *>(MemoryContextAllocZero(mcxt, sizeof(TrackingPlan)));
    plan->tgoid = trigger->tgoid;
    plan->relid = RelationGetRelid(rel);
    plan->row_scope = trigger->tgargs[0];
    plan->table_scope = trigger->tgargs[1];
    plan->row_scope_len = (int)strlen(plan->row_scope);
    plan->table_scope_len = (int)strlen(plan->table_scope);
    invalidation_validate(plan->row_scope, plan->row_scope_len, nullptr, 0);
    invalidation_validate(plan->table_scope, plan->table_scope_len, nullptr, 0);
    plan->ncolumns = trigger->tgnargs - 2;
    if (!for_statement)
    {
        if (plan->ncolumns < 1)
            ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                            errmsg("trigger \"%s\" names no key column", name),
                            errhint("Run poolguard.track_table() again to recreate it.")));
        TupleDesc desc = rel->rd_att;
        plan->attnums = static_cast<int *>(MemoryContextAlloc(mcxt, sizeof(int) * plan->ncolumns));
        plan->output =
            static_cast<FmgrInfo *>(MemoryContextAllocZero(mcxt, sizeof(FmgrInfo) * plan->ncolumns));
        for (int i = 0; i < plan->ncolumns; i++)
        {
            /* Attribute numbers by name: a partition's columns may be numbered unlike its parent's. */
            int attnum = SPI_fnumber(desc, trigger->tgargs[2 + i]);
            if (attnum <= 0)
                ereport(ERROR, (errcode(ERRCODE_UNDEFINED_COLUMN),
                                errmsg("trigger \"%s\": column \"%s\" does not exist in table \"%s\"", name,
                                       trigger->tgargs[2 + i], RelationGetRelationName(rel)),
                                errdetail("The primary key changed after the table was tracked."),
                                errhint("Run poolguard.track_table() again to track the new primary key.")));
            plan->attnums[i] = attnum;
            Oid output_fn;
            bool is_varlena;
            getTypeOutputInfo(TupleDescAttr(desc, attnum - 1)->atttypid, &output_fn, &is_varlena);
            fmgr_info_cxt(output_fn, &plan->output[i], mcxt);
        }
    }
    flinfo->fn_extra = plan;
    return plan;
}

} // namespace

/* poolguard.cache_generation(scope text, key text default null): lock-free, shared memory only. */
POOLGUARD_FUNCTION(poolguard_cache_generation)
{
    require_shared_memory();
    text *scope = PG_ARGISNULL(0) ? nullptr : PG_GETARG_TEXT_PP(0);
    text *key = PG_ARGISNULL(1) ? nullptr : PG_GETARG_TEXT_PP(1);
    const char *scope_data = scope ? VARDATA_ANY(scope) : nullptr;
    int scope_len = scope ? (int)VARSIZE_ANY_EXHDR(scope) : 0;
    const char *key_data = key ? VARDATA_ANY(key) : nullptr;
    int key_len = key ? (int)VARSIZE_ANY_EXHDR(key) : 0;

    invalidation_validate(scope_data, scope_len, key_data, key_len, false);
    PG_RETURN_INT64((int64)invalidation_current_generation(scope_data, scope_len, key_data, key_len));
}

/*
 * poolguard.invalidation_trigger(scope, column [, column ...]): row-level AFTER trigger that
 * invalidates (scope, value) for each column's value in NEW and in OLD (once when equal;
 * NULL values are skipped).  As a statement-level trigger on TRUNCATE it invalidates the scope.
 */
POOLGUARD_FUNCTION(poolguard_invalidation_trigger)
{
    require_shared_memory();
    if (!CALLED_AS_TRIGGER(fcinfo))
        ereport(ERROR,
                (errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
                 errmsg("poolguard.invalidation_trigger() must be called as a trigger"),
                 errhint("Use it in CREATE TRIGGER ... AFTER INSERT OR UPDATE OR DELETE ... FOR EACH ROW "
                         "EXECUTE FUNCTION poolguard.invalidation_trigger('scope', 'key_column').")));
    TriggerData *trigdata = (TriggerData *)fcinfo->context;
    Trigger *trigger = trigdata->tg_trigger;
    const char *name = trigger->tgname;

    if (!TRIGGER_FIRED_AFTER(trigdata->tg_event))
        ereport(
            ERROR,
            (errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
             errmsg("trigger \"%s\" must be an AFTER trigger", name),
             errdetail(
                 "An invalidation must describe the row as it was stored, which only AFTER triggers see."),
             errhint("Recreate the trigger with AFTER instead of BEFORE or INSTEAD OF.")));
    if (trigger->tgnargs < 1)
        ereport(
            ERROR,
            (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
             errmsg("trigger \"%s\" names no invalidation scope", name),
             errdetail(
                 "poolguard.invalidation_trigger() takes the scope and then one or more key column names."),
             errhint("Use EXECUTE FUNCTION poolguard.invalidation_trigger('scope', 'key_column').")));

    const char *scope = trigger->tgargs[0];
    int scope_len = (int)strlen(scope);
    invalidation_validate(scope, scope_len, nullptr, 0);

    if (TRIGGER_FIRED_FOR_STATEMENT(trigdata->tg_event))
    {
        if (!TRIGGER_FIRED_BY_TRUNCATE(trigdata->tg_event))
            ereport(ERROR,
                    (errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
                     errmsg("trigger \"%s\" must be fired for each row", name),
                     errdetail(
                         "A statement-level trigger does not see the keys of the changed rows; only TRUNCATE "
                         "is supported at statement level, where it invalidates the whole scope."),
                     errhint("Recreate the trigger with FOR EACH ROW.")));
        invalidation_schedule(scope, scope_len, nullptr, 0);
        return PointerGetDatum(nullptr);
    }

    if (trigger->tgnargs < 2)
        ereport(
            ERROR,
            (errcode(ERRCODE_INVALID_PARAMETER_VALUE), errmsg("trigger \"%s\" names no key column", name),
             errdetail(
                 "poolguard.invalidation_trigger() takes the scope and then one or more key column names."),
             errhint("Use EXECUTE FUNCTION poolguard.invalidation_trigger('%s', 'key_column').", scope)));

    TupleDesc desc = trigdata->tg_relation->rd_att;
    HeapTuple old_row = nullptr;
    HeapTuple new_row = nullptr;
    if (TRIGGER_FIRED_BY_INSERT(trigdata->tg_event))
        new_row = trigdata->tg_trigtuple;
    else if (TRIGGER_FIRED_BY_DELETE(trigdata->tg_event))
        old_row = trigdata->tg_trigtuple;
    else
    {
        old_row = trigdata->tg_trigtuple;
        new_row = trigdata->tg_newtuple;
    }

    for (int i = 1; i < trigger->tgnargs; i++)
    {
        const char *column = trigger->tgargs[i];
        int attnum = SPI_fnumber(desc, column);
        if (attnum <= 0)
            ereport(
                ERROR,
                (errcode(ERRCODE_UNDEFINED_COLUMN),
                 errmsg("trigger \"%s\": column \"%s\" does not exist in table \"%s\"", name, column,
                        RelationGetRelationName(trigdata->tg_relation)),
                 errdetail(
                     "The arguments after the scope name the columns whose values are the invalidated keys."),
                 errhint("Recreate the trigger with existing column names (case-sensitive).")));

        char *new_key = column_key(new_row, desc, attnum);
        char *old_key = column_key(old_row, desc, attnum);
        schedule_key(scope, scope_len, new_key);
        if (old_key != nullptr && (new_key == nullptr || strcmp(old_key, new_key) != 0))
            schedule_key(scope, scope_len, old_key);
    }
    return PointerGetDatum(nullptr);
}

/*
 * poolguard.tracking_trigger(row_scope, table_scope, key_column [, ...]): what
 * poolguard.track_table() installs (extension/track.sql).  As a row-level AFTER trigger it
 * invalidates (row_scope, key) for the row's primary key in OLD and in NEW (once when equal; a
 * composite key is a JSON array, core/invalidation/row_key.h; a key longer than an invalidation
 * key may be, or one with a NULL part, invalidates the whole row_scope instead) and the whole table_scope; as
 * a statement-level trigger on TRUNCATE it invalidates both scopes whole.  Cost per written row: one
 * output-function call per key column and two entries of the transaction's de-duplicated pending list (the
 * table_scope entry is shared by every row of the transaction).  Past max_tracked_keys_per_transaction row
 * keys in one transaction, rows publish their whole row_scope instead.
 */
POOLGUARD_FUNCTION(poolguard_tracking_trigger)
{
    require_shared_memory();
    if (!CALLED_AS_TRIGGER(fcinfo))
        ereport(ERROR, (errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
                        errmsg("poolguard.tracking_trigger() must be called as a trigger"),
                        errhint("Use poolguard.track_table('table_name') to install it.")));
    TriggerData *trigdata = (TriggerData *)fcinfo->context;
    Trigger *trigger = trigdata->tg_trigger;
    const char *name = trigger->tgname;
    if (!TRIGGER_FIRED_AFTER(trigdata->tg_event) || trigger->tgnargs < 2)
        ereport(ERROR, (errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
                        errmsg("trigger \"%s\" is not a poolguard.track_table() trigger", name),
                        errdetail("poolguard.tracking_trigger() runs AFTER each row with the row scope, the "
                                  "table scope and the key columns as arguments."),
                        errhint("Use poolguard.track_table('table_name') to install it.")));

    /*
     * What every row of this statement shares — the scopes, validated once, the key columns'
     * numbers and output functions — is computed at the statement's first row and kept in
     * fn_extra (the executor's per-trigger FmgrInfo, freed with the query).  Keyed by trigger
     * and relation: a partition's columns may be numbered unlike its parent's.
     */
    Relation rel = trigdata->tg_relation;
    TrackingPlan *plan = static_cast<TrackingPlan *>(fcinfo->flinfo->fn_extra);
    if (plan == nullptr || plan->tgoid != trigger->tgoid || plan->relid != RelationGetRelid(rel))
        plan = tracking_plan(fcinfo->flinfo, trigger, rel, TRIGGER_FIRED_FOR_STATEMENT(trigdata->tg_event));
    const char *row_scope = plan->row_scope;
    const char *table_scope = plan->table_scope;
    int row_scope_len = plan->row_scope_len;
    int table_scope_len = plan->table_scope_len;

    if (TRIGGER_FIRED_FOR_STATEMENT(trigdata->tg_event))
    {
        if (!TRIGGER_FIRED_BY_TRUNCATE(trigdata->tg_event))
            ereport(ERROR, (errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
                            errmsg("trigger \"%s\" must be fired for each row", name),
                            errhint("Use poolguard.track_table('table_name') to install it.")));
        invalidation_schedule(row_scope, row_scope_len, nullptr, 0);
        invalidation_schedule(table_scope, table_scope_len, nullptr, 0);
        return PointerGetDatum(nullptr);
    }

    int ncolumns = plan->ncolumns;
    TupleDesc desc = rel->rd_att;
    /* INSERT and DELETE: the one row; UPDATE: the old row and the new one. */
    HeapTuple rows[2] = {trigdata->tg_trigtuple,
                         TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event) ? trigdata->tg_newtuple : nullptr};

    /* The row was written, so the transaction has an xid: it tells this transaction from the last. */
    TransactionId xid = GetTopTransactionIdIfAny();
    if (xid != tracked_keys_xid)
    {
        tracked_keys_xid = xid;
        tracked_keys = 0;
    }
    if (tracked_keys >= max_tracked_keys_per_transaction)
    {
        invalidation_schedule(row_scope, row_scope_len, nullptr, 0);
        invalidation_schedule(table_scope, table_scope_len, nullptr, 0);
        return PointerGetDatum(nullptr);
    }

    const char **parts = static_cast<const char **>(palloc(sizeof(char *) * ncolumns));
    char key[max_key_bytes + 1];
    char first_key[max_key_bytes + 1];
    bool have_first = false;
    bool whole_scope = false;
    for (HeapTuple row : rows)
    {
        if (row == nullptr)
            continue;
        bool has_null = false;
        for (int i = 0; i < ncolumns; i++)
        {
            bool isnull;
            Datum value = heap_getattr(row, plan->attnums[i], desc, &isnull);
            parts[i] = isnull ? nullptr : OutputFunctionCall(&plan->output[i], value);
            if (isnull)
                has_null = true;
        }
        if (has_null)
        {
            whole_scope = true; /* not a primary key any more: be safe */
            continue;
        }
        std::size_t len = core::row_key(parts, ncolumns, key, sizeof(key));
        if (len > (std::size_t)max_key_bytes)
        {
            whole_scope = true;
            continue;
        }
        if (have_first && strcmp(first_key, key) == 0)
            continue;
        invalidation_schedule(row_scope, row_scope_len, key, (int)len);
        tracked_keys++;
        if (!have_first)
        {
            memcpy(first_key, key, len + 1);
            have_first = true;
        }
    }
    if (whole_scope)
        invalidation_schedule(row_scope, row_scope_len, nullptr, 0);
    invalidation_schedule(table_scope, table_scope_len, nullptr, 0);
    return PointerGetDatum(nullptr);
}

namespace poolguard
{

int invalidation_copy_scope_counts(InvalidationsByScope **counts, bool ascii_only)
{
    InvalidationsByScope *out =
        static_cast<InvalidationsByScope *>(palloc0(sizeof(InvalidationsByScope) * (max_scope_stats + 1)));
    ScopeStats *rows = static_cast<ScopeStats *>(palloc(sizeof(ScopeStats) * (max_scope_stats + 1)));
    int nrows = 0;
    int n = 0;
    if (invalidation_shared != nullptr)
    {
        /* Plain data only under the lock: the rows are copied, converted after. */
        LWLockAcquire(invalidation_shared->lock, LW_SHARED);
        for (int i = 0; i <= max_scope_stats; i++)
        {
            const ScopeStats *st =
                i < max_scope_stats ? &invalidation_shared->scopes[i] : &invalidation_shared->other_scopes;
            if (st->invalidations == 0 || (i < max_scope_stats && !OidIsValid(st->database)))
                continue;
            rows[nrows] = *st;
            if (i == max_scope_stats)
                rows[nrows].scope[0] = '\0';
            nrows++;
        }
        LWLockRelease(invalidation_shared->lock);
    }
    /* Each database's bytes become valid UTF-8 (converted from its encoding, or escaped). */
    char shown[core::display_utf8_room(max_scope_bytes)];
    for (int r = 0; r < nrows; r++)
    {
        core::display_utf8(rows[r].scope, strlen(rows[r].scope), rows[r].encoding == PG_UTF8, ascii_only,
                           shown);
        int k = 0;
        while (k < n && strcmp(out[k].scope, shown) != 0)
            k++;
        if (k == n)
            strlcpy(out[n++].scope, shown, sizeof(out[k].scope));
        out[k].invalidations += rows[r].invalidations;
    }
    pfree(rows);
    *counts = out;
    return n;
}

DatabasePublishCounts invalidation_database_counts(Oid database)
{
    DatabasePublishCounts out = {0, 0, 0};
    if (invalidation_shared == nullptr || !OidIsValid(database))
        return out;
    /* Plain data only under the lock. */
    LWLockAcquire(invalidation_shared->lock, LW_SHARED);
    for (int i = 0; i < max_publishers; i++)
    {
        const PublisherSlot *p = &invalidation_shared->publishers[i];
        if (p->database == database)
        {
            out.notifications = p->notifications;
            out.items_published = p->items_published;
            out.resyncs = p->resyncs;
            break;
        }
    }
    LWLockRelease(invalidation_shared->lock);
    return out;
}

int invalidation_copy_publisher_states(PublisherState **states)
{
    *states = static_cast<PublisherState *>(palloc0(sizeof(PublisherState) * max_publishers));
    if (invalidation_shared == nullptr)
        return 0;
    int count = 0;
    /* Plain data only under the lock. */
    LWLockAcquire(invalidation_shared->lock, LW_SHARED);
    for (int i = 0; i < max_publishers; i++)
    {
        const PublisherSlot *p = &invalidation_shared->publishers[i];
        if (p->database == InvalidOid)
            continue;
        PublisherState *s = &(*states)[count++];
        s->database = p->database;
        s->running = p->pid != 0;
        s->pending = (uint64)p->items.count;
        s->start_failures = p->start_failures;
    }
    LWLockRelease(invalidation_shared->lock);
    return count;
}

} // namespace poolguard

/* Rows of poolguard.invalidation_stats: this database's scopes (and the overflow row). */
POOLGUARD_FUNCTION(poolguard_invalidation_stats)
{
    require_shared_memory();
    ReturnSetInfo *rsinfo = (ReturnSetInfo *)fcinfo->resultinfo;
    InitMaterializedSRF(fcinfo, 0);

    /* Copied under the lock, emitted after it (tuplestore calls may raise errors). */
    int count = 0;
    ScopeStats *rows = static_cast<ScopeStats *>(palloc(sizeof(ScopeStats) * (max_scope_stats + 1)));
    LWLockAcquire(invalidation_shared->lock, LW_SHARED);
    for (int i = 0; i < max_scope_stats; i++)
        if (invalidation_shared->scopes[i].database == MyDatabaseId)
            rows[count++] = invalidation_shared->scopes[i];
    if (invalidation_shared->other_scopes.invalidations > 0)
        rows[count++] = invalidation_shared->other_scopes;
    LWLockRelease(invalidation_shared->lock);

    for (int i = 0; i < count; i++)
    {
        Datum values[4];
        bool nulls[4] = {false, false, false, false};
        if (rows[i].database == InvalidOid)
            nulls[0] = true; /* the overflow row */
        else
            values[0] = CStringGetTextDatum(rows[i].scope);
        values[1] = Int64GetDatum((int64)rows[i].invalidations);
        values[2] = Int64GetDatum((int64)rows[i].last_generation);
        values[3] = TimestampTzGetDatum(rows[i].last_invalidated_at);
        tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
    }
    return (Datum)0;
}

/* Rows of poolguard.invalidation_publishers: one per database with a publisher slot. */
POOLGUARD_FUNCTION(poolguard_invalidation_publishers)
{
    require_shared_memory();
    ReturnSetInfo *rsinfo = (ReturnSetInfo *)fcinfo->resultinfo;
    InitMaterializedSRF(fcinfo, 0);

    int count = 0;
    PublisherSlot *rows = static_cast<PublisherSlot *>(palloc(sizeof(PublisherSlot) * max_publishers));
    LWLockAcquire(invalidation_shared->lock, LW_SHARED);
    for (int i = 0; i < max_publishers; i++)
        if (invalidation_shared->publishers[i].database != InvalidOid)
            rows[count++] = invalidation_shared->publishers[i];
    /* entries in use, all databases */
    uint64 ring_used = invalidation_shared->queue_size - invalidation_shared->free_entries.count;
    LWLockRelease(invalidation_shared->lock);

    for (int i = 0; i < count; i++)
    {
        const PublisherSlot *p = &rows[i];
        constexpr int ncols = 13;
        Datum values[ncols];
        bool nulls[ncols] = {};
        values[0] = ObjectIdGetDatum(p->database);
        values[1] = Int32GetDatum(p->pid);
        nulls[1] = p->pid == 0;
        values[2] = Int64GetDatum((int64)p->items.count);
        values[3] = Int64GetDatum((int64)ring_used);
        values[4] = Int64GetDatum((int64)p->publisher_starts);
        values[5] = Int64GetDatum((int64)p->start_failures);
        values[6] = Int64GetDatum((int64)p->notifications);
        values[7] = Int64GetDatum((int64)p->items_published);
        values[8] = Int64GetDatum((int64)p->resyncs);
        values[9] = Int64GetDatum((int64)p->ring_overflows);
        values[10] = Int64GetDatum((int64)p->queue_warnings);
        values[11] = Float8GetDatum(p->last_queue_usage);
        values[12] = TimestampTzGetDatum(p->last_publish_at);
        nulls[12] = p->last_publish_at == 0;
        tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
    }
    return (Datum)0;
}

/*
 * poolguard.publisher_pids(): the pids of the running publisher(s) of the caller's current
 * database — nothing about other databases.  Executable by PUBLIC: a listener compares a
 * notification's sender pid with these, because any role that may connect may NOTIFY on the
 * channel.  (A publisher's pid is no secret within its database: pg_stat_activity shows it.)
 */
POOLGUARD_FUNCTION(poolguard_publisher_pids)
{
    require_shared_memory();
    ReturnSetInfo *rsinfo = (ReturnSetInfo *)fcinfo->resultinfo;
    InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);

    int count = 0;
    int pids[max_publishers];
    LWLockAcquire(invalidation_shared->lock, LW_SHARED);
    for (int i = 0; i < max_publishers; i++)
        if (invalidation_shared->publishers[i].database == MyDatabaseId &&
            invalidation_shared->publishers[i].pid != 0)
            pids[count++] = invalidation_shared->publishers[i].pid;
    LWLockRelease(invalidation_shared->lock);

    for (int i = 0; i < count; i++)
    {
        Datum value = Int32GetDatum(pids[i]);
        bool isnull = false;
        tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, &value, &isnull);
    }
    return (Datum)0;
}
