/*
 * pg_poolguard.cpp — module entry point: _PG_init wires GUCs, shared memory, hooks and workers.
 */
#include "pg/postgres_headers.h"

#include "advice/advice.h"
#include "caps/caps.h"
#include "pg/guard.h"
#include "pg/guc.h"
#include "metrics/metrics.h"
#include "policy/policy.h"
#include "enforce/enforce.h"
#include "invalidation/invalidation.h"
#include "pg/shmem.h"
#include "stats/stats.h"
#include "pg/version.h"
#include "worker/worker.h"

extern "C"
{
    PG_MODULE_MAGIC;
    void _PG_init(void);
}

extern "C" void _PG_init(void)
{
    using namespace poolguard;

    /* GUCs are defined in every process so that poolguard.* settings are always valid. */
    define_gucs();

    /*
     * Shared memory and the worker exist only when preloaded.  Loaded later (CREATE EXTENSION
     * in a server without the preload), the SQL functions report a clear error instead.
     */
    if (!process_shared_preload_libraries_in_progress || IsBinaryUpgrade)
        return;

    policy_store_register();
    actions_register();
    memory_register();
    sessions_register();
    samples_register();
    stats_register();
    advice_register();
    caps_register();
    invalidation_init();
    shmem_install_hooks();
    actions_install_hooks();
    caps_install_hooks();
    worker_register();
    metrics_server_register();
}

POOLGUARD_FUNCTION(poolguard_version)
{
    PG_RETURN_TEXT_P(cstring_to_text(POOLGUARD_VERSION));
}
