/*
 * bgworker.h — the BackgroundWorker setup every pg_poolguard worker shares (the reaper's worker,
 * the metrics server, the publishers).
 */
#ifndef POOLGUARD_BGWORKER_H
#define POOLGUARD_BGWORKER_H

#include "pg/postgres_headers.h"

namespace poolguard
{

/*
 * Fills a BackgroundWorker of this library: connected to a database, started after recovery
 * (callers that serve hot standbys set an earlier bgw_start_time), restarted restart_seconds
 * after an exit with code 1; name and type are both `type`.
 */
void init_background_worker(BackgroundWorker *worker, const char *function, const char *type,
                            int restart_seconds);

} // namespace poolguard

#endif
