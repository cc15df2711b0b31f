/*
 * views.cpp — set-returning functions behind poolguard.sessions, poolguard.terminations and
 * poolguard.app_summary.
 *
 * Visibility: a caller sees only the sessions (and recorded actions) of roles whose privileges
 * it has — its own — unless it is a member of pg_read_all_stats (pg_monitor), which sees all.
 * PUBLIC may use both views, so no role learns another role's applications, addresses or
 * habits through them.
 */
#include "pg/guard.h"
#include "pg/guc.h"
#include "enforce/enforce.h"
#include "invalidation/invalidation.h"
#include "pg/shmem.h"
#include "pg/datums.h"
#include "stats/stats.h"

namespace poolguard
{

bool app_identity_visible(const char *database, const char *role, bool other)
{
    if (database[0] == '\0')
        return false;
    return caller_may_see(other ? InvalidOid : get_role_oid(role, true));
}

void app_identity_columns(const char *database, const char *role, const char *application_name, bool other,
                          Datum *values, bool *nulls)
{
    values[0] = name_datum(database);
    values[1] = name_datum(role);
    nulls[1] = other;
    values[2] = CStringGetTextDatum(application_name);
    nulls[2] = other;
}

} // namespace poolguard

using namespace poolguard;

/*
 * poolguard.session_info() by SQL version, as pg_stat_statements does: each released signature
 * keeps its own C entry point, so a library newer than the installed SQL still serves it.
 *   1.0  poolguard_sessions          13 columns
 *   1.1  poolguard_session_info_1_1  14 columns (+ exempt_reason)
 *   1.2  poolguard_session_info_1_2  15 columns (+ memory_sampled_at)
 * private_memory is the worker's sample (samples.cpp) in every version: no entry point reads /proc.
 */
enum class SessionsApi
{
    v1_0,
    v1_1,
    v1_2
};

static const char *sessions_entry_point(SessionsApi api)
{
    return api == SessionsApi::v1_0   ? "poolguard_sessions"
           : api == SessionsApi::v1_1 ? "poolguard_session_info_1_1"
                                      : "poolguard_session_info_1_2";
}

static Datum sessions_internal(FunctionCallInfo fcinfo, SessionsApi api)
{
    require_shared_memory();
    ReturnSetInfo *rsinfo = (ReturnSetInfo *)fcinfo->resultinfo;
    InitMaterializedSRF(fcinfo, 0);

    /* The declared row must be the one this entry point was released with. */
    const int expected = api == SessionsApi::v1_0 ? 13 : api == SessionsApi::v1_1 ? 14 : 15;
    if (rsinfo->setDesc->natts != expected)
        ereport(
            ERROR,
            (errcode(ERRCODE_DATATYPE_MISMATCH),
             errmsg("expected %d output columns, not %d", expected, rsinfo->setDesc->natts),
             errdetail("C entry point %s serves session_info() of pg_poolguard %s.",
                       sessions_entry_point(api),
                       api == SessionsApi::v1_0   ? "1.0"
                       : api == SessionsApi::v1_1 ? "1.1"
                                                  : "1.2"),
             errhint("Run ALTER EXTENSION pg_poolguard UPDATE so that the SQL objects match the library.")));

    SessionScan scan;
    scan_sessions(&scan, MemoryReads::samples_visible, nullptr);

    for (int i = 0; i < scan.count; i++)
    {
        const SessionRow *row = &scan.rows[i];
        if (!caller_may_see(row->userid))
            continue;
        constexpr int ncols = 15;
        Datum values[ncols];
        bool nulls[ncols];
        memset(nulls, 0, sizeof(nulls));

        values[0] = Int32GetDatum(row->pid);
        const char *role = OidIsValid(row->userid) ? GetUserNameFromId(row->userid, true) : NULL;
        if (role)
            values[1] = name_datum(role);
        else
            nulls[1] = true;
        const char *db = OidIsValid(row->dbid) ? get_database_name(row->dbid) : NULL;
        if (db)
            values[2] = name_datum(db);
        else
            nulls[2] = true;
        values[3] = CStringGetTextDatum(row->application_name);
        nulls[4] = !inet_datum(row->client, &values[4]);
        values[5] = TimestampTzGetDatum(row->backend_start);
        values[6] = CStringGetTextDatum(state_name(row->raw_state));
        values[7] = TimestampTzGetDatum(row->state_change);
        bool idle = row->state == core::SessionState::idle ||
                    row->state == core::SessionState::idle_in_transaction ||
                    row->state == core::SessionState::idle_in_transaction_aborted;
        if (idle)
            values[8] = interval_datum(scan.now - row->state_change);
        else
            nulls[8] = true;
        if (row->private_memory >= 0)
            values[9] = Int64GetDatum(row->private_memory);
        else
            nulls[9] = true;
        if (row->policy >= 0)
            values[10] = CStringGetTextDatum(row_policy_name(&scan, row));
        else
            nulls[10] = true;
        if (row->exempt)
        {
            /* Never acted on: say so, and why (the policy it matches is still shown). */
            values[11] = CStringGetTextDatum("exempt");
            nulls[12] = true;
            values[13] = CStringGetTextDatum(guc_exempt_superusers && row->superuser    ? "superuser"
                                             : row->walsender && !guc_signal_walsenders ? "walsender"
                                                                                        : "exempt_roles");
        }
        else if (row->verdict.reason != core::Reason::none)
        {
            values[11] = CStringGetTextDatum(core::reason_name(row->verdict.reason));
            values[12] = TimestampTzGetDatum(scan.now);
        }
        else
        {
            nulls[11] = true;
            if (row->verdict.deadline != DT_NOEND)
                values[12] = TimestampTzGetDatum(row->verdict.deadline);
            else
                nulls[12] = true;
        }
        if (!row->exempt)
            nulls[13] = true;
        if (row->memory_at != 0)
            values[14] = TimestampTzGetDatum(row->memory_at);
        else
            nulls[14] = true;
        /* 1.0's row ends at deadline, 1.1's at exempt_reason: the first values are the same. */
        tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
    }
    return (Datum)0;
}

