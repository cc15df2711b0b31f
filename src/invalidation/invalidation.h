/*
 * invalidation.h — transactional cache invalidation: what the rest of pg_poolguard uses of it.
 *
 * Everything else of the feature (shared state, the commit path, the publisher, the WAL resource
 * manager, the feed) is private to src/invalidation/: invalidation_internal.h and the headers it
 * includes, which also map the folder's files; `make lint` refuses them (and the names they
 * declare) outside the folder.  Locks: docs/architecture.md, "Locks".
 */
#ifndef POOLGUARD_INVALIDATION_H
#define POOLGUARD_INVALIDATION_H

#include "pg/postgres_headers.h"

#include "core/invalidation/display_text.h"
#include "core/invalidation/invalidation_key.h"

namespace poolguard
{

/* Limits of the interface (bytes), defined once in core/invalidation/invalidation_key.h. */
constexpr int max_scope_bytes = (int)core::max_scope_bytes;
constexpr int max_key_bytes = (int)core::max_key_bytes;

/*
 * Registers GUC-sized shared memory and the lock tranches (_PG_init).  The transaction callbacks
 * are registered lazily, by the first invalidate() of a backend (invalidation_xact.cpp).
 */
void invalidation_init(void);

/*
 * Once this server is out of recovery (at start, or when a standby is promoted), raises the
 * floor of every generation and the counter to the wall clock: a promoted standby then reads
 * every key as changed after anything the old primary handed out.  Cheap; called by readers,
 * publishers and the worker.
 */
void invalidation_raise_floor_after_recovery(void);

/*
 * The worker's share (called in a transaction, from its cycle): starts the publisher of every
 * database that has something to publish and no publisher, once its retry time has come, and
 * forgets the entries of databases that no longer exist.  Returns the milliseconds until the
 * next retry is due, or -1 when none is waiting.
 */
long invalidation_tend_publishers(void);

/* Invalidations published under one scope name, summed over databases. */
struct InvalidationsByScope
{
    /* As valid UTF-8 (core/invalidation/display_text.h); "" = scopes past the stats table. */
    char scope[core::display_utf8_room(max_scope_bytes)];
    uint64 invalidations;
};

/*
 * Copies the invalidation counts by scope (palloc'd; for the metrics); returns how many.  Scope
 * names are converted to valid UTF-8 (ascii_only: with every non-ASCII character escaped).
 */
int invalidation_copy_scope_counts(InvalidationsByScope **counts, bool ascii_only);

/* What a database's publisher delivered to its listeners (all zero while it has no slot). */
struct DatabasePublishCounts
{
    uint64 notifications;
    uint64 items_published;
    uint64 resyncs;
};

/* The publisher counters of one database. */
DatabasePublishCounts invalidation_database_counts(Oid database);

} // namespace poolguard

#endif
