/*
 * samples.cpp — the worker's samples of every client session's private memory, served by
 * poolguard.sessions, poolguard.memory, poolguard.metrics() and /metrics with their age, so that
 * none of them reads /proc once per session (issue 22: at 5,000 sessions a view that did cost
 * 27× pg_stat_activity).  poolguard.session_memory(pid) reads one session afresh.
 *
 * The figure is the project's one definition (read_private_memory): pages only that process
 * maps, less what it still shares with the postmaster, never the shared segment.  Memory rules
 * (max_idle_memory, the idle-memory budgets) never act on a sample: the scan reads their
 * candidates itself (scan_sessions, MemoryReads::as_rules_need).
 *
 * Each cycle the worker first reads every session that is new in its PGPROC slot (so a session
 * has a figure one cycle after its login), then core::sessions_to_sample() more — about each
 * session once per poolguard.memory_sample_interval — walking the PGPROC numbers round-robin
 * from where the last cycle stopped; at most max_per_cycle reads each way per cycle.
 *
 * Note about locking: "pg_poolguard memory samples" (one slot per PGPROC number below
 * MaxBackends) takes no lock.  Only the worker writes a slot (one writer), bracketing each write
 * with its change counter (an atomic, odd while the write is under way, with write barriers);
 * a reader copies the slot between two reads of the counter (read barriers) and retries, a few
 * times, if the counter was odd or moved — so readers never block the worker, the worker never
 * waits for a reader, and nobody sees a torn figure.  Each slot keeps the pid and start time of
 * the process it was read from: a reader serves a figure only to the session with the same pid
 * and start time, never to a later process in the same slot.
 */
#include "pg/guard.h"
#include "enforce/enforce.h"
#include "pg/guc.h"
#include "pg/shmem.h"

#include "core/enforce/sampling.h"

