/*
 * policy.h — the policy feature's public interface: compiled policies in shared memory.
 *
 * The worker (or reload() in poolguard.database) reads poolguard.policy with SPI and publishes
 * the enabled rows, in match order, into a fixed array sized by poolguard.max_policies.  Every
 * backend reads them from there: the sessions view in any database, and the login hook, which
 * cannot read per-database tables at all.
 */
#ifndef POOLGUARD_POLICY_H
#define POOLGUARD_POLICY_H

#include "pg/postgres_headers.h"

#include "core/policy/cidr.h"
#include "core/policy/policy_index.h"
#include "core/policy/rules.h"

namespace poolguard
{

enum class OnLimit : uint8_t
{
    reject,
    evict_idle,
    wait, /* wait up to login_wait, in order, for a place */
};

/* One enabled policy row, ready to match; plain data (lives in shared memory). */
struct CompiledPolicy
{
    char name[NAMEDATALEN];
    int32 priority;
    bool has_role;
    bool has_database;
    bool has_application;
    bool has_client;
    NameData role_name;
    NameData database_name;
    char application_pattern[128];
    core::Cidr client;
    core::PolicyRules rules;
    int64 max_connections; /* -1 = no cap */
    OnLimit on_limit;
    int64 login_wait; /* µs a login over the cap may wait (on_limit = wait); 0 = none */
    bool dry_run;
};

/*
 * A backend-local copy of the published policies (palloc'd in the current context), with the
 * index the loader built for them (core/policy/policy_index.h: which policies a login can match).
 */
struct PolicySnapshot
{
    uint64 version;
    int count;
    CompiledPolicy *policies;
    core::PolicyIndexHeader index;
    int32 *index_heads; /* index.nbuckets */
    int32 *index_next;  /* count */
};

void policy_store_register(void);

/* Copies the published policies into *snapshot (palloc'd in CurrentMemoryContext). */
void policy_store_snapshot(PolicySnapshot *snapshot);

/*
 * Reads poolguard.policy through SPI (inside the caller's transaction, search_path pinned) and
 * publishes it unless a load that asked later already published.  Returns the number of
 * policies in force; a missing table publishes zero policies.  Must run in poolguard.database.
 */
int policy_store_load(uint64 change_count);

/*
 * In poolguard.database, loads the policies when a change was committed or requested since the
 * last load, when the table's contents differ from what was published (a COMMIT PREPARED
 * elsewhere, a table that appeared or vanished), or always when force.  Returns true if it
 * loaded; elsewhere does nothing and returns false.  Runs in a transaction.
 */
bool policy_store_refresh(bool force);

/*
 * Would policy_store_refresh(false) have anything to look at: a change committed or requested
 * since the last load, or this process's last read of the table's fingerprint a second old or
 * more.  Reads no catalog and cannot fail: the worker asks before it opens a subtransaction.
 */
bool policy_store_refresh_due(void);

/* Asks for a load (the worker's next cycle, or policy_store_refresh); returns the request's number. */
uint64 policy_store_request_load(void);

/* The request number the published policies reflect (a load publishes it). */
uint64 policy_store_loaded_change_count(void);

/* The number of policies in force. */
int policy_store_count(void);

/* Did this transaction change poolguard.policy (not committed yet)? */
bool policy_change_pending(void);

/*
 * What policy_match() keeps across the calls of one scan or reconcile: the policies' role oids
 * (looked up on first need, InvalidOid when the role does not exist) and each login role's
 * memberships.  Made per scan, so roles created or granted after the policy are matched from
 * their next scan or login on.
 */
struct PolicyMatchCache;
PolicyMatchCache *policy_match_cache(const PolicySnapshot *snapshot);

/* Is userid the role, or a member of it (superusers are not members of everything here)? */
bool role_matches(Oid userid, Oid role);

/*
 * Index of the first policy (in match order) whose match columns all accept the session, -1 if
 * none.  database_name may be NULL (unknown database: database-bound policies do not match).
 * Looks only at the policies the snapshot's index lists for the session (not a linear scan).
 */
int policy_match(const PolicySnapshot *snapshot, PolicyMatchCache *cache, Oid userid,
                 const char *database_name, const char *application_name, const core::IpAddress &client);

/*
 * At login: the policy that policy_match() would find in the published policies, copied into
 * *policy; false if none matches.  Copies only the index's candidates out of shared memory (not
 * every policy), so a login with 10,000 policies costs about what one with a few does.
 */
bool policy_match_login(Oid userid, const char *database_name, const char *application_name,
                        const core::IpAddress &client, CompiledPolicy *policy);

/*
 * The oid of the extension's poolguard.policy in this database; InvalidOid while the extension
 * is not installed or when "poolguard.policy" is not the extension's own member table.  Cached
 * per process, invalidated by relcache invalidations (see policy_store.cpp).
 */
Oid policy_table_oid(void);

/* Is this backend connected to poolguard.database? */
bool in_policy_database(void);

} // namespace poolguard

#endif
