/*
 * metrics.h — poolguard.metrics(): the Prometheus text served by SQL and by the HTTP endpoint.
 */
#ifndef POOLGUARD_METRICS_H
#define POOLGUARD_METRICS_H

#include "pg/postgres_headers.h"

namespace poolguard {

/*
 * The exposition text (format 0.0.4), palloc'd.  Runs inside a transaction (the session scan
 * uses the syscache).
 */
char *build_metrics(void);

}  // namespace poolguard

#endif
