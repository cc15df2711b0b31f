/*
 * shmem.cpp — reservation and attachment of pg_poolguard's shared memory.
 *
 * Note about locking (the locks of the whole "pg_poolguard" tranche are created here):
 *   - shared->lock (LWLock) guards the published policies (policy_store.cpp) and the history
 *     ring (actions.cpp).  shared->caps_lock (LWLock) guards the login accounting (caps.cpp).
 *     The two are never held together, and no other LWLock is taken under either; each file's
 *     own note says what is done under them (plain copies only).
 *   - shared->latch_mutex (spinlock) guards shared->worker_latch.  Held only to store or copy
 *     the pointer: wake_worker() copies it and calls SetLatch() after releasing the spinlock
 *     (the latch is the worker's PGPROC latch, which stays valid shared memory after the worker
 *     exits, so a late SetLatch is at worst a spurious wakeup — the pattern PostgreSQL's
 *     WalRcvForceReply uses).
 *   - worker_pid, database_missing, worker_starts are atomics, read and written lock-free.
 *   - AddinShmemInitLock is held only by shmem_startup() around ShmemInitStruct calls.
 */
#include "shmem.h"

namespace poolguard {

SharedState *shared = nullptr;

namespace {

constexpr int max_modules = 8;
ShmemSizeFn module_sizes[max_modules];
ShmemInitFn module_inits[max_modules];
int module_count = 0;

constexpr int max_tranches = 4;
const char *tranche_names[max_tranches];
int tranche_sizes[max_tranches];
int tranche_count = 0;

shmem_request_hook_type prev_shmem_request_hook = nullptr;
shmem_startup_hook_type prev_shmem_startup_hook = nullptr;

Size shared_state_size(void)
{
    return MAXALIGN(sizeof(SharedState));
}

void shared_state_init(void)
{
    bool found;

    shared = static_cast<SharedState *>(ShmemInitStruct("pg_poolguard", sizeof(SharedState), &found));
    if (!found)
    {
        LWLockPadded *locks = GetNamedLWLockTranche("pg_poolguard");
        shared->lock = &locks[0].lock;
        shared->caps_lock = &locks[1].lock;
        pg_atomic_init_u32(&shared->worker_pid, 0);
        pg_atomic_init_u32(&shared->database_missing, 0);
        pg_atomic_init_u64(&shared->worker_starts, 0);
        shared->worker_latch = nullptr;
        SpinLockInit(&shared->latch_mutex);
    }
}

void request_shared_memory(void)
{
    Size total = shared_state_size();

    for (int i = 0; i < module_count; i++)
        total = add_size(total, module_sizes[i]());
    RequestAddinShmemSpace(total);
    RequestNamedLWLockTranche("pg_poolguard", 2);
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

}  // namespace

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
    if (shared == nullptr)
        ereport(ERROR,
                (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                 errmsg("pg_poolguard must be loaded via shared_preload_libraries"),
                 errdetail("This function needs the shared memory that pg_poolguard reserves at server start."),
                 errhint("Add pg_poolguard to shared_preload_libraries in postgresql.conf and restart the server.")));
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
    if (shared == nullptr)
        return;
    SpinLockAcquire(&shared->latch_mutex);
    Latch *latch = shared->worker_latch;
    SpinLockRelease(&shared->latch_mutex);
    if (latch != nullptr)
        SetLatch(latch); /* never under the spinlock */
}

}  // namespace poolguard
