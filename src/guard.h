/*
 * guard.h — the C++ → PostgreSQL error boundary.
 *
 * pg_guard(where, f) runs f().  If f throws, the message is copied into a stack buffer, the
 * catch block is left, and only then is ereport(ERROR) raised: a C++ exception never unwinds
 * through PostgreSQL frames and a longjmp never leaves a live C++ catch scope.  Every
 * SQL-callable function (POOLGUARD_FUNCTION), hook and the worker loop goes through it.
 *
 * f itself must follow the rule in postgres_headers.h: nothing with a non-trivial destructor
 * may be live while it calls something that can ereport(ERROR).
 */
#ifndef POOLGUARD_GUARD_H
#define POOLGUARD_GUARD_H

#include "postgres_headers.h"

#include <exception>

namespace poolguard {

template <typename F>
auto pg_guard(const char *where, F &&f) -> decltype(f())
{
    char message[512];

    try
    {
        return f();
    }
    catch (const std::exception &e)
    {
        strlcpy(message, e.what(), sizeof(message));
    }
    catch (...)
    {
        strlcpy(message, "unknown C++ exception", sizeof(message));
    }
    ereport(ERROR,
            (errcode(ERRCODE_INTERNAL_ERROR),
             errmsg("pg_poolguard internal error in %s: %s", where, message),
             errhint("This is a bug in pg_poolguard; please report it with the server log.")));
    pg_unreachable();
}

}  // namespace poolguard

/*
 * Defines a V1 SQL-callable function whose body runs inside pg_guard:
 *
 *   POOLGUARD_FUNCTION(poolguard_version) { PG_RETURN_TEXT_P(...); }
 */
#define POOLGUARD_FUNCTION(name)                                                   \
    extern "C" {                                                                   \
    PG_FUNCTION_INFO_V1(name);                                                     \
    }                                                                              \
    static Datum name##_body(PG_FUNCTION_ARGS);                                    \
    extern "C" Datum name(PG_FUNCTION_ARGS)                                        \
    {                                                                              \
        return poolguard::pg_guard(#name, [fcinfo]() { return name##_body(fcinfo); }); \
    }                                                                              \
    static Datum name##_body(PG_FUNCTION_ARGS)

#endif
