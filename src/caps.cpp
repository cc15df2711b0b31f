/*
 * caps.cpp — ClientAuthentication_hook: admit, refuse (53300) or evict the longest-idle session
 * of the policy; the accounting behind it; poolguard.policy_status.
 */
#include "caps.h"

#include "actions.h"
#include "guard.h"
#include "srf.h"
#include "guc.h"
#include "policy_store.h"
#include "sessions.h"
#include "shmem.h"
#include "stats.h"

#include <signal.h>

namespace poolguard {

namespace {

constexpr int64 evict_wait_us = 1000 * 1000; /* how long a login waits for its victim's slot */

struct BackendSlot
{
    int32 counter; /* index into counters, -1 = not counted */
    bool evicting; /* chosen as an evict_idle victim */
    bool live;     /* a client backend holds this PGPROC and will release the slot on exit */
    int pid;
};

constexpr BackendSlot free_slot = {-1, false, false, 0};

struct CapsState
{
    int ncounters;
    PolicyCounter *counters; /* 2 * max_policies: room for renamed/removed policies */
    BackendSlot *slots;      /* proc_slots() */
};

CapsState caps = {0, nullptr, nullptr};
ClientAuthentication_hook_type prev_client_auth_hook = nullptr;
int my_slot = -1; /* this backend's procno once counted */

int counter_capacity(void)
{
    return 2 * guc_max_policies;
}

Size caps_size(void)
{
    return add_size(mul_size(sizeof(PolicyCounter), counter_capacity()),
                    mul_size(sizeof(BackendSlot), proc_slots()));
}

void caps_init(void)
{
    bool found;
    char *base = static_cast<char *>(ShmemInitStruct("pg_poolguard caps", caps_size(), &found));

    caps.ncounters = counter_capacity();
    caps.counters = reinterpret_cast<PolicyCounter *>(base);
    caps.slots = reinterpret_cast<BackendSlot *>(base + sizeof(PolicyCounter) * caps.ncounters);
    if (!found)
    {
        memset(caps.counters, 0, sizeof(PolicyCounter) * caps.ncounters);
        for (int i = 0; i < proc_slots(); i++)
            caps.slots[i] = free_slot;
    }
}

/*
 * The counter of a policy name; creates it (reusing an idle entry if full) when create.
 * Caller holds caps_lock exclusively (shared is enough when !create).
 */
int find_counter(const char *name, bool create)
{
    int free_entry = -1, idle_entry = -1;
    for (int i = 0; i < caps.ncounters; i++)
    {
        PolicyCounter *c = &caps.counters[i];
        if (c->name[0] == '\0')
        {
            if (free_entry < 0)
                free_entry = i;
        }
        else if (strcmp(c->name, name) == 0)
            return i;
        else if (c->sessions == 0 && idle_entry < 0)
            idle_entry = i;
    }
    if (!create)
        return -1;
    int i = free_entry >= 0 ? free_entry : idle_entry;
    if (i < 0)
        return -1; /* every entry holds live sessions: nothing is counted, nothing is capped */
    caps.counters[i] = PolicyCounter();
    strlcpy(caps.counters[i].name, name, NAMEDATALEN);
    return i;
}

/* before_shmem_exit: give the slot back, whatever way the backend leaves. */
void release_slot(int code, Datum arg)
{
    if (my_slot < 0 || caps.slots == nullptr)
        return;
    LWLockAcquire(shared->caps_lock, LW_EXCLUSIVE);
    BackendSlot *slot = &caps.slots[my_slot];
    if (slot->counter >= 0 && caps.counters[slot->counter].sessions > 0)
        caps.counters[slot->counter].sessions--;
    *slot = free_slot;
    LWLockRelease(shared->caps_lock);
    my_slot = -1;
}

/* Under caps_lock: reserve a place if the cap allows. */
bool try_admit(int counter, int64 max_connections, int procno)
{
    PolicyCounter *c = &caps.counters[counter];
    if (max_connections >= 0 && c->sessions >= max_connections)
        return false;
    c->sessions++;
    caps.slots[procno].counter = counter;
    caps.slots[procno].evicting = false;
    return true;
}

/*
 * Every client backend takes part in the accounting, counted or not, so that caps_reconcile()
 * can count it later (a policy created or changed after it logged in); the exit callback gives
 * back whatever it is counted for by then.
 */
void join_accounting(int procno)
{
    LWLockAcquire(shared->caps_lock, LW_EXCLUSIVE);
    caps.slots[procno] = BackendSlot{-1, false, true, MyProcPid};
    LWLockRelease(shared->caps_lock);
    my_slot = procno;
    before_shmem_exit(release_slot, (Datum) 0);
}

[[noreturn]] void refuse(const CompiledPolicy *policy, int counter)
{
    LWLockAcquire(shared->caps_lock, LW_EXCLUSIVE);
    int in_use = caps.counters[counter].sessions;
    caps.counters[counter].rejected++;
    LWLockRelease(shared->caps_lock);
    stats_add(Counter::rejected_connections);
    ereport(FATAL,
            (errcode(ERRCODE_TOO_MANY_CONNECTIONS),
             errmsg("too many connections for poolguard policy \"%s\"", policy->name),
             errdetail("The policy allows %ld connections and %d are in use.",
                       (long) policy->max_connections, in_use),
             errhint("Close idle connections or use a smaller pool; a database administrator can raise "
                     "max_connections of the policy in poolguard.policy.")));
    pg_unreachable();
}

/*
 * evict_idle: end the longest-idle (≥ idle_grace) session counted to the policy, then wait
 * (bounded) for its place.  Returns true once admitted.
 */
bool evict_and_admit(const CompiledPolicy *policy, int counter, int procno, Oid *exempt, int nexempt)
{
    TimestampTz now = GetCurrentTimestamp();
    TimestampTz idle_before = now - (int64) guc_idle_grace_ms * 1000;

    pgstat_clear_snapshot();
    int n = pgstat_fetch_stat_numbackends();
    int victim_pid = 0, victim_procno = -1;
    TimestampTz victim_since = 0, victim_start = 0;
    Oid victim_user = InvalidOid, victim_db = InvalidOid;
    char victim_app[NAMEDATALEN] = "";
    core::IpAddress victim_client;

    LWLockAcquire(shared->caps_lock, LW_EXCLUSIVE);
    for (int i = 1; i <= n; i++)
    {
        LocalPgBackendStatus *local = pgstat_fetch_stat_local_beentry(i);
        if (local == NULL)
            continue;
        PgBackendStatus *be = &local->backendStatus;
        if (be->st_backendType != B_BACKEND || be->st_state != STATE_IDLE ||
            be->st_state_start_timestamp > idle_before)
            continue;
        if (victim_pid != 0 && be->st_state_start_timestamp >= victim_since)
            continue;
        PGPROC *proc = BackendPidGetProc(be->st_procpid);
        if (proc == NULL)
            continue;
        int p = procno_of(proc);
        if (p < 0 || p >= proc_slots() || caps.slots[p].counter != counter || caps.slots[p].evicting)
            continue;
        victim_pid = be->st_procpid;
        victim_procno = p;
        victim_since = be->st_state_start_timestamp;
        victim_start = be->st_proc_start_timestamp;
        victim_user = be->st_userid;
        victim_db = be->st_databaseid;
        strlcpy(victim_app, be->st_appname ? be->st_appname : "", NAMEDATALEN);
        victim_client = client_address(&be->st_clientaddr);
    }
    /* Exempt sessions (superusers, exempt_roles) are never evicted: check the chosen one. */
    bool exempt_victim = false;
    if (victim_pid != 0)
    {
        exempt_victim = guc_exempt_superusers && superuser_arg(victim_user);
        for (int e = 0; e < nexempt && !exempt_victim; e++)
            exempt_victim = role_matches(victim_user, exempt[e]);
    }
    if (victim_pid != 0 && !exempt_victim)
        caps.slots[victim_procno].evicting = true;
    LWLockRelease(shared->caps_lock);

    if (victim_pid == 0 || exempt_victim)
        return false;

    leave_client_note(victim_pid, Action::terminate, core::Reason::evict_idle, policy->name,
                      policy->max_connections, now - victim_since);
    ActionRecord rec = ActionRecord();
    rec.at = now;
    record_identity(&rec, victim_pid, victim_user, victim_db, victim_app, victim_client);
    rec.reason = core::Reason::evict_idle;
    rec.action = Action::terminate;
    rec.state = STATE_IDLE;
    strlcpy(rec.policy, policy->name, NAMEDATALEN);
    rec.state_duration = now - victim_since;
    rec.backend_age = now - victim_start;
    rec.private_memory = read_private_memory(victim_pid);
    (void) signal_backend(victim_pid, SIGTERM);
    record_action(&rec);
    policy_count(policy->name, PolicyCount::evicted, core::Reason::evict_idle);
    stats_add(Counter::evicted_connections);
    if (guc_log_terminations)
        ereport(LOG,
                (errmsg("pg_poolguard evicted idle session %d to admit a login (policy \"%s\", max_connections %ld)",
                        victim_pid, policy->name, (long) policy->max_connections),
                 errdetail("The session was idle %.3f s.", rec.state_duration / 1e6)));

    TimestampTz give_up = now + evict_wait_us;
    for (;;)
    {
        LWLockAcquire(shared->caps_lock, LW_EXCLUSIVE);
        bool ok = try_admit(counter, policy->max_connections, procno);
        LWLockRelease(shared->caps_lock);
        if (ok)
            return true;
        if (GetCurrentTimestamp() >= give_up)
            return false;
        pg_usleep(5000);
        CHECK_FOR_INTERRUPTS();
    }
}

void check_login(Port *port)
{
    if (am_walsender || caps.slots == nullptr || MyProc == NULL || port->user_name == NULL)
        return;
    int procno = procno_of(MyProc);
    if (procno < 0 || procno >= proc_slots())
        return;
    join_accounting(procno);

    Oid roleid = get_role_oid(port->user_name, true);
    if (!OidIsValid(roleid))
        return;
    if (guc_exempt_superusers && superuser_arg(roleid))
        return;
    int nexempt;
    Oid *exempt = exempt_role_oids(&nexempt);
    for (int e = 0; e < nexempt; e++)
        if (role_matches(roleid, exempt[e]))
            return;

    PolicySnapshot snapshot;
    policy_store_snapshot(&snapshot);
    Oid *role_oids = policy_role_oids(&snapshot);
    int index = policy_match(&snapshot, role_oids, roleid, port->database_name, port->application_name,
                             client_address(&port->raddr));
    if (index < 0)
        return;
    const CompiledPolicy *policy = &snapshot.policies[index];

    LWLockAcquire(shared->caps_lock, LW_EXCLUSIVE);
    int counter = find_counter(policy->name, true);
    bool ok = counter >= 0 && try_admit(counter, policy->max_connections, procno);
    LWLockRelease(shared->caps_lock);
    if (counter < 0)
        return;
    if (ok || (policy->on_limit == OnLimit::evict_idle && evict_and_admit(policy, counter, procno, exempt, nexempt)))
        return;
    refuse(policy, counter);
}

void client_auth_hook(Port *port, int status)
{
    if (prev_client_auth_hook)
        prev_client_auth_hook(port, status);
    if (status != STATUS_OK)
        return;
    pg_guard("login cap", [port]() { check_login(port); });
}

}  // namespace

void caps_register(void)
{
    shmem_register(caps_size, caps_init);
}

void caps_install_hooks(void)
{
    prev_client_auth_hook = ClientAuthentication_hook;
    ClientAuthentication_hook = client_auth_hook;
}

namespace {

int compare_pid(const void *a, const void *b)
{
    int x = *static_cast<const int *>(a), y = *static_cast<const int *>(b);
    return x < y ? -1 : x > y;
}

}  // namespace

void caps_reconcile(const SessionScan *scan)
{
    if (caps.slots == nullptr)
        return;
    /* (pid, row) pairs sorted by pid, to find each live slot's session. */
    int *pairs = static_cast<int *>(palloc(sizeof(int) * 2 * Max(scan->count, 1)));
    for (int r = 0; r < scan->count; r++)
    {
        pairs[2 * r] = scan->rows[r].pid;
        pairs[2 * r + 1] = r;
    }
    qsort(pairs, scan->count, sizeof(int) * 2, compare_pid);

    LWLockAcquire(shared->caps_lock, LW_EXCLUSIVE);
    for (int p = 0; p < proc_slots(); p++)
    {
        BackendSlot *slot = &caps.slots[p];
        if (!slot->live)
            continue;
        const int *found = static_cast<const int *>(bsearch(&slot->pid, pairs, scan->count, sizeof(int) * 2, compare_pid));
        if (found == nullptr)
            continue; /* still logging in, or not in this snapshot: its login decides */
        const SessionRow *row = &scan->rows[found[1]];
        int want = (row->exempt || row->policy < 0) ? -1 : find_counter(row_policy_name(scan, row), true);
        if (want == slot->counter)
            continue;
        if (slot->counter >= 0 && caps.counters[slot->counter].sessions > 0)
            caps.counters[slot->counter].sessions--;
        if (want >= 0)
            caps.counters[want].sessions++;
        slot->counter = want;
        slot->evicting = false;
    }
    LWLockRelease(shared->caps_lock);
    pfree(pairs);
}

void policy_count(const char *policy, PolicyCount what, core::Reason reason)
{
    if (caps.counters == nullptr || policy == nullptr)
        return;
    LWLockAcquire(shared->caps_lock, LW_EXCLUSIVE);
    int i = find_counter(policy[0] ? policy : default_policy_key, true);
    if (i >= 0)
    {
        PolicyCounter *c = &caps.counters[i];
        switch (what)
        {
            case PolicyCount::rejected:
                c->rejected++;
                break;
            case PolicyCount::evicted:
                c->evicted++;
                break;
            case PolicyCount::terminated:
                c->terminated++;
                break;
            case PolicyCount::cancelled:
                c->cancelled++;
                break;
        }
        if (reason != core::Reason::none)
            c->by_reason[(int) reason]++;
    }
    LWLockRelease(shared->caps_lock);
}

int policy_counters_copy(PolicyCounter **counters)
{
    require_shared_memory();
    PolicyCounter *copy = static_cast<PolicyCounter *>(palloc(sizeof(PolicyCounter) * caps.ncounters));
    LWLockAcquire(shared->caps_lock, LW_SHARED);
    memcpy(copy, caps.counters, sizeof(PolicyCounter) * caps.ncounters);
    LWLockRelease(shared->caps_lock);
    *counters = copy;
    return caps.ncounters;
}

void caps_reset_counters(void)
{
    if (caps.counters == nullptr)
        return;
    LWLockAcquire(shared->caps_lock, LW_EXCLUSIVE);
    for (int i = 0; i < caps.ncounters; i++)
    {
        caps.counters[i].rejected = 0;
        caps.counters[i].evicted = 0;
        caps.counters[i].terminated = 0;
        caps.counters[i].cancelled = 0;
        memset(caps.counters[i].by_reason, 0, sizeof(caps.counters[i].by_reason));
    }
    LWLockRelease(shared->caps_lock);
}

}  // namespace poolguard

