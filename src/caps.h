/*
 * caps.h — per-policy connection caps at login, and per-policy counters.
 *
 * Every login that passes authentication is counted against the first policy it matches: a
 * slot per PGPROC records which policy admitted the backend and its login identity, and the policy's session count is
 * checked and reserved atomically under one LWLock, then released when the backend exits
 * (before_shmem_exit, so FATAL paths release too; a crash reinitializes shared memory).
 */
#ifndef POOLGUARD_CAPS_H
#define POOLGUARD_CAPS_H

#include "postgres_headers.h"

#include "core/rules.h"

namespace poolguard {

enum class PolicyCount
{
    rejected,
    evicted,
    terminated, /* also counted by reason */
    cancelled,
};

/* Counters of one policy name; the GUC defaults count under default_policy_key. */
struct PolicyCounter
{
    char name[NAMEDATALEN]; /* "" = free entry */
    int32 sessions;         /* live backends admitted through this policy */
    int64 rejected;
    int64 evicted;
    int64 terminated;
    int64 cancelled;
    int64 by_reason[core::reason_count]; /* terminations and cancels by reason */
};

/* Counter name of sessions no policy matches (never a valid policy name). */
constexpr const char *default_policy_key = "\x01";

/* Copies the counter table (palloc'd); returns its size. */
int policy_counters_copy(PolicyCounter **counters);

void caps_register(void);
void caps_install_hooks(void);

/* Adds one to a per-policy counter (kept by policy name across reloads); "" = GUC defaults. */
void policy_count(const char *policy, PolicyCount what, core::Reason reason = core::Reason::none);

struct SessionScan;

/*
 * After the policies changed: counts every live session against the policy its login
 * identity (role, database, application_name and client address at login) matches in
 * scan->policies (moving it from the one that admitted it), so a new or lowered cap counts the
 * sessions that already exist, and a later SET application_name moves nothing.  Never ends
 * anyone.  Takes caps_lock itself; call it holding no lock.
 */
void caps_reconcile(const SessionScan *scan);

/* Zeroes the per-policy counters (not the live session counts). */
void caps_reset_counters(void);

}  // namespace poolguard

#endif
