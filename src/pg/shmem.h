/*
 * shmem.h — pg_poolguard's fixed-size shared memory.
 *
 * Each module that needs shared memory registers a (size, init) pair from _PG_init; the
 * shmem_request_hook reserves the sum, the shmem_startup_hook lets each module attach its own
 * ShmemInitStruct under AddinShmemInitLock.  Nothing is allocated after startup.
 */
#ifndef POOLGUARD_SHMEM_H
#define POOLGUARD_SHMEM_H

#include "pg/postgres_headers.h"

namespace poolguard
{

typedef Size (*ShmemSizeFn)(void);
typedef void (*ShmemInitFn)(void);

/*
 * The worker's identity, which every feature may read and everyone may use to wake it (the
 * policy trigger at commit, reload()).  Each feature's own locks live with its shared memory.
 */
struct WorkerState
{
    pg_atomic_uint32 worker_pid;       /* 0 when no worker runs */
    pg_atomic_uint32 database_missing; /* 1 after the worker failed to connect */
    pg_atomic_uint64 worker_starts;    /* how many times the worker started */
    Latch *worker_latch;               /* set to wake the worker; NULL when none */
    slock_t latch_mutex;               /* guards worker_latch */
};

extern WorkerState *worker_state;

/* Register a module's shared memory before the hooks run (call from _PG_init). */
void shmem_register(ShmemSizeFn size, ShmemInitFn init);

/*
 * Request a module's own named LWLock tranche of `count` locks with the shared memory (call from
 * _PG_init, before shmem_install_hooks).  Attach with GetNamedLWLockTranche(name) in the init fn.
 */
void shmem_register_lwlocks(const char *tranche, int count);

/* Install shmem_request_hook / shmem_startup_hook (call from _PG_init, after registering). */
void shmem_install_hooks(void);

/*
 * Errors with a clear message unless the library was loaded through shared_preload_libraries
 * and its shared memory exists.  Every SQL function that touches shared memory calls it first.
 */
void require_shared_memory(void);

/* Number of PGPROC slots: shared arrays indexed by procno_of() have this many entries. */
int proc_slots(void);

/* The PGPROC number of a process (an index below proc_slots()). */
int procno_of(PGPROC *proc);

/* Wakes the worker (no-op if it is not running). */
void wake_worker(void);

} // namespace poolguard

#endif
