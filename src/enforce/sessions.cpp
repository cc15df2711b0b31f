/*
 * sessions.cpp — the scan: the sessions' live backend-status entries → matched policy → rules →
 * verdict.
 *
 * Note about locking:
 *   - The scan runs under no lock of ours: it copies the policies (policy_store_snapshot takes
 *     the policies' lock in LW_SHARED for a memcpy), then reads the backend status snapshot and the
 *     catalog (roles, exemptions, database names) with nothing held.
 *   - It owns no shared memory.  Memory figures are read from /proc/<pid>/status with nothing held.
 *   - "pg_poolguard login names" (the application_name each session gave at login, by PGPROC
 *     number) is guarded by its own LWLock (tranche "pg_poolguard login names"): LW_EXCLUSIVE
 *     for the one write a login makes to its own entry, LW_SHARED to copy the whole array out.
 *     Only memcpy/strlcpy happen under it; it is a leaf (nothing else is taken while it is held).
 */
#include "enforce/enforce.h"

#include "pg/guc.h"
#include "pg/shmem.h"

#include "core/enforce/process_memory.h"
#include "core/enforce/sampling.h"
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
    /*
     * The policy a session matched: it depends only on what the session logged in with (role,
     * database, login application_name, client), on the policies (their version) and on the
     * roles and databases (role_generation, bumped by syscache callbacks on role membership, roles
     * and databases), so the worker matches each session once, not each scan.
     */
    struct Match
    {
        int pid;
        TimestampTz backend_start;
        uint64 policy_version;
        uint64 role_generation;
        int policy;
    };
    int size;
    Entry *entries; /* direct-mapped by pid: a collision only costs an extra read */
    Match *matches; /* direct-mapped by pid: a collision only costs an extra match */
};

namespace
{

/* Bumped when a role, a role membership or a database changes (this process's syscache). */
uint64 role_generation = 1;

void bump_role_generation(Datum arg, int cacheid, uint32 hashvalue)
{
    role_generation++;
}

} // namespace

