#include "core/enforce/smaps.h"

#include <gtest/gtest.h>

using poolguard::core::parse_private_memory;

TEST(Smaps, SumsPrivateCleanAndDirty)
{
    const char *text = "55d0c2a3e000-7ffd4b5f9000 ---p 00000000 00:00 0                          [rollup]\n"
                       "Rss:              205480 kB\n"
                       "Pss:              150321 kB\n"
                       "Shared_Clean:      10240 kB\n"
                       "Shared_Dirty:      40000 kB\n"
                       "Private_Clean:      1024 kB\n"
                       "Private_Dirty:    153600 kB\n"
                       "Referenced:       205480 kB\n";
    EXPECT_EQ(parse_private_memory(text), (1024 + 153600) * 1024LL);
}

TEST(Smaps, MissingFieldsAndJunk)
{
    EXPECT_EQ(parse_private_memory(""), -1);
    EXPECT_EQ(parse_private_memory("Rss: 12 kB\n"), -1);
    EXPECT_EQ(parse_private_memory("Private_Dirty: 7 kB"), 7 * 1024);
    EXPECT_EQ(parse_private_memory("Private_Dirty:\nPrivate_Clean: x\n"), -1);
}
