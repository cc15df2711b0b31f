#include "core/policy/name_index.h"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

using namespace poolguard::core;

namespace
{

/* A fixed table of named entries ("" = free) kept indexed as the glue keeps its tables. */
struct Table
{
    std::vector<std::string> names;
    std::vector<int32_t> heads, next;
    uint32_t nbuckets;

    Table(int capacity, uint32_t buckets)
        : names(capacity), heads(buckets), next(capacity, -1), nbuckets(buckets)
    {
        name_index_clear(heads.data(), nbuckets);
    }

    void set(int entry, const std::string &name)
    {
        if (!names[entry].empty())
            name_index_remove(heads.data(), nbuckets, next.data(), entry, names[entry].c_str());
        names[entry] = name;
        if (!name.empty())
            name_index_insert(heads.data(), nbuckets, next.data(), entry, name.c_str());
    }

    int32_t find(const std::string &name) const
    {
        return name_index_find(heads.data(), nbuckets, next.data(), name.c_str(),
                               [this](int32_t e) { return names[e].c_str(); });
    }

    int32_t linear(const std::string &name) const
    {
        for (size_t e = 0; e < names.size(); e++)
            if (!names[e].empty() && names[e] == name)
                return (int32_t)e;
        return -1;
    }
};

} // namespace

TEST(NameIndex, Buckets)
{
    EXPECT_EQ(name_index_buckets(0), 16u);
    EXPECT_EQ(name_index_buckets(20000), 65536u);
    for (uint32_t n : {1u, 2u, 64u})
        EXPECT_LT(name_index_bucket("tenant_1", n), n);
}

TEST(NameIndex, InsertFindRemove)
{
    Table t(8, 16);
    t.set(0, "tenant_1");
    t.set(3, "tenant_2");
    EXPECT_EQ(t.find("tenant_1"), 0);
    EXPECT_EQ(t.find("tenant_2"), 3);
    EXPECT_EQ(t.find("tenant_3"), -1);
    t.set(0, "tenant_3"); /* reused for another name */
    EXPECT_EQ(t.find("tenant_1"), -1);
    EXPECT_EQ(t.find("tenant_3"), 0);
    t.set(3, "");
    EXPECT_EQ(t.find("tenant_2"), -1);
    /* removing what is not there changes nothing */
    name_index_remove(t.heads.data(), t.nbuckets, t.next.data(), 5, "tenant_3");
    EXPECT_EQ(t.find("tenant_3"), 0);
}

/* Random reuse of entries (as the tables recycle idle ones) agrees with a linear scan. */
TEST(NameIndex, EqualsLinearScanUnderRandomReuse)
{
    std::mt19937 rng(22);
    for (uint32_t nbuckets : {1u, 4u, 64u})
    {
        Table t(40, nbuckets);
        for (int step = 0; step < 20000; step++)
        {
            int entry = std::uniform_int_distribution<int>(0, 39)(rng);
            int which = std::uniform_int_distribution<int>(0, 60)(rng);
            std::string name = which == 60 ? "" : "p" + std::to_string(which);
            if (!name.empty() && t.linear(name) >= 0)
                continue; /* the glue never files one name twice: it finds it first */
            t.set(entry, name);
            std::string probe = "p" + std::to_string(std::uniform_int_distribution<int>(0, 60)(rng));
            ASSERT_EQ(t.find(probe), t.linear(probe)) << "step " << step << " buckets " << nbuckets;
        }
    }
}
