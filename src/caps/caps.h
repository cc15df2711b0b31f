/*
 * caps.h — the caps feature's public interface: per-policy connection caps at login.
 *
 * Every login that passes authentication is counted against the first policy it matches: a
 * slot per PGPROC records which policy admitted the backend and its login identity, and the policy's session
 * count is checked and reserved atomically under one LWLock, then released when the backend exits
 * (before_shmem_exit, so FATAL paths release too; a crash reinitializes shared memory).
 */
#ifndef POOLGUARD_CAPS_H
#define POOLGUARD_CAPS_H

#include "pg/postgres_headers.h"

#include "core/policy/rules.h"

namespace poolguard
{

/* The live sessions counted against one policy name. */
struct PolicySessions
{
    char name[NAMEDATALEN]; /* "" = free entry */
    int32 sessions;         /* live backends admitted through (or reconciled to) this policy */
    int32 waiting;          /* logins waiting for a place (on_limit = wait); they hold none */
};

/* Copies the session counts (palloc'd); returns how many entries (free ones have name ""). */
int caps_copy_policy_sessions(PolicySessions **counters);

void caps_register(void);
void caps_install_hooks(void);

struct SessionScan;

/*
 * After the policies changed: counts every live session against the policy its login
 * identity (role, database, application_name and client address at login) matches in
 * scan->policies (moving it from the one that admitted it), so a new or lowered cap counts the
 * sessions that already exist, and a later SET application_name moves nothing.  Never ends
 * anyone.  Takes caps_lock itself; call it holding no lock.
 */
void caps_reconcile(const SessionScan *scan);

} // namespace poolguard

#endif
