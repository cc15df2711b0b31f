/*
 * memory.cpp — the server memory picture: the shared memory segment (size, resident), the
 * private memory of client backends by policy and state, what ending every idle session would
 * free, pg_poolguard's own processes and every other server process.  Behind poolguard.memory
 * and the memory families of /metrics.
 *
 * It reads the backend status snapshot, the worker's samples of each client session's private
 * memory (samples.cpp), /proc/<pid>/status of every other server process (read_private_memory,
 * the one definition), /proc/self/maps and mincore() on this process's mapping of the segment.
 *
 * Note about locking: "pg_poolguard segment sample" (the latest residency of the segment, which
 * costs a mincore() walk of the whole segment: the worker takes it every
 * segment_sample_interval and the picture shows it with its age) is guarded by its spinlock,
 * held only to copy three integers.  No other lock is taken here, nor held while measuring.
 */
#include "pg/guard.h"
#include "enforce/enforce.h"
#include "pg/shmem.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

namespace poolguard
{

namespace
{

constexpr int nstates = 5; /* core::SessionState */

/* The whole of /proc/self/maps (palloc'd); NULL if unreadable. */
char *read_own_maps(size_t *length)
{
    int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    size_t size = 64 * 1024, total = 0;
    char *text = static_cast<char *>(palloc(size));
    ssize_t n;
    while ((n = read(fd, text + total, size - total)) > 0)
    {
        total += n;
        if (total == size)
        {
            if (size >= 64 * 1024 * 1024)
                break; /* no sane process has this many mappings */
            size *= 2;
            text = static_cast<char *>(repalloc(text, size));
        }
    }
    close(fd);
    *length = total;
    return text;
}

/*
 * The segment this process maps (the one holding pg_poolguard's shared state) and how much of it
 * is in RAM.  mincore() on a shared mapping reports the pages of the segment that are resident,
 * whichever process touched them.  A hugetlb segment is reserved whole when the server starts.
 */
bool measure_segment(int64 *size, int64 *resident)
{
    size_t length = 0;
    char *maps = read_own_maps(&length);
    core::Mapping m;
    bool found =
        maps != NULL && core::find_mapping(std::string_view(maps, length), (uintptr_t)worker_state, &m);
    if (maps)
        pfree(maps);
    if (!found)
        return false;
    *size = (int64)(m.end - m.start);
    *resident = -1;
    if (m.hugetlb)
    {
        *resident = *size;
        return true;
    }
    const size_t page = (size_t)sysconf(_SC_PAGESIZE);
    const size_t chunk_pages = 64 * 1024;
    unsigned char *vec = static_cast<unsigned char *>(palloc(chunk_pages));
    int64 pages = 0;
    for (uint64 at = m.start; at < m.end; at += chunk_pages * page)
    {
        size_t len = Min((uint64)(chunk_pages * page), m.end - at);
        if (mincore(reinterpret_cast<void *>(at), len, vec) != 0)
        {
            pfree(vec);
            return true; /* size known, residency not */
        }
        size_t npages = (len + page - 1) / page;
        for (size_t i = 0; i < npages; i++)
            pages += vec[i] & 1;
    }
    pfree(vec);
    *resident = pages * (int64)page;
    return true;
}

constexpr int64 segment_sample_interval = 10 * USECS_PER_SEC;
/* A sample older than this means no worker samples: the picture measures for itself. */
constexpr int64 segment_sample_stale = 60 * USECS_PER_SEC;

struct SegmentSample
{
    slock_t mutex;
    int64 size;              /* -1 = unknown */
    int64 resident;          /* -1 = unknown */
    TimestampTz measured_at; /* 0 = never */
};
SegmentSample *segment_sample = nullptr;

Size segment_sample_size(void)
{
    return sizeof(SegmentSample);
}

void segment_sample_init(void)
{
    bool found;
    segment_sample = static_cast<SegmentSample *>(
        ShmemInitStruct("pg_poolguard segment sample", sizeof(SegmentSample), &found));
    if (!found)
    {
        SpinLockInit(&segment_sample->mutex);
        segment_sample->size = segment_sample->resident = -1;
        segment_sample->measured_at = 0;
    }
}

/* Measures the segment now and publishes the result. */
SegmentSample sample_segment_now(void)
{
    SegmentSample s;
    s.size = s.resident = -1;
    if (!measure_segment(&s.size, &s.resident))
        s.size = s.resident = -1;
    s.measured_at = GetCurrentTimestamp();
    if (segment_sample != nullptr)
    {
        SpinLockAcquire(&segment_sample->mutex);
        segment_sample->size = s.size;
        segment_sample->resident = s.resident;
        segment_sample->measured_at = s.measured_at;
        SpinLockRelease(&segment_sample->mutex);
    }
    return s;
}

SegmentSample latest_segment_sample(void)
{
    SegmentSample s;
    s.size = s.resident = -1;
    s.measured_at = 0;
    if (segment_sample != nullptr)
    {
        SpinLockAcquire(&segment_sample->mutex);
        s.size = segment_sample->size;
        s.resident = segment_sample->resident;
        s.measured_at = segment_sample->measured_at;
        SpinLockRelease(&segment_sample->mutex);
    }
    return s;
}

bool is_pg_poolguard_process(const BackendStatusRow *be)
{
    if (be->backend_type != B_BG_WORKER)
        return false;
    const char *type = GetBackgroundWorkerTypeByPid(be->pid);
    return type != NULL && strncmp(type, "pg_poolguard", 12) == 0;
}

} // namespace

void memory_register(void)
{
    shmem_register(segment_sample_size, segment_sample_init);
}

void memory_sample_segment_if_due(void)
{
    SegmentSample last = latest_segment_sample();
    TimestampTz now = GetCurrentTimestamp();
    if (last.measured_at == 0 || now - last.measured_at >= segment_sample_interval || now < last.measured_at)
        (void)sample_segment_now();
}

const char *memory_part_name(MemoryPart part)
{
    switch (part)
    {
    case MemoryPart::shared_memory_size:
        return "shared_memory_size";
    case MemoryPart::shared_memory_resident:
        return "shared_memory_resident";
    case MemoryPart::client_backends:
        return "client_backends";
    case MemoryPart::idle_sessions:
        return "idle_sessions";
    case MemoryPart::pg_poolguard:
        return "pg_poolguard";
    case MemoryPart::other_processes:
        return "other_processes";
    }
    return "";
}

const char *session_state_name(core::SessionState state)
{
    switch (state)
    {
    case core::SessionState::active:
        return "active";
    case core::SessionState::idle:
        return "idle";
    case core::SessionState::idle_in_transaction:
        return "idle in transaction";
    case core::SessionState::idle_in_transaction_aborted:
        return "idle in transaction (aborted)";
    case core::SessionState::other:
        return "other";
    }
    return "";
}

void memory_picture(MemoryPicture *picture)
{
    MemoryFigure seg_size = {MemoryPart::shared_memory_size, -1, core::SessionState::other, -1, -1, 0};
    MemoryFigure seg_resident = seg_size;
    seg_resident.part = MemoryPart::shared_memory_resident;
    /* The worker's sample (with its age), or one of our own if no worker has sampled lately. */
    SegmentSample sample = latest_segment_sample();
    TimestampTz now = GetCurrentTimestamp();
    if (sample.measured_at == 0 || now - sample.measured_at >= segment_sample_stale ||
        now < sample.measured_at)
        sample = sample_segment_now();
    seg_size.bytes = sample.size;
    seg_resident.bytes = sample.resident;
    seg_size.measured_at = seg_resident.measured_at = sample.measured_at;

    SessionScan *scan = &picture->scan;
    scan_sessions(scan, MemoryReads::samples_all, nullptr);
    /* Client figures sum the worker's samples: each is as old as the oldest sample in it. */
    TimestampTz clients_at = GetCurrentTimestamp();
    const int npolicies = scan->policies.count + 1; /* the last: sessions no policy matches */
    MemoryFigure *clients = static_cast<MemoryFigure *>(palloc0(sizeof(MemoryFigure) * npolicies * nstates));
    MemoryFigure idle = {MemoryPart::idle_sessions, -1, core::SessionState::idle, 0, 0, clients_at};
    for (int p = 0; p < npolicies; p++)
        for (int s = 0; s < nstates; s++)
        {
            MemoryFigure *f = &clients[p * nstates + s];
            f->part = MemoryPart::client_backends;
            f->policy = p < scan->policies.count ? p : -1;
            f->state = (core::SessionState)s;
            f->measured_at = clients_at;
        }
    for (int i = 0; i < scan->count; i++)
    {
        const SessionRow *row = &scan->rows[i];
        int p = row->policy >= 0 ? row->policy : scan->policies.count;
        MemoryFigure *f = &clients[p * nstates + (int)row->state];
        f->processes++;
        if (row->private_memory > 0)
            f->bytes += row->private_memory;
        if (row->memory_at != 0)
            f->measured_at = Min(f->measured_at, row->memory_at);
        /* What reaping could return: idle sessions it may end (never exempt ones, nor the caller). */
        if (row->state == core::SessionState::idle && !row->exempt && !row->is_self)
        {
            idle.processes++;
            if (row->private_memory > 0)
                idle.bytes += row->private_memory;
            if (row->memory_at != 0)
                idle.measured_at = Min(idle.measured_at, row->memory_at);
        }
    }

    MemoryFigure own = {MemoryPart::pg_poolguard, -1, core::SessionState::other, 0, 0, 0};
    MemoryFigure other = {MemoryPart::other_processes, -1, core::SessionState::other, 0, 0, 0};
    BackendStatusRow *backends;
    int n = backend_status_snapshot(&backends); /* every process (the scan read only client sessions) */
    for (int i = 0; i < n; i++)
    {
        if (backends[i].client_backend || backends[i].sql_walsender)
            continue;
        MemoryFigure *f = is_pg_poolguard_process(&backends[i]) ? &own : &other;
        int64 bytes = read_private_memory(backends[i].pid);
        f->processes++;
        if (bytes > 0)
            f->bytes += bytes;
    }
    int64 postmaster = read_private_memory(PostmasterPid); /* in full: it inherits from nobody */
    other.processes++;
    if (postmaster > 0)
        other.bytes += postmaster;
    own.measured_at = other.measured_at = GetCurrentTimestamp();

    picture->figures = static_cast<MemoryFigure *>(palloc(sizeof(MemoryFigure) * (npolicies * nstates + 5)));
    int count = 0;
    picture->figures[count++] = seg_size;
    picture->figures[count++] = seg_resident;
    for (int c = 0; c < npolicies * nstates; c++)
        if (clients[c].processes > 0)
            picture->figures[count++] = clients[c];
    picture->figures[count++] = idle;
    picture->figures[count++] = own;
    picture->figures[count++] = other;
    picture->count = count;
    pfree(clients);
}

} // namespace poolguard

