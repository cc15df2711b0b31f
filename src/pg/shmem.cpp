/*
 * shmem.cpp — reservation and attachment of pg_poolguard's shared memory.
 *
 * Note about locking (every lock and the order: docs/architecture.md, "Locks"):
 *   - Each feature requests its own LWLock tranche here (shmem_register_lwlocks) and documents
 *     its locks in its own file: "pg_poolguard policies" (policy_store.cpp), "pg_poolguard
 *     history" (actions.cpp), "pg_poolguard caps" (caps.cpp), "pg_poolguard policy stats"
 *     (stats.cpp), "pg_poolguard app stats" (app_stats.cpp), "pg_poolguard advice" (advice.cpp),
 *     "pg_poolguard invalidation" (invalidation_shmem.cpp), "pg_poolguard feed"
 *     (invalidation_feed.cpp).  "pg_poolguard memory samples" (samples.cpp) takes no lock: a change
 *     counter per slot, one writer.  One nesting exists: a committing backend takes the feed lock
 *     while it holds the invalidation lock (order: invalidation, then feed).  Every other lock is
 *     a leaf, never held while another is taken.  The whole order: docs/architecture.md, "Locks".
 *   - worker_state->latch_mutex (spinlock) guards worker_state->worker_latch.  Held only to store or copy
 *     the pointer: wake_worker() copies it and calls SetLatch() after releasing the spinlock
 *     (the latch is the worker's PGPROC latch, which stays valid shared memory after the worker
 *     exits, so a late SetLatch is at worst a spurious wakeup — the pattern PostgreSQL's
 *     WalRcvForceReply uses).
 *   - worker_pid, database_missing, worker_starts are atomics, read and written lock-free.
 *   - AddinShmemInitLock is held only by shmem_startup() around ShmemInitStruct calls.
 */
#include "pg/shmem.h"

namespace poolguard
{

WorkerState *worker_state = nullptr; /* "pg_poolguard" in shared memory */

namespace
{

constexpr int max_modules = 16;
ShmemSizeFn module_sizes[max_modules];
ShmemInitFn module_inits[max_modules];
int module_count = 0;

constexpr int max_tranches = 16;
const char *tranche_names[max_tranches];
int tranche_sizes[max_tranches];
int tranche_count = 0;

shmem_request_hook_type prev_shmem_request_hook = nullptr;
shmem_startup_hook_type prev_shmem_startup_hook = nullptr;

Size shared_state_size(void)
{
    return MAXALIGN(sizeof(WorkerState));
}

void shared_state_init(void)
{
    bool found;

    worker_state = static_cast<WorkerState *>(ShmemInitStruct("pg_poolguard", sizeof(WorkerState), &found));
    if (!found)
    {
        pg_atomic_init_u32(&worker_state->worker_pid, 0);
        pg_atomic_init_u32(&worker_state->database_missing, 0);
        pg_atomic_init_u64(&worker_state->worker_starts, 0);
        worker_state->worker_latch = nullptr;
        SpinLockInit(&worker_state->latch_mutex);
    }
}

void request_shared_memory(void)
{
    Size total = shared_state_size();

    for (int i = 0; i < module_count; i++)
        total = add_size(total, module_sizes[i]());
    RequestAddinShmemSpace(total);
    for (int i = 0; i < tranche_count; i++)
        RequestNamedLWLockTranche(tranche_names[i], tranche_sizes[i]);
}

void shmem_request(void)
{
    if (prev_shmem_request_hook)
        prev_shmem_request_hook();
    request_shared_memory();
}

void shmem_startup(void)
{
    if (prev_shmem_startup_hook)
        prev_shmem_startup_hook();

    LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
    shared_state_init();
    for (int i = 0; i < module_count; i++)
        module_inits[i]();
    LWLockRelease(AddinShmemInitLock);
}

} // namespace

void shmem_register(ShmemSizeFn size, ShmemInitFn init)
{
    if (module_count >= max_modules)
        elog(ERROR, "pg_poolguard: too many shared memory modules");
    module_sizes[module_count] = size;
    module_inits[module_count] = init;
    module_count++;
}

void shmem_register_lwlocks(const char *tranche, int count)
{
    if (tranche_count >= max_tranches)
        elog(ERROR, "pg_poolguard: too many LWLock tranches");
    tranche_names[tranche_count] = tranche;
    tranche_sizes[tranche_count] = count;
    tranche_count++;
}

void shmem_install_hooks(void)
{
    prev_shmem_request_hook = shmem_request_hook;
    shmem_request_hook = shmem_request;
    prev_shmem_startup_hook = shmem_startup_hook;
    shmem_startup_hook = shmem_startup;
}

void require_shared_memory(void)
{
    if (worker_state == nullptr)
        ereport(
            ERROR,
            (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
             errmsg("pg_poolguard must be loaded via shared_preload_libraries"),
             errdetail("This function needs the shared memory that pg_poolguard reserves at server start."),
             errhint(
                 "Add pg_poolguard to shared_preload_libraries in postgresql.conf and restart the server.")));
}

int proc_slots(void)
{
    return MaxBackends + NUM_AUXILIARY_PROCS;
}

int procno_of(PGPROC *proc)
{
    return GetNumberFromPGProc(proc);
}

void wake_worker(void)
{
    if (worker_state == nullptr)
        return;
    SpinLockAcquire(&worker_state->latch_mutex);
    Latch *latch = worker_state->worker_latch;
    SpinLockRelease(&worker_state->latch_mutex);
    if (latch != nullptr)
        SetLatch(latch); /* never under the spinlock */
}

} // namespace poolguard
