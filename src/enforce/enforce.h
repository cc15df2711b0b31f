/*
 * enforce.h — the enforce feature's public interface: one consistent look at every client
 * session (identity, state, the policy it matches, the rules in force, the verdict), and what is
 * done to a session: re-check, leave the client a note, signal, record a poolguard.terminations
 * row, log one line.  The worker, reap() and the sessions view all judge sessions through
 * scan_sessions(), so they can never disagree.
 *
 *   sessions.cpp  the scan, memory readings, the exemption check
 *   actions.cpp   re-check and signal, client notes (emit_log_hook), history, act_on_scan
 *   views.cpp     poolguard.session_info() and poolguard.termination_history()
 *   memory.cpp    the server memory picture: poolguard.memory_info() and its /metrics families
 *   samples.cpp   the worker's samples of each session's private memory (served by the views)
 */
#ifndef POOLGUARD_ENFORCE_H
#define POOLGUARD_ENFORCE_H

#include "pg/postgres_headers.h"

#include "core/enforce/process_memory.h"
#include "core/enforce/recheck.h"
#include "core/policy/cidr.h"
#include "core/policy/rules.h"
#include "policy/policy.h"

namespace poolguard
{

/* One backend of a fresh backend-status snapshot, copied as plain data. */
struct BackendStatusRow
{
    int pid;
    bool client_backend; /* B_BACKEND: a client session */
    BackendType backend_type;
    bool sql_walsender; /* a walsender of replication=database: runs SQL, counted by caps */
    Oid userid;
    Oid dbid;
    TimestampTz backend_start;
    TimestampTz state_change;
    TimestampTz query_start;
    BackendState state;
    char application_name[NAMEDATALEN]; /* at login (client backends, SQL walsenders) */
    core::IpAddress client;
};

/*
 * The one walk of PostgreSQL's backend-status array: takes a fresh snapshot
 * (pgstat_clear_snapshot; fresh = false: this transaction's, if it has one) and copies every backend that has
 * a pid (palloc'd in CurrentMemoryContext); returns how many.  The scan, the re-check fallback and
 * evict_idle's candidates all read backends through it.  The application_name of a client backend or SQL
 * walsender is the one it gave at login (sessions_note_login), never the one it SET since.
 */
int backend_status_snapshot(BackendStatusRow **rows, bool fresh = true);

/* One client backend as seen by a scan; plain data. */
struct SessionRow
{
    int pid;
    Oid userid;
    Oid dbid;
    TimestampTz backend_start;
    TimestampTz state_change;
    TimestampTz query_start;
    BackendState raw_state;
    core::SessionState state;
    char application_name[NAMEDATALEN];
    core::IpAddress client;
    bool is_self;   /* the backend running the scan: never acted on */
    bool walsender; /* a SQL walsender (replication=database) */
    bool exempt;    /* superuser or poolguard.exempt_roles */
    bool superuser;
    int policy; /* index into SessionScan::policies.policies, -1 = GUC defaults */
    core::Rules rules;
    core::Verdict verdict; /* reason none if exempt */
    int64 private_memory;  /* bytes, -1 = not measured */
    TimestampTz memory_at; /* when private_memory was read (a sample: by the worker); 0 = not measured */
    bool server_budget;    /* ended for poolguard.idle_memory_budget (not its policy's budget) */
};

struct SessionScan
{
    TimestampTz now;
    PolicySnapshot policies;
    int count;
    SessionRow *rows;
    TimestampTz next_deadline; /* earliest time any rule may fire; DT_NOEND if none */
};

enum class MemoryReads
{
    as_rules_need,   /* read /proc now for the idle candidates of max_idle_memory and the budgets only */
    samples_visible, /* no /proc read: the worker's samples of the sessions the caller may see (the view) */
    samples_all,     /* no /proc read: the worker's samples of every session (the memory picture) */
};

/*
 * Fills *scan (palloc'd in CurrentMemoryContext).  Runs outside any LWLock.  Runs in a transaction (role and
 * database lookups use the syscache).  The memory cache lets the worker read /proc at most once per naptime
 * per session; NULL reads every time.
 */
struct MemoryCache;
void scan_sessions(SessionScan *scan, MemoryReads reads, MemoryCache *cache);

/* Registers the shared table of the worker's memory readings and the login names. */
void sessions_register(void);

/* At login (the caps hook): records this backend's login application_name under its PGPROC number. */
void sessions_note_login(int procno, const char *application_name);

/* The worker's per-session memo of /proc reads. */
MemoryCache *memory_cache_create(void);

/* A row's private memory through the memo (read at most once per naptime; NULL cache: read now). */
int64 session_private_memory(MemoryCache *cache, const SessionRow *row, TimestampTz now);

/* Name of the policy of a row ("" for the GUC defaults). */
const char *row_policy_name(const SessionScan *scan, const SessionRow *row);

/* pg_stat_activity's name for a state. */
const char *state_name(BackendState state);

/*
 * The private memory of a process in bytes (core::private_memory_bytes: what ending it would
 * free — its anonymous memory, resident and swapped, less what it shares copy-on-write with the
 * postmaster; never the shared memory segment), -1 if unreadable.  One open/read of
 * /proc/<pid>/status (and of the postmaster's, at most once a second).  Every memory figure of
 * pg_poolguard comes from here.
 */
int64 read_private_memory(int pid);

/* RssAnon/VmSwap of a process from /proc/<pid>/status; false if unreadable. */
bool read_process_memory(int pid, core::ProcessMemory *out);

/*
 * The one exemption rule: a session is never acted on (reaped, evicted, capped) if its login
 * role is a superuser (unless poolguard.exempt_superusers = off) or a member of one of
 * poolguard.exempt_roles.  Both functions read the catalog: call them before taking any
 * LWLock or spinlock, never under one.
 */
struct Exemptions
{
    Oid *roles; /* the poolguard.exempt_roles that exist (palloc'd) */
    int count;
};
void exemptions_load(Exemptions *exemptions);
bool session_exempt(const Exemptions *exemptions, Oid userid, bool *superuser = nullptr);

/*
 * May the current user see the details (state, memory, verdict) of a session of this role?
 * As pg_stat_activity: members of pg_read_all_stats, and roles with the privileges of it.
 */
bool caller_may_see(Oid role);

/*
 * An app identity (database, role, application_name) as counted per database in shared memory
 * (app_summary, pool_advice); "other" is the database's overflow row, which names no role and no
 * application.  app_identity_visible: may the caller see the row (caller_may_see: its own roles',
 * or pg_read_all_stats for all, the overflow rows included); a free slot (no database) never.
 * app_identity_columns: the row's first three columns (database, role, application_name).
 */
bool app_identity_visible(const char *database, const char *role, bool other);
void app_identity_columns(const char *database, const char *role, const char *application_name, bool other,
                          Datum *values, bool *nulls);

/* Converts a backend's client address (family 0 for Unix sockets). */
core::IpAddress client_address(const SockAddr *addr);

/* ---- the worker's memory samples (samples.cpp) ---- */

/* One session's sampled private memory, as copied out of shared memory. */
struct MemorySample
{
    int pid;
    TimestampTz backend_start; /* of the process it was read from */
    int64 bytes;
    TimestampTz sampled_at;
};

/* Registers the sample slots (from _PG_init). */
void samples_register(void);

/*
 * The worker, after each scan: reads its share of the scan's sessions (about each once per
 * poolguard.memory_sample_interval, a bounded number per cycle, round-robin over PGPROC
 * numbers) and publishes them.  A row a rule read this cycle is published without a new read.
 */
void memory_samples_take(const SessionScan *scan);

/* Copies every published sample (palloc'd, sorted by pid, for memory_sample_find); the count. */
int memory_samples_copy(MemorySample **out);

/* The sample of the process (pid, backend_start), or NULL: never another process's figure. */
const MemorySample *memory_sample_find(const MemorySample *samples, int count, int pid,
                                       TimestampTz backend_start);

/* How old a served sample can be at this many sessions (µs) while the worker runs; -1 = sampling off. */
int64 memory_sample_age_bound(int sessions);

/* ---- the server memory picture (memory.cpp) ---- */

/* Which part of the server's memory a figure is. */
enum class MemoryPart : uint8_t
{
    shared_memory_size,     /* the shared memory segment as mapped (shared_buffers and the rest) */
    shared_memory_resident, /* its pages in RAM (hugetlb: all of it, reserved at start) */
    client_backends,        /* private memory of client sessions, per policy and state */
    idle_sessions,          /* ending every idle session now would free about this much */
    pg_poolguard,           /* private memory of pg_poolguard's own processes */
    other_processes,        /* the postmaster (in full) and every other server process */
};

const char *memory_part_name(MemoryPart part);

struct MemoryFigure
{
    MemoryPart part;
    int policy;               /* client_backends: index into the scan's policies, -1 = none matches */
    core::SessionState state; /* client_backends only */
    int processes;            /* -1 = not a sum over processes */
    int64 bytes;
    TimestampTz measured_at;
};

struct MemoryPicture
{
    SessionScan scan; /* scanned with MemoryReads::samples_all */
    int count;
    MemoryFigure *figures; /* palloc'd: the segment, then clients by policy and state, then the rest */
};

/*
 * Measures every process now (one /proc/<pid>/status read each); the segment's residency comes
 * from the worker's latest sample (memory_sample_segment_if_due), measured here only if there is
 * none from the last minute.  No lock held while measuring.
 */
void memory_picture(MemoryPicture *picture);

/* Registers the shared segment sample (from _PG_init). */
void memory_register(void);

/* The worker, each cycle: re-measures the segment's residency if the sample is 10 s old. */
void memory_sample_segment_if_due(void);

/* The name pg_stat_activity gives a state class ("idle in transaction", ...). */
const char *session_state_name(core::SessionState state);

/* ---- actions (actions.cpp) ---- */

enum class Action : uint8_t
{
    terminate,
    cancel,
    dry_run,
};

const char *action_name(Action action);

/* One recorded action; plain data (lives in the shared history ring). */
struct ActionRecord
{
    TimestampTz at;
    int pid;
    Oid roleid; /* who may see the row: by OID, so a later role of the same name sees nothing */
    NameData role_name;
    NameData database_name;
    char application_name[NAMEDATALEN];
    core::IpAddress client;
    core::Reason reason;
    Action action;
    BackendState state;
    char policy[NAMEDATALEN]; /* "" = no policy (GUC defaults) */
    int64 state_duration;     /* µs in the state the rule judged */
    int64 backend_age;        /* µs */
    int64 private_memory;     /* bytes, -1 = not measured */
};

/* The worker's memo of what it already did, so a verdict is acted on (or dry-run) once. */
struct ActionMemo;
ActionMemo *action_memo_create(void);

typedef void (*ActionSink)(const ActionRecord *record, void *arg);

/*
 * Acts on every row of the scan with a verdict.  dry_run forces dry-run actions; memo (worker
 * only) skips verdicts already handled; sink (optional) sees each action.  Targets are re-read
 * from a fresh status snapshot just before they are signalled and skipped if they changed.
 * Returns how many actions were taken.
 */
int act_on_scan(SessionScan *scan, bool dry_run, ActionMemo *memo, ActionSink sink, void *sink_arg);

/*
 * act_on_scan in its two steps, for the worker: act_signal() prepares and signals the targets of a
 * scan (adding what it did to the batch; several scans in a row may add to one batch), and
 * act_record() records, counts, logs and hands to sink everything the batch holds, then empties
 * it; it returns how many actions that was.  So sessions that come due while the worker signals
 * are scanned and signalled before the bookkeeping of the ones before them.  A batch lives in the
 * memory context current at its creation; its targets are copies (a scan may be freed after
 * act_signal).
 */
struct ActionBatch;
ActionBatch *action_batch_create(void);
void act_signal(ActionBatch *batch, SessionScan *scan, bool dry_run, ActionMemo *memo);
int act_record(ActionBatch *batch, ActionSink sink, void *sink_arg);

/* Records an action in the history ring and counts it (caps use it for evict_idle). */
void record_action(const ActionRecord *record);

/* Copies the history, oldest first, into a palloc'd array; returns the count. */
int history_copy(ActionRecord **records);

/* Fills a record's who-fields (role and database names resolved now). */
void record_identity(ActionRecord *record, int pid, Oid userid, Oid dbid, const char *application_name,
                     const core::IpAddress &client);

enum class SignalOutcome
{
    signalled, /* sent (or, for signal 0, would be sent) */
    changed,   /* not the session that was judged any more, or protected: nothing sent */
    gone,      /* the process is gone */
};

/* What a decision about a client backend was based on (for recheck_and_signal). */
core::BackendFacts judged_facts(int pid, Oid userid, TimestampTz backend_start, BackendState state,
                                TimestampTz state_change, TimestampTz query_start);

/*
 * The one way pg_poolguard signals a session (reaper, reap(), evict_idle).  Refuses the
 * caller itself, anything but a client backend, and a superuser unless allow_superuser; then
 * reads the target's status afresh and sends signal (SIGTERM / SIGINT, to its process group)
 * only if core::still_as_judged() holds — with nothing between that check and kill() but the
 * process-array lookup.  signal 0 = check only (dry run).  Do every slow or failing step
 * (catalog, /proc, client note) before; call it under no lock.
 *
 * proc: the target's PGPROC when the caller already found it (ProcIndex), else NULL.  Only a
 * hint: used only while it still carries judged.pid, else the pid is looked up in the process
 * array; either way the target's own status entry is what is re-checked.
 */
SignalOutcome recheck_and_signal(const core::BackendFacts &judged, core::Watch watch, int signal,
                                 bool allow_superuser, PGPROC *proc = nullptr);

/* Leaves the note a signalled backend will show its client; false if the pid is gone.  proc: as
 * for recheck_and_signal. */
bool leave_client_note(int pid, Action action, core::Reason reason, const char *policy, int64 limit,
                       int64 observed, PGPROC *proc = nullptr);

/*
 * pid → PGPROC of every process now, from one unlocked pass over the PGPROC array: a batch of
 * signals finds each target in O(1) instead of walking the process array (under ProcArrayLock,
 * which exiting backends take exclusively) twice per target.  A found PGPROC is a hint only (see
 * recheck_and_signal): its process may have exited since.
 */
struct ProcIndex;
ProcIndex *proc_index_build(void);
PGPROC *proc_index_find(const ProcIndex *index, int pid);

/* Takes back the note of a signal that was not sent after all. */
void withdraw_client_note(int pid);

/* Registers shared memory and installs the emit_log_hook that tells clients why. */
void actions_register(void);
void actions_install_hooks(void);

} // namespace poolguard

#endif
