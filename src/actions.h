/*
 * actions.h — what the reaper does to a session: re-check, leave the client a note, signal,
 * record a poolguard.terminations row, log one line.
 */
#ifndef POOLGUARD_ACTIONS_H
#define POOLGUARD_ACTIONS_H

#include "postgres_headers.h"

#include "sessions.h"

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

/* SIGTERM / SIGINT to a client backend's process group; false if it is no longer a backend. */
bool signal_backend(int pid, int signal);

/* Leaves the note a signalled backend will show its client; false if the pid is gone. */
bool leave_client_note(int pid, Action action, core::Reason reason, const char *policy, int64 limit,
                       int64 observed);

/* Registers shared memory and installs the emit_log_hook that tells clients why. */
void actions_register(void);
void actions_install_hooks(void);

}  // namespace poolguard

#endif
