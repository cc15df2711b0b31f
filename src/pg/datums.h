/*
 * datums.h — the Datums the views' set-returning functions build from plain shared-memory
 * copies: names, addresses, intervals.
 */
#ifndef POOLGUARD_DATUMS_H
#define POOLGUARD_DATUMS_H

#include "pg/postgres_headers.h"

#include "core/policy/cidr.h"

namespace poolguard
{

/* A name Datum (palloc'd) of s; "" for NULL. */
Datum name_datum(const char *s);

/* An inet Datum of an address; false for a Unix socket (no address: the column is NULL). */
bool inet_datum(const core::IpAddress &ip, Datum *out);

/* An interval Datum of a duration in microseconds. */
Datum interval_datum(int64 us);

} // namespace poolguard

#endif
