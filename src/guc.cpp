/*
 * guc.cpp — definitions of pg_poolguard's GUCs.
 *
 * Sizes of shared structures are PGC_POSTMASTER (shared memory is fixed at startup); knobs the
 * worker reads every scan are PGC_SIGHUP so a reload applies them without restart.
 */
#include "guc.h"

namespace poolguard {

bool guc_enabled = true;
char *guc_database = nullptr;
int guc_naptime_ms = 1000;

int guc_invalidation_slots = 65536;
int guc_invalidation_queue_size = 4096;
char *guc_notify_channel = nullptr;
int guc_publish_delay_ms = 0;
int guc_publisher_idle_timeout_ms = 10000;

namespace {

/* Table sizes are powers of two so that a hash or a position maps to an index with a mask. */
bool check_power_of_two(int *newval, void **extra, GucSource source)
{
    if (*newval > 0 && (*newval & (*newval - 1)) == 0)
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

}  // namespace

void define_gucs(void)
{
    /*
     * PGC_POSTMASTER variables can only be created while preloading (PostgreSQL raises FATAL
     * otherwise); without the preload nothing reads them, so they are simply not defined.
     */
    bool preloading = process_shared_preload_libraries_in_progress;

    DefineCustomBoolVariable("poolguard.enabled",
                             "Enables the pg_poolguard worker's actions.",
                             "When off, the worker keeps running but reaps nothing.",
                             &guc_enabled, true, PGC_SIGHUP, 0, NULL, NULL, NULL);

    if (preloading)
        DefineCustomStringVariable("poolguard.database",
                                   "Database the pg_poolguard worker connects to; it holds the policy table.",
                                   NULL,
                                   &guc_database, "postgres", PGC_POSTMASTER, 0, NULL, NULL, NULL);

    DefineCustomIntVariable("poolguard.naptime",
                            "Longest time the pg_poolguard worker sleeps between scans.",
                            "The worker wakes earlier when a rule is due to fire.",
                            &guc_naptime_ms, 1000, 10, 3600 * 1000, PGC_SIGHUP, GUC_UNIT_MS,
                            NULL, NULL, NULL);

    if (preloading)
    {
        DefineCustomIntVariable("poolguard.invalidation_slots",
                                "Number of cache generation slots in shared memory (a power of two).",
                                "Keys share a slot when their hashes collide, which only causes spurious invalidations.",
                                &guc_invalidation_slots, 65536, 1024, 1 << 26, PGC_POSTMASTER, 0,
                                check_power_of_two, NULL, NULL);
        DefineCustomIntVariable("poolguard.invalidation_queue_size",
                                "Number of invalidations the shared ring holds until a publisher sends them (a power of two).",
                                "When it is full, listeners get one resync message instead of the items.",
                                &guc_invalidation_queue_size, 4096, 64, 1 << 20, PGC_POSTMASTER, 0,
                                check_power_of_two, NULL, NULL);
    }

    DefineCustomStringVariable("poolguard.notify_channel",
                               "Channel on which publishers send cache invalidations.",
                               NULL,
                               &guc_notify_channel, "poolguard_invalidate", PGC_SIGHUP, 0,
                               check_notify_channel, NULL, NULL);

    DefineCustomIntVariable("poolguard.publish_delay",
                            "How long a publisher waits to batch invalidations before it sends them.",
                            "0 sends as soon as possible.",
                            &guc_publish_delay_ms, 0, 0, 10000, PGC_SIGHUP, GUC_UNIT_MS,
                            NULL, NULL, NULL);

    DefineCustomIntVariable("poolguard.publisher_idle_timeout",
                            "How long a publisher stays without work before it exits.",
                            "The next invalidation in its database starts a new one.",
                            &guc_publisher_idle_timeout_ms, 10000, 100, 3600 * 1000, PGC_SIGHUP, GUC_UNIT_MS,
                            NULL, NULL, NULL);

    MarkGUCPrefixReserved("poolguard");
}

}  // namespace poolguard
