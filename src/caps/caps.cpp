/*
 * caps.cpp — ClientAuthentication_hook: admit, refuse (53300) or evict the longest-idle session
 * of the policy; the accounting behind it; poolguard.policy_status.
 *
 * A session is counted by its login identity: the login role, database, application_name and
 * client address of its startup packet, kept in its slot.  Whatever the session does later
 * (SET application_name, SET ROLE) moves nothing; after a policy change, caps_reconcile()
 * matches the kept login identity against the new policies.
 *
 * Note about locking (every lock and the order: docs/architecture.md, "Locks"):
 *   - caps_lock (login_accounting.lock, LWLock tranche "pg_poolguard caps") guards everything
 *     in "pg_poolguard caps": the live session count of each policy name (with their name index,
 *     a hash: a login finds its policy's count in O(1), not by a scan of 2 * max_policies names), the
 *     per-PGPROC backend slots (counted policy, login identity, evicting mark).  LW_EXCLUSIVE to change
 *     anything, LW_SHARED to copy out (caps_copy_policy_sessions, caps_reconcile's read).  The per-policy
 * event counters (rejected, evicted, ...) are the stats feature's, under its own lock (stats.cpp), taken only
 * after caps_lock is released.
 *   - While it is held, only plain data is copied or compared: no catalog access (roles,
 *     exemptions, policy matching and role-name lookups are all resolved before it is taken),
 *     no palloc, nothing that can ereport, no other lock, no signal, no wait.  So it is held
 *     for microseconds and can never wait on a heavyweight lock: a backend exiting while a
 *     login evicts (release_slot) never waits on anything but other short sections.
 *   - Lock order: caps_lock is a leaf.  It is never taken while the policies' lock or any other
 *     LWLock or spinlock is held, and nothing is acquired under it.  (Callers take
 *     the policies' lock, e.g. for the policy snapshot, and release it before.)
 *   - The exit callback (release_slot) takes caps_lock once.  No code path can raise an error
 *     while holding caps_lock, so a backend never re-enters it from its own exit.
 *   - on_limit = 'wait': the wait queue (ticket counter, number waiting) is under caps_lock too;
 *     a waiting login sleeps on queue->cv (a ConditionVariable) holding no lock, and is woken by
 *     release_slot's broadcast when a place frees (or every wait_poll_ms, to notice a client
 *     that went away).  It takes its place under caps_lock only when it is the first in line of
 *     its policy (the lowest ticket), so logins are admitted in the order they came.
 */
#include "caps/caps.h"

#include "pg/guard.h"
#include "pg/guc.h"
#include "policy/policy.h"
#include "enforce/enforce.h"
#include "pg/shmem.h"
#include "stats/stats.h"

#include "core/policy/name_index.h"

#include <signal.h>

