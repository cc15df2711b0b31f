/*
 * postgres_headers.h — the one place pg_poolguard includes PostgreSQL server headers.
 *
 * Every PostgreSQL header is included here, inside extern "C", after the C++ standard
 * headers.  Files under src/core/ must never include this file: they are plain C++ and are
 * unit-tested without a server (core/no_server_headers.h enforces that).
 *
 * The rule that keeps C++ and PostgreSQL apart:
 *   PostgreSQL reports errors with longjmp.  No C++ object with a non-trivial destructor may be
 *   live across a call that can ereport(ERROR) — use plain arrays, palloc'd memory and PODs on
 *   those paths.  And no C++ exception may propagate into PostgreSQL code: code that can throw
 *   runs inside pg_guard() (guard.h, which lists what does and what deliberately does not).
 */
#ifndef POOLGUARD_POSTGRES_HEADERS_H
#define POOLGUARD_POSTGRES_HEADERS_H

#include <cstddef>
#include <cstdint>
#include <cstring>

extern "C"
{
#include "postgres.h"

#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "pgstat.h"

#include "access/genam.h"
#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "access/xlog_internal.h"
#include "access/xloginsert.h"
#include "access/xlogreader.h"
#include "catalog/dependency.h"
#include "catalog/namespace.h"
#include "catalog/pg_auth_members.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_class.h"
#include "catalog/pg_database.h"
#include "catalog/pg_extension.h"
#include "catalog/indexing.h"
#include "catalog/pg_type.h"
#include "commands/async.h"
#include "commands/dbcommands.h"
#include "commands/extension.h"
#include "common/hashfn.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "libpq/auth.h"
#include "libpq/libpq-be.h"
#include "libpq/libpq.h"
#include "postmaster/bgworker.h"
#include "replication/message.h"
#include "replication/walsender.h"
#include "postmaster/autovacuum.h"
#include "postmaster/interrupt.h"
#include "postmaster/postmaster.h"
#include "postmaster/walwriter.h"
#include "storage/condition_variable.h"
#include "storage/fd.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/pmsignal.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "storage/procarray.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "tcop/tcopprot.h"
#include "utils/acl.h"
#include "utils/backend_status.h"
#include "utils/builtins.h"
#include "utils/catcache.h"
#include "utils/fmgroids.h"
#include "utils/fmgrprotos.h"
#include "utils/guc.h"
#include "utils/guc_tables.h"
#include "utils/inval.h"
#include "utils/inet.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"
#include "utils/varlena.h"
#include "utils/wait_event.h"
}

/*
 * Every PostgreSQL version switch of pg_poolguard is here; no other file tests PG_VERSION_NUM.
 * Tested majors: 15, 17 and 18 (`make test-all`).
 */
#if PG_VERSION_NUM < 150000
#error "pg_poolguard needs PostgreSQL 15 or newer"
#endif

/*
 * The live shared backend-status entry of a regular backend (not a snapshot copy), or NULL when
 * it cannot be located (then callers fall back to a status snapshot).  backend_status.c keeps
 * the array static; pgstat_beinit() points MyBEEntry at this backend's own element of it, indexed
 * by backend id (procnumber from 17 on), so the array's base is derived from that.  Read it only
 * with pgstat_begin_read_activity / pgstat_end_read_activity.
 */
static inline volatile PgBackendStatus *poolguard_status_entry(PGPROC *proc)
{
#if PG_VERSION_NUM >= 170000
    if (MyBEEntry == NULL || MyProcNumber == INVALID_PROC_NUMBER || proc == NULL)
        return NULL;
    return MyBEEntry - MyProcNumber + GetNumberFromPGProc(proc);
#else
    if (MyBEEntry == NULL || MyBackendId == InvalidBackendId || proc == NULL ||
        proc->backendId == InvalidBackendId)
        return NULL;
    return MyBEEntry - (MyBackendId - 1) + (proc->backendId - 1);
#endif
}

/*
 * The first element of the shared backend-status array (the entries of regular backends are its
 * first MaxBackends elements, one per backend id — proc number from 17 on), or NULL when this
 * process has no entry to derive it from.  Read entries only with pgstat_begin_read_activity /
 * pgstat_end_read_activity; an entry with st_procpid 0 is unused.
 */
static inline volatile PgBackendStatus *poolguard_status_array(void)
{
#if PG_VERSION_NUM >= 170000
    if (MyBEEntry == NULL || MyProcNumber == INVALID_PROC_NUMBER || MyProcNumber >= MaxBackends)
        return NULL;
    return MyBEEntry - MyProcNumber;
#else
    if (MyBEEntry == NULL || MyBackendId == InvalidBackendId || MyBackendId > MaxBackends)
        return NULL;
    return MyBEEntry - (MyBackendId - 1);
#endif
}

/* Wakes the WAL writer (no-op when it is not running); PostgreSQL 18 keeps its proc number, not its latch. */
static inline void poolguard_wake_walwriter(void)
{
#if PG_VERSION_NUM >= 180000
    ProcNumber walwriter = ProcGlobal->walwriterProc;
    if (walwriter != INVALID_PROC_NUMBER)
        SetLatch(&GetPGProcByNumber(walwriter)->procLatch);
#else
    if (ProcGlobal->walwriterLatch != NULL)
        SetLatch(ProcGlobal->walwriterLatch);
#endif
}

/* A non-transactional logical decoding message; PostgreSQL 17 added the `flush` argument. */
#if PG_VERSION_NUM >= 170000
#define poolguard_log_logical_message(prefix, message, size)                                                 \
    LogLogicalMessage(prefix, message, size, false, false)
#else
#define poolguard_log_logical_message(prefix, message, size) LogLogicalMessage(prefix, message, size, false)
#endif

#if PG_VERSION_NUM >= 160000
/* PostgreSQL 16 renamed the accessor of the backend-status snapshot by position. */
#define pgstat_fetch_stat_local_beentry(i) pgstat_get_local_beentry_by_index(i)
#endif

/* Every GUC record (PostgreSQL 16 keeps them in a hash table and returns a palloc'd array). */
static inline struct config_generic **poolguard_guc_variables(int *count)
{
#if PG_VERSION_NUM >= 160000
    return get_guc_variables(count);
#else
    *count = GetNumConfigOptions();
    return get_guc_variables();
#endif
}

#if PG_VERSION_NUM < 170000
/* PostgreSQL 17 replaced PGPROC.pgprocno by this function. */
#define GetNumberFromPGProc(proc) ((proc)->pgprocno)
#endif

#endif
