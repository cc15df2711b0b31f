/*
 * sql_version.h — does the installed SQL (pg_extension.extversion) match this library?
 */
#ifndef POOLGUARD_SQL_VERSION_H
#define POOLGUARD_SQL_VERSION_H

#include "pg/postgres_headers.h"

namespace poolguard
{

/*
 * In the worker, inside a transaction: when pg_poolguard's SQL objects in this database are at
 * another version than the library's, logs one WARNING with the ALTER EXTENSION hint (once per
 * worker life; the library keeps serving older SQL through its old entry points meanwhile).
 * Each call also advances the check of the other databases (one "pg_poolguard version check"
 * worker at a time, each warning the same way for its database).
 */
void warn_if_sql_version_differs(void);

} // namespace poolguard

/* The "pg_poolguard version check" worker's entry point (exported: PostgreSQL 16+ builds
 * modules with -fvisibility=hidden). */
extern "C" PGDLLEXPORT void poolguard_version_check_main(Datum database);

#endif
