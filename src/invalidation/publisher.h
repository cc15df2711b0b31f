/*
 * publisher.h — the per-database "pg_poolguard publisher" background worker.
 *
 * Started on demand (a dynamic background worker) by the first backend whose committed
 * transaction invalidated something in a database with no running publisher.  It connects to
 * that database, drains the database's entries from the shared ring, sends them as batched
 * JSON payloads with NOTIFY on poolguard.notify_channel, and exits after
 * poolguard.publisher_idle_timeout without work.
 */
#ifndef POOLGUARD_PUBLISHER_H
#define POOLGUARD_PUBLISHER_H

#include "pg/postgres_headers.h"

extern "C" PGDLLEXPORT void poolguard_publisher_main(Datum database);

namespace poolguard
{

/*
 * Registers a publisher for the database with the postmaster.  Returns false when no background
 * worker slot is free (max_worker_processes); never raises an error (commit path).
 */
bool publisher_launch(Oid database);

} // namespace poolguard

#endif