namespace poolguard
{

namespace
{

constexpr int64 evict_wait_us = 1000 * 1000; /* how long a login waits for its victim's slot */
constexpr long evict_poll_ms = 5;
constexpr long wait_poll_ms = 100;           /* on_limit = wait: re-check the client this often */
constexpr int64 auth_margin_us = 250 * 1000; /* give up this long before authentication_timeout */

/* Who logged in, as the startup packet said: what the session is counted by for its life. */
struct LoginIdentity
{
    Oid roleid; /* InvalidOid: no such role (authentication will not let it far) */
    char database_name[NAMEDATALEN];
    char application_name[NAMEDATALEN];
    core::IpAddress client;
};

struct BackendSlot
{
    int32 counter;      /* index into login_accounting.counters, -1 = not counted */
    bool evicting;      /* chosen as an evict_idle victim */
    bool live;          /* a client backend holds this PGPROC and will release the slot on exit */
    bool decided;       /* its login decided what it counts for: caps_reconcile may move it */
    uint64 wait_ticket; /* on_limit = wait: its place in line, 0 = not waiting */
    int32 wait_counter; /* the counter it waits for */
    int pid;
    TimestampTz backend_start; /* with pid, tells this login apart from a later one in the slot */
    LoginIdentity login;
};

/* The logins waiting for a place (on_limit = wait), under caps_lock but the cv. */
struct WaitQueue
{
    ConditionVariable cv; /* broadcast when a place may have freed */
    uint64 next_ticket;
    int32 waiting; /* over all policies */
    /* The counters' name index (core/policy/name_index.h), under caps_lock like the counters. */
    int32 first_free; /* entries below it all hold a name (names are replaced, never cleared) */
};

struct LoginAccounting
{
    LWLock *lock; /* caps_lock: tranche "pg_poolguard caps" */
    WaitQueue *queue;
    int ncounters;
    PolicySessions *counters; /* 2 * max_policies: room for renamed/removed policies */
    BackendSlot *slots;       /* proc_slots() */
    uint32 nbuckets;          /* the counters' name index: heads[nbuckets], next[ncounters] */
    int32 *heads;
    int32 *next;
};

LoginAccounting login_accounting = {nullptr, nullptr, 0,      nullptr, nullptr,
                                    0,       nullptr, nullptr}; /* "pg_poolguard caps" in shared memory */
/* caps_lock's LWLock tranche; the login slots' shared memory has the same name. */
constexpr const char *caps_tranche = "pg_poolguard caps";
ClientAuthentication_hook_type prev_client_auth_hook = nullptr;
int my_slot = -1; /* this backend's procno once counted */

/* Plain-data reset of a slot (fine under caps_lock). */
void clear_slot(BackendSlot *slot)
{
    *slot = BackendSlot();
    slot->counter = -1;
    slot->wait_counter = -1;
}

int counter_capacity(void)
{
    return 2 * guc_max_policies;
}

Size caps_size(void)
{
    Size index =
        mul_size(sizeof(int32), add_size(core::name_index_buckets(counter_capacity()), counter_capacity()));
    return add_size(
        add_size(MAXALIGN(sizeof(WaitQueue)), add_size(mul_size(sizeof(PolicySessions), counter_capacity()),
                                                       mul_size(sizeof(BackendSlot), proc_slots()))),
        index);
}

void caps_init(void)
{
    bool found;
    char *base = static_cast<char *>(ShmemInitStruct(caps_tranche, caps_size(), &found));

    login_accounting.queue = reinterpret_cast<WaitQueue *>(base);
    base += MAXALIGN(sizeof(WaitQueue));
    login_accounting.lock = &(GetNamedLWLockTranche(caps_tranche))->lock;
    login_accounting.ncounters = counter_capacity();
    login_accounting.counters = reinterpret_cast<PolicySessions *>(base);
    login_accounting.slots =
        reinterpret_cast<BackendSlot *>(base + sizeof(PolicySessions) * login_accounting.ncounters);
    login_accounting.nbuckets = core::name_index_buckets(login_accounting.ncounters);
    login_accounting.heads = reinterpret_cast<int32 *>(login_accounting.slots + proc_slots());
    login_accounting.next = login_accounting.heads + login_accounting.nbuckets;
    if (!found)
    {
        login_accounting.queue->first_free = 0;
        core::name_index_clear(login_accounting.heads, login_accounting.nbuckets);
        ConditionVariableInit(&login_accounting.queue->cv);
        login_accounting.queue->next_ticket = 0;
        login_accounting.queue->waiting = 0;
        memset(login_accounting.counters, 0, sizeof(PolicySessions) * login_accounting.ncounters);
        for (int i = 0; i < proc_slots(); i++)
            clear_slot(&login_accounting.slots[i]);
    }
}

/*
 * The counter of a policy name; creates it (reusing an idle entry if full) when create.
 * Caller holds caps_lock exclusively (shared is enough when !create).  Plain data only.
 */
int find_counter(const char *name, bool create)
{
    const PolicySessions *counters = login_accounting.counters;
    int found =
        core::name_index_find(login_accounting.heads, login_accounting.nbuckets, login_accounting.next, name,
                              [counters](int32 i) { return counters[i].name; });
    if (found >= 0 || !create)
        return found;
    /* A new name: the first free entry, else the first idle one (a linear scan only when full). */
    int i = -1;
    if (login_accounting.queue->first_free < login_accounting.ncounters)
        i = login_accounting.queue->first_free++;
    for (int k = 0; i < 0 && k < login_accounting.ncounters; k++)
        if (login_accounting.counters[k].sessions == 0 && login_accounting.counters[k].waiting == 0)
            i = k;
    if (i < 0)
        return -1; /* every entry holds live sessions: nothing is counted, nothing is capped */
    if (login_accounting.counters[i].name[0] != '\0')
        core::name_index_remove(login_accounting.heads, login_accounting.nbuckets, login_accounting.next, i,
                                login_accounting.counters[i].name);
    memset(&login_accounting.counters[i], 0, sizeof(PolicySessions));
    strlcpy(login_accounting.counters[i].name, name, NAMEDATALEN);
    core::name_index_insert(login_accounting.heads, login_accounting.nbuckets, login_accounting.next, i,
                            login_accounting.counters[i].name);
    return i;
}

/* Is the slot still held by the login (pid, start) that was looked at?  Under caps_lock. */
bool same_login(const BackendSlot *slot, int pid, TimestampTz backend_start)
{
    return slot->live && slot->pid == pid && slot->backend_start == backend_start;
}

/* Under caps_lock: the slot leaves the line it waits in (if any). */
void leave_line(BackendSlot *slot)
{
    if (slot->wait_ticket == 0)
        return;
    PolicySessions *c = &login_accounting.counters[slot->wait_counter];
    if (c->waiting > 0)
        c->waiting--;
    if (login_accounting.queue->waiting > 0)
        login_accounting.queue->waiting--;
    slot->wait_ticket = 0;
    slot->wait_counter = -1;
}

/* before_shmem_exit: give the slot back, whatever way the backend leaves. */
void release_slot(int code, Datum arg)
{
    if (my_slot < 0 || login_accounting.slots == nullptr)
        return;
    LWLockAcquire(login_accounting.lock, LW_EXCLUSIVE);
    BackendSlot *slot = &login_accounting.slots[my_slot];
    bool wake = slot->counter >= 0 || slot->wait_ticket != 0;
    if (slot->counter >= 0 && login_accounting.counters[slot->counter].sessions > 0)
        login_accounting.counters[slot->counter].sessions--;
    leave_line(slot);
    clear_slot(slot);
    LWLockRelease(login_accounting.lock);
    my_slot = -1;
    /* A place freed (or the line moved): the waiting logins look again. */
    if (wake)
        ConditionVariableBroadcast(&login_accounting.queue->cv);
}

/* Under caps_lock: reserve a place if the cap allows. */
bool try_admit(int counter, int64 max_connections, int procno)
{
    PolicySessions *c = &login_accounting.counters[counter];
    if (max_connections >= 0 && c->sessions >= max_connections)
        return false;
    c->sessions++;
    login_accounting.slots[procno].counter = counter;
    login_accounting.slots[procno].evicting = false;
    login_accounting.slots[procno].decided = true;
    return true;
}

/*
 * Every client backend takes part in the accounting, counted or not, so that caps_reconcile()
 * can count it later (a policy created or changed after it logged in); the exit callback gives
 * back whatever it is counted for by then.  The login identity is resolved by the caller.
 */
void join_accounting(int procno, const LoginIdentity *login)
{
    LWLockAcquire(login_accounting.lock, LW_EXCLUSIVE);
    BackendSlot *slot = &login_accounting.slots[procno];
    clear_slot(slot);
    slot->live = true;
    slot->pid = MyProcPid;
    slot->backend_start = MyStartTimestamp;
    slot->login = *login;
    LWLockRelease(login_accounting.lock);
    my_slot = procno;
    before_shmem_exit(release_slot, (Datum)0);
}

/* The login counts for no policy (exempt, unmatched): from now on caps_reconcile decides. */
void decide_uncounted(int procno)
{
    LWLockAcquire(login_accounting.lock, LW_EXCLUSIVE);
    login_accounting.slots[procno].decided = true;
    LWLockRelease(login_accounting.lock);
}

int match_login(const PolicySnapshot *snapshot, PolicyMatchCache *match_cache, const LoginIdentity *login)
{
    return policy_match(snapshot, match_cache, login->roleid,
                        login->database_name[0] ? login->database_name : NULL, login->application_name,
                        login->client);
}

[[noreturn]] void refuse(const CompiledPolicy *policy, int counter, bool evicted)
{
    LWLockAcquire(login_accounting.lock, LW_EXCLUSIVE);
    int in_use = login_accounting.counters[counter].sessions;
    LWLockRelease(login_accounting.lock);
    stats_count_policy_event(policy->name, PolicyEvent::login_rejected);
    stats_add(GlobalCounter::rejected_connections);
    if (MyProcPort != nullptr)
        stats_count_app_event(MyProcPort->database_name, MyProcPort->user_name, MyProcPort->application_name,
                              AppEvent::login_rejected);
    if (evicted)
        ereport(FATAL,
                (errcode(ERRCODE_TOO_MANY_CONNECTIONS),
                 errmsg("too many connections for poolguard policy \"%s\"", policy->name),
                 errdetail("An idle session of the policy was ended to make room, but its place was not free "
                           "within %d ms; the policy allows %ld connections and %d are in use.",
                           (int)(evict_wait_us / 1000), (long)policy->max_connections, in_use),
                 errhint("Try again in a moment; the ended session frees its place when it exits.")));
    ereport(FATAL,
            (errcode(ERRCODE_TOO_MANY_CONNECTIONS),
             errmsg("too many connections for poolguard policy \"%s\"", policy->name),
             errdetail("The policy allows %ld connections and %d are in use.", (long)policy->max_connections,
                       in_use),
             errhint("Close idle connections or use a smaller pool; a database administrator can raise "
                     "max_connections of the policy in poolguard.policy.")));
    pg_unreachable();
}

/* An idle session that may be evicted, as the status snapshot showed it. */
struct Candidate
{
    int pid;
    int procno;
    Oid userid;
    Oid dbid;
    TimestampTz backend_start;
    TimestampTz state_change;
    TimestampTz query_start;
    char application_name[NAMEDATALEN];
    core::IpAddress client;
};

int compare_candidates(const void *a, const void *b)
{
    const Candidate *x = static_cast<const Candidate *>(a), *y = static_cast<const Candidate *>(b);
    if (x->state_change != y->state_change)
        return x->state_change < y->state_change ? -1 : 1;
    return x->pid < y->pid ? -1 : x->pid > y->pid;
}

enum class EvictOutcome
{
    admitted,
    no_victim,       /* nobody idle long enough (or every try changed meanwhile) */
    place_not_freed, /* a victim was signalled but did not exit within evict_wait_us */
};

/* Waits (bounded) until the login gets a place of the policy. */
bool wait_for_place(const CompiledPolicy *policy, int counter, int procno, TimestampTz give_up)
{
    for (;;)
    {
        LWLockAcquire(login_accounting.lock, LW_EXCLUSIVE);
        bool ok = try_admit(counter, policy->max_connections, procno);
        LWLockRelease(login_accounting.lock);
        if (ok)
            return true;
        if (GetCurrentTimestamp() >= give_up)
            return false;
        (void)WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, evict_poll_ms,
                        PG_WAIT_EXTENSION);
        ResetLatch(MyLatch);
        CHECK_FOR_INTERRUPTS();
    }
}

/*
 * evict_idle: end the longest-idle (≥ idle_grace) session counted to the policy, then wait
 * (bounded) for its place.  Everything that needs the catalog (exemptions, role and database
 * names) is settled outside caps_lock; under it a candidate is only claimed.  The victim is
 * re-checked (still idle since the same moment, same process) right before the signal.
 */
EvictOutcome evict_and_admit(const CompiledPolicy *policy, int counter, int procno,
                             const Exemptions *exemptions)
{
    TimestampTz now = GetCurrentTimestamp();
    TimestampTz idle_before = now - (int64)guc_idle_grace_ms * 1000;

    /* 1. Candidates from a status snapshot, with no lock held: idle client backends only. */
    BackendStatusRow *backends;
    int n = backend_status_snapshot(&backends);
    Candidate *candidates = static_cast<Candidate *>(palloc(sizeof(Candidate) * Max(n, 1)));
    int ncandidates = 0;
    for (int i = 0; i < n; i++)
    {
        const BackendStatusRow *be = &backends[i];
        if (!(be->client_backend || (be->sql_walsender && guc_signal_walsenders)) || be->pid == MyProcPid ||
            be->state != STATE_IDLE || be->state_change > idle_before)
            continue;
        if (session_exempt(exemptions, be->userid))
            continue; /* superusers, exempt_roles: never evicted */
        PGPROC *proc = BackendPidGetProc(be->pid);
        if (proc == NULL)
            continue;
        int p = procno_of(proc);
        if (p < 0 || p >= proc_slots())
            continue;
        Candidate *c = &candidates[ncandidates++];
        c->pid = be->pid;
        c->procno = p;
        c->userid = be->userid;
        c->dbid = be->dbid;
        c->backend_start = be->backend_start;
        c->state_change = be->state_change;
        c->query_start = be->query_start;
        strlcpy(c->application_name, be->application_name, NAMEDATALEN);
        c->client = be->client;
    }
    qsort(candidates, ncandidates, sizeof(Candidate), compare_candidates);

    /* 2. Longest idle first: claim one counted to this policy, re-check it, signal it. */
    for (int i = 0; i < ncandidates; i++)
    {
        const Candidate *v = &candidates[i];
        bool claimed = false;
        LWLockAcquire(login_accounting.lock, LW_EXCLUSIVE);
        BackendSlot *slot = &login_accounting.slots[v->procno];
        if (same_login(slot, v->pid, v->backend_start) && slot->decided && slot->counter == counter &&
            !slot->evicting)
        {
            slot->evicting = true;
            claimed = true;
        }
        LWLockRelease(login_accounting.lock);
        if (!claimed)
            continue;

        /* Slow steps first (catalog, /proc, the note); then re-check and signal at once. */
        ActionRecord rec = ActionRecord();
        rec.at = now;
        record_identity(&rec, v->pid, v->userid, v->dbid, v->application_name, v->client);
        rec.reason = core::Reason::evict_idle;
        rec.action = Action::terminate;
        rec.state = STATE_IDLE;
        strlcpy(rec.policy, policy->name, NAMEDATALEN);
        rec.state_duration = now - v->state_change;
        rec.backend_age = now - v->backend_start;
        rec.private_memory = read_private_memory(v->pid);
        bool noted = leave_client_note(v->pid, Action::terminate, core::Reason::evict_idle, policy->name,
                                       policy->max_connections, rec.state_duration);
        SignalOutcome outcome =
            noted ? recheck_and_signal(judged_facts(v->pid, v->userid, v->backend_start, STATE_IDLE,
                                                    v->state_change, v->query_start),
                                       core::Watch::state_change, SIGTERM, !guc_exempt_superusers)
                  : SignalOutcome::gone;
        if (outcome != SignalOutcome::signalled)
        {
            /* It turned active, went away or is another process now: leave it, try the next. */
            if (noted)
                withdraw_client_note(v->pid);
            LWLockAcquire(login_accounting.lock, LW_EXCLUSIVE);
            if (same_login(slot, v->pid, v->backend_start))
                slot->evicting = false;
            LWLockRelease(login_accounting.lock);
            continue;
        }

        record_action(&rec);
        stats_count_policy_event(policy->name, PolicyEvent::login_evicted, core::Reason::evict_idle);
        stats_count_app_event(NameStr(rec.database_name), NameStr(rec.role_name), rec.application_name,
                              AppEvent::session_terminated, core::Reason::evict_idle);
        stats_add(GlobalCounter::evicted_connections);
        if (guc_log_terminations)
            ereport(LOG, (errmsg("pg_poolguard evicted idle session %d to admit a login (policy \"%s\", "
                                 "max_connections %ld)",
                                 v->pid, policy->name, (long)policy->max_connections),
                          errdetail("The session was idle %.3f s.", rec.state_duration / 1e6)));

        /* 3. Its place: bounded wait (the victim releases its slot as it exits). */
        return wait_for_place(policy, counter, procno, GetCurrentTimestamp() + evict_wait_us)
                   ? EvictOutcome::admitted
                   : EvictOutcome::place_not_freed;
    }
    return EvictOutcome::no_victim;
}

/* How many logins may wait at once: poolguard.max_waiting_logins, never over max_connections / 4. */
int waiting_limit(void)
{
    return Min(guc_max_waiting_logins, MaxConnections / 4);
}

/* Under caps_lock: is the slot first in line (lowest ticket) among the logins waiting for counter? */
bool first_in_line(int counter, int procno)
{
    uint64 mine = login_accounting.slots[procno].wait_ticket;
    for (int p = 0; p < proc_slots(); p++)
    {
        const BackendSlot *other = &login_accounting.slots[p];
        if (p != procno && other->live && other->wait_ticket != 0 && other->wait_counter == counter &&
            other->wait_ticket < mine)
            return false;
    }
    return true;
}

enum class WaitOutcome
{
    admitted,
    timed_out,   /* login_wait (or authentication_timeout) passed */
    line_full,   /* poolguard.max_waiting_logins are waiting already: refused at once */
    client_gone, /* the client closed the connection while waiting */
};

/*
 * on_limit = 'wait': wait in line, holding no place of the policy and no lock, until a place
 * frees and this login is the first in line, or until the bound (login_wait, and
 * authentication_timeout minus a margin, so the client still gets a clear refusal).
 * Interrupts are served (pg_terminate_backend, postmaster shutdown); release_slot leaves the
 * line if one ends the backend.
 */
WaitOutcome wait_in_line(const CompiledPolicy *policy, int counter, int procno, int64 *waited_us)
{
    TimestampTz start = GetCurrentTimestamp();
    TimestampTz give_up =
        Min(start + policy->login_wait,
            MyStartTimestamp + (int64)AuthenticationTimeout * USECS_PER_SEC - auth_margin_us);
    *waited_us = 0;

    LWLockAcquire(login_accounting.lock, LW_EXCLUSIVE);
    PolicySessions *c = &login_accounting.counters[counter];
    BackendSlot *slot = &login_accounting.slots[procno];
    bool full = login_accounting.queue->waiting >= waiting_limit();
    if (!full)
    {
        slot->wait_ticket = ++login_accounting.queue->next_ticket;
        slot->wait_counter = counter;
        c->waiting++;
        login_accounting.queue->waiting++;
    }
    LWLockRelease(login_accounting.lock);
    if (full)
        return WaitOutcome::line_full;

    WaitOutcome outcome;
    ConditionVariablePrepareToSleep(&login_accounting.queue->cv);
    for (;;)
    {
        LWLockAcquire(login_accounting.lock, LW_EXCLUSIVE);
        bool ok = first_in_line(counter, procno) && try_admit(counter, policy->max_connections, procno);
        if (ok)
            leave_line(slot);
        LWLockRelease(login_accounting.lock);
        if (ok)
        {
            outcome = WaitOutcome::admitted;
            break;
        }
        TimestampTz now = GetCurrentTimestamp();
        if (now >= give_up || !pq_check_connection())
        {
            outcome = now >= give_up ? WaitOutcome::timed_out : WaitOutcome::client_gone;
            LWLockAcquire(login_accounting.lock, LW_EXCLUSIVE);
            leave_line(slot);
            LWLockRelease(login_accounting.lock);
            break;
        }
        long sleep_ms = Min(wait_poll_ms, (long)((give_up - now + 999) / 1000));
        (void)ConditionVariableTimedSleep(&login_accounting.queue->cv, Max(sleep_ms, 1), PG_WAIT_EXTENSION);
        CHECK_FOR_INTERRUPTS();
    }
    ConditionVariableCancelSleep();
    *waited_us = GetCurrentTimestamp() - start;
    /* The next in line looks again (it may be first now, and a place may still be free). */
    ConditionVariableBroadcast(&login_accounting.queue->cv);
    return outcome;
}

[[noreturn]] void refuse_after_wait(const CompiledPolicy *policy, int counter, WaitOutcome outcome,
                                    int64 waited_us)
{
    LWLockAcquire(login_accounting.lock, LW_EXCLUSIVE);
    int in_use = login_accounting.counters[counter].sessions;
    int waiting = login_accounting.queue->waiting;
    LWLockRelease(login_accounting.lock);
    if (outcome == WaitOutcome::client_gone)
        ereport(FATAL,
                (errcode(ERRCODE_CONNECTION_FAILURE),
                 errmsg("client went away while its login waited for a place of poolguard policy \"%s\"",
                        policy->name),
                 errdetail("The login waited %.3f s.", waited_us / 1e6)));
    stats_count_policy_event(policy->name, PolicyEvent::login_rejected);
    stats_add(GlobalCounter::rejected_connections);
    if (MyProcPort != nullptr)
        stats_count_app_event(MyProcPort->database_name, MyProcPort->user_name, MyProcPort->application_name,
                              AppEvent::login_rejected);
    if (outcome == WaitOutcome::line_full)
        ereport(FATAL,
                (errcode(ERRCODE_TOO_MANY_CONNECTIONS),
                 errmsg("too many connections for poolguard policy \"%s\"", policy->name),
                 errdetail(
                     "The policy allows %ld connections and %d are in use, and %d logins already wait for a "
                     "place, the most that may wait (poolguard.max_waiting_logins, at most a quarter of "
                     "max_connections); this login did not wait.",
                     (long)policy->max_connections, in_use, waiting),
                 errhint("Use a smaller pool, or ask the database administrator to raise max_connections of "
                         "the policy or poolguard.max_waiting_logins.")));
    ereport(
        FATAL,
        (errcode(ERRCODE_TOO_MANY_CONNECTIONS),
         errmsg("too many connections for poolguard policy \"%s\"", policy->name),
         errdetail("The login waited %.3f s for a place and none was free; the policy allows %ld connections "
                   "and %d are in use, and waits at most %.3f s (login_wait).",
                   waited_us / 1e6, (long)policy->max_connections, in_use, policy->login_wait / 1e6),
         errhint("Use a smaller pool, or ask the database administrator to raise login_wait or "
                 "max_connections of the policy.")));
    pg_unreachable();
}

void check_login(Port *port)
{
    /* Physical walsenders run no SQL; replication=database ones do, and are counted like clients. */
    if ((am_walsender && !am_db_walsender) || login_accounting.slots == nullptr || MyProc == NULL ||
        port->user_name == NULL)
        return;
    int procno = procno_of(MyProc);
    if (procno < 0 || procno >= proc_slots())
        return;
    /* What every rule judges the session by from now on (not what it SETs later). */
    sessions_note_login(procno, port->application_name);

    /* Resolve the login identity before any lock (the role lookup reads the catalog). */
    LoginIdentity login = LoginIdentity();
    login.roleid = get_role_oid(port->user_name, true);
    strlcpy(login.database_name, port->database_name ? port->database_name : "", NAMEDATALEN);
    strlcpy(login.application_name, port->application_name ? port->application_name : "", NAMEDATALEN);
    login.client = client_address(&port->raddr);
    join_accounting(procno, &login);

    Exemptions exemptions;
    exemptions_load(&exemptions);
    if (!OidIsValid(login.roleid) || session_exempt(&exemptions, login.roleid))
    {
        decide_uncounted(procno);
        return;
    }

    /* Only the policies the index lists for this login are copied out of shared memory. */
    CompiledPolicy *policy = static_cast<CompiledPolicy *>(palloc(sizeof(CompiledPolicy)));
    if (!policy_match_login(login.roleid, login.database_name[0] ? login.database_name : NULL,
                            login.application_name, login.client, policy))
    {
        decide_uncounted(procno);
        return;
    }

    LWLockAcquire(login_accounting.lock, LW_EXCLUSIVE);
    int counter = find_counter(policy->name, true);
    /* Under on_limit = wait, a login does not pass the ones already waiting. */
    bool ok = counter >= 0 &&
              !(policy->on_limit == OnLimit::wait && login_accounting.counters[counter].waiting > 0) &&
              try_admit(counter, policy->max_connections, procno);
    if (counter < 0)
        login_accounting.slots[procno].decided = true;
    LWLockRelease(login_accounting.lock);
    if (counter < 0)
        return;
    if (!ok && policy->on_limit == OnLimit::evict_idle)
    {
        EvictOutcome outcome = evict_and_admit(policy, counter, procno, &exemptions);
        if (outcome != EvictOutcome::admitted)
            refuse(policy, counter, outcome == EvictOutcome::place_not_freed);
    }
    else if (!ok && policy->on_limit == OnLimit::wait)
    {
        int64 waited_us;
        WaitOutcome outcome = wait_in_line(policy, counter, procno, &waited_us);
        if (outcome != WaitOutcome::admitted)
            refuse_after_wait(policy, counter, outcome, waited_us);
        stats_count_policy_event(policy->name, PolicyEvent::login_waited);
    }
    else if (!ok)
        refuse(policy, counter, false);
    refills_count_login(policy->name, login.roleid, login.database_name, login.application_name);
}

void client_auth_hook(Port *port, int status)
{
    if (prev_client_auth_hook)
        prev_client_auth_hook(port, status);
    if (status != STATUS_OK)
        return;
    pg_guard("login cap", [port]() { check_login(port); });
}

} // namespace

