#include "core/policy/policy_index.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <deque>
#include <random>
#include <set>
#include <string>
#include <vector>

using namespace poolguard::core;

namespace
{

/* A policy set and its index, owning every string the keys point to. */
struct Fixture
{
    std::deque<std::string> texts; /* stable addresses */
    std::deque<Cidr> cidrs;
    std::vector<PolicyMatchKeys> keys;
    PolicyIndexHeader header;
    std::vector<int32_t> heads, next, scratch;

    const char *keep(const std::string &s)
    {
        texts.push_back(s);
        return texts.back().c_str();
    }

    void build(uint32_t nbuckets)
    {
        header.nbuckets = nbuckets;
        heads.assign(nbuckets, -2);
        next.assign(std::max<size_t>(keys.size(), 1), -2);
        scratch.assign(std::max<size_t>(keys.size(), 1), -2);
        policy_index_build(keys.data(), (int)keys.size(), &header, heads.data(), next.data());
    }

    int indexed(const LoginKeys &login)
    {
        return policy_match_indexed(keys.data(), header, heads.data(), next.data(), login, scratch.data());
    }

    int linear(const LoginKeys &login)
    {
        return policy_match_linear(keys.data(), (int)keys.size(), login);
    }

    std::vector<int32_t> candidates(const LoginKeys &login)
    {
        int n = policy_index_candidates(header, heads.data(), next.data(), login, scratch.data());
        return std::vector<int32_t>(scratch.begin(), scratch.begin() + n);
    }
};

IpAddress ip(const char *text)
{
    auto a = parse_ip(text);
    EXPECT_TRUE(a.has_value()) << text;
    return a.value_or(IpAddress());
}

const char *const roles[] = {"r0", "r1", "r2", "r3", "r4", "r5", "r6", "r7", "tenant_a", "tenant_b"};
constexpr int nroles = sizeof(roles) / sizeof(roles[0]);
const char *const databases[] = {"d0", "d1", "d2", "app"};
const char *const cidr_texts[] = {"10.0.0.0/8", "10.1.0.0/16",   "192.168.1.5",
                                  "::/0",       "2001:db8::/32", "0.0.0.0/0"};
const char *const clients[] = {"10.1.2.3",    "10.2.0.1",    "192.168.1.5",
                               "192.168.1.6", "2001:db8::1", "::ffff:10.1.0.9"};

/* A random LIKE pattern over a small alphabet, with wildcards, escapes and a dangling escape. */
std::string random_pattern(std::mt19937 &rng)
{
    static const char *const pieces[] = {"a",   "b",   "c",    "ab",  "%",   "_",
                                         "\\%", "\\_", "\\\\", "\\a", "web", "web-"};
    std::string p;
    int n = std::uniform_int_distribution<int>(0, 5)(rng);
    for (int i = 0; i < n; i++)
        p += pieces[std::uniform_int_distribution<int>(0, 11)(rng)];
    if (std::uniform_int_distribution<int>(0, 30)(rng) == 0)
        p += "\\"; /* dangling escape: matches nothing */
    return p;
}

std::string random_application(std::mt19937 &rng)
{
    static const char alphabet[] = {'a', 'b', 'c', '%', '_', '\\', 'w', 'e', '-'};
    std::string s;
    int n = std::uniform_int_distribution<int>(0, 7)(rng);
    for (int i = 0; i < n; i++)
        s += alphabet[std::uniform_int_distribution<int>(0, 8)(rng)];
    return s;
}

/* Random membership: role i may be a member of roles j > i (and occasionally of a lower one). */
std::vector<std::set<int>> random_memberships(std::mt19937 &rng)
{
    std::vector<std::set<int>> direct(nroles);
    for (int i = 0; i < nroles; i++)
        for (int j = 0; j < nroles; j++)
            if (i != j && std::uniform_int_distribution<int>(0, 9)(rng) == 0)
                direct[i].insert(j);
    return direct;
}

/* The role itself and everything it reaches (cycles allowed). */
std::vector<const char *> closure(const std::vector<std::set<int>> &direct, int role)
{
    std::vector<int> seen{role}, todo{role};
    while (!todo.empty())
    {
        int r = todo.back();
        todo.pop_back();
        for (int m : direct[r])
            if (std::find(seen.begin(), seen.end(), m) == seen.end())
            {
                seen.push_back(m);
                todo.push_back(m);
            }
    }
    std::vector<const char *> names;
    for (int r : seen)
        names.push_back(roles[r]);
    return names;
}

void random_policies(Fixture *f, std::mt19937 &rng, int count, bool with_roles = true)
{
    auto chance = [&rng](int in) { return std::uniform_int_distribution<int>(0, in - 1)(rng) == 0; };
    for (int i = 0; i < count; i++)
    {
        PolicyMatchKeys k;
        if (with_roles && !chance(3))
            k.role = roles[std::uniform_int_distribution<int>(0, nroles - 1)(rng)];
        if (chance(2))
            k.database = databases[std::uniform_int_distribution<int>(0, 3)(rng)];
        if (chance(2))
            k.application = f->keep(random_pattern(rng));
        if (chance(4))
        {
            f->cidrs.push_back(*parse_cidr(cidr_texts[std::uniform_int_distribution<int>(0, 5)(rng)]));
            k.client = &f->cidrs.back();
        }
        f->keys.push_back(k);
    }
}

} // namespace

