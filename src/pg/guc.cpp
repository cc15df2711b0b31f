/*
 * guc.cpp — definitions of pg_poolguard's GUCs.
 *
 * Sizes of shared structures are PGC_POSTMASTER (shared memory is fixed at startup); knobs the
 * worker reads every scan are PGC_SIGHUP so a reload applies them without restart.
 */
#include "pg/guc.h"

#include "core/metrics/http.h"
#include "core/invalidation/invalidation_key.h"

namespace poolguard
{

bool guc_enabled = true;
char *guc_database = nullptr;
int guc_naptime_ms = 1000;
bool guc_dry_run = false;
int guc_idle_timeout_ms = 0;
int guc_idle_in_transaction_timeout_ms = 0;
int guc_idle_grace_ms = 5000;
int guc_idle_memory_budget = 0;
int guc_advice_window_s = 3600;
int guc_memory_sample_interval_ms = 60000;
char *guc_exempt_roles = nullptr;
bool guc_exempt_superusers = true;
bool guc_signal_walsenders = false;
bool guc_log_terminations = true;
int guc_history_size = 1000;
int guc_max_policies = 1000;
int guc_max_waiting_logins = 16;
int guc_refill_window_ms = 30000;
char *guc_metrics_listen = nullptr;

namespace
{

/* poolguard.exempt_roles must be a list of identifiers; unknown roles are fine (created later). */
bool check_exempt_roles(char **newval, void **extra, GucSource source)
{
    char *copy = pstrdup(*newval);
    List *names = NIL;
    bool ok = SplitIdentifierString(copy, ',', &names);
    list_free(names);
    pfree(copy);
    if (!ok)
    {
        GUC_check_errdetail("poolguard.exempt_roles must be a comma-separated list of role names.");
        return false;
    }
    return true;
}

/* poolguard.metrics_listen: "" or host:port ([v6]:port). */
bool check_metrics_listen(char **newval, void **extra, GucSource source)
{
    if (*newval == NULL || (*newval)[0] == '\0')
        return true;
    bool ok = false;
    try
    {
        ok = core::parse_listen_address(*newval).has_value();
    }
    catch (...)
    {
        ok = false;
    }
    if (!ok)
    {
        GUC_check_errdetail(
            "poolguard.metrics_listen must be empty or host:port, e.g. 127.0.0.1:9187 or [::1]:9187.");
        return false;
    }
    return true;
}

} // namespace

int guc_invalidation_slots = 65536;
int guc_invalidation_queue_size = 4096;
char *guc_notify_channel = nullptr;
int guc_publish_delay_ms = 0;
int guc_publisher_idle_timeout_ms = 10000;
int guc_feed_size = 1024;
int guc_max_invalidations_per_transaction = 10000;
bool guc_wal_invalidations = true;
bool guc_logical_messages = true;
bool guc_wal_flush = false;

namespace
{

/* Table sizes are powers of two so that a hash or a position maps to an index with a mask. */
bool check_power_of_two(int *newval, void **extra, GucSource source)
{
    if (*newval > 0 && core::is_power_of_two((uint64)*newval))
        return true;
    GUC_check_errdetail("The value must be a power of two, for example 65536.");
    return false;
}

/* A NOTIFY channel is an identifier: 1 to NAMEDATALEN - 1 bytes. */
bool check_notify_channel(char **newval, void **extra, GucSource source)
{
    if (*newval == nullptr || (*newval)[0] == '\0')
    {
        GUC_check_errdetail("The channel name must not be empty.");
        return false;
    }
    if (strlen(*newval) >= NAMEDATALEN)
    {
        GUC_check_errdetail("The channel name must be shorter than %d bytes.", NAMEDATALEN);
        return false;
    }
    return true;
}

} // namespace

void define_gucs(void)
{
    /*
     * PGC_POSTMASTER variables can only be created while preloading (PostgreSQL raises FATAL
     * otherwise); without the preload nothing reads them, so they are simply not defined.
     */
    bool preloading = process_shared_preload_libraries_in_progress;

    DefineCustomBoolVariable("poolguard.enabled", "Enables the pg_poolguard worker's actions.",
                             "When off, the worker keeps running but reaps nothing.", &guc_enabled, true,
                             PGC_SIGHUP, 0, NULL, NULL, NULL);

    if (preloading)
        DefineCustomStringVariable("poolguard.database",
                                   "Database the pg_poolguard worker connects to; it holds the policy table.",
                                   NULL, &guc_database, "postgres", PGC_POSTMASTER, 0, NULL, NULL, NULL);

    DefineCustomIntVariable("poolguard.naptime", "Longest time the pg_poolguard worker sleeps between scans.",
                            "The worker wakes earlier when a rule is due to fire.", &guc_naptime_ms, 1000, 10,
                            3600 * 1000, PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);

    DefineCustomBoolVariable("poolguard.dry_run",
                             "Records what the reaper would do without signalling anyone.", NULL,
                             &guc_dry_run, false, PGC_SIGHUP, 0, NULL, NULL, NULL);

    DefineCustomIntVariable("poolguard.idle_timeout", "Default idle timeout for sessions; 0 turns it off.",
                            "Policies with a NULL idle_timeout inherit it.", &guc_idle_timeout_ms, 0, 0,
                            INT_MAX, PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);

    DefineCustomIntVariable("poolguard.idle_in_transaction_timeout",
                            "Default idle-in-transaction timeout for sessions; 0 turns it off.",
                            "Policies with a NULL idle_in_transaction_timeout inherit it.",
                            &guc_idle_in_transaction_timeout_ms, 0, 0, INT_MAX, PGC_SIGHUP, GUC_UNIT_MS, NULL,
                            NULL, NULL);

    DefineCustomIntVariable(
        "poolguard.idle_grace",
        "Sessions idle less than this are never ended by max_idle, max_connection_age or max_idle_memory.",
        NULL, &guc_idle_grace_ms, 5000, 0, INT_MAX, PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);

    DefineCustomIntVariable(
        "poolguard.max_waiting_logins",
        "Most logins that may wait at once for a place of a policy with on_limit = 'wait'.",
        "Never more than a quarter of max_connections: a waiting login holds a server "
        "process slot.  Logins beyond it are refused at once.",
        &guc_max_waiting_logins, 16, 0, 10000, PGC_SIGHUP, 0, NULL, NULL, NULL);

    DefineCustomIntVariable("poolguard.refill_window",
                            "A login within this time after a policy ended a session of the same identity "
                            "counts as a refill.",
                            "Also the period of the warning about a policy that fights a connection pool.",
                            &guc_refill_window_ms, 30000, 1000, 3600 * 1000, PGC_SIGHUP, GUC_UNIT_MS, NULL,
                            NULL, NULL);

    DefineCustomIntVariable(
        "poolguard.idle_memory_budget",
        "Private memory all idle sessions together may hold; over it, the largest are ended; 0 turns it off.",
        "Counts every idle session that is not exempt; sessions idle less than poolguard.idle_grace count "
        "but "
        "are not ended.",
        &guc_idle_memory_budget, 0, 0, INT_MAX, PGC_SIGHUP, GUC_UNIT_BYTE, NULL, NULL, NULL);

    DefineCustomIntVariable(
        "poolguard.advice_window",
        "Time over which poolguard.pool_advice reads each app's concurrently active sessions.",
        "The worker samples every scan into 64 slots spanning this window; older samples are forgotten.",
        &guc_advice_window_s, 3600, 10, 7 * 86400, PGC_SIGHUP, GUC_UNIT_S, NULL, NULL, NULL);

    DefineCustomIntVariable(
        "poolguard.memory_sample_interval",
        "How often the pg_poolguard worker re-reads each client session's private memory for the views.",
        "poolguard.sessions, poolguard.memory and the metrics serve these samples with their age; the worker "
        "spreads the reads over the interval, at most 500 a cycle. Memory rules always read afresh. 0 turns "
        "sampling off.",
        &guc_memory_sample_interval_ms, 60000, 0, 86400 * 1000, PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);

    DefineCustomStringVariable(
        "poolguard.exempt_roles", "Roles (and their members) pg_poolguard never ends, cancels or refuses.",
        NULL, &guc_exempt_roles, "", PGC_SIGHUP, GUC_LIST_INPUT, check_exempt_roles, NULL, NULL);

    DefineCustomBoolVariable("poolguard.exempt_superusers", "Never end, cancel or refuse superuser sessions.",
                             NULL, &guc_exempt_superusers, true, PGC_SIGHUP, 0, NULL, NULL, NULL);

    DefineCustomBoolVariable(
        "poolguard.signal_walsenders",
        "Lets the reaper and evict_idle end SQL walsender sessions (replication=database) too.",
        "They are always counted against caps at login and shown in poolguard.sessions; off: never "
        "signalled.",
        &guc_signal_walsenders, false, PGC_SIGHUP, 0, NULL, NULL, NULL);

    DefineCustomBoolVariable("poolguard.log_terminations",
                             "Logs one line for every action pg_poolguard takes.", NULL,
                             &guc_log_terminations, true, PGC_SIGHUP, 0, NULL, NULL, NULL);

    if (preloading)
    {
        DefineCustomIntVariable("poolguard.history_size", "Number of actions kept in poolguard.terminations.",
                                NULL, &guc_history_size, 1000, 10, 1000000, PGC_POSTMASTER, 0, NULL, NULL,
                                NULL);
        DefineCustomStringVariable(
            "poolguard.metrics_listen",
            "host:port where the pg_poolguard metrics worker serves GET /metrics; empty = off.",
            "The endpoint is unauthenticated: use a loopback address unless you mean otherwise.",
            &guc_metrics_listen, "", PGC_POSTMASTER, 0, check_metrics_listen, NULL, NULL);
        DefineCustomIntVariable("poolguard.max_policies", "Maximum number of enabled policies in force.",
                                NULL, &guc_max_policies, 1000, 1, 10000, PGC_POSTMASTER, 0, NULL, NULL, NULL);
    }

    if (preloading)
    {
        DefineCustomIntVariable(
            "poolguard.invalidation_slots",
            "Number of cache generation slots in shared memory (a power of two).",
            "Keys share a slot when their hashes collide, which only causes spurious invalidations.",
            &guc_invalidation_slots, 65536, 1024, 1 << 26, PGC_POSTMASTER, 0, check_power_of_two, NULL, NULL);
        DefineCustomIntVariable(
            "poolguard.invalidation_queue_size",
            "Number of invalidations the shared ring holds until a publisher sends them (a power of two).",
            "When it is full, listeners get one resync message instead of the items.",
            &guc_invalidation_queue_size, 4096, 64, 1 << 20, PGC_POSTMASTER, 0, check_power_of_two, NULL,
            NULL);
        DefineCustomIntVariable(
            "poolguard.feed_size",
            "Number of recent invalidations poolguard.invalidations_since() can return.",
            "Each takes about 1.1 kB of shared memory; a reader that fell further behind gets a resync.",
            &guc_feed_size, 1024, 16, 1 << 20, PGC_POSTMASTER, 0, NULL, NULL, NULL);
    }

    DefineCustomBoolVariable(
        "poolguard.wal_invalidations",
        "Writes each commit's invalidations to WAL so that standbys move their generations.",
        "Turn it off only to measure its cost: standbys then never see a generation move.",
        &guc_wal_invalidations, true, PGC_SIGHUP, 0, NULL, NULL, NULL);

    DefineCustomBoolVariable(
        "poolguard.logical_messages",
        "Writes each commit's invalidations as a logical decoding message (prefix pg_poolguard).",
        "Only with wal_level = logical.", &guc_logical_messages, true, PGC_SIGHUP, 0, NULL, NULL, NULL);

    DefineCustomBoolVariable(
        "poolguard.wal_flush",
        "Makes an invalidating commit wait until its invalidations' WAL record is flushed.",
        "Off: the WAL writer or the next commit flushes it, and a standby's generations may lag "
        "its data by up to wal_writer_delay (never lead it).",
        &guc_wal_flush, false, PGC_SUSET, 0, NULL, NULL, NULL);

    DefineCustomIntVariable(
        "poolguard.max_invalidations_per_transaction",
        "Most distinct invalidations one transaction publishes as single keys.",
        "Beyond it, every invalidation of the transaction becomes one scope-wide invalidation per scope; "
        "a transaction that touches more scopes than this gets an error.",
        &guc_max_invalidations_per_transaction, 10000, 1, 1000000, PGC_SUSET, 0, NULL, NULL, NULL);

    DefineCustomStringVariable(
        "poolguard.notify_channel", "Channel on which publishers send cache invalidations.", NULL,
        &guc_notify_channel, "poolguard_invalidate", PGC_SIGHUP, 0, check_notify_channel, NULL, NULL);

    DefineCustomIntVariable("poolguard.publish_delay",
                            "How long a publisher waits to batch invalidations before it sends them.",
                            "0 sends as soon as possible.", &guc_publish_delay_ms, 0, 0, 10000, PGC_SIGHUP,
                            GUC_UNIT_MS, NULL, NULL, NULL);

    DefineCustomIntVariable(
        "poolguard.publisher_idle_timeout", "How long a publisher stays without work before it exits.",
        "The next invalidation in its database starts a new one.", &guc_publisher_idle_timeout_ms, 10000, 100,
        3600 * 1000, PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);

    MarkGUCPrefixReserved("poolguard");
}

} // namespace poolguard