namespace
{

/*
 * What a session said at login, by PGPROC number: policies judge a session by its login
 * identity, never by the application_name it SETs later (issue 19: a session that renames itself
 * after login must not escape a rule or borrow another policy's).
 */
struct LoginName
{
    int pid; /* 0 = free */
    TimestampTz backend_start;
    char application_name[NAMEDATALEN];
};
struct LoginNames
{
    LWLock *lock; /* tranche "pg_poolguard login names" */
    LoginName entries[FLEXIBLE_ARRAY_MEMBER];
};
LoginNames *login_names = nullptr;
constexpr const char *login_names_tranche = "pg_poolguard login names";

Size login_names_size(void)
{
    return add_size(offsetof(LoginNames, entries), mul_size(sizeof(LoginName), proc_slots()));
}

void login_names_init(void)
{
    bool found;
    login_names =
        static_cast<LoginNames *>(ShmemInitStruct("pg_poolguard login names", login_names_size(), &found));
    if (!found)
    {
        memset(login_names, 0, login_names_size());
        login_names->lock = &(GetNamedLWLockTranche(login_names_tranche))->lock;
    }
}

/*
 * Puts each session's login application_name in place of its current one: the rows of client
 * backends and SQL walsenders get what their login said ("" when no login was recorded).
 */
void use_login_names(BackendStatusRow *rows, int n)
{
    if (login_names == nullptr)
        return;
    int slots = proc_slots();
    LoginName *copy = static_cast<LoginName *>(palloc(sizeof(LoginName) * slots));
    LWLockAcquire(login_names->lock, LW_SHARED);
    memcpy(copy, login_names->entries, sizeof(LoginName) * slots);
    LWLockRelease(login_names->lock);
    /* pid → entry: one pass over the slots (a sort of them cost more, each scan, than the rest). */
    size_t capacity = core::PidIndex::capacity_for(slots);
    core::PidIndex::Slot *storage =
        static_cast<core::PidIndex::Slot *>(palloc(sizeof(core::PidIndex::Slot) * capacity));
    core::PidIndex index(storage, capacity);
    for (int e = 0; e < slots; e++)
    {
        /* A pid in two slots (one entry left by an earlier process): the later login wins. */
        int seen = index.find(copy[e].pid);
        if (seen < 0 || copy[seen].backend_start < copy[e].backend_start)
            index.assign(copy[e].pid, e);
    }
    for (int i = 0; i < n; i++)
    {
        BackendStatusRow *row = &rows[i];
        if (!row->client_backend && !row->sql_walsender)
            continue;
        int e = index.find(row->pid);
        if (e >= 0 && copy[e].backend_start == row->backend_start)
            strlcpy(row->application_name, copy[e].application_name, NAMEDATALEN);
        else
            row->application_name[0] = '\0';
    }
    pfree(storage);
    pfree(copy);
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

/*
 * Each role's exemption, decided once per scan (superuser_arg and the exempt_roles memberships
 * are catalog lookups; thousands of sessions share a few roles).  Open addressing by role OID.
 */
struct ExemptionMemo
{
    struct Entry
    {
        Oid role; /* InvalidOid = empty */
        bool exempt;
        bool superuser;
    };
    Entry *entries;
    uint32 mask;

    void init(int sessions)
    {
        uint32 capacity = 16;
        while (capacity < 2 * (uint32)Max(sessions, 1))
            capacity *= 2;
        entries = static_cast<Entry *>(palloc0(sizeof(Entry) * capacity));
        mask = capacity - 1;
    }

    bool exempt(const Exemptions *exemptions, Oid role, bool *superuser)
    {
        if (!OidIsValid(role))
            return session_exempt(exemptions, role, superuser);
        for (uint32 at = (role * 2654435761u) & mask;; at = (at + 1) & mask)
        {
            Entry *e = &entries[at];
            if (e->role == role)
            {
                *superuser = e->superuser;
                return e->exempt;
            }
            if (!OidIsValid(e->role))
            {
                e->exempt = session_exempt(exemptions, role, &e->superuser);
                e->role = role;
                *superuser = e->superuser;
                return e->exempt;
            }
        }
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
    return e->value;
}

/* The policy a row matches: through the worker's memo when there is one (see MemoryCache::Match). */
int matched_policy(MemoryCache *cache, const SessionRow *row, const PolicySnapshot *policies,
                   PolicyMatchCache *match_cache, DatabaseNames *databases)
{
    if (!OidIsValid(row->userid))
        return -1;
    MemoryCache::Match *m = cache != nullptr ? &cache->matches[row->pid % cache->size] : nullptr;
    if (m != nullptr && m->pid == row->pid && m->backend_start == row->backend_start &&
        m->policy_version == policies->version && m->role_generation == role_generation)
        return m->policy;
    int policy = policy_match(policies, match_cache, row->userid, databases->lookup(row->dbid),
                              row->application_name, row->client);
    if (m != nullptr)
    {
        m->pid = row->pid;
        m->backend_start = row->backend_start;
        m->policy_version = policies->version;
        m->role_generation = role_generation;
        m->policy = policy;
    }
    return policy;
}

} // namespace

void sessions_register(void)
{
    shmem_register(login_names_size, login_names_init);
    shmem_register_lwlocks(login_names_tranche, 1);
}

void sessions_note_login(int procno, const char *application_name)
{
    if (login_names == nullptr || procno < 0 || procno >= proc_slots())
        return;
    LWLockAcquire(login_names->lock, LW_EXCLUSIVE);
    LoginName *entry = &login_names->entries[procno];
    entry->pid = MyProcPid;
    entry->backend_start = MyStartTimestamp;
    strlcpy(entry->application_name, application_name ? application_name : "", NAMEDATALEN);
    LWLockRelease(login_names->lock);
}

MemoryCache *memory_cache_create(void)
{
    MemoryCache *cache =
        static_cast<MemoryCache *>(MemoryContextAllocZero(TopMemoryContext, sizeof(MemoryCache)));
    cache->size = 2 * MaxBackends + 1;
    cache->entries = static_cast<MemoryCache::Entry *>(
        MemoryContextAllocZero(TopMemoryContext, sizeof(MemoryCache::Entry) * cache->size));
    cache->matches = static_cast<MemoryCache::Match *>(
        MemoryContextAllocZero(TopMemoryContext, sizeof(MemoryCache::Match) * cache->size));
    CacheRegisterSyscacheCallback(AUTHOID, bump_role_generation, (Datum)0);
    CacheRegisterSyscacheCallback(AUTHMEMROLEMEM, bump_role_generation, (Datum)0);
    CacheRegisterSyscacheCallback(DATABASEOID, bump_role_generation, (Datum)0);
    return cache;
}

bool read_process_memory(int pid, core::ProcessMemory *out)
{
    char path[64];
    char buffer[8192]; /* RssAnon and VmSwap come within the first 1.5 kB (after Groups:) */

    snprintf(path, sizeof(path), "/proc/%d/status", pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    ssize_t total = 0, n;
    while (total < (ssize_t)sizeof(buffer) && (n = read(fd, buffer + total, sizeof(buffer) - total)) > 0)
        total += n;
    close(fd);
    return total > 0 && core::parse_process_status(std::string_view(buffer, total), out);
}

namespace
{

/* The postmaster's figure, re-read at most once a second (it hardly changes). */
bool postmaster_memory(core::ProcessMemory *out)
{
    static core::ProcessMemory cached;
    static TimestampTz read_at = 0;
    static bool valid = false;
    TimestampTz now = GetCurrentTimestamp();
    if (read_at == 0 || now - read_at >= USECS_PER_SEC || now < read_at)
    {
        valid = PostmasterPid > 0 && read_process_memory(PostmasterPid, &cached);
        read_at = now;
    }
    *out = cached;
    return valid;
}

} // namespace

int64 read_private_memory(int pid)
{
    core::ProcessMemory process;
    if (!read_process_memory(pid, &process))
        return -1;
    if (pid == PostmasterPid)
        return core::private_memory_bytes(process, nullptr);
    core::ProcessMemory postmaster;
    bool have = postmaster_memory(&postmaster);
    return core::private_memory_bytes(process, have ? &postmaster : nullptr);
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

int backend_status_snapshot(BackendStatusRow **rows, bool fresh)
{
    if (fresh)
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
        row->backend_type = be->st_backendType;
        /* replication=database: a walsender that runs SQL (physical ones have no database). */
        row->sql_walsender = be->st_backendType == B_WAL_SENDER && OidIsValid(be->st_databaseid);
        row->userid = be->st_userid;
        row->dbid = be->st_databaseid;
        row->backend_start = be->st_proc_start_timestamp;
        row->state_change = be->st_state_start_timestamp;
        row->query_start = be->st_activity_start_timestamp;
        row->state = be->st_state;
        strlcpy(row->application_name, be->st_appname ? be->st_appname : "", NAMEDATALEN);
        row->client = client_address(&be->st_clientaddr);
    }
    use_login_names(out, count);
    *rows = out;
    return count;
}

namespace
{

/*
 * The client sessions (client backends and SQL walsenders) read straight from their live
 * backend-status entries (the first MaxBackends of the shared array), each copied under its
 * change count as pgstat does: no snapshot of every slot, no copy of any activity, host name or
 * application_name string (the scan uses the login names).  -1 when the array cannot be located
 * (then the caller takes a snapshot).
 */
int backend_status_live(BackendStatusRow **rows)
{
    volatile PgBackendStatus *array = poolguard_status_array();
    if (array == NULL)
        return -1;
    BackendStatusRow *out =
        static_cast<BackendStatusRow *>(palloc(sizeof(BackendStatusRow) * Max(MaxBackends, 1)));
    int count = 0;
    for (int slot = 0; slot < MaxBackends; slot++)
    {
        volatile PgBackendStatus *entry = &array[slot];
        if (entry->st_procpid <= 0)
            continue; /* unused (a peek: read properly below) */
        BackendStatusRow row;
        bool complete = false;
        for (int attempt = 0; attempt < 1000 && !complete; attempt++)
        {
            int before, after;
            pgstat_begin_read_activity(entry, before);
            row.pid = entry->st_procpid;
            row.backend_type = entry->st_backendType;
            row.userid = entry->st_userid;
            row.dbid = entry->st_databaseid;
            row.backend_start = entry->st_proc_start_timestamp;
            row.state_change = entry->st_state_start_timestamp;
            row.query_start = entry->st_activity_start_timestamp;
            row.state = entry->st_state;
            /* Only the head that client_address() reads (an IPv6 address at most), not the 132 bytes. */
            SockAddr addr;
            memcpy(&addr.addr, (const void *)&entry->st_clientaddr.addr, sizeof(struct sockaddr_in6));
            pgstat_end_read_activity(entry, after);
            complete = pgstat_read_activity_complete(before, after);
            if (complete)
                row.client = client_address(&addr);
            else
                CHECK_FOR_INTERRUPTS();
        }
        if (!complete || row.pid <= 0)
            continue; /* never settled, or no longer in use */
        row.client_backend = row.backend_type == B_BACKEND;
        row.sql_walsender = row.backend_type == B_WAL_SENDER && OidIsValid(row.dbid);
        if (!row.client_backend && !row.sql_walsender)
            continue;
        row.application_name[0] = '\0';
        out[count++] = row;
    }
    use_login_names(out, count);
    *rows = out;
    return count;
}

/*
 * The scan's rows grouped by policy, in row order within each group: the rows of policy p are
 * order[first[p]] .. order[first[p + 1] - 1].  The rules decided across a policy's sessions
 * (max_idle, min_idle, idle_memory_budget) walk only their own policy's rows, so a scan costs
 * sessions + policies, not sessions × policies (10,000 policies, 5,000 sessions).
 */
struct RowsByPolicy
{
    int *first; /* policies.count + 1 entries */
    int *order; /* row indexes, grouped */
};

RowsByPolicy group_rows_by_policy(const SessionScan *scan)
{
    int npolicies = scan->policies.count;
    RowsByPolicy groups;
    groups.first = static_cast<int *>(palloc0(sizeof(int) * (npolicies + 1)));
    groups.order = static_cast<int *>(palloc(sizeof(int) * Max(scan->count, 1)));
    for (int i = 0; i < scan->count; i++)
        if (scan->rows[i].policy >= 0)
            groups.first[scan->rows[i].policy + 1]++;
    for (int p = 0; p < npolicies; p++)
        groups.first[p + 1] += groups.first[p];
    int *next = static_cast<int *>(palloc(sizeof(int) * Max(npolicies, 1)));
    memcpy(next, groups.first, sizeof(int) * npolicies);
    for (int i = 0; i < scan->count; i++)
        if (scan->rows[i].policy >= 0)
            groups.order[next[scan->rows[i].policy]++] = i;
    pfree(next);
    return groups;
}

/*
 * One idle-memory budget over the idle, non-exempt sessions of policy p (-1: every policy and
 * none, for the server's budget): the victims get reason idle_memory_budget.  Sessions another
 * rule already ends count as gone.
 */
void apply_budget(SessionScan *scan, core::BudgetCandidate *candidates, int p, const RowsByPolicy &groups,
                  int64 budget, core::Micros grace)
{
    int count = 0;
    int from = p >= 0 ? groups.first[p] : 0;
    int to = p >= 0 ? groups.first[p + 1] : scan->count;
    for (int k = from; k < to; k++)
    {
        int i = p >= 0 ? groups.order[k] : k;
        SessionRow *row = &scan->rows[i];
        if (row->state != core::SessionState::idle || row->exempt || row->is_self)
            continue;
        candidates[count].index = i;
        candidates[count].idle_since = row->state_change;
        candidates[count].memory = row->private_memory;
        candidates[count].taken = row->verdict.reason != core::Reason::none;
        candidates[count].victim = false;
        count++;
    }
    core::Micros next = core::select_over_budget(candidates, count, budget, scan->now, grace);
    scan->next_deadline = Min(scan->next_deadline, next);
    for (int c = 0; c < count; c++)
        if (candidates[c].victim)
        {
            SessionRow *row = &scan->rows[candidates[c].index];
            row->verdict.reason = core::Reason::idle_memory_budget;
            row->verdict.limit = budget;
            row->server_budget = p < 0;
        }
}

/*
 * The idle-memory budgets (each policy's idle_memory_budget, then poolguard.idle_memory_budget
 * over every idle session): marks the victims of an over-budget total.  Called by scan_sessions
 * once every other rule has judged.
 */
void apply_idle_memory_budgets(SessionScan *scan, const RowsByPolicy &groups, int64 server_budget,
                               core::Micros grace)
{
    core::BudgetCandidate *candidates =
        static_cast<core::BudgetCandidate *>(palloc(sizeof(core::BudgetCandidate) * Max(scan->count, 1)));
    /* Each policy's own budget first, then the server's over what remains. */
    for (int p = 0; p < scan->policies.count; p++)
    {
        int64 budget =
            core::effective_rules(scan->policies.policies[p].rules, core::DefaultRules()).idle_memory_budget;
        if (budget > 0)
            apply_budget(scan, candidates, p, groups, budget, grace);
    }
    if (server_budget > 0)
        apply_budget(scan, candidates, -1, groups, server_budget, grace);
    pfree(candidates);
}

} // namespace

int64 session_private_memory(MemoryCache *cache, const SessionRow *row, TimestampTz now)
{
    return cached_private_memory(cache, row, now);
}

void scan_sessions(SessionScan *scan, MemoryReads reads, MemoryCache *cache)
{
    scan->now = GetCurrentTimestamp();
    scan->next_deadline = DT_NOEND;
    policy_store_snapshot(&scan->policies);

    const PolicySnapshot *policies = &scan->policies;
    PolicyMatchCache *match_cache = policy_match_cache(policies);
    Exemptions exemptions;
    exemptions_load(&exemptions);
    core::DefaultRules defaults;
    defaults.idle_timeout = (core::Micros)guc_idle_timeout_ms * 1000;
    defaults.idle_in_transaction_timeout = (core::Micros)guc_idle_in_transaction_timeout_ms * 1000;
    core::Micros grace = (core::Micros)guc_idle_grace_ms * 1000;
    int64 server_budget = guc_idle_memory_budget;
    DatabaseNames databases;
    databases.count = 0;

    BackendStatusRow *backends;
    int n = backend_status_live(&backends);
    if (n < 0)
        n = backend_status_snapshot(&backends);
    /* Not zeroed (the worker scans every naptime): the loop below writes every field of a row. */
    scan->rows = static_cast<SessionRow *>(palloc(sizeof(SessionRow) * Max(n, 1)));
    scan->count = 0;
    ExemptionMemo exemption_memo;
    exemption_memo.init(n);
    /* The views and the memory picture read no /proc: they serve the worker's samples. */
    MemorySample *samples = nullptr;
    int nsamples = reads == MemoryReads::as_rules_need ? 0 : memory_samples_copy(&samples);
    const bool rules_read = reads == MemoryReads::as_rules_need;

    for (int i = 0; i < n; i++)
    {
        const BackendStatusRow *be = &backends[i];
        if (!be->client_backend && !be->sql_walsender)
            continue;

        SessionRow *row = &scan->rows[scan->count++];
        row->walsender = be->sql_walsender;
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
        row->exempt = exemption_memo.exempt(&exemptions, row->userid, &row->superuser);
        /* Shown and matched, but never signalled unless the DBA opts in. */
        if (row->walsender && !guc_signal_walsenders)
            row->exempt = true;
        row->policy = matched_policy(cache, row, policies, match_cache, &databases);
        row->rules = row->policy >= 0 ? core::effective_rules(policies->policies[row->policy].rules, defaults)
                                      : core::default_rules(defaults);
        /* The sessions view shows memory only for the rows it shows the caller. */
        bool may_read = reads != MemoryReads::samples_visible || caller_may_see(row->userid);
        row->private_memory = -1;
        row->memory_at = 0;
        row->server_budget = false;
        if (!rules_read && may_read)
        {
            const MemorySample *sample = memory_sample_find(samples, nsamples, row->pid, row->backend_start);
            if (sample != nullptr)
            {
                row->private_memory = sample->bytes;
                row->memory_at = sample->sampled_at;
            }
        }

        row->verdict = core::Verdict();
        if (row->exempt || row->is_self)
            continue;
        row->verdict = core::evaluate(facts_of(row), row->rules, scan->now, grace);
        /* Memory rules act on a figure read now (at most one naptime old), never on a sample. */
        if (row->verdict.wants_memory && row->private_memory < 0 && rules_read)
        {
            row->private_memory = cached_private_memory(cache, row, scan->now);
            row->memory_at = scan->now;
            row->verdict = core::evaluate(facts_of(row), row->rules, scan->now, grace);
        }
        /* An idle-memory budget counts every idle session under it, graced or not. */
        if (row->state == core::SessionState::idle && row->private_memory < 0 && rules_read &&
            (server_budget > 0 || row->rules.idle_memory_budget > 0))
        {
            row->private_memory = cached_private_memory(cache, row, scan->now);
            row->memory_at = scan->now;
        }
        scan->next_deadline = Min(scan->next_deadline, row->verdict.deadline);
    }

    RowsByPolicy groups = group_rows_by_policy(scan);

    /* max_idle: decided across the idle sessions of each policy. */
    core::IdleCandidate *candidates =
        static_cast<core::IdleCandidate *>(palloc(sizeof(core::IdleCandidate) * Max(scan->count, 1)));
    for (int p = 0; p < policies->count; p++)
    {
        int count = 0;
        int64 max_idle = 0;
        for (int k = groups.first[p]; k < groups.first[p + 1]; k++)
        {
            int i = groups.order[k];
            SessionRow *row = &scan->rows[i];
            if (row->state != core::SessionState::idle || row->exempt || row->is_self)
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
        for (int k = groups.first[p]; k < groups.first[p + 1]; k++)
        {
            int i = groups.order[k];
            SessionRow *row = &scan->rows[i];
            if (row->state != core::SessionState::idle || row->exempt || row->is_self)
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
    apply_idle_memory_budgets(scan, groups, server_budget, grace);
    pfree(groups.first);
    pfree(groups.order);
}

} // namespace poolguard
