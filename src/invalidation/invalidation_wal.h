/*
 * invalidation_wal.h — the custom WAL resource manager and the logical decoding messages
 * (invalidation_wal.cpp); private to src/invalidation/.
 */
#ifndef POOLGUARD_INVALIDATION_WAL_H
#define POOLGUARD_INVALIDATION_WAL_H

#include "pg/postgres_headers.h"

namespace poolguard
{

struct PendingInvalidation;

/*
 * Reads the cluster's logical-message secret from the data directory into out, creating it on
 * first use (postmaster, shared memory initialization; FATAL when it cannot).
 */
void invalidation_cdc_load_secret(unsigned char out[32]);

/* The current database's logical-message key (32 bytes; poolguard.cdc_key()). */
const unsigned char *invalidation_cdc_database_key(void);

/* Registers the custom WAL resource manager (_PG_init, while preloading). */
void invalidation_wal_register(void);

/* Serializes the committing transaction's items for its WAL record (XACT_EVENT_PRE_COMMIT; may ERROR). */
void invalidation_wal_prepare(const PendingInvalidation *items, int count);

/* Forgets what invalidation_wal_prepare built (end of transaction). */
void invalidation_wal_forget(void);

/*
 * Writes the committed items (generations first .. first + count - 1) to WAL, and as logical
 * messages when wal_level = logical.  Caller holds invalidation_shared->lock exclusively; never raises an
 * error (sets *failed instead).  Returns the end of what it wrote (InvalidXLogRecPtr: nothing).
 */
XLogRecPtr invalidation_wal_log_committed(uint64 first, const PendingInvalidation *items, int count,
                                          bool *failed);

/* Writes a FLOOR record (never raises an error; sets *failed instead). */
XLogRecPtr invalidation_wal_log_floor(uint64 floor, bool *failed);

/*
 * After the locks are released: has the WAL writer flush lsn soon (waking it at most once per
 * wal_writer_delay; now is the caller's clock reading); reports a failure.
 */
void invalidation_wal_finish(XLogRecPtr lsn, bool failed, TimestampTz now);

} // namespace poolguard

#endif
