/*
 * sessions.cpp — the scan: backend status snapshot → matched policy → rules → verdict.
 *
 * Note about locking:
 *   - The scan runs under no lock of ours: it copies the policies (policy_store_snapshot takes
 *     the policies' lock in LW_SHARED for a memcpy), then reads the backend status snapshot and the
 *     catalog (roles, exemptions, database names) with nothing held.
 *   - "pg_poolguard measured memory" (the worker's latest /proc readings) has no lock: one
 *     writer (the worker) publishes each entry by zeroing its pid, writing the value and setting
 *     the pid again, with write barriers between; readers check the pid before and after the
 *     value with read barriers and treat a mismatch as "no reading".
 */
#include "enforce/enforce.h"

#include "pg/guc.h"
#include "pg/shmem.h"

#include "core/enforce/smaps.h"
#include "core/policy/churn.h"

#include <fcntl.h>
#include <unistd.h>

namespace poolguard
{

struct MemoryCache
{
    struct Entry
    {
        int pid;
        TimestampTz backend_start;
        TimestampTz read_at;
        int64 value;
    };
    int size;
    Entry *entries; /* direct-mapped by pid: a collision only costs an extra read */
};

namespace
{

/*
 * The worker's latest /proc reading of each backend, for poolguard.metrics() in any backend.
 * Direct-mapped by pid; a reader checks the pid, so a collision only hides a reading.
 */
struct MeasuredMemory
{
    int pid;
    int64 bytes;
};
MeasuredMemory *measured = nullptr;
int measured_size = 0;

Size measured_shmem_size(void)
{
    return mul_size(sizeof(MeasuredMemory), 2 * proc_slots());
}

void measured_shmem_init(void)
{
    bool found;
    measured_size = 2 * proc_slots();
    measured = static_cast<MeasuredMemory *>(
        ShmemInitStruct("pg_poolguard measured memory", measured_shmem_size(), &found));
    if (!found)
        memset(measured, 0, measured_shmem_size());
}

void measured_publish(int pid, int64 bytes)
{
    if (measured == nullptr || pid <= 0)
        return;
    MeasuredMemory *m = &measured[pid % measured_size];
    m->pid = 0;
    pg_write_barrier();
    m->bytes = bytes;
    pg_write_barrier();
    m->pid = pid;
}

core::SessionState map_state(BackendState state)
{
    switch (state)
    {
    case STATE_RUNNING:
        return core::SessionState::active;
    case STATE_IDLE:
        return core::SessionState::idle;
    case STATE_IDLEINTRANSACTION:
        return core::SessionState::idle_in_transaction;
    case STATE_IDLEINTRANSACTION_ABORTED:
        return core::SessionState::idle_in_transaction_aborted;
    default:
        return core::SessionState::other;
    }
}

core::SessionFacts facts_of(const SessionRow *row)
{
    core::SessionFacts f;
    f.state = row->state;
    f.state_since = row->state_change;
    f.backend_start = row->backend_start;
    f.query_start = row->query_start;
    f.private_memory = row->private_memory;
    return f;
}

} // namespace

void exemptions_load(Exemptions *exemptions)
{
    char *copy = pstrdup(guc_exempt_roles ? guc_exempt_roles : "");
    List *names = NIL;
    exemptions->count = 0;
    exemptions->roles = nullptr;
    if (!SplitIdentifierString(copy, ',', &names))
        return; /* the check hook prevents this */
    exemptions->roles = static_cast<Oid *>(palloc(sizeof(Oid) * Max(list_length(names), 1)));
    ListCell *lc;
    foreach (lc, names)
    {
        Oid role = get_role_oid(static_cast<char *>(lfirst(lc)), true);
        if (OidIsValid(role))
            exemptions->roles[exemptions->count++] = role;
    }
}

bool session_exempt(const Exemptions *exemptions, Oid userid, bool *superuser)
{
    bool super = OidIsValid(userid) && superuser_arg(userid);
    if (superuser != nullptr)
        *superuser = super;
    if (guc_exempt_superusers && super)
        return true;
    for (int e = 0; e < exemptions->count; e++)
        if (role_matches(userid, exemptions->roles[e]))
            return true;
    return false;
}

bool caller_may_see(Oid role)
{
    return has_privs_of_role(GetUserId(), ROLE_PG_READ_ALL_STATS) ||
           (OidIsValid(role) && has_privs_of_role(GetUserId(), role));
}

namespace
{

/* A tiny per-scan cache of database names (sessions spread over few databases). */
struct DatabaseNames
{
    Oid oids[16];
    char *names[16];
    int count;