/* 1.0's entry point (13 columns): kept so that the library works before ALTER EXTENSION UPDATE. */
POOLGUARD_FUNCTION(poolguard_sessions)
{
    return sessions_internal(fcinfo, SessionsApi::v1_0);
}

POOLGUARD_FUNCTION(poolguard_session_info_1_1)
{
    return sessions_internal(fcinfo, SessionsApi::v1_1);
}

POOLGUARD_FUNCTION(poolguard_session_info_1_2)
{
    return sessions_internal(fcinfo, SessionsApi::v1_2);
}

POOLGUARD_FUNCTION(poolguard_termination_history)
{
    require_shared_memory();
    ReturnSetInfo *rsinfo = (ReturnSetInfo *)fcinfo->resultinfo;
    InitMaterializedSRF(fcinfo, 0);

    ActionRecord *records;
    int count = history_copy(&records);
    for (int i = 0; i < count; i++)
    {
        const ActionRecord *r = &records[i];
        if (!caller_may_see(r->roleid))
            continue;
        Datum values[13];
        bool nulls[13];
        memset(nulls, 0, sizeof(nulls));

        values[0] = TimestampTzGetDatum(r->at);
        values[1] = Int32GetDatum(r->pid);
        values[2] = name_datum(NameStr(r->role_name));
        values[3] = name_datum(NameStr(r->database_name));
        values[4] = CStringGetTextDatum(r->application_name);
        nulls[5] = !inet_datum(r->client, &values[5]);
        values[6] = CStringGetTextDatum(core::reason_name(r->reason));
        if (r->policy[0])
            values[7] = CStringGetTextDatum(r->policy);
        else
            nulls[7] = true;
        values[8] = CStringGetTextDatum(action_name(r->action));
        values[9] = CStringGetTextDatum(state_name(r->state));
        values[10] = interval_datum(r->state_duration);
        values[11] = interval_datum(r->backend_age);
        if (r->private_memory >= 0)
            values[12] = Int64GetDatum(r->private_memory);
        else
            nulls[12] = true;
        tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
    }
    return (Datum)0;
}

/* 1.0's name of termination_history() (same signature): its SQL still calls it until the update. */
POOLGUARD_LEGACY_ENTRY(poolguard_terminations, poolguard_termination_history)

/*
 * poolguard.app_summary_info(): what pg_poolguard did to each app identity (stats/app_stats.cpp),
 * with what its database's publisher delivered.  Rows of roles whose privileges the caller has;
 * pg_read_all_stats (pg_monitor) sees all, including each database's overflow row (role NULL).
 */
POOLGUARD_FUNCTION(poolguard_app_summary_info)
{
    require_shared_memory();
    ReturnSetInfo *rsinfo = (ReturnSetInfo *)fcinfo->resultinfo;
    InitMaterializedSRF(fcinfo, 0);

    AppCounters *apps;
    int count = stats_copy_app_counters(&apps);
    TimestampTz reset = stats_reset_time();
    for (int i = 0; i < count; i++)
    {
        const AppCounters *a = &apps[i];
        if (!app_identity_visible(a->database, a->role, a->other))
            continue;
        constexpr int ncols = 18;
        Datum values[ncols];
        bool nulls[ncols] = {};
        app_identity_columns(a->database, a->role, a->application_name, a->other, values, nulls);
        values[3] = Int64GetDatum(a->terminated);
        static const core::Reason reasons[] = {
            core::Reason::idle_timeout,       core::Reason::idle_in_transaction_timeout,
            core::Reason::max_connection_age, core::Reason::max_idle,
            core::Reason::max_idle_memory,    core::Reason::evict_idle};
        for (int r = 0; r < 6; r++)
            values[4 + r] = Int64GetDatum(a->by_reason[(int)reasons[r]]);
        values[10] = Int64GetDatum(a->cancelled);
        values[11] = Int64GetDatum(a->rejected);
        values[12] = Int64GetDatum(a->invalidations);
        Oid database = get_database_oid(a->database, true);
        DatabasePublishCounts pub = invalidation_database_counts(database);
        values[13] = Int64GetDatum((int64)pub.notifications);
        values[14] = Int64GetDatum((int64)pub.items_published);
        values[15] = Int64GetDatum((int64)pub.resyncs);
        nulls[13] = nulls[14] = nulls[15] = !OidIsValid(database);
        values[16] = TimestampTzGetDatum(a->last_event);
        nulls[16] = a->last_event == 0;
        values[17] = TimestampTzGetDatum(reset);
        tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
    }
    return (Datum)0;
}
