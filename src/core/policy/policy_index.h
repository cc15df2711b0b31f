/*
 * policy_index.h — which policies a login can match, without a linear scan (pure C++).
 *
 * A policy matches a login when every match column it sets accepts it (see policy_matches); the
 * first match in priority order (the lowest index) wins.  With one role — and one policy — per
 * tenant, trying every policy at every login costs a role lookup per policy.  The index puts each
 * policy into exactly one hash chain, by its most selective key:
 *   - a policy with a role: under its role name (the login looks up its own role's name and the
 *     names of every role it is a member of);
 *   - else a policy with a database: under the database name;
 *   - else a policy with an application_name pattern whose literal prefix (the text before its
 *     first unescaped '%' or '_') is not empty: under that prefix (the login looks up every prefix
 *     of its application_name whose length some pattern has);
 *   - else: in the "general" chain, which every login walks.
 * Every policy that can match a login is on a chain the login walks, so the candidates are a
 * superset of the matches; a hash collision only adds candidates.  The caller checks each
 * candidate in ascending order with the full predicate, so the result equals the linear scan's.
 *
 * The index is plain data (a header and two int32 arrays), built without allocating, so it can
 * live in shared memory and be copied with memcpy.
 */
#ifndef POOLGUARD_CORE_POLICY_INDEX_H
#define POOLGUARD_CORE_POLICY_INDEX_H

#include "core/policy/cidr.h"

#include <cstddef>
#include <cstdint>

namespace poolguard::core
{

/* What one policy matches on; nullptr = the column is NULL (matches anything). */
struct PolicyMatchKeys
{
    const char *role = nullptr;        /* role name: the role and its members */
    const char *database = nullptr;    /* database name, exact */
    const char *application = nullptr; /* LIKE pattern */
    const Cidr *client = nullptr;
};

/* The login as the match sees it. */
struct LoginKeys
{
    /* The login role's own name and the names of every role it is (recursively) a member of.
     * For the index this only needs to be a superset; policy_matches() takes it as exact. */
    const char *const *role_names = nullptr;
    int nroles = 0;
    const char *database = nullptr;    /* nullptr: unknown (database-bound policies do not match) */
    const char *application = nullptr; /* nullptr counts as "" */
    IpAddress client;
};

/* The non-role match columns: database, application_name (LIKE), client_addr. */
bool policy_matches_except_role(const PolicyMatchKeys &policy, const LoginKeys &login);

/* Full predicate, with role membership given as the login's role names. */
bool policy_matches(const PolicyMatchKeys &policy, const LoginKeys &login);

/* Index of the first policy in [0, count) that matches, -1 if none: the reference linear scan. */
int policy_match_linear(const PolicyMatchKeys *policies, int count, const LoginKeys &login);

struct PolicyIndexHeader
{
    uint32_t nbuckets = 0; /* a power of two */
    int32_t general = -1;  /* first policy of the chain with no key, -1 = empty */
    int32_t count = 0;     /* policies indexed */
    int32_t by_role = 0;   /* of them filed under a role name: 0 = a login's role names are not needed */
    /* bit L (1..127): some policy is bucketed under an application prefix of L bytes */
    uint64_t prefix_lengths[2] = {0, 0};
};

/* Longest literal prefix the index uses (application_pattern holds up to 127 bytes). */
constexpr int max_prefix_length = 127;

/* The bucket count for up to max_policies policies: a power of two, at least twice as many. */
uint32_t policy_index_buckets(int max_policies);

/*
 * Builds the index of policies[0..count): heads has header->nbuckets entries (set nbuckets, a
 * power of two, before the call), next has count entries.  Each chain lists its policies in
 * ascending order.  Allocates nothing and cannot fail.
 */
void policy_index_build(const PolicyMatchKeys *policies, int count, PolicyIndexHeader *header, int32_t *heads,
                        int32_t *next);

/*
 * Writes into out (room for header.count entries) the policies the login can match: sorted,
 * without duplicates, a superset of the matches.  Returns how many.  Allocates nothing.
 */
int policy_index_candidates(const PolicyIndexHeader &header, const int32_t *heads, const int32_t *next,
                            const LoginKeys &login, int32_t *out);

/* Index of the first match through the index; equals policy_match_linear (the unit tests check). */
int policy_match_indexed(const PolicyMatchKeys *policies, const PolicyIndexHeader &header,
                         const int32_t *heads, const int32_t *next, const LoginKeys &login, int32_t *scratch);

} // namespace poolguard::core

#endif