TEST(PolicyIndex, BucketsArePowersOfTwoWithRoom)
{
    for (int max : {1, 2, 127, 128, 1000, 10000, 100000})
    {
        uint32_t n = policy_index_buckets(max);
        EXPECT_EQ(n & (n - 1), 0u) << max;
        EXPECT_GE(n, 2u * (uint32_t)max);
        EXPECT_GE(n, 16u);
    }
}

TEST(PolicyIndex, EmptySetMatchesNothing)
{
    Fixture f;
    f.build(16);
    const char *names[] = {"r0"};
    LoginKeys login;
    login.role_names = names;
    login.nroles = 1;
    EXPECT_EQ(f.indexed(login), -1);
    EXPECT_TRUE(f.candidates(login).empty());
}

TEST(PolicyIndex, OneRolePerTenantLooksAtFewPolicies)
{
    Fixture f;
    for (int i = 0; i < 10000; i++)
    {
        PolicyMatchKeys k;
        k.role = f.keep("tenant_" + std::to_string(i));
        f.keys.push_back(k);
    }
    PolicyMatchKeys catch_all; /* the last: matches everybody */
    f.keys.push_back(catch_all);
    f.build(policy_index_buckets(10001));
    EXPECT_EQ(f.header.by_role, 10000);

    const char *names[] = {"tenant_4242"};
    LoginKeys login;
    login.role_names = names;
    login.nroles = 1;
    EXPECT_EQ(f.indexed(login), 4242);
    EXPECT_LE(f.candidates(login).size(), 4u); /* its own policy, the catch-all, a collision or two */

    const char *stranger[] = {"nobody"};
    login.role_names = stranger;
    EXPECT_EQ(f.indexed(login), 10000);
}

TEST(PolicyIndex, FirstMatchInOrderAcrossKinds)
{
    Fixture f;
    PolicyMatchKeys by_app, by_db, by_role, general;
    by_app.application = "web%";
    by_db.database = "app";
    by_role.role = "r1";
    Cidr net = *parse_cidr("10.0.0.0/8");
    general.client = &net;
    f.keys = {by_app, by_db, by_role, general};
    f.build(16);

    const char *r1[] = {"r1"};
    LoginKeys login;
    login.role_names = r1;
    login.nroles = 1;
    login.database = "app";
    login.application = "web-7";
    login.client = ip("10.1.2.3");
    EXPECT_EQ(f.indexed(login), 0);
    login.application = "worker";
    EXPECT_EQ(f.indexed(login), 1);
    login.database = "other";
    EXPECT_EQ(f.indexed(login), 2);
    const char *r2[] = {"r2"};
    login.role_names = r2;
    EXPECT_EQ(f.indexed(login), 3);
    login.client = ip("192.168.1.1");
    EXPECT_EQ(f.indexed(login), -1);
    login.database = nullptr; /* unknown database: database-bound policies do not match */
    login.application = "web";
    EXPECT_EQ(f.indexed(login), 0);
}