namespace poolguard
{

namespace
{

constexpr int max_per_cycle = 500;

struct SampleSlot
{
    pg_atomic_uint32 changes; /* odd while the worker writes the fields below */
    int32 pid;                /* 0 = none */
    TimestampTz backend_start;
    int64 bytes;
    TimestampTz sampled_at;
};

struct SampleArray
{
    int nslots;
    SampleSlot slots[FLEXIBLE_ARRAY_MEMBER];
};
SampleArray *samples = nullptr;

Size samples_size(void)
{
    return add_size(offsetof(SampleArray, slots), mul_size(sizeof(SampleSlot), MaxBackends));
}

void samples_init(void)
{
    bool found;
    samples =
        static_cast<SampleArray *>(ShmemInitStruct("pg_poolguard memory samples", samples_size(), &found));
    if (!found)
    {
        samples->nslots = MaxBackends;
        for (int i = 0; i < MaxBackends; i++)
        {
            SampleSlot *slot = &samples->slots[i];
            pg_atomic_init_u32(&slot->changes, 0);
            slot->pid = 0;
            slot->backend_start = 0;
            slot->bytes = -1;
            slot->sampled_at = 0;
        }
    }
}

/* The one writer (the worker). */
void slot_write(SampleSlot *slot, int pid, TimestampTz backend_start, int64 bytes, TimestampTz at)
{
    uint32 c = pg_atomic_read_u32(&slot->changes);
    uint32 writing = (c & 1) ? c + 2 : c + 1; /* odd: a worker that died mid-write left it odd */
    pg_atomic_write_u32(&slot->changes, writing);
    pg_write_barrier();
    volatile SampleSlot *v = slot;
    v->pid = pid;
    v->backend_start = backend_start;
    v->bytes = bytes;
    v->sampled_at = at;
    pg_write_barrier();
    pg_atomic_write_u32(&slot->changes, writing + 1);
}

/* A consistent copy of a slot; false if the worker kept writing it (then: no figure). */
bool slot_read(SampleSlot *slot, MemorySample *out)
{
    for (int attempt = 0; attempt < 8; attempt++)
    {
        uint32 before = pg_atomic_read_u32(&slot->changes);
        if (before & 1)
        {
            pg_spin_delay();
            continue;
        }
        pg_read_barrier();
        volatile SampleSlot *v = slot;
        out->pid = v->pid;
        out->backend_start = v->backend_start;
        out->bytes = v->bytes;
        out->sampled_at = v->sampled_at;
        pg_read_barrier();
        if (pg_atomic_read_u32(&slot->changes) == before)
            return true;
    }
    return false;
}

int compare_samples(const void *a, const void *b)
{
    int x = static_cast<const MemorySample *>(a)->pid, y = static_cast<const MemorySample *>(b)->pid;
    return x < y ? -1 : x > y;
}

/* Worker-local: where the walk stopped, and the reads owed. */
int cursor = 0;
core::SampleBudget budget;

} // namespace

void samples_register(void)
{
    shmem_register(samples_size, samples_init);
}

void memory_samples_take(const SessionScan *scan)
{
    if (samples == nullptr || samples->nslots <= 0 || scan->count == 0)
        return;
    TimestampTz now = GetCurrentTimestamp();
    int share = core::sessions_to_sample(&budget, now, scan->count,
                                         (int64)guc_memory_sample_interval_ms * 1000, max_per_cycle);
    if (guc_memory_sample_interval_ms <= 0)
        return;

    /* pid → row of this scan (the rows are the client sessions the views show). */
    size_t capacity = core::PidIndex::capacity_for(scan->count);
    core::PidIndex::Slot *storage =
        static_cast<core::PidIndex::Slot *>(palloc(sizeof(core::PidIndex::Slot) * capacity));
    core::PidIndex rows(storage, capacity);
    for (int i = 0; i < scan->count; i++)
        rows.insert(scan->rows[i].pid, i);
    int nslots = Min(samples->nslots, (int)ProcGlobal->allProcCount);

    /*
     * First, every slot whose process is not the one sampled there (a new session: read now, so
     * that it has a figure one cycle after its login; a session gone: slot cleared).  One pass
     * over the slots, a pid compare each; at most max_per_cycle reads.
     */
    int fresh = 0;
    for (int procno = 0; procno < nslots; procno++)
    {
        SampleSlot *slot = &samples->slots[procno];
        int pid = ((volatile PGPROC *)&ProcGlobal->allProcs[procno])->pid;
        if (pid == slot->pid) /* only the worker writes: its own last value */
            continue;
        int r = rows.find(pid);
        if (r < 0)
        {
            if (slot->pid != 0)
                slot_write(slot, 0, 0, -1, now);
            continue;
        }
        if (fresh >= max_per_cycle)
            continue;
        const SessionRow *row = &scan->rows[r];
        int64 bytes = row->private_memory >= 0 ? row->private_memory : read_private_memory(row->pid);
        slot_write(slot, row->pid, row->backend_start, bytes, GetCurrentTimestamp());
        fresh++;
    }

    /* Then this cycle's share of re-reads, round-robin from where the last cycle stopped. */
    if (cursor >= nslots)
        cursor = 0;
    int taken = 0;
    for (int visited = 0; visited < nslots && taken < share; visited++)
    {
        int procno = cursor;
        cursor = (cursor + 1) % nslots;
        SampleSlot *slot = &samples->slots[procno];
        if (slot->pid == 0 || slot->sampled_at >= now) /* none, or read just above */
            continue;
        int r = rows.find(slot->pid);
        if (r < 0 || scan->rows[r].backend_start != slot->backend_start)
            continue; /* gone since the scan: the next cycle's first pass clears it */
        const SessionRow *row = &scan->rows[r];
        /* A rule read it this cycle: publish that figure rather than read again. */
        int64 bytes = row->private_memory >= 0 ? row->private_memory : read_private_memory(row->pid);
        slot_write(slot, row->pid, row->backend_start, bytes, GetCurrentTimestamp());
        taken++;
    }
    pfree(storage);
}

int memory_samples_copy(MemorySample **out)
{
    *out = nullptr;
    if (samples == nullptr)
        return 0;
    MemorySample *copy = static_cast<MemorySample *>(palloc(sizeof(MemorySample) * Max(samples->nslots, 1)));
    int count = 0;
    for (int i = 0; i < samples->nslots; i++)
    {
        MemorySample s;
        if (slot_read(&samples->slots[i], &s) && s.pid != 0 && s.bytes >= 0)
            copy[count++] = s;
    }
    qsort(copy, count, sizeof(MemorySample), compare_samples);
    *out = copy;
    return count;
}

const MemorySample *memory_sample_find(const MemorySample *samples_, int count, int pid,
                                       TimestampTz backend_start)
{
    MemorySample key;
    key.pid = pid;
    const MemorySample *found = static_cast<const MemorySample *>(
        bsearch(&key, samples_, count, sizeof(MemorySample), compare_samples));
    if (found == nullptr || found->backend_start != backend_start)
        return nullptr;
    return found;
}

int64 memory_sample_age_bound(int sessions)
{
    return core::sample_age_bound(sessions, (int64)guc_memory_sample_interval_ms * 1000,
                                  (int64)guc_naptime_ms * 1000, max_per_cycle);
}

} // namespace poolguard

using namespace poolguard;

/*
 * poolguard.session_memory(pid integer): the private memory of one client session read from
 * /proc now; NULL unless pid is a client session (or SQL walsender) whose details the caller may
 * see (the rules of poolguard.sessions).
 */
POOLGUARD_FUNCTION(poolguard_session_memory)
{
    require_shared_memory();
    int pid = PG_GETARG_INT32(0);
    /* This transaction's backend-status snapshot (taken once, as pg_stat_activity's). */
    BackendStatusRow *rows;
    int n = backend_status_snapshot(&rows, false);
    for (int i = 0; i < n; i++)
    {
        if (rows[i].pid != pid)
            continue;
        if ((!rows[i].client_backend && !rows[i].sql_walsender) || !caller_may_see(rows[i].userid))
            break;
        int64 bytes = read_private_memory(pid);
        pfree(rows);
        if (bytes < 0)
            PG_RETURN_NULL();
        PG_RETURN_INT64(bytes);
    }
    pfree(rows);
    PG_RETURN_NULL();
}
