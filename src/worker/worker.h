/*
 * worker.h — the "pg_poolguard worker" background worker.
 */
#ifndef POOLGUARD_WORKER_H
#define POOLGUARD_WORKER_H

#include "pg/postgres_headers.h"

extern "C" PGDLLEXPORT void poolguard_worker_main(Datum arg);

namespace poolguard
{

/* Registers the static worker with the postmaster (call from _PG_init under preload). */
void worker_register(void);

} // namespace poolguard

#endif