TEST(PolicyIndex, EscapedPrefixes)
{
    Fixture f;
    PolicyMatchKeys percent, underscore, dangling;
    percent.application = "50\\%off%";
    underscore.application = "a\\_b";
    dangling.application = "abc\\";
    f.keys = {percent, underscore, dangling};
    f.build(16);
    LoginKeys login;
    for (const char *app : {"50%off", "50%offer", "50xoff", "a_b", "axb", "abc", "abc\\", ""})
    {
        login.application = app;
        EXPECT_EQ(f.indexed(login), f.linear(login)) << app;
    }
    login.application = "50%off-today";
    EXPECT_EQ(f.indexed(login), 0);
    login.application = "a_b";
    EXPECT_EQ(f.indexed(login), 1);
}

/* The contract: for random policy sets and logins, the index finds what the linear scan finds. */
TEST(PolicyIndex, EqualsLinearScanOnRandomSets)
{
    std::mt19937 rng(20261207);
    int matched = 0, unmatched = 0;
    for (int set = 0; set < 400; set++)
    {
        Fixture f;
        int count = std::uniform_int_distribution<int>(0, 80)(rng);
        random_policies(&f, rng, count, set % 5 != 0); /* every fifth set without roles */
        /* Tiny bucket counts force collisions; the real size keeps them rare. */
        uint32_t nbuckets = set % 3 == 0 ? 1u : set % 3 == 1 ? 4u : policy_index_buckets(count);
        f.build(nbuckets);
        auto direct = random_memberships(rng);
        for (int l = 0; l < 60; l++)
        {
            int role = std::uniform_int_distribution<int>(0, nroles - 1)(rng);
            std::vector<const char *> names = closure(direct, role);
            std::string app = random_application(rng);
            LoginKeys login;
            login.role_names = names.data();
            login.nroles = (int)names.size();
            int db = std::uniform_int_distribution<int>(0, 4)(rng);
            login.database = db < 4 ? databases[db] : nullptr;
            login.application = std::uniform_int_distribution<int>(0, 9)(rng) == 0 ? nullptr : app.c_str();
            int client = std::uniform_int_distribution<int>(0, 6)(rng);
            login.client = client < 6 ? ip(clients[client]) : IpAddress();

            int expected = f.linear(login);
            if (f.header.by_role == 0)
            {
                /* No policy is filed under a role: the glue skips resolving role names. */
                LoginKeys nameless = login;
                nameless.nroles = 0;
                ASSERT_EQ(f.indexed(nameless), expected);
            }
            ASSERT_EQ(f.indexed(login), expected)
                << "set " << set << " login " << l << " role " << roles[role] << " app '" << app << "'";
            (expected >= 0 ? matched : unmatched)++;

            /* Candidates are sorted, unique and include every policy that matches. */
            std::vector<int32_t> c = f.candidates(login);
            ASSERT_TRUE(std::is_sorted(c.begin(), c.end()));
            ASSERT_EQ(std::adjacent_find(c.begin(), c.end()), c.end());
            for (int i = 0; i < count; i++)
            {
                if (policy_matches(f.keys[i], login))
                {
                    ASSERT_TRUE(std::binary_search(c.begin(), c.end(), i)) << i;
                }
            }

            /* The glue looks roles up with a superset of names and checks membership itself. */
            std::vector<const char *> more = names;
            more.push_back("pg_database_owner");
            more.push_back(roles[std::uniform_int_distribution<int>(0, nroles - 1)(rng)]);
            LoginKeys wider = login;
            wider.role_names = more.data();
            wider.nroles = (int)more.size();
            std::vector<int32_t> cw = f.candidates(wider);
            for (int i = 0; i < count; i++)
            {
                if (policy_matches(f.keys[i], login))
                {
                    ASSERT_TRUE(std::binary_search(cw.begin(), cw.end(), i)) << i;
                }
            }
        }
    }
    /* The generator exercises both outcomes. */
    EXPECT_GT(matched, 1000);
    EXPECT_GT(unmatched, 1000);
}

TEST(PolicyIndex, ManyRolesFallBackToEveryPolicy)
{
    Fixture f;
    PolicyMatchKeys k;
    k.role = "r299";
    f.keys = {k};
    f.build(16);
    std::deque<std::string> names;
    std::vector<const char *> ptrs;
    for (int i = 0; i < 300; i++)
    {
        names.push_back("r" + std::to_string(i));
        ptrs.push_back(names.back().c_str());
    }
    LoginKeys login;
    login.role_names = ptrs.data();
    login.nroles = (int)ptrs.size();
    EXPECT_EQ(f.indexed(login), 0);
}
