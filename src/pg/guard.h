/*
 * guard.h — the C++ → PostgreSQL error boundary.
 *
 * pg_guard(where, f) runs f().  If f throws, the message is copied into a stack buffer, the
 * catch block is left, and only then is ereport(ERROR) raised: a C++ exception never unwinds
 * through PostgreSQL frames and a longjmp never leaves a live C++ catch scope.  What goes
 * through it: every SQL-callable function (POOLGUARD_FUNCTION), the login hook (caps.cpp) and
 * every background-worker unit of work (run_catching_errors below: the worker cycle, the metrics
 * build, the publisher's send).  What deliberately does not: the emit_log_hook (actions.cpp),
 * the transaction callbacks (invalidation_xact.cpp), the WAL resource manager's callbacks
 * (invalidation_wal.cpp) and the shared-memory hooks (shmem.cpp) -- they run no C++ that can
 * throw, and an ERROR there must stay PostgreSQL's own.  See docs/architecture.md.
 *
 * f itself must follow the rule in postgres_headers.h: nothing with a non-trivial destructor
 * may be live while it calls something that can ereport(ERROR).
 */
#ifndef POOLGUARD_GUARD_H
#define POOLGUARD_GUARD_H

#include "pg/postgres_headers.h"

#include <exception>

namespace poolguard
{

template <typename F> auto pg_guard(const char *where, F &&f) -> decltype(f())
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
            (errcode(ERRCODE_INTERNAL_ERROR), errmsg("pg_poolguard internal error in %s: %s", where, message),
             errhint("This is a bug in pg_poolguard; please report it with the server log.")));
    pg_unreachable();
}

/*
 * The top-level error recovery of a background worker loop, in one place: runs f() (through
 * pg_guard, so a C++ exception becomes an ERROR too) and, if it raises an ERROR, copies the error
 * into error_context, flushes the error state, aborts any transaction and releases every LWLock,
 * and returns the copy for the caller to log (and free, or reset error_context); returns nullptr
 * when f() succeeded.  f must not return a value: it stores results through its captures (the
 * caller's variables are not in this function's setjmp frame, so they need no volatile).
 */
template <typename F> ErrorData *run_catching_errors(const char *where, MemoryContext error_context, F &&f)
{
    ErrorData *volatile error = nullptr;

    PG_TRY();
    {
        pg_guard(where, f);
    }
    PG_CATCH();
    {
        MemoryContextSwitchTo(error_context);
        error = CopyErrorData();
        FlushErrorState();
        AbortOutOfAnyTransaction();
        LWLockReleaseAll();
    }
    PG_END_TRY();
    return error;
}

/*
 * Runs f() in an internal subtransaction of the current transaction: if f raises an ERROR, the
 * subtransaction is rolled back (the outer transaction and the caller's resources stay usable),
 * the error is copied into error_context and returned for the caller to report; nullptr when f
 * succeeded (the subtransaction is then committed).  The worker uses it where one failed step
 * must not cost the rest of the cycle (a policy load that fails keeps the last good policies).
 */
template <typename F> ErrorData *run_in_subtransaction(MemoryContext error_context, F &&f)
{
    ErrorData *volatile error = nullptr;
    MemoryContext context = CurrentMemoryContext;
    ResourceOwner owner = CurrentResourceOwner;

    BeginInternalSubTransaction(NULL);
    MemoryContextSwitchTo(context);
    PG_TRY();
    {
        pg_guard("subtransaction", f);
        ReleaseCurrentSubTransaction();
    }
    PG_CATCH();
    {
        MemoryContextSwitchTo(error_context);
        error = CopyErrorData();
        FlushErrorState();
        RollbackAndReleaseCurrentSubTransaction();
    }
    PG_END_TRY();
    MemoryContextSwitchTo(context);
    CurrentResourceOwner = owner;
    return error;
}

/*
 * The error recovery of a path that runs after the commit, in place: runs f() and, if it raises
 * an ERROR, flushes the error state and returns false; the transaction state and every lock the
 * caller holds stay as they are (the caller holds an LWLock it releases itself, and a committed
 * transaction must not be aborted).  For calls that can fail only by a programming error (WAL
 * insertion); the caller undoes what f() left half done and reports it after its locks are
 * released.  f returns nothing: it stores results through its captures.
 */
template <typename F> bool run_keeping_state(F &&f)
{
    volatile bool ok = true;
    MemoryContext context = CurrentMemoryContext;

    PG_TRY();
    {
        f();
    }
    PG_CATCH();
    {
        MemoryContextSwitchTo(context);
        FlushErrorState();
        ok = false;
    }
    PG_END_TRY();
    return ok;
}

} // namespace poolguard

/*
 * Defines a V1 SQL-callable function whose body runs inside pg_guard:
 *
 *   POOLGUARD_FUNCTION(poolguard_version) { PG_RETURN_TEXT_P(...); }
 */
#define POOLGUARD_FUNCTION(name)                                                                             \
    extern "C"                                                                                               \
    {                                                                                                        \
        PG_FUNCTION_INFO_V1(name);                                                                           \
    }                                                                                                        \
    static Datum name##_body(PG_FUNCTION_ARGS);                                                              \
    extern "C" Datum name(PG_FUNCTION_ARGS)                                                                  \
    {                                                                                                        \
        return poolguard::pg_guard(#name, [fcinfo]() { return name##_body(fcinfo); });                       \
    }                                                                                                        \
    static Datum name##_body(PG_FUNCTION_ARGS)

/*
 * Keeps a released SQL script's C symbol working after the function it names was renamed (same
 * SQL signature): the old script's functions call `legacy`, which runs `current`.  The library
 * serves every released version's SQL until ALTER EXTENSION pg_poolguard UPDATE
 * (docs/configuration.md, Upgrading); a changed signature gets its own entry point instead (poolguard_X_1_1).
 */
#define POOLGUARD_LEGACY_ENTRY(legacy, current)                                                              \
    extern "C"                                                                                               \
    {                                                                                                        \
        PG_FUNCTION_INFO_V1(legacy);                                                                         \
    }                                                                                                        \
    extern "C" Datum legacy(PG_FUNCTION_ARGS)                                                                \
    {                                                                                                        \
        return current(fcinfo);                                                                              \
    }

#endif
