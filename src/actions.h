/*
 * actions.h — what the reaper does to a session: re-check, leave the client a note, signal,
 * record a poolguard.terminations row, log one line.
 */
#ifndef POOLGUARD_ACTIONS_H
#define POOLGUARD_ACTIONS_H

#include "postgres_headers.h"

#include "sessions.h"

#include "core/recheck.h"

namespace poolguard {

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
 */
SignalOutcome recheck_and_signal(const core::BackendFacts &judged, core::Watch watch, int signal,
                                 bool allow_superuser);

/* Leaves the note a signalled backend will show its client; false if the pid is gone. */
bool leave_client_note(int pid, Action action, core::Reason reason, const char *policy, int64 limit,
                       int64 observed);

/* Takes back the note of a signal that was not sent after all. */
void withdraw_client_note(int pid);

/* Registers shared memory and installs the emit_log_hook that tells clients why. */
void actions_register(void);
void actions_install_hooks(void);

}  // namespace poolguard

#endif