void caps_register(void)
{
    shmem_register(caps_size, caps_init);
    shmem_register_lwlocks(caps_tranche, 1);
}

void caps_install_hooks(void)
{
    prev_client_auth_hook = ClientAuthentication_hook;
    ClientAuthentication_hook = client_auth_hook;
}

namespace
{

/* A live, decided slot as caps_reconcile() read it. */
struct SlotCopy
{
    int procno;
    int pid;
    TimestampTz backend_start;
    LoginIdentity login;
    int want; /* out: the policy index its login identity matches now, -1 = none / exempt */
};

} // namespace

void caps_reconcile(const SessionScan *scan)
{
    if (login_accounting.slots == nullptr)
        return;
    int nslots = proc_slots();
    SlotCopy *copies = static_cast<SlotCopy *>(palloc(sizeof(SlotCopy) * nslots));
    int ncopies = 0;

    /* 1. Copy the login identities (plain data) under the lock. */
    LWLockAcquire(login_accounting.lock, LW_SHARED);
    for (int p = 0; p < nslots; p++)
    {
        const BackendSlot *slot = &login_accounting.slots[p];
        if (!slot->live || !slot->decided)
            continue; /* still logging in: its login decides */
        SlotCopy *c = &copies[ncopies++];
        c->procno = p;
        c->pid = slot->pid;
        c->backend_start = slot->backend_start;
        c->login = slot->login;
    }
    LWLockRelease(login_accounting.lock);

    /* 2. Match each login identity against the policies now in force: catalog, no lock. */
    const PolicySnapshot *policies = &scan->policies;
    PolicyMatchCache *match_cache = policy_match_cache(policies);
    Exemptions exemptions;
    exemptions_load(&exemptions);
    for (int i = 0; i < ncopies; i++)
    {
        SlotCopy *c = &copies[i];
        c->want = (!OidIsValid(c->login.roleid) || session_exempt(&exemptions, c->login.roleid))
                      ? -1
                      : match_login(policies, match_cache, &c->login);
    }

    /* 3. Move the counts of the slots still held by the same logins. */
    LWLockAcquire(login_accounting.lock, LW_EXCLUSIVE);
    for (int i = 0; i < ncopies; i++)
    {
        const SlotCopy *c = &copies[i];
        BackendSlot *slot = &login_accounting.slots[c->procno];
        if (!same_login(slot, c->pid, c->backend_start) || !slot->decided)
            continue;
        int want = c->want >= 0 ? find_counter(policies->policies[c->want].name, true) : -1;
        if (want == slot->counter)
            continue;
        if (slot->counter >= 0 && login_accounting.counters[slot->counter].sessions > 0)
            login_accounting.counters[slot->counter].sessions--;
        if (want >= 0)
            login_accounting.counters[want].sessions++;
        slot->counter = want;
        slot->evicting = false;
    }
    LWLockRelease(login_accounting.lock);
    pfree(copies);
}

