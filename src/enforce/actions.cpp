/*
 * actions.cpp — signalling with re-check, client notes, the history ring.
 *
 * "The client is told why": before signalling, the acting backend leaves a note in a shared
 * slot indexed by the target's PGPROC number.  The target's emit_log_hook, while it reports the
 * resulting FATAL (terminate) or ERROR (cancel), finds the note and adds a detail naming the
 * reason, the limit and the policy.  Notes are keyed by pid and expire, so a reused slot or a
 * later, unrelated cancel never shows a stale reason; a note whose signal is not sent after all
 * is withdrawn.
 *
 * One path for every signal: recheck_and_signal().  Everything slow or able to fail (catalog
 * lookups, the /proc memory reading, the client note) happens before it; inside, a fresh read
 * of the target's backend status is compared (core::still_as_judged) with what the decision
 * saw, and kill() follows with only the process-array check in between.
 *
 * A scan's actions go out in three passes (act_signal: 1 and 2; act_record: 3), so that when a
 * thousand sessions are due together the last is signalled about as soon as the first: 1. prepare
 * every target (its memory figure, from the worker's samples where there is one, and its client
 * note), 2. re-check and signal each in a tight loop (targets found through one ProcIndex, not two
 * walks of the process array each), 3. record, count and log what was done — the catalog lookups
 * and LOG lines of a thousand actions come after the last signal, not between the signals.
 *
 * Note about locking (every lock and the order: docs/architecture.md, "Locks"):
 *   - client_notes[i].mutex (spinlock, one per PGPROC slot) guards that slot's note.  Held only
 *     to copy the plain fields in or out: the timestamp is taken before, nothing is allocated, logged
 *     or looked up under it.
 *   - history_ring->lock (LWLock tranche "pg_poolguard history") guards the history ring:
 *     LW_EXCLUSIVE to append one record (a struct copy), LW_SHARED to copy the ring out into
 *     memory allocated before.
 *   - No other lock is taken while either is held; recheck_and_signal() holds none (it takes
 *     ProcArrayLock only inside BackendPidGetProc).
 */
#include "enforce/enforce.h"

#include "pg/guc.h"
#include "pg/shmem.h"
#include "stats/stats.h"

#include "core/enforce/sampling.h"

#include <new>
#include <signal.h>