using namespace poolguard;

/*
 * poolguard.memory_info(): one row per figure (figure, policy, state, processes, bytes, age).
 * Monitoring only (pg_monitor): it reads every server process's memory, and shows sums only.
 */
POOLGUARD_FUNCTION(poolguard_memory_info)
{
    require_shared_memory();
    ReturnSetInfo *rsinfo = (ReturnSetInfo *)fcinfo->resultinfo;
    InitMaterializedSRF(fcinfo, 0);

    MemoryPicture picture;
    memory_picture(&picture);
    TimestampTz now = GetCurrentTimestamp();
    for (int i = 0; i < picture.count; i++)
    {
        const MemoryFigure *f = &picture.figures[i];
        Datum values[6];
        bool nulls[6];
        memset(nulls, 0, sizeof(nulls));
        values[0] = CStringGetTextDatum(memory_part_name(f->part));
        if (f->part == MemoryPart::client_backends && f->policy >= 0)
            values[1] = CStringGetTextDatum(picture.scan.policies.policies[f->policy].name);
        else
            nulls[1] = true;
        if (f->part == MemoryPart::client_backends || f->part == MemoryPart::idle_sessions)
            values[2] = CStringGetTextDatum(session_state_name(f->state));
        else
            nulls[2] = true;
        if (f->processes >= 0)
            values[3] = Int32GetDatum(f->processes);
        else
            nulls[3] = true;
        if (f->bytes >= 0)
            values[4] = Int64GetDatum(f->bytes);
        else
            nulls[4] = true;
        Interval *age = static_cast<Interval *>(palloc0(sizeof(Interval)));
        age->time = Max(now - f->measured_at, 0);
        values[5] = IntervalPGetDatum(age);
        tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
    }
    return (Datum)0;
}
