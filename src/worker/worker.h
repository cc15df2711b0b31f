/*
 * worker.h — the "pg_poolguard worker" background worker.
 */
#ifndef POOLGUARD_WORKER_H
#define POOLGUARD_WORKER_H

#include "pg/postgres_headers.h"

#include "pg/bgworker.h" /* init_background_worker, for publisher.cpp until it includes bgworker.h */

extern "C" PGDLLEXPORT void poolguard_worker_main(Datum arg);

namespace poolguard {

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
