/*
 * bgworker.cpp — the BackgroundWorker setup every pg_poolguard worker shares.
 */
#include "pg/bgworker.h"

namespace poolguard
{

void init_background_worker(BackgroundWorker *worker, const char *function, const char *type,
                            int restart_seconds)
{
    memset(worker, 0, sizeof(*worker));
    worker->bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
    worker->bgw_start_time = BgWorkerStart_RecoveryFinished;
    worker->bgw_restart_time = restart_seconds;
    strlcpy(worker->bgw_library_name, "pg_poolguard", BGW_MAXLEN);
    strlcpy(worker->bgw_function_name, function, BGW_MAXLEN);
    strlcpy(worker->bgw_name, type, BGW_MAXLEN);
    strlcpy(worker->bgw_type, type, BGW_MAXLEN);
}

} // namespace poolguard