using namespace poolguard;

/*
 * poolguard.policy_status: one row per policy in force (then per counted name no longer in
 * force that still has sessions).  sessions = logins counted to the policy; active / idle /
 * idle_in_transaction = current sessions the policy matches now.
 */
POOLGUARD_FUNCTION(poolguard_policy_status)
{
    require_shared_memory();
    ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
    materialized_srf(fcinfo);

    SessionScan scan;
    scan_sessions(&scan, MemoryReads::as_rules_need, nullptr);
    int npolicies = scan.policies.count;

    PolicyCounter *counters;
    (void) policy_counters_copy(&counters);

    bool *shown = static_cast<bool *>(palloc0(sizeof(bool) * caps.ncounters));
    for (int p = 0; p < npolicies + caps.ncounters; p++)
    {
        const char *name;
        int c = -1;
        const CompiledPolicy *policy = nullptr;
        if (p < npolicies)
        {
            policy = &scan.policies.policies[p];
            name = policy->name;
            for (int i = 0; i < caps.ncounters; i++)
                if (counters[i].name[0] && strcmp(counters[i].name, name) == 0)
                    c = i;
        }
        else
        {
            c = p - npolicies;
            if (shown[c] || counters[c].name[0] == '\0' || counters[c].sessions == 0 ||
                strcmp(counters[c].name, default_policy_key) == 0)
                continue;
            name = counters[c].name;
        }
        if (c >= 0)
            shown[c] = true;

        int64 active = 0, idle = 0, idle_in_tx = 0;
        if (p < npolicies)
            for (int r = 0; r < scan.count; r++)
            {
                if (scan.rows[r].policy != p)
                    continue;
                core::SessionState st = scan.rows[r].state;
                if (st == core::SessionState::active)
                    active++;
                else if (st == core::SessionState::idle)
                    idle++;
                else if (st == core::SessionState::idle_in_transaction ||
                         st == core::SessionState::idle_in_transaction_aborted)
                    idle_in_tx++;
            }

        Datum values[9];
        bool nulls[9] = {false, false, false, false, false, false, false, false, false};
        values[0] = CStringGetTextDatum(name);
        values[1] = Int64GetDatum(c >= 0 ? counters[c].sessions : 0);
        values[2] = Int64GetDatum(active);
        values[3] = Int64GetDatum(idle);
        values[4] = Int64GetDatum(idle_in_tx);
        if (policy != nullptr && policy->max_connections >= 0)
            values[5] = Int64GetDatum(policy->max_connections);
        else
            nulls[5] = true;
        values[6] = Int64GetDatum(c >= 0 ? counters[c].rejected : 0);
        values[7] = Int64GetDatum(c >= 0 ? counters[c].evicted : 0);
        values[8] = Int64GetDatum(c >= 0 ? counters[c].terminated : 0);
        tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
    }
    return (Datum) 0;
}
