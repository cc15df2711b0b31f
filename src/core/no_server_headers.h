/*
 * no_server_headers.h — included first by every src/core header: the core is plain C++ that
 * unit tests build without a server, so PostgreSQL headers must never leak into it.
 */
#ifndef POOLGUARD_CORE_NO_SERVER_HEADERS_H
#define POOLGUARD_CORE_NO_SERVER_HEADERS_H

#ifdef POSTGRES_H
#error "src/core must not include PostgreSQL server headers (postgres.h is already included)"
#endif

#endif
