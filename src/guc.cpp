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

    MarkGUCPrefixReserved("poolguard");
}

}  // namespace poolguard
