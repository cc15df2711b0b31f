/*
 * guc.h — pg_poolguard's configuration parameters (postgresql.conf), defined in guc.cpp.
 */
#ifndef POOLGUARD_GUC_H
#define POOLGUARD_GUC_H

#include "pg/postgres_headers.h"

namespace poolguard
{

/* Foundation */
extern bool guc_enabled;   /* poolguard.enabled: SIGHUP */
extern char *guc_database; /* poolguard.database: postmaster */
extern int guc_naptime_ms; /* poolguard.naptime: SIGHUP */

/* Reaper (GUC times in milliseconds) */
extern bool guc_dry_run;                       /* poolguard.dry_run */
extern int guc_idle_timeout_ms;                /* poolguard.idle_timeout, 0 = off */
extern int guc_idle_in_transaction_timeout_ms; /* poolguard.idle_in_transaction_timeout, 0 = off */
extern int guc_idle_grace_ms;                  /* poolguard.idle_grace */
extern int guc_idle_memory_budget;             /* poolguard.idle_memory_budget (bytes) */
extern int guc_advice_window_s;                /* poolguard.advice_window (seconds) */
extern int guc_memory_sample_interval_ms;      /* poolguard.memory_sample_interval, 0 = off */
extern char *guc_exempt_roles;                 /* poolguard.exempt_roles: comma list */
extern bool guc_exempt_superusers;             /* poolguard.exempt_superusers */
extern bool guc_signal_walsenders;             /* poolguard.signal_walsenders */
extern bool guc_log_terminations;              /* poolguard.log_terminations */
extern int guc_history_size;                   /* poolguard.history_size: postmaster */
extern int guc_max_policies;                   /* poolguard.max_policies: postmaster */

/* Caps and refills */
extern int guc_max_waiting_logins; /* poolguard.max_waiting_logins: SIGHUP (also <= max_connections / 4) */
extern int guc_refill_window_ms;   /* poolguard.refill_window: SIGHUP */

/* Observability */
extern char *guc_metrics_listen; /* poolguard.metrics_listen: postmaster, "" = off */

/* Cache invalidation (src/invalidation*.cpp, src/publisher.cpp) */
extern int guc_invalidation_slots;                /* poolguard.invalidation_slots: postmaster */
extern int guc_invalidation_queue_size;           /* poolguard.invalidation_queue_size: postmaster */
extern char *guc_notify_channel;                  /* poolguard.notify_channel: SIGHUP */
extern int guc_publish_delay_ms;                  /* poolguard.publish_delay: SIGHUP */
extern int guc_publisher_idle_timeout_ms;         /* poolguard.publisher_idle_timeout: SIGHUP */
extern int guc_feed_size;                         /* poolguard.feed_size: postmaster */
extern int guc_max_invalidations_per_transaction; /* poolguard.max_invalidations_per_transaction: SUSET */
extern bool guc_wal_invalidations;                /* poolguard.wal_invalidations: SIGHUP */
extern bool guc_logical_messages;                 /* poolguard.logical_messages: SIGHUP */
extern bool guc_wal_flush;                        /* poolguard.wal_flush: SUSET */

/*
 * Defines the GUCs (the PGC_POSTMASTER ones only while preloading) and reserves the
 * "poolguard." prefix.  Called from _PG_init.
 */
void define_gucs(void);

} // namespace poolguard

#endif