int caps_copy_policy_sessions(PolicySessions **counters)
{
    require_shared_memory();
    PolicySessions *copy =
        static_cast<PolicySessions *>(palloc(sizeof(PolicySessions) * login_accounting.ncounters));
    LWLockAcquire(login_accounting.lock, LW_SHARED);
    memcpy(copy, login_accounting.counters, sizeof(PolicySessions) * login_accounting.ncounters);
    LWLockRelease(login_accounting.lock);
    *counters = copy;
    return login_accounting.ncounters;
}

} // namespace poolguard

using namespace poolguard;

/*
 * poolguard.policy_status: one row per policy in force (then per counted name no longer in
 * force that still has sessions).  sessions = logins counted to the policy; active / idle /
 * idle_in_transaction = current sessions the policy matches now.
 */
/*
 * poolguard.policy_status_info() by SQL version, each released signature with its own entry:
 *   1.0/1.1  poolguard_policy_status(_info)  9 columns
 *   1.2      poolguard_policy_status_info_1_2  14 (+ logins, refills, ended_unused, waiting, waited)
 */
static Datum policy_status_internal(FunctionCallInfo fcinfo, int ncolumns)
{
    require_shared_memory();
    ReturnSetInfo *rsinfo = (ReturnSetInfo *)fcinfo->resultinfo;
    InitMaterializedSRF(fcinfo, 0);
    if (rsinfo->setDesc->natts != ncolumns)
        ereport(
            ERROR,
            (errcode(ERRCODE_DATATYPE_MISMATCH),
             errmsg("expected %d output columns, not %d", ncolumns, rsinfo->setDesc->natts),
             errhint("Run ALTER EXTENSION pg_poolguard UPDATE so that the SQL objects match the library.")));

    SessionScan scan;
    scan_sessions(&scan, MemoryReads::as_rules_need, nullptr);
    int npolicies = scan.policies.count;

    PolicySessions *counters;
    (void)caps_copy_policy_sessions(&counters);
    PolicyCounters *events;
    int nevents = stats_copy_policy_counters(&events);

    int ncounters = login_accounting.ncounters;
    /* Name indexes over the copies and the sessions tallied per policy: O(policies + entries + sessions). */
    uint32 counter_buckets = core::name_index_buckets(ncounters),
           event_buckets = core::name_index_buckets(nevents);
    int32 *counter_heads = static_cast<int32 *>(palloc(sizeof(int32) * counter_buckets));
    int32 *counter_next = static_cast<int32 *>(palloc(sizeof(int32) * Max(ncounters, 1)));
    int32 *event_heads = static_cast<int32 *>(palloc(sizeof(int32) * event_buckets));
    int32 *event_next = static_cast<int32 *>(palloc(sizeof(int32) * Max(nevents, 1)));
    core::name_index_clear(counter_heads, counter_buckets);
    core::name_index_clear(event_heads, event_buckets);
    for (int i = ncounters - 1; i >= 0; i--)
        if (counters[i].name[0] != '\0')
            core::name_index_insert(counter_heads, counter_buckets, counter_next, i, counters[i].name);
    for (int i = nevents - 1; i >= 0; i--) /* backwards: the first of equal names is found */
        if (events[i].name[0] != '\0')
            core::name_index_insert(event_heads, event_buckets, event_next, i, events[i].name);
    int64 *tally =
        static_cast<int64 *>(palloc0(sizeof(int64) * 3 * Max(npolicies, 1))); /* active, idle, in tx */
    for (int r = 0; r < scan.count; r++)
    {
        int p = scan.rows[r].policy;
        if (p < 0 || p >= npolicies)
            continue;
        core::SessionState st = scan.rows[r].state;
        if (st == core::SessionState::active)
            tally[3 * p]++;
        else if (st == core::SessionState::idle)
            tally[3 * p + 1]++;
        else if (st == core::SessionState::idle_in_transaction ||
                 st == core::SessionState::idle_in_transaction_aborted)
            tally[3 * p + 2]++;
    }

    bool *shown = static_cast<bool *>(palloc0(sizeof(bool) * ncounters));
    for (int p = 0; p < npolicies + ncounters; p++)
    {
        const char *name;
        int c = -1;
        const CompiledPolicy *policy = nullptr;
        if (p < npolicies)
        {
            policy = &scan.policies.policies[p];
            name = policy->name;
            c = core::name_index_find(counter_heads, counter_buckets, counter_next, name,
                                      [counters](int32 i) { return counters[i].name; });
        }
        else
        {
            c = p - npolicies;
            if (shown[c] || counters[c].name[0] == '\0' || counters[c].sessions == 0)
                continue;
            name = counters[c].name;
        }
        if (c >= 0)
            shown[c] = true;
        int e = core::name_index_find(event_heads, event_buckets, event_next, name,
                                      [events](int32 i) { return events[i].name; });
        const PolicyCounters *counted = e >= 0 ? &events[e] : nullptr;

        int64 active = 0, idle = 0, idle_in_tx = 0;
        if (p < npolicies)
        {
            active = tally[3 * p];
            idle = tally[3 * p + 1];
            idle_in_tx = tally[3 * p + 2];
        }

        Datum values[14];
        bool nulls[14];
        memset(nulls, 0, sizeof(nulls));
        values[0] = CStringGetTextDatum(name);
        values[1] = Int64GetDatum(c >= 0 ? counters[c].sessions : 0);
        values[2] = Int64GetDatum(active);
        values[3] = Int64GetDatum(idle);
        values[4] = Int64GetDatum(idle_in_tx);
        if (policy != nullptr && policy->max_connections >= 0)
            values[5] = Int64GetDatum(policy->max_connections);
        else
            nulls[5] = true;
        values[6] = Int64GetDatum(counted ? counted->rejected : 0);
        values[7] = Int64GetDatum(counted ? counted->evicted : 0);
        values[8] = Int64GetDatum(counted ? counted->terminated : 0);
        values[9] = Int64GetDatum(counted ? counted->logins : 0);
        values[10] = Int64GetDatum(counted ? counted->refills : 0);
        values[11] = Int64GetDatum(counted ? counted->ended_unused : 0);
        values[12] = Int64GetDatum(c >= 0 ? counters[c].waiting : 0);
        values[13] = Int64GetDatum(counted ? counted->waited : 0);
        tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
    }
    return (Datum)0;
}

POOLGUARD_FUNCTION(poolguard_policy_status_info_1_2)
{
    return policy_status_internal(fcinfo, 14);
}

/* 1.1's policy_status_info() (9 columns): its SQL still calls it until the update. */
POOLGUARD_FUNCTION(poolguard_policy_status_info)
{
    return policy_status_internal(fcinfo, 9);
}

/* 1.0's name of it (same signature). */
POOLGUARD_LEGACY_ENTRY(poolguard_policy_status, poolguard_policy_status_info)
