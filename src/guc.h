/*
 * guc.h — pg_poolguard's configuration parameters (postgresql.conf), defined in guc.cpp.
 */
#ifndef POOLGUARD_GUC_H
#define POOLGUARD_GUC_H

#include "postgres_headers.h"

namespace poolguard {

/* Foundation */
extern bool guc_enabled;          /* poolguard.enabled: SIGHUP */
extern char *guc_database;        /* poolguard.database: postmaster */
extern int guc_naptime_ms;        /* poolguard.naptime: SIGHUP */

/* Cache invalidation (src/invalidation*.cpp, src/publisher.cpp) */
extern int guc_invalidation_slots;          /* poolguard.invalidation_slots: postmaster */
extern int guc_invalidation_queue_size;     /* poolguard.invalidation_queue_size: postmaster */
extern char *guc_notify_channel;            /* poolguard.notify_channel: SIGHUP */
extern int guc_publish_delay_ms;            /* poolguard.publish_delay: SIGHUP */
extern int guc_publisher_idle_timeout_ms;   /* poolguard.publisher_idle_timeout: SIGHUP */

/*
 * Defines the GUCs (the PGC_POSTMASTER ones only while preloading) and reserves the
 * "poolguard." prefix.  Called from _PG_init.
 */
void define_gucs(void);

}  // namespace poolguard

#endif
