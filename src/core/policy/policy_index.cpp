/*
 * policy_index.cpp — hash chains of policies by role name, database name or application_name
 * literal prefix (see policy_index.h); the full match predicate and the linear reference scan.
 */
#include "core/policy/policy_index.h"

#include "core/policy/like.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <string_view>

#include "core/no_server_headers.h" /* last: fails the build if a server header slipped in */

namespace poolguard::core
{

namespace
{

/* Which key a chain entry was filed under; part of the hash so equal texts of kinds differ. */
enum class KeyKind : unsigned char
{
    role = 'r',
    database = 'd',
    application = 'a',
};

constexpr uint64_t fnv_offset = 1469598103934665603ULL;
constexpr uint64_t fnv_prime = 1099511628211ULL;

uint64_t hash_step(uint64_t h, unsigned char c)
{
    return (h ^ c) * fnv_prime;
}

uint64_t hash_start(KeyKind kind)
{
    return hash_step(fnv_offset, static_cast<unsigned char>(kind));
}

uint64_t hash_text(KeyKind kind, std::string_view text)
{
    uint64_t h = hash_start(kind);
    for (char c : text)
        h = hash_step(h, static_cast<unsigned char>(c));
    return h;
}

/* FNV's low bits are weak: mix before masking. */
uint32_t bucket_of(uint64_t h, uint32_t nbuckets)
{
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    return static_cast<uint32_t>(h) & (nbuckets - 1);
}

/*
 * The literal prefix of a LIKE pattern (escapes resolved) written into buf; its length.  Every
 * text the pattern matches starts with these bytes (like_match compares them byte by byte
 * before it meets any wildcard).
 */
size_t literal_prefix(const char *pattern, char *buf, size_t room)
{
    size_t n = 0;
    for (size_t i = 0; pattern[i] != '\0' && n < room; i++)
    {
        char c = pattern[i];
        if (c == '%' || c == '_')
            break;
        if (c == '\\')
        {
            if (pattern[i + 1] == '\0')
                break; /* a dangling escape: the pattern matches nothing; a shorter prefix is still safe */
            c = pattern[++i];
        }
        buf[n++] = c;
    }
    return n;
}

bool has_prefix_length(const PolicyIndexHeader &header, size_t length)
{
    return length >= 1 && length <= static_cast<size_t>(max_prefix_length) &&
           (header.prefix_lengths[length / 64] >> (length % 64) & 1) != 0;
}

} // namespace

bool policy_matches_except_role(const PolicyMatchKeys &policy, const LoginKeys &login)
{
    if (policy.database != nullptr &&
        (login.database == nullptr || strcmp(login.database, policy.database) != 0))
        return false;
    if (policy.application != nullptr &&
        !like_match(login.application != nullptr ? login.application : "", policy.application))
        return false;
    if (policy.client != nullptr && !cidr_contains(*policy.client, login.client))
        return false;
    return true;
}

bool policy_matches(const PolicyMatchKeys &policy, const LoginKeys &login)
{
    if (policy.role != nullptr)
    {
        bool member = false;
        for (int r = 0; r < login.nroles && !member; r++)
            member = strcmp(login.role_names[r], policy.role) == 0;
        if (!member)
            return false;
    }
    return policy_matches_except_role(policy, login);
}

int policy_match_linear(const PolicyMatchKeys *policies, int count, const LoginKeys &login)
{
    for (int i = 0; i < count; i++)
        if (policy_matches(policies[i], login))
            return i;
    return -1;
}

uint32_t policy_index_buckets(int max_policies)
{
    uint32_t n = 16;
    while (n < 2u * static_cast<uint32_t>(std::max(max_policies, 1)) && n < (1u << 30))
        n <<= 1;
    return n;
}

void policy_index_build(const PolicyMatchKeys *policies, int count, PolicyIndexHeader *header, int32_t *heads,
                        int32_t *next)
{
    uint32_t nbuckets = header->nbuckets;
    header->general = -1;
    header->count = count;
    header->by_role = 0;
    header->prefix_lengths[0] = header->prefix_lengths[1] = 0;
    for (uint32_t b = 0; b < nbuckets; b++)
        heads[b] = -1;
    /* Backwards, each pushed at its chain's head: every chain ends up in ascending order. */
    for (int i = count - 1; i >= 0; i--)
    {
        const PolicyMatchKeys &p = policies[i];
        int32_t *head = &header->general;
        char prefix[max_prefix_length];
        size_t length;
        if (p.role != nullptr)
        {
            head = &heads[bucket_of(hash_text(KeyKind::role, p.role), nbuckets)];
            header->by_role++;
        }
        else if (p.database != nullptr)
            head = &heads[bucket_of(hash_text(KeyKind::database, p.database), nbuckets)];
        else if (p.application != nullptr &&
                 (length = literal_prefix(p.application, prefix, sizeof(prefix))) > 0)
        {
            head = &heads[bucket_of(hash_text(KeyKind::application, std::string_view(prefix, length)),
                                    nbuckets)];
            header->prefix_lengths[length / 64] |= uint64_t(1) << (length % 64);
        }
        next[i] = *head;
        *head = i;
    }
}

int policy_index_candidates(const PolicyIndexHeader &header, const int32_t *heads, const int32_t *next,
                            const LoginKeys &login, int32_t *out)
{
    /* The buckets to walk, each once (two keys may share a bucket; chains are disjoint). */
    std::array<uint32_t, 256> buckets;
    size_t nbuckets = 0;
    bool overflow = false;
    auto want = [&](uint64_t h)
    {
        if (nbuckets == buckets.size())
            overflow = true;
        else
            buckets[nbuckets++] = bucket_of(h, header.nbuckets);
    };
    for (int r = 0; r < login.nroles; r++)
        want(hash_text(KeyKind::role, login.role_names[r]));
    if (login.database != nullptr)
        want(hash_text(KeyKind::database, login.database));
    if (login.application != nullptr)
    {
        uint64_t h = hash_start(KeyKind::application);
        for (size_t i = 0; login.application[i] != '\0' && i < static_cast<size_t>(max_prefix_length); i++)
        {
            h = hash_step(h, static_cast<unsigned char>(login.application[i]));
            if (has_prefix_length(header, i + 1))
                want(h);
        }
    }

    int n = 0;
    if (overflow)
    {
        /* More keys than we track (a role in hundreds of roles): every policy is a candidate. */
        for (int i = 0; i < header.count; i++)
            out[n++] = i;
        return n;
    }
    std::sort(buckets.begin(), buckets.begin() + nbuckets);
    size_t distinct = std::unique(buckets.begin(), buckets.begin() + nbuckets) - buckets.begin();
    for (size_t b = 0; b < distinct; b++)
        for (int32_t i = heads[buckets[b]]; i >= 0; i = next[i])
            out[n++] = i;
    for (int32_t i = header.general; i >= 0; i = next[i])
        out[n++] = i;
    std::sort(out, out + n);
    return n;
}

int policy_match_indexed(const PolicyMatchKeys *policies, const PolicyIndexHeader &header,
                         const int32_t *heads, const int32_t *next, const LoginKeys &login, int32_t *scratch)
{
    int n = policy_index_candidates(header, heads, next, login, scratch);
    for (int k = 0; k < n; k++)
        if (policy_matches(policies[scratch[k]], login))
            return scratch[k];
    return -1;
}

} // namespace poolguard::core
