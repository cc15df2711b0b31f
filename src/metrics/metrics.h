/*
 * metrics.h — the metrics feature's public interface: poolguard.metrics(), the Prometheus text
 * (metrics.cpp), and the "pg_poolguard metrics" background worker that serves it at GET /metrics
 * over HTTP/1.1 on poolguard.metrics_listen (metrics_server.cpp).
 */
#ifndef POOLGUARD_METRICS_H
#define POOLGUARD_METRICS_H

#include "pg/postgres_headers.h"

extern "C" PGDLLEXPORT void poolguard_metrics_main(Datum arg);

namespace poolguard
{

/*
 * The exposition text (format 0.0.4), palloc'd.  Runs inside a transaction (the session scan
 * uses the syscache).
 */
char *build_metrics(bool ascii_only = false);

/* Registers the metrics worker when poolguard.metrics_listen is set (call from _PG_init). */
void metrics_server_register(void);

} // namespace poolguard

#endif
