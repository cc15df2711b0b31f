/*
 * worker.h — the "pg_poolguard worker" background worker.
 */
#ifndef POOLGUARD_WORKER_H
#define POOLGUARD_WORKER_H

#include "postgres_headers.h"

extern "C" PGDLLEXPORT void poolguard_worker_main(Datum arg);

namespace poolguard {

/*
 * Fills a BackgroundWorker of this library: connected to a database, started after recovery
 * (callers that serve hot standbys set an earlier bgw_start_time), restarted restart_seconds
 * after an exit with code 1; name and type are both `type`.
 */
void init_background_worker(BackgroundWorker *worker, const char *function, const char *type,
                            int restart_seconds);

/* Registers the static worker with the postmaster (call from _PG_init under preload). */
void worker_register(void);

/*
 * One unit of the worker's work, run inside a transaction-free context with errors caught.
 * Returns how long the worker may sleep before it is needed again, in milliseconds.  The
 * reaper provides it; the worker loop only schedules it.
 */
long worker_cycle(void);

}  // namespace poolguard

#endif
