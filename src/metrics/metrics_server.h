/*
 * metrics_server.h — the "pg_poolguard metrics" background worker: serves poolguard.metrics()
 * at GET /metrics over HTTP/1.1 on poolguard.metrics_listen.
 */
#ifndef POOLGUARD_METRICS_SERVER_H
#define POOLGUARD_METRICS_SERVER_H

#include "pg/postgres_headers.h"

extern "C" PGDLLEXPORT void poolguard_metrics_main(Datum arg);

namespace poolguard {

/* Registers the worker when poolguard.metrics_listen is set (call from _PG_init). */
void metrics_server_register(void);

}  // namespace poolguard

#endif