namespace poolguard
{

namespace
{

constexpr int64 note_lifetime_us = 60LL * 1000 * 1000;
constexpr int64 resignal_after_us = 5LL * 1000 * 1000;

struct ClientNote
{
    slock_t mutex;
    int pid;
    TimestampTz set_at;
    Action action;
    core::Reason reason;
    char policy[NAMEDATALEN];
    int64 limit;
    int64 observed;
};

struct History
{
    LWLock *lock; /* tranche "pg_poolguard history" */
    uint64 next;  /* total actions ever recorded; slot = next % size */
    int size;
    ActionRecord records[FLEXIBLE_ARRAY_MEMBER];
};

ClientNote *client_notes = nullptr;
int note_count = 0;
History *history_ring = nullptr; /* "pg_poolguard history" in shared memory */
/* The history ring's LWLock tranche; its shared memory has the same name. */
constexpr const char *history_tranche = "pg_poolguard history";
emit_log_hook_type prev_emit_log_hook = nullptr;

Size notes_size(void)
{
    return mul_size(sizeof(ClientNote), proc_slots());
}

Size history_size(void)
{
    return add_size(offsetof(History, records), mul_size(sizeof(ActionRecord), guc_history_size));
}

Size actions_size(void)
{
    return add_size(notes_size(), history_size());
}

void actions_init(void)
{
    bool found;

    note_count = proc_slots();
    client_notes =
        static_cast<ClientNote *>(ShmemInitStruct("pg_poolguard client notes", notes_size(), &found));
    if (!found)
        for (int i = 0; i < note_count; i++)
        {
            SpinLockInit(&client_notes[i].mutex);
            client_notes[i].pid = 0;
        }
    history_ring = static_cast<History *>(ShmemInitStruct(history_tranche, history_size(), &found));
    if (!found)
    {
        history_ring->lock = &(GetNamedLWLockTranche(history_tranche))->lock;
        history_ring->next = 0;
        history_ring->size = guc_history_size;
    }
}

/* "5s", "250ms", "1.5s" — limits as people write them. */
char *format_duration(int64 us)
{
    if (us % 1000000 == 0)
        return psprintf("%lds", (long)(us / 1000000));
    if (us % 1000 == 0 && us < 1000000)
        return psprintf("%ldms", (long)(us / 1000));
    return psprintf("%.3fs", us / 1e6);
}

char *format_limit(core::Reason reason, int64 limit)
{
    switch (reason)
    {
    case core::Reason::max_idle:
        return psprintf("%ld idle sessions", (long)limit);
    case core::Reason::max_idle_memory:
    case core::Reason::idle_memory_budget:
        return psprintf("%ld bytes", (long)limit);
    case core::Reason::evict_idle:
        return psprintf("%ld connections", (long)limit);
    default:
        return format_duration(limit);
    }
}

/* Seconds as a reader compares them: "2 s", "1.5 s", "0.25 s" (exact up to the millisecond). */
char *format_seconds(int64 us)
{
    char *text = psprintf("%.3f", us / 1e6);
    char *end = text + strlen(text) - 1;
    while (*end == '0')
        *end-- = '\0';
    if (*end == '.')
        *end = '\0';
    return psprintf("%s s", text);
}

/*
 * The DETAIL the client sees: one full sentence per reason that says what was measured and
 * what the policy allows, in the same unit.  Each sentence is one format string (never pieced
 * together from fragments).
 */
char *format_detail(const ClientNote *note)
{
    const char *policy = note->policy;
    char *observed = format_seconds(note->observed);
    char *limit = format_seconds(note->limit);
    long count = (long)note->limit;

    switch (note->reason)
    {
    case core::Reason::idle_timeout:
        if (policy[0] == '\0')
            return psprintf("pg_poolguard ended this session: it was idle for %s, and the server setting "
                            "poolguard.idle_timeout ends sessions idle for longer than %s.",
                            observed, limit);
        return psprintf(
            "pg_poolguard ended this session: it was idle for %s, and policy \"%s\" ends sessions "
            "idle for longer than %s (idle_timeout).",
            observed, policy, limit);
    case core::Reason::idle_in_transaction_timeout:
        if (policy[0] == '\0')
            return psprintf(
                "pg_poolguard ended this session: it was idle in a transaction for %s, and the server "
                "setting poolguard.idle_in_transaction_timeout ends sessions idle in a transaction "
                "for longer than %s.",
                observed, limit);
        return psprintf(
            "pg_poolguard ended this session: it was idle in a transaction for %s, and policy \"%s\" "
            "ends sessions idle in a transaction for longer than %s (idle_in_transaction_timeout).",
            observed, policy, limit);
    case core::Reason::max_connection_age:
        return psprintf(
            "pg_poolguard ended this session: it was %s old, and policy \"%s\" ends idle sessions "
            "older than %s (max_connection_age).",
            observed, policy, limit);
    case core::Reason::max_idle:
        return psprintf(
            "pg_poolguard ended this session: it was idle for %s, and policy \"%s\" keeps at most "
            "%ld idle sessions, ending the longest-idle ones first (max_idle).",
            observed, policy, count);
    case core::Reason::max_idle_memory:
        return psprintf(
            "pg_poolguard ended this session: it was idle holding %ld bytes of private memory, and "
            "policy \"%s\" ends idle sessions holding more than %ld bytes (max_idle_memory).",
            (long)note->observed, policy, count);
    case core::Reason::idle_memory_budget:
        if (policy[0] == '\0')
            return psprintf(
                "pg_poolguard ended this session: it was idle holding %ld bytes of private memory, and the "
                "server setting poolguard.idle_memory_budget allows idle sessions together at most %ld "
                "bytes, "
                "ending the largest ones first.",
                (long)note->observed, count);
        return psprintf(
            "pg_poolguard ended this session: it was idle holding %ld bytes of private memory, and policy "
            "\"%s\" allows its idle sessions together at most %ld bytes, ending the largest ones first "
            "(idle_memory_budget).",
            (long)note->observed, policy, count);
    case core::Reason::max_query_duration:
        return psprintf("pg_poolguard cancelled this query: it ran for %s, and policy \"%s\" cancels queries "
                        "running longer than %s (max_query_duration).",
                        observed, policy, limit);
    case core::Reason::evict_idle:
        return psprintf(
            "pg_poolguard ended this session to admit a new login: it was idle for %s, and policy "
            "\"%s\" allows %ld connections and, when they are all in use, ends its longest-idle "
            "session (on_limit = evict_idle).",
            observed, policy, count);
    case core::Reason::none:
        break;
    }
    return psprintf("pg_poolguard ended this session (policy \"%s\").", policy);
}

/* emit_log_hook: add pg_poolguard's reason to the FATAL/ERROR its signal caused. */
void client_note_hook(ErrorData *edata)
{
    if (client_notes != nullptr && MyProc != NULL && MyProcPid > 0 &&
        ((edata->elevel == FATAL && edata->sqlerrcode == ERRCODE_ADMIN_SHUTDOWN) ||
         (edata->elevel == ERROR && edata->sqlerrcode == ERRCODE_QUERY_CANCELED)))
    {
        int slot = procno_of(MyProc);
        if (slot >= 0 && slot < note_count)
        {
            ClientNote note;
            bool found = false;
            ClientNote *shared_note = &client_notes[slot];
            Action wanted = edata->elevel == FATAL ? Action::terminate : Action::cancel;
            TimestampTz now = GetCurrentTimestamp(); /* not under the spinlock */

            SpinLockAcquire(&shared_note->mutex);
            if (shared_note->pid == MyProcPid && shared_note->action == wanted &&
                now - shared_note->set_at < note_lifetime_us)
            {
                memcpy(&note, shared_note, sizeof(note));
                shared_note->pid = 0;
                found = true;
            }
            SpinLockRelease(&shared_note->mutex);

            if (found)
            {
                /* Before the client hears of it: a pool's refill login finds the end counted. */
                if (wanted == Action::terminate)
                    refills_count_end(note.policy, note.reason);
                edata->detail = format_detail(&note);
                edata->hint = pstrdup(wanted == Action::terminate
                                          ? "Reconnect when needed; ask the database administrator about the "
                                            "pg_poolguard policy if this is unexpected."
                                          : "Make the query faster or ask the database administrator about "
                                            "the pg_poolguard policy.");
            }
        }
    }
    if (prev_emit_log_hook)
        prev_emit_log_hook(edata);
}

/* ---- the worker's memo ---- */

} // namespace

struct ActionMemo
{
    struct Entry
    {
        int pid;
        TimestampTz backend_start;
        TimestampTz state_change;
        core::Reason reason;
        TimestampTz acted_at;
    };
    int size;
    Entry *entries; /* direct-mapped by pid */
};

namespace
{

/* True if this verdict was already handled (dry-run: ever; signalled: recently). */
bool memo_seen(ActionMemo *memo, const SessionRow *row, bool dry_run, TimestampTz now)
{
    if (memo == nullptr)
        return false;
    ActionMemo::Entry *e = &memo->entries[row->pid % memo->size];
    return e->pid == row->pid && e->backend_start == row->backend_start &&
           e->state_change == row->state_change && e->reason == row->verdict.reason &&
           (dry_run || now - e->acted_at < resignal_after_us);
}

void memo_remember(ActionMemo *memo, const SessionRow *row, TimestampTz now)
{
    if (memo == nullptr)
        return;
    ActionMemo::Entry *e = &memo->entries[row->pid % memo->size];
    e->pid = row->pid;
    e->backend_start = row->backend_start;
    e->state_change = row->state_change;
    e->reason = row->verdict.reason;
    e->acted_at = now;
}

/* What the rule judged: idle time, query time, age, or memory. */
int64 observed_value(const SessionScan *scan, const SessionRow *row)
{
    switch (row->verdict.reason)
    {
    case core::Reason::max_query_duration:
        return scan->now - row->query_start;
    case core::Reason::max_connection_age:
        return scan->now - row->backend_start;
    case core::Reason::max_idle_memory:
    case core::Reason::idle_memory_budget:
        return row->private_memory;
    default:
        return scan->now - row->state_change;
    }
}

/* The policy an action is charged to: "" for the server's settings (poolguard.idle_memory_budget). */
const char *action_policy_name(const SessionScan *scan, const SessionRow *row)
{
    return row->server_budget ? "" : row_policy_name(scan, row);
}

/*
 * The record of an action taken at `at` (the moment of the signal, or of a dry run's check): its
 * state_duration and backend_age are measured to that moment, so that state_duration minus the
 * limit is how late the session was ended (what bench/reaper_scale.sh reports).
 */
void fill_record(ActionRecord *rec, const SessionRow *row, const char *policy, Action action, TimestampTz at)
{
    *rec = ActionRecord();
    rec->at = at;
    record_identity(rec, row->pid, row->userid, row->dbid, row->application_name, row->client);
    rec->reason = row->verdict.reason;
    rec->action = action;
    rec->state = row->raw_state;
    strlcpy(rec->policy, policy, NAMEDATALEN);
    rec->state_duration =
        at - (row->state == core::SessionState::active ? row->query_start : row->state_change);
    rec->backend_age = at - row->backend_start;
    rec->private_memory = row->private_memory;
}

/* The primary message of an action's LOG line: one complete sentence per action. */
int action_errmsg(Action action, int pid, const char *reason, const char *limit)
{
    switch (action)
    {
    case Action::terminate:
        return errmsg("pg_poolguard terminated session %d: %s %s exceeded", pid, reason, limit);
    case Action::cancel:
        return errmsg("pg_poolguard cancelled the query of session %d: %s %s exceeded", pid, reason, limit);
    case Action::dry_run:
        break;
    }
    return errmsg("pg_poolguard would act on session %d (dry run): %s %s exceeded", pid, reason, limit);
}

/* Its DETAIL: who the session was and which policy judged it. */
int action_errdetail(const ActionRecord *rec)
{
    if (rec->policy[0])
        return errdetail(
            "The session of role \"%s\" in database \"%s\" (application \"%s\") matched policy \"%s\"; "
            "it was in state \"%s\" for %.3f s and is %.1f s old.",
            NameStr(rec->role_name), NameStr(rec->database_name), rec->application_name, rec->policy,
            state_name(rec->state), rec->state_duration / 1e6, rec->backend_age / 1e6);
    return errdetail(
        "The session of role \"%s\" in database \"%s\" (application \"%s\") matched no policy, so the "
        "server defaults applied; it was in state \"%s\" for %.3f s and is %.1f s old.",
        NameStr(rec->role_name), NameStr(rec->database_name), rec->application_name, state_name(rec->state),
        rec->state_duration / 1e6, rec->backend_age / 1e6);
}

void log_action(const ActionRecord *rec, int64 limit)
{
    if (!guc_log_terminations)
        return;
    ereport(LOG, (action_errmsg(rec->action, rec->pid, core::reason_name(rec->reason),
                                format_limit(rec->reason, limit)),
                  action_errdetail(rec)));
}

} // namespace

namespace
{

/* A consistent copy of the fields a decision depends on, by the changecount protocol. */
core::BackendFacts read_status_entry(volatile PgBackendStatus *entry)
{
    core::BackendFacts f;
    for (int attempt = 0;; attempt++)
    {
        int before, after;
        pgstat_begin_read_activity(entry, before);
        f.pid = entry->st_procpid;
        f.client_backend = entry->st_backendType == B_BACKEND ||
                           (guc_signal_walsenders && entry->st_backendType == B_WAL_SENDER &&
                            OidIsValid(entry->st_databaseid));
        f.userid = entry->st_userid;
        f.backend_start = entry->st_proc_start_timestamp;
        f.state = (int)entry->st_state;
        f.state_change = entry->st_state_start_timestamp;
        f.query_start = entry->st_activity_start_timestamp;
        pgstat_end_read_activity(entry, after);
        if (pgstat_read_activity_complete(before, after))
            return f;
        if (attempt >= 1000)
            return core::BackendFacts(); /* never settles: treat as changed */
        CHECK_FOR_INTERRUPTS();
    }
}

core::BackendFacts facts_of_backend(const BackendStatusRow *be)
{
    core::BackendFacts f;
    f.pid = be->pid;
    f.client_backend = be->client_backend || (guc_signal_walsenders && be->sql_walsender);
    f.userid = be->userid;
    f.backend_start = be->backend_start;
    f.state = (int)be->state;
    f.state_change = be->state_change;
    f.query_start = be->query_start;
    return f;
}

/* The PGPROC of pid: the caller's hint while it still carries pid, else the process array's. */
PGPROC *target_proc(int pid, PGPROC *hint)
{
    if (hint != NULL && ((volatile PGPROC *)hint)->pid == pid)
        return hint;
    return BackendPidGetProc(pid);
}

} // namespace

struct ProcIndex
{
    core::PidIndex pids; /* pid → PGPROC number */
    ProcIndex(core::PidIndex::Slot *slots, size_t capacity) : pids(slots, capacity)
    {
    }
};

ProcIndex *proc_index_build(void)
{
    int n = (int)ProcGlobal->allProcCount;
    size_t capacity = core::PidIndex::capacity_for(n);
    core::PidIndex::Slot *slots =
        static_cast<core::PidIndex::Slot *>(palloc(sizeof(core::PidIndex::Slot) * capacity));
    ProcIndex *index = new (palloc(sizeof(ProcIndex))) ProcIndex(slots, capacity);
    for (int procno = 0; procno < n; procno++)
        index->pids.insert(((volatile PGPROC *)&ProcGlobal->allProcs[procno])->pid, procno);
    return index;
}

PGPROC *proc_index_find(const ProcIndex *index, int pid)
{
    if (index == nullptr || pid <= 0)
        return NULL;
    int procno = index->pids.find(pid);
    return procno < 0 ? NULL : &ProcGlobal->allProcs[procno];
}

core::BackendFacts judged_facts(int pid, Oid userid, TimestampTz backend_start, BackendState state,
                                TimestampTz state_change, TimestampTz query_start)
{
    core::BackendFacts f;
    f.pid = pid;
    f.client_backend = true;
    f.userid = userid;
    f.backend_start = backend_start;
    f.state = (int)state;
    f.state_change = state_change;
    f.query_start = query_start;
    return f;
}

SignalOutcome recheck_and_signal(const core::BackendFacts &judged, core::Watch watch, int signal,
                                 bool allow_superuser, PGPROC *hint)
{
    /* Rules that need the catalog are settled first (the role of a backend never changes). */
    if (judged.pid <= 0 || judged.pid == MyProcPid || !judged.client_backend)
        return SignalOutcome::changed;
    if (!allow_superuser && superuser_arg(judged.userid))
        return SignalOutcome::changed;

    PGPROC *proc = target_proc(judged.pid, hint);
    if (proc == NULL)
        return SignalOutcome::gone;

    /* The fresh read: the target's live status entry, else a new snapshot. */
    core::BackendFacts fresh;
    volatile PgBackendStatus *entry = poolguard_status_entry(proc);
    if (entry != NULL)
        fresh = read_status_entry(entry);
    else
    {
        BackendStatusRow *backends;
        int n = backend_status_snapshot(&backends);
        for (int i = 0; i < n; i++)
            if (backends[i].pid == judged.pid)
            {
                fresh = facts_of_backend(&backends[i]);
                break;
            }
        pfree(backends);
    }
    if (fresh.pid == 0)
        return SignalOutcome::gone;
    if (!core::still_as_judged(judged, fresh, watch))
        return SignalOutcome::changed;
    if (signal == 0)
        return SignalOutcome::signalled; /* dry run: the check alone */

        /* Nothing between the re-check and the signal. */
#ifdef HAVE_SETSID
    bool sent = kill(-judged.pid, signal) == 0;
#else
    bool sent = kill(judged.pid, signal) == 0;
#endif
    return sent ? SignalOutcome::signalled : SignalOutcome::gone;
}

void record_identity(ActionRecord *rec, int pid, Oid userid, Oid dbid, const char *application_name,
                     const core::IpAddress &client)
{
    rec->pid = pid;
    rec->roleid = userid;
    const char *role = OidIsValid(userid) ? GetUserNameFromId(userid, true) : NULL;
    namestrcpy(&rec->role_name, role ? role : "");
    const char *db = OidIsValid(dbid) ? get_database_name(dbid) : NULL;
    namestrcpy(&rec->database_name, db ? db : "");
    strlcpy(rec->application_name, application_name, NAMEDATALEN);
    rec->client = client;
}

const char *action_name(Action action)
{
    switch (action)
    {
    case Action::terminate:
        return "terminate";
    case Action::cancel:
        return "cancel";
    case Action::dry_run:
        return "dry_run";
    }
    return "";
}

ActionMemo *action_memo_create(void)
{
    ActionMemo *memo =
        static_cast<ActionMemo *>(MemoryContextAllocZero(TopMemoryContext, sizeof(ActionMemo)));
    memo->size = 2 * MaxBackends + 1;
    memo->entries = static_cast<ActionMemo::Entry *>(
        MemoryContextAllocZero(TopMemoryContext, sizeof(ActionMemo::Entry) * memo->size));
    return memo;
}

bool leave_client_note(int pid, Action action, core::Reason reason, const char *policy, int64 limit,
                       int64 observed, PGPROC *hint)
{
    PGPROC *proc = target_proc(pid, hint);
    if (proc == NULL)
        return false;
    int slot = procno_of(proc);
    if (slot < 0 || slot >= note_count)
        return true;
    ClientNote *note = &client_notes[slot];
    TimestampTz now = GetCurrentTimestamp(); /* not under the spinlock */
    SpinLockAcquire(&note->mutex);
    note->pid = pid;
    note->set_at = now;
    note->action = action;
    note->reason = reason;
    strlcpy(note->policy, policy, NAMEDATALEN);
    note->limit = limit;
    note->observed = observed;
    SpinLockRelease(&note->mutex);
    return true;
}

void withdraw_client_note(int pid)
{
    PGPROC *proc = BackendPidGetProc(pid);
    if (proc == NULL)
        return;
    int slot = procno_of(proc);
    if (slot < 0 || slot >= note_count)
        return;
    ClientNote *note = &client_notes[slot];
    SpinLockAcquire(&note->mutex);
    if (note->pid == pid)
        note->pid = 0;
    SpinLockRelease(&note->mutex);
}

void record_action(const ActionRecord *record)
{
    LWLockAcquire(history_ring->lock, LW_EXCLUSIVE);
    history_ring->records[history_ring->next % history_ring->size] = *record;
    history_ring->next++;
    LWLockRelease(history_ring->lock);
}

int history_copy(ActionRecord **records)
{
    require_shared_memory();
    LWLockAcquire(history_ring->lock, LW_SHARED);
    uint64 total = history_ring->next;
    int count = (int)Min(total, (uint64)history_ring->size);
    ActionRecord *out = static_cast<ActionRecord *>(palloc(sizeof(ActionRecord) * Max(count, 1)));
    for (int i = 0; i < count; i++)
        out[i] = history_ring->records[(total - count + i) % history_ring->size];
    LWLockRelease(history_ring->lock);
    *records = out;
    return count;
}

/* One target of a batch: a copy of its row (the scan may be gone by pass 3) and what is done. */
struct ActionBatch
{
    struct Target
    {
        SessionRow row;
        char policy[NAMEDATALEN]; /* the policy charged ("" = the server's settings) */
        Action action;
        bool cancel;
        PGPROC *proc;   /* a hint (ProcIndex) */
        TimestampTz at; /* when it was signalled (or checked, dry run); 0 = not acted on */
    };
    MemoryContext context; /* where targets grows */
    Target *targets;       /* signalled (or dry-run checked) ones, waiting for act_record */
    int count;
    int capacity;
};

ActionBatch *action_batch_create(void)
{
    ActionBatch *batch = static_cast<ActionBatch *>(palloc0(sizeof(ActionBatch)));
    batch->context = CurrentMemoryContext;
    return batch;
}

void act_signal(ActionBatch *batch, SessionScan *scan, bool dry_run, ActionMemo *memo)
{
    using Target = ActionBatch::Target;
    int *targets = static_cast<int *>(palloc(sizeof(int) * Max(scan->count, 1)));
    int ntargets = 0;
    bool caller_is_superuser = superuser();

    for (int i = 0; i < scan->count; i++)
    {
        SessionRow *row = &scan->rows[i];
        if (row->verdict.reason == core::Reason::none || row->exempt || row->is_self)
            continue;
        /* A non-superuser (granted reap()) never signals a superuser, whatever the settings. */
        if (row->superuser && !caller_is_superuser)
            continue;
        bool row_dry_run =
            dry_run || guc_dry_run || (row->policy >= 0 && scan->policies.policies[row->policy].dry_run);
        if (memo_seen(memo, row, row_dry_run, scan->now))
            continue;
        targets[ntargets++] = i;
    }
    if (ntargets == 0)
    {
        pfree(targets);
        return;
    }
    if (batch->count + ntargets > batch->capacity)
    {
        int capacity = Max(batch->capacity * 2, batch->count + ntargets);
        Size size = sizeof(Target) * capacity;
        batch->targets =
            static_cast<Target *>(batch->targets == nullptr ? MemoryContextAlloc(batch->context, size)
                                                            : repalloc(batch->targets, size));
        batch->capacity = capacity;
    }

    /*
     * 1. Prepare every target: what it holds (before the signal frees it), and the note its client
     *    will be shown.  Slow steps and steps that may fail come here, before any signal.
     */
    Target *prepared = &batch->targets[batch->count];
    int nprepared = 0;
    ProcIndex *procs = proc_index_build();
    /* Copied first: from here to the signals nothing can fail and strand a note. */
    MemorySample *samples = nullptr;
    int nsamples = 0;
    for (int t = 0; t < ntargets; t++)
        if (scan->rows[targets[t]].private_memory < 0)
        {
            nsamples = memory_samples_copy(&samples);
            break;
        }
    for (int t = 0; t < ntargets; t++)
    {
        SessionRow *row = &scan->rows[targets[t]];
        bool row_dry_run =
            dry_run || guc_dry_run || (row->policy >= 0 && scan->policies.policies[row->policy].dry_run);
        bool cancel = row->verdict.reason == core::Reason::max_query_duration;
        Action action = row_dry_run ? Action::dry_run : cancel ? Action::cancel : Action::terminate;
        PGPROC *proc = proc_index_find(procs, row->pid);

        /*
         * The figure recorded: the one a memory rule acted on, else the worker's latest sample of
         * this process (memory_samples_take: at most about memory_sample_interval old), else one
         * read now — a /proc read per target would put tens of milliseconds between the first and
         * the last of a thousand signals.
         */
        if (row->private_memory < 0)
        {
            const MemorySample *sample = memory_sample_find(samples, nsamples, row->pid, row->backend_start);
            row->private_memory = sample != nullptr ? sample->bytes : read_private_memory(row->pid);
        }
        const char *policy = action_policy_name(scan, row);
        if (action != Action::dry_run &&
            !leave_client_note(row->pid, action, row->verdict.reason, policy, row->verdict.limit,
                               observed_value(scan, row), proc))
            continue;
        Target *target = &prepared[nprepared++];
        target->row = *row;
        strlcpy(target->policy, policy, NAMEDATALEN);
        target->action = action;
        target->cancel = cancel;
        target->proc = proc;
        target->at = 0;
    }

    /* 2. Re-check and signal, one target after the other, with nothing else in between. */
    for (int t = 0; t < nprepared; t++)
    {
        Target *target = &prepared[t];
        const SessionRow *row = &target->row;
        core::BackendFacts judged = judged_facts(row->pid, row->userid, row->backend_start, row->raw_state,
                                                 row->state_change, row->query_start);
        SignalOutcome outcome =
            recheck_and_signal(judged, target->cancel ? core::Watch::query_start : core::Watch::state_change,
                               target->action == Action::dry_run ? 0
                               : target->cancel                  ? SIGINT
                                                                 : SIGTERM,
                               caller_is_superuser, target->proc);
        if (outcome == SignalOutcome::signalled)
            target->at = GetCurrentTimestamp();
    }

    /* The ones not signalled after all: their notes taken back; the others wait for act_record. */
    int kept = 0;
    for (int t = 0; t < nprepared; t++)
    {
        Target *target = &prepared[t];
        if (target->at == 0)
        {
            if (target->action != Action::dry_run)
                withdraw_client_note(target->row.pid);
            continue;
        }
        memo_remember(memo, &target->row, scan->now);
        prepared[kept++] = *target;
    }
    batch->count += kept;
    pfree(targets);
    if (samples != nullptr)
        pfree(samples);
}

int act_record(ActionBatch *batch, ActionSink sink, void *sink_arg)
{
    /* 3. What was done: the history, the counters, the LOG lines, the caller's sink. */
    for (int t = 0; t < batch->count; t++)
    {
        const ActionBatch::Target *target = &batch->targets[t];
        const SessionRow *row = &target->row;
        Action action = target->action;

        ActionRecord rec;
        fill_record(&rec, row, target->policy, action, target->at);
        record_action(&rec);
        if (action != Action::dry_run)
        {
            stats_count_policy_event(rec.policy,
                                     action == Action::terminate ? PolicyEvent::session_terminated
                                                                 : PolicyEvent::query_cancelled,
                                     rec.reason);
            stats_count_app_event(NameStr(rec.database_name), NameStr(rec.role_name), rec.application_name,
                                  action == Action::terminate ? AppEvent::session_terminated
                                                              : AppEvent::query_cancelled,
                                  rec.reason);
        }
        stats_add(action == Action::terminate ? GlobalCounter::terminated
                  : action == Action::cancel  ? GlobalCounter::cancelled
                                              : GlobalCounter::dry_run_actions);
        log_action(&rec, row->verdict.limit);
        if (sink)
            sink(&rec, sink_arg);
    }
    int actions = batch->count;
    batch->count = 0;
    return actions;
}

int act_on_scan(SessionScan *scan, bool dry_run, ActionMemo *memo, ActionSink sink, void *sink_arg)
{
    ActionBatch *batch = action_batch_create();
    act_signal(batch, scan, dry_run, memo);
    return act_record(batch, sink, sink_arg);
}

void actions_register(void)
{
    shmem_register(actions_size, actions_init);
    shmem_register_lwlocks(history_tranche, 1);
}

void actions_install_hooks(void)
{
    prev_emit_log_hook = emit_log_hook;
    emit_log_hook = client_note_hook;
}

} // namespace poolguard