    const char *lookup(Oid dbid)
    {
        for (int i = 0; i < count; i++)
            if (oids[i] == dbid)
                return names[i];
        char *name = OidIsValid(dbid) ? get_database_name(dbid) : NULL;
        if (count < 16)
        {
            oids[count] = dbid;
            names[count] = name;
            count++;
        }
        return name;
    }
};

int64 cached_private_memory(MemoryCache *cache, const SessionRow *row, TimestampTz now)
{
    if (cache == nullptr)
        return read_private_memory(row->pid);
    MemoryCache::Entry *e = &cache->entries[row->pid % cache->size];
    if (e->pid == row->pid && e->backend_start == row->backend_start &&
        now - e->read_at < (int64)guc_naptime_ms * 1000)
        return e->value;
    e->pid = row->pid;
    e->backend_start = row->backend_start;
    e->read_at = now;
    e->value = read_private_memory(row->pid);
    measured_publish(row->pid, e->value);
    return e->value;
}

} // namespace

void sessions_register(void)
{
    shmem_register(measured_shmem_size, measured_shmem_init);
}

int64 measured_private_memory(int pid)
{
    if (measured == nullptr || pid <= 0)
        return -1;
    MeasuredMemory *m = &measured[pid % measured_size];
    if (m->pid != pid)
        return -1;
    pg_read_barrier();
    int64 bytes = m->bytes;
    pg_read_barrier();
    return m->pid == pid ? bytes : -1;
}

MemoryCache *memory_cache_create(void)
{
    MemoryCache *cache =
        static_cast<MemoryCache *>(MemoryContextAllocZero(TopMemoryContext, sizeof(MemoryCache)));
    cache->size = 2 * MaxBackends + 1;
    cache->entries = static_cast<MemoryCache::Entry *>(
        MemoryContextAllocZero(TopMemoryContext, sizeof(MemoryCache::Entry) * cache->size));
    return cache;
}

int64 read_private_memory(int pid)
{
    char path[64];
    char buffer[8192];

    snprintf(path, sizeof(path), "/proc/%d/smaps_rollup", pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t total = 0, n;
    while (total < (ssize_t)sizeof(buffer) && (n = read(fd, buffer + total, sizeof(buffer) - total)) > 0)
        total += n;
    close(fd);
    return total > 0 ? core::parse_private_memory(std::string_view(buffer, total)) : -1;
}

core::IpAddress client_address(const SockAddr *addr)
{
    core::IpAddress ip;
    const struct sockaddr *sa = reinterpret_cast<const struct sockaddr *>(&addr->addr);

    if (sa->sa_family == AF_INET)
    {
        ip.family = 4;
        memcpy(ip.bytes, &reinterpret_cast<const struct sockaddr_in *>(sa)->sin_addr, 4);
    }
    else if (sa->sa_family == AF_INET6)
    {
        ip.family = 6;
        memcpy(ip.bytes, &reinterpret_cast<const struct sockaddr_in6 *>(sa)->sin6_addr, 16);
    }
    return ip;
}

const char *state_name(BackendState state)
{
    switch (state)
    {
    case STATE_IDLE:
        return "idle";
    case STATE_RUNNING:
        return "active";
    case STATE_IDLEINTRANSACTION:
        return "idle in transaction";
    case STATE_FASTPATH:
        return "fastpath function call";
    case STATE_IDLEINTRANSACTION_ABORTED:
        return "idle in transaction (aborted)";
    case STATE_DISABLED:
        return "disabled";
    default:
        return "";
    }
}

const char *row_policy_name(const SessionScan *scan, const SessionRow *row)
{
    return row->policy >= 0 ? scan->policies.policies[row->policy].name : "";
}

int backend_status_snapshot(BackendStatusRow **rows)
{
    pgstat_clear_snapshot();
    int n = pgstat_fetch_stat_numbackends();
    BackendStatusRow *out = static_cast<BackendStatusRow *>(palloc(sizeof(BackendStatusRow) * Max(n, 1)));
    int count = 0;
    for (int i = 1; i <= n; i++)
    {
        LocalPgBackendStatus *local = pgstat_fetch_stat_local_beentry(i);
        if (local == NULL || local->backendStatus.st_procpid <= 0)
            continue;
        const PgBackendStatus *be = &local->backendStatus;
        BackendStatusRow *row = &out[count++];
        row->pid = be->st_procpid;
        row->client_backend = be->st_backendType == B_BACKEND;
        row->userid = be->st_userid;
        row->dbid = be->st_databaseid;
        row->backend_start = be->st_proc_start_timestamp;
        row->state_change = be->st_state_start_timestamp;
        row->query_start = be->st_activity_start_timestamp;
        row->state = be->st_state;
        strlcpy(row->application_name, be->st_appname ? be->st_appname : "", NAMEDATALEN);
        row->client = client_address(&be->st_clientaddr);
    }
    *rows = out;
    return count;
}

void scan_sessions(SessionScan *scan, MemoryReads reads, MemoryCache *cache)
{
    scan->now = GetCurrentTimestamp();
    scan->next_deadline = DT_NOEND;
    policy_store_snapshot(&scan->policies);

    const PolicySnapshot *policies = &scan->policies;
    Oid *role_oids = policy_role_oids(policies);
    Exemptions exemptions;
    exemptions_load(&exemptions);
    core::DefaultRules defaults;
    defaults.idle_timeout = (core::Micros)guc_idle_timeout_ms * 1000;
    defaults.idle_in_transaction_timeout = (core::Micros)guc_idle_in_transaction_timeout_ms * 1000;
    core::Micros grace = (core::Micros)guc_idle_grace_ms * 1000;
    DatabaseNames databases;
    databases.count = 0;

    BackendStatusRow *backends;
    int n = backend_status_snapshot(&backends);
    scan->rows = static_cast<SessionRow *>(palloc0(sizeof(SessionRow) * Max(n, 1)));
    scan->count = 0;

    for (int i = 0; i < n; i++)
    {
        const BackendStatusRow *be = &backends[i];
        if (!be->client_backend)
            continue;

        SessionRow *row = &scan->rows[scan->count++];
        row->pid = be->pid;
        row->userid = be->userid;
        row->dbid = be->dbid;
        row->backend_start = be->backend_start;
        row->state_change = be->state_change;
        row->query_start = be->query_start;
        row->raw_state = be->state;
        row->state = map_state(be->state);
        strlcpy(row->application_name, be->application_name, NAMEDATALEN);
        row->client = be->client;
        row->is_self = row->pid == MyProcPid;
        row->exempt = session_exempt(&exemptions, row->userid, &row->superuser);
        row->policy = OidIsValid(row->userid)
                          ? policy_match(policies, role_oids, row->userid, databases.lookup(row->dbid),
                                         row->application_name, row->client)
                          : -1;
        row->rules = row->policy >= 0 ? core::effective_rules(policies->policies[row->policy].rules, defaults)
                                      : core::default_rules(defaults);
        /* The sessions view reads /proc only for the rows it shows the caller. */
        bool may_read = reads != MemoryReads::all_visible || caller_may_see(row->userid);
        row->private_memory =
            reads == MemoryReads::all_visible && may_read ? read_private_memory(row->pid) : -1;

        row->verdict = core::Verdict();
        if (row->exempt || row->is_self)
            continue;
        row->verdict = core::evaluate(facts_of(row), row->rules, scan->now, grace);
        if (row->verdict.wants_memory && row->private_memory < 0 && may_read)
        {
            row->private_memory = cached_private_memory(cache, row, scan->now);
            row->verdict = core::evaluate(facts_of(row), row->rules, scan->now, grace);
        }
        scan->next_deadline = Min(scan->next_deadline, row->verdict.deadline);
    }

    /* max_idle: decided across the idle sessions of each policy. */
    core::IdleCandidate *candidates =
        static_cast<core::IdleCandidate *>(palloc(sizeof(core::IdleCandidate) * Max(scan->count, 1)));
    for (int p = 0; p < policies->count; p++)
    {
        int count = 0;
        int64 max_idle = 0;
        for (int i = 0; i < scan->count; i++)
        {
            SessionRow *row = &scan->rows[i];
            if (row->policy != p || row->state != core::SessionState::idle || row->exempt || row->is_self)
                continue;
            max_idle = row->rules.max_idle;
            candidates[count].index = i;
            candidates[count].idle_since = row->state_change;
            candidates[count].taken = row->verdict.reason != core::Reason::none;
            candidates[count].surplus = false;
            count++;
        }
        if (max_idle <= 0 || count <= max_idle)
            continue;
        core::Micros next = core::select_surplus_idle(candidates, count, max_idle, scan->now, grace);
        scan->next_deadline = Min(scan->next_deadline, next);
        for (int c = 0; c < count; c++)
            if (candidates[c].surplus)
            {
                SessionRow *row = &scan->rows[candidates[c].index];
                row->verdict.reason = core::Reason::max_idle;
                row->verdict.limit = max_idle;
            }
    }
    pfree(candidates);

    /* min_idle: the warm floor the idle rules leave to each policy (after max_idle chose). */
    core::WarmCandidate *warm =
        static_cast<core::WarmCandidate *>(palloc(sizeof(core::WarmCandidate) * Max(scan->count, 1)));
    for (int p = 0; p < policies->count; p++)
    {
        int count = 0;
        int64 min_idle = 0;
        for (int i = 0; i < scan->count; i++)
        {
            SessionRow *row = &scan->rows[i];
            if (row->policy != p || row->state != core::SessionState::idle || row->exempt || row->is_self)
                continue;
            min_idle = row->rules.min_idle;
            warm[count].index = i;
            warm[count].idle_since = row->state_change;
            warm[count].reason = row->verdict.reason;
            warm[count].spared = false;
            count++;
        }
        if (min_idle <= 0 || core::keep_warm_floor(warm, count, min_idle) == 0)
            continue;
        for (int c = 0; c < count; c++)
            if (warm[c].spared)
            {
                SessionRow *row = &scan->rows[warm[c].index];
                row->verdict.reason = core::Reason::none;
                row->verdict.limit = 0;
            }
    }
    pfree(warm);
}

} // namespace poolguard
