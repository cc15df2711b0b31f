/*
 * metrics.cpp — gathers everything with PostgreSQL calls into plain arrays first, then renders
 * with core::MetricsText in a scope that calls no PostgreSQL function (so no std::string is
 * ever live across an ereport), then copies the text into palloc'd memory.
 *
 * Labels stay low-cardinality: policy names, states, reasons, and for the per-app families a
 * database and an application_name (bounded by the app stats table: app_stats_capacity rows,
 * app_stats_per_database per database).  Never pids, roles or keys: the per-app families sum
 * over roles.
 */
#include "metrics/metrics.h"

#include "caps/caps.h"
#include "invalidation/invalidation.h"
#include "pg/guard.h"
#include "pg/guc.h"
#include "enforce/enforce.h"
#include "pg/shmem.h"
#include "stats/stats.h"

#include "core/metrics/prometheus.h"

#include <cstdlib>
#include <new>

namespace poolguard
{

namespace
{

constexpr int nstates = 5;
const char *const state_labels[nstates] = {"active", "idle", "idle_in_transaction",
                                           "idle_in_transaction_aborted", "other"};

struct PolicyAgg
{
    char name[NAMEDATALEN];   /* "" = sessions no policy matches */
    int64 max_connections;    /* -1 = none */
    int64 idle_memory_budget; /* bytes, 0 = none */
    int64 sessions[nstates];
    int64 memory[nstates];    /* private memory (read_private_memory) of its sessions */
    double oldest_idle;       /* seconds, -1 = none */
    double oldest_idle_in_tx; /* seconds, -1 = none */
};

/* One app (database, application_name) summed over its roles; "(other)": a database's overflow. */
struct AppAgg
{
    char database[NAMEDATALEN];
    char application_name[NAMEDATALEN];
    int64 by_reason[core::reason_count];
    int64 cancelled;
    int64 rejected;
    int64 invalidations;
};

/* Logins, refills and unused ends per (database, application_name), summed over roles and policies. */
struct IdentityAgg
{
    char database[NAMEDATALEN];
    char application_name[NAMEDATALEN];
    int64 logins;
    int64 refills;
    int64 ended_unused;
};

/* What a database's publisher delivered. */
struct DatabaseAgg
{
    char name[NAMEDATALEN];
    DatabasePublishCounts counts;
};

struct MetricsData
{
    int nscopes;
    InvalidationsByScope *scopes;
    int npolicies; /* aggregates: policies in force, then the GUC defaults */
    PolicyAgg *aggs;
    int ncounters;
    PolicyCounters *counters; /* per-policy events (stats) */
    int nsessions;
    PolicySessions *sessions; /* sessions counted at login (caps) */
    double longest_query;
    double queue_usage;
    uint64 scans, dry_run_actions, notifications_sent;
    double last_scan_seconds;
    int napps;
    AppAgg *apps; /* per (database, application_name), summed over roles */
    int ndatabases;
    DatabaseAgg *databases;
    int nidentities;
    IdentityAgg *identities; /* from the refills table (at most its 512 identities) */
    int64 shared_memory_size, shared_memory_resident; /* -1 = unknown */
    int64 idle_sessions_bytes, pg_poolguard_bytes, other_processes_bytes;
    int64 idle_memory_budget; /* poolguard.idle_memory_budget, 0 = off */
};

const char *counter_label(const PolicyCounters *c)
{
    return strcmp(c->name, unmatched_policy_key) == 0 ? "" : c->name;
}

/* Pure rendering: no PostgreSQL calls in here.  Returns malloc'd text or NULL. */
char *render(const MetricsData *d)
{
    try
    {
        core::MetricsText m;
        m.family("poolguard_sessions", "gauge",
                 "Client sessions by the policy they match now and their state.");
        for (int p = 0; p < d->npolicies; p++)
            for (int s = 0; s < nstates; s++)
                if (d->aggs[p].sessions[s] > 0 || s < 3)
                    m.sample("poolguard_sessions", "policy", d->aggs[p].name, "state", state_labels[s],
                             (double)d->aggs[p].sessions[s]);

        m.family("poolguard_session_private_memory_bytes", "gauge",
                 "Private memory of client sessions (what ending them would free; never shared buffers), by "
                 "policy and state.");
        for (int p = 0; p < d->npolicies; p++)
            for (int s = 0; s < nstates; s++)
                if (d->aggs[p].sessions[s] > 0)
                    m.sample("poolguard_session_private_memory_bytes", "policy", d->aggs[p].name, "state",
                             state_labels[s], (double)d->aggs[p].memory[s]);

        m.family("poolguard_idle_sessions_private_memory_bytes", "gauge",
                 "What ending every idle (non-exempt) session now would free, about.");
        m.sample("poolguard_idle_sessions_private_memory_bytes", (double)d->idle_sessions_bytes);

        m.family("poolguard_idle_memory_budget_bytes", "gauge",
                 "Idle-memory budget: poolguard.idle_memory_budget (policy=\"\") and each policy's "
                 "idle_memory_budget; only budgets in force.");
        if (d->idle_memory_budget > 0)
            m.sample("poolguard_idle_memory_budget_bytes", "policy", "", (double)d->idle_memory_budget);
        for (int p = 0; p < d->npolicies; p++)
            if (d->aggs[p].idle_memory_budget > 0)
                m.sample("poolguard_idle_memory_budget_bytes", "policy", d->aggs[p].name,
                         (double)d->aggs[p].idle_memory_budget);

        m.family("poolguard_shared_memory_size_bytes", "gauge",
                 "Size of the server's shared memory segment (shared_buffers and the rest).");
        if (d->shared_memory_size >= 0)
            m.sample("poolguard_shared_memory_size_bytes", (double)d->shared_memory_size);

        m.family("poolguard_shared_memory_resident_bytes", "gauge",
                 "Pages of the shared memory segment in RAM (shared by all processes; ending sessions frees "
                 "none).");
        if (d->shared_memory_resident >= 0)
            m.sample("poolguard_shared_memory_resident_bytes", (double)d->shared_memory_resident);

        m.family("poolguard_own_processes_private_memory_bytes", "gauge",
                 "Private memory of pg_poolguard's own background processes.");
        m.sample("poolguard_own_processes_private_memory_bytes", (double)d->pg_poolguard_bytes);

        m.family("poolguard_other_processes_private_memory_bytes", "gauge",
                 "Private memory of the postmaster and every other non-client server process.");
        m.sample("poolguard_other_processes_private_memory_bytes", (double)d->other_processes_bytes);

        m.family("poolguard_oldest_idle_seconds", "gauge",
                 "Longest time a session of the policy has been idle.");
        for (int p = 0; p < d->npolicies; p++)
            if (d->aggs[p].oldest_idle >= 0)
                m.sample("poolguard_oldest_idle_seconds", "policy", d->aggs[p].name, d->aggs[p].oldest_idle);

        m.family("poolguard_oldest_idle_in_transaction_seconds", "gauge",
                 "Longest time a session of the policy has been idle in a transaction.");
        for (int p = 0; p < d->npolicies; p++)
            if (d->aggs[p].oldest_idle_in_tx >= 0)
                m.sample("poolguard_oldest_idle_in_transaction_seconds", "policy", d->aggs[p].name,
                         d->aggs[p].oldest_idle_in_tx);

        m.family("poolguard_longest_query_seconds", "gauge",
                 "Age of the longest-running query of any client session.");
        m.sample("poolguard_longest_query_seconds", d->longest_query);

        m.family("poolguard_connection_limit", "gauge", "max_connections of each capped policy.");
        for (int p = 0; p < d->npolicies; p++)
            if (d->aggs[p].max_connections >= 0)
                m.sample("poolguard_connection_limit", "policy", d->aggs[p].name,
                         (double)d->aggs[p].max_connections);

        m.family("poolguard_connections_counted", "gauge", "Sessions counted against each policy at login.");
        for (int i = 0; i < d->nsessions; i++)
            if (d->sessions[i].name[0])
                m.sample("poolguard_connections_counted", "policy", d->sessions[i].name,
                         (double)d->sessions[i].sessions);

        m.family("poolguard_terminations_total", "counter", "Sessions ended, by policy and reason.");
        for (int i = 0; i < d->ncounters; i++)
            for (int r = 1; r < core::reason_count; r++)
                if (d->counters[i].name[0] && d->counters[i].by_reason[r] > 0 &&
                    (core::Reason)r != core::Reason::max_query_duration)
                    m.sample("poolguard_terminations_total", "policy", counter_label(&d->counters[i]),
                             "reason", core::reason_name((core::Reason)r),
                             (double)d->counters[i].by_reason[r]);

        m.family("poolguard_cancels_total", "counter",
                 "Queries cancelled for max_query_duration, by policy.");
        for (int i = 0; i < d->ncounters; i++)
            if (d->counters[i].name[0] && d->counters[i].cancelled > 0)
                m.sample("poolguard_cancels_total", "policy", counter_label(&d->counters[i]),
                         (double)d->counters[i].cancelled);

        m.family("poolguard_login_rejections_total", "counter",
                 "Logins refused at a policy's connection cap.");
        for (int i = 0; i < d->ncounters; i++)
            if (d->counters[i].name[0] && d->counters[i].rejected > 0)
                m.sample("poolguard_login_rejections_total", "policy", counter_label(&d->counters[i]),
                         (double)d->counters[i].rejected);

        m.family("poolguard_login_evictions_total", "counter",
                 "Idle sessions evicted to admit a login (evict_idle).");
        for (int i = 0; i < d->ncounters; i++)
            if (d->counters[i].name[0] && d->counters[i].evicted > 0)
                m.sample("poolguard_login_evictions_total", "policy", counter_label(&d->counters[i]),
                         (double)d->counters[i].evicted);

        struct
        {
            const char *name;
            const char *help;
            int64 PolicyCounters::*field;
        } login_families[] = {
            {"poolguard_logins_total", "Logins admitted through a policy.", &PolicyCounters::logins},
            {"poolguard_refills_total",
             "Logins of an identity within poolguard.refill_window after the policy ended one of its "
             "sessions.",
             &PolicyCounters::refills},
            {"poolguard_ended_unused_total",
             "Sessions a policy ended that ran no statement after their login.",
             &PolicyCounters::ended_unused},
            {"poolguard_login_waits_total",
             "Logins that waited for a place (on_limit = wait) and were admitted.", &PolicyCounters::waited},
        };
        for (const auto &f : login_families)
        {
            m.family(f.name, "counter", f.help);
            for (int i = 0; i < d->ncounters; i++)
                if (d->counters[i].name[0] && d->counters[i].*(f.field) > 0)
                    m.sample(f.name, "policy", counter_label(&d->counters[i]),
                             (double)(d->counters[i].*(f.field)));
        }

        m.family("poolguard_dry_run_actions_total", "counter",
                 "Actions recorded without signalling (dry run).");
        m.sample("poolguard_dry_run_actions_total", (double)d->dry_run_actions);

        m.family(
            "poolguard_invalidations_total", "counter",
            "Cache invalidations published, by scope (all databases; \"\" = scopes past the stats table).");
        for (int i = 0; i < d->nscopes; i++)
            m.sample("poolguard_invalidations_total", "scope", d->scopes[i].scope,
                     (double)d->scopes[i].invalidations);

        m.family("poolguard_notifications_sent_total", "counter", "Invalidation notifications sent.");
        m.sample("poolguard_notifications_sent_total", (double)d->notifications_sent);

        m.family("poolguard_notification_queue_usage_ratio", "gauge",
                 "Fraction of the server's NOTIFY queue in use (pg_notification_queue_usage).");
        m.sample("poolguard_notification_queue_usage_ratio", d->queue_usage);

        m.family("poolguard_worker_scans_total", "counter", "Scans of the pg_poolguard worker.");
        m.sample("poolguard_worker_scans_total", (double)d->scans);

        m.family("poolguard_worker_last_scan_duration_seconds", "gauge",
                 "Wall time of the worker's last scan.");
        m.sample("poolguard_worker_last_scan_duration_seconds", d->last_scan_seconds);

        m.family("poolguard_app_sessions_ended_total", "counter",
                 "Sessions ended, by database, application_name (summed over roles) and reason.");
        for (int i = 0; i < d->napps; i++)
            for (int r = 1; r < core::reason_count; r++)
                if (d->apps[i].by_reason[r] > 0 && (core::Reason)r != core::Reason::max_query_duration)
                    m.sample("poolguard_app_sessions_ended_total", "database", d->apps[i].database,
                             "application_name", d->apps[i].application_name, "reason",
                             core::reason_name((core::Reason)r), (double)d->apps[i].by_reason[r]);

        m.family("poolguard_app_queries_cancelled_total", "counter",
                 "Queries cancelled for max_query_duration, by database and application_name.");
        for (int i = 0; i < d->napps; i++)
            if (d->apps[i].cancelled > 0)
                m.sample("poolguard_app_queries_cancelled_total", "database", d->apps[i].database,
                         "application_name", d->apps[i].application_name, (double)d->apps[i].cancelled);

        m.family("poolguard_app_logins_refused_total", "counter",
                 "Logins refused at a policy's cap, by database and application_name.");
        for (int i = 0; i < d->napps; i++)
            if (d->apps[i].rejected > 0)
                m.sample("poolguard_app_logins_refused_total", "database", d->apps[i].database,
                         "application_name", d->apps[i].application_name, (double)d->apps[i].rejected);

        m.family("poolguard_app_invalidations_published_total", "counter",
                 "Cache invalidations published by the app's commits, by database and application_name.");
        for (int i = 0; i < d->napps; i++)
            if (d->apps[i].invalidations > 0)
                m.sample("poolguard_app_invalidations_published_total", "database", d->apps[i].database,
                         "application_name", d->apps[i].application_name, (double)d->apps[i].invalidations);

        struct
        {
            const char *name;
            const char *help;
            int64 IdentityAgg::*field;
        } identity_families[] = {
            {"poolguard_app_logins_total",
             "Logins admitted through a policy, by database and application_name (summed over roles and "
             "policies).",
             &IdentityAgg::logins},
            {"poolguard_app_refills_total",
             "Logins within poolguard.refill_window after a policy ended a session of the same identity, by "
             "database and application_name.",
             &IdentityAgg::refills},
            {"poolguard_app_ended_unused_total",
             "Sessions a policy ended that ran no statement after their login, by database and "
             "application_name.",
             &IdentityAgg::ended_unused},
        };
        for (const auto &f : identity_families)
        {
            m.family(f.name, "counter", f.help);
            for (int i = 0; i < d->nidentities; i++)
                if (d->identities[i].*(f.field) > 0)
                    m.sample(f.name, "database", d->identities[i].database, "application_name",
                             d->identities[i].application_name, (double)(d->identities[i].*(f.field)));
        }

        m.family("poolguard_database_invalidations_delivered_total", "counter",
                 "Invalidation items a database's publisher sent to its listeners.");
        for (int i = 0; i < d->ndatabases; i++)
            m.sample("poolguard_database_invalidations_delivered_total", "database", d->databases[i].name,
                     (double)d->databases[i].counts.items_published);

        m.family("poolguard_database_resyncs_total", "counter",
                 "Resyncs a database's publisher sent (its listeners re-check every cached entry).");
        for (int i = 0; i < d->ndatabases; i++)
            m.sample("poolguard_database_resyncs_total", "database", d->databases[i].name,
                     (double)d->databases[i].counts.resyncs);

        const std::string &text = m.text();
        char *out = static_cast<char *>(malloc(text.size() + 1));
        if (out != nullptr)
            memcpy(out, text.c_str(), text.size() + 1);
        return out;
    }
    catch (...)
    {
        return nullptr;
    }
}

void gather(MetricsData *d, bool ascii_only)
{
    MemoryPicture picture;
    memory_picture(&picture);
    const SessionScan &scan = picture.scan;
    d->shared_memory_size = d->shared_memory_resident = -1;
    d->idle_sessions_bytes = d->pg_poolguard_bytes = d->other_processes_bytes = 0;
    d->idle_memory_budget = guc_idle_memory_budget;
    for (int i = 0; i < picture.count; i++)
    {
        const MemoryFigure *f = &picture.figures[i];
        switch (f->part)
        {
        case MemoryPart::shared_memory_size:
            d->shared_memory_size = f->bytes;
            break;
        case MemoryPart::shared_memory_resident:
            d->shared_memory_resident = f->bytes;
            break;
        case MemoryPart::idle_sessions:
            d->idle_sessions_bytes = f->bytes;
            break;
        case MemoryPart::pg_poolguard:
            d->pg_poolguard_bytes = f->bytes;
            break;
        case MemoryPart::other_processes:
            d->other_processes_bytes = f->bytes;
            break;
        case MemoryPart::client_backends:
            break; /* summed below from the same rows, with the other per-policy figures */
        }
    }

    d->npolicies = scan.policies.count + 1;
    d->aggs = static_cast<PolicyAgg *>(palloc0(sizeof(PolicyAgg) * d->npolicies));
    for (int p = 0; p < d->npolicies; p++)
    {
        PolicyAgg *a = &d->aggs[p];
        bool is_default = p == scan.policies.count;
        strlcpy(a->name, is_default ? "" : scan.policies.policies[p].name, NAMEDATALEN);
        a->max_connections = is_default ? -1 : scan.policies.policies[p].max_connections;
        a->idle_memory_budget =
            is_default ? 0
                       : core::effective_rules(scan.policies.policies[p].rules, core::DefaultRules())
                             .idle_memory_budget;
        a->oldest_idle = a->oldest_idle_in_tx = -1;
    }
    d->longest_query = 0;
    for (int r = 0; r < scan.count; r++)
    {
        const SessionRow *row = &scan.rows[r];
        PolicyAgg *a = &d->aggs[row->policy >= 0 ? row->policy : scan.policies.count];
        int s = (int)row->state;
        a->sessions[s]++;
        if (row->private_memory > 0)
            a->memory[s] += row->private_memory;
        double in_state = (scan.now - row->state_change) / 1e6;
        if (row->state == core::SessionState::idle)
            a->oldest_idle = Max(a->oldest_idle, in_state);
        else if (row->state == core::SessionState::idle_in_transaction ||
                 row->state == core::SessionState::idle_in_transaction_aborted)
            a->oldest_idle_in_tx = Max(a->oldest_idle_in_tx, in_state);
        else if (row->state == core::SessionState::active && !row->is_self)
            d->longest_query = Max(d->longest_query, (scan.now - row->query_start) / 1e6);
    }
    d->ncounters = stats_copy_policy_counters(&d->counters);
    d->nsessions = caps_copy_policy_sessions(&d->sessions);
    d->nscopes = invalidation_copy_scope_counts(&d->scopes, ascii_only);
    d->queue_usage = DatumGetFloat8(DirectFunctionCall1(pg_notification_queue_usage, (Datum)0));
    d->scans = stats_get(GlobalCounter::scans);
    d->dry_run_actions = stats_get(GlobalCounter::dry_run_actions);
    d->notifications_sent = stats_get(GlobalCounter::notifications_sent);
    d->last_scan_seconds = stats_last_scan_duration() / 1e6;

    AppCounters *apps;
    int n = stats_copy_app_counters(&apps);
    d->apps = static_cast<AppAgg *>(palloc0(sizeof(AppAgg) * n));
    d->databases = static_cast<DatabaseAgg *>(palloc0(sizeof(DatabaseAgg) * n));
    d->napps = d->ndatabases = 0;
    for (int i = 0; i < n; i++)
    {
        const AppCounters *a = &apps[i];
        if (a->database[0] == '\0')
            continue;
        const char *app = a->other ? "(other)" : a->application_name;
        int k = 0;
        while (k < d->napps && !(strcmp(d->apps[k].database, a->database) == 0 &&
                                 strcmp(d->apps[k].application_name, app) == 0))
            k++;
        if (k == d->napps)
        {
            strlcpy(d->apps[k].database, a->database, NAMEDATALEN);
            strlcpy(d->apps[k].application_name, app, NAMEDATALEN);
            d->napps++;
        }
        AppAgg *g = &d->apps[k];
        for (int r = 0; r < core::reason_count; r++)
            g->by_reason[r] += a->by_reason[r];
        g->cancelled += a->cancelled;
        g->rejected += a->rejected;
        g->invalidations += a->invalidations;

        int j = 0;
        while (j < d->ndatabases && strcmp(d->databases[j].name, a->database) != 0)
            j++;
        if (j == d->ndatabases)
        {
            Oid database = get_database_oid(a->database, true);
            if (!OidIsValid(database))
                continue;
            strlcpy(d->databases[j].name, a->database, NAMEDATALEN);
            d->databases[j].counts = invalidation_database_counts(database);
            d->ndatabases++;
        }
    }

    IdentityCounters *ids;
    int nids = refills_copy_identities(&ids);
    d->identities = static_cast<IdentityAgg *>(palloc0(sizeof(IdentityAgg) * Max(nids, 1)));
    d->nidentities = 0;
    for (int i = 0; i < nids; i++)
    {
        const IdentityCounters *c = &ids[i];
        int k = 0;
        while (k < d->nidentities && !(strcmp(d->identities[k].database, c->database_name) == 0 &&
                                       strcmp(d->identities[k].application_name, c->application_name) == 0))
            k++;
        if (k == d->nidentities)
        {
            strlcpy(d->identities[k].database, c->database_name, NAMEDATALEN);
            strlcpy(d->identities[k].application_name, c->application_name, NAMEDATALEN);
            d->nidentities++;
        }
        d->identities[k].logins += c->logins;
        d->identities[k].refills += c->refills;
        d->identities[k].ended_unused += c->ended_unused;
    }
}

} // namespace

char *build_metrics(bool ascii_only)
{
    MetricsData data;
    gather(&data, ascii_only);
    char *text = render(&data);
    if (text == nullptr)
        ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY),
                        errmsg("out of memory while rendering pg_poolguard metrics")));
    char *result = pstrdup(text);
    free(text);
    return result;
}

} // namespace poolguard

POOLGUARD_FUNCTION(poolguard_metrics)
{
    poolguard::require_shared_memory();
    /*
     * Valid in the caller's database: UTF-8 in a UTF8 (or SQL_ASCII) database; in any other,
     * non-ASCII characters of scope names are escaped (issue 19).
     */
    int encoding = GetDatabaseEncoding();
    PG_RETURN_TEXT_P(
        cstring_to_text(poolguard::build_metrics(encoding != PG_UTF8 && encoding != PG_SQL_ASCII)));
}
