/*
 * no_server_headers.h — the last #include of every .cpp file in src/core (never of a header): the
 * core is plain C++ that unit tests build without a server, so no PostgreSQL header may reach it,
 * even transitively.  Glue code includes core headers after postgres.h; that direction is fine,
 * which is why core headers must not include this guard.  scripts/lint.py checks both rules.
 */
#ifndef POOLGUARD_CORE_NO_SERVER_HEADERS_H
#define POOLGUARD_CORE_NO_SERVER_HEADERS_H

#ifdef POSTGRES_H
#error "src/core must not include PostgreSQL server headers"
#endif

#endif
