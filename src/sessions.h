/*
 * sessions.h — one consistent look at every client session: identity, state, the policy it
 * matches, the rules in force and the verdict.  The worker, reap() and the sessions view all
 * judge sessions through scan_sessions(), so they can never disagree.
 */
#ifndef POOLGUARD_SESSIONS_H
#define POOLGUARD_SESSIONS_H

#include "postgres_headers.h"

#include "core/cidr.h"
#include "core/rules.h"
#include "policy_store.h"

namespace poolguard {

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
    bool is_self;      /* the backend running the scan: never acted on */
    bool exempt;       /* superuser or poolguard.exempt_roles */
    bool superuser;
    int policy;        /* index into SessionScan::policies.policies, -1 = GUC defaults */
    core::Rules rules;
    core::Verdict verdict; /* reason none if exempt */
    int64 private_memory;  /* bytes, -1 = not measured */
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
    as_rules_need, /* only idle candidates of policies with max_idle_memory */
    all_visible,   /* every session the caller may see (the sessions view); none it may not */
};

/*
 * Fills *scan (palloc'd in CurrentMemoryContext).  Runs outside any LWLock.  Runs in a transaction (role and database
 * lookups use the syscache).  The memory cache lets the worker read /proc at most once per
 * naptime per session; NULL reads every time.
 */
struct MemoryCache;
void scan_sessions(SessionScan *scan, MemoryReads reads, MemoryCache *cache);

/* Registers the shared table of the worker's memory readings. */
void sessions_register(void);

/* The worker's latest private-memory reading of a backend, -1 if none. */
int64 measured_private_memory(int pid);

/* The worker's per-session memo of /proc reads. */
MemoryCache *memory_cache_create(void);

/* Name of the policy of a row ("" for the GUC defaults). */
const char *row_policy_name(const SessionScan *scan, const SessionRow *row);

/* pg_stat_activity's name for a state. */
const char *state_name(BackendState state);

/* Private_Clean + Private_Dirty of a process in bytes, -1 if unreadable. */
int64 read_private_memory(int pid);

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

/* Converts a backend's client address (family 0 for Unix sockets). */
core::IpAddress client_address(const SockAddr *addr);

}  // namespace poolguard

#endif
