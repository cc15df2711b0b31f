#include "core/policy/like.h"

#include <gtest/gtest.h>

using poolguard::core::like_match;
using poolguard::core::like_pattern_valid;

TEST(Like, Literals)
{
    EXPECT_TRUE(like_match("web", "web"));
    EXPECT_FALSE(like_match("web", "Web"));
    EXPECT_FALSE(like_match("web", "webs"));
    EXPECT_FALSE(like_match("webs", "web"));
    EXPECT_TRUE(like_match("", ""));
    EXPECT_FALSE(like_match("a", ""));
}

TEST(Like, Percent)
{
    EXPECT_TRUE(like_match("prisma-client-7", "prisma%"));
    EXPECT_TRUE(like_match("prisma", "prisma%"));
    EXPECT_TRUE(like_match("", "%"));
    EXPECT_TRUE(like_match("next.js worker", "%worker"));
    EXPECT_TRUE(like_match("aXbXc", "a%b%c"));
    EXPECT_FALSE(like_match("aXbXd", "a%b%c"));
    EXPECT_TRUE(like_match("abcabcabd", "%abd"));
    EXPECT_TRUE(like_match("mississippi", "%iss%ppi"));
    EXPECT_TRUE(like_match("x", "%%%"));
}

TEST(Like, Underscore)
{
    EXPECT_TRUE(like_match("app1", "app_"));
    EXPECT_FALSE(like_match("app", "app_"));
    EXPECT_FALSE(like_match("app12", "app_"));
    /* '_' is one character, not one byte */
    EXPECT_TRUE(like_match("app\xc3\xa9", "app_"));
    EXPECT_TRUE(like_match("\xe2\x82\xac-x", "_-x"));
}

TEST(Like, Escapes)
{
    EXPECT_TRUE(like_match("100%", "100\\%"));
    EXPECT_FALSE(like_match("1000", "100\\%"));
    EXPECT_TRUE(like_match("a_b", "a\\_b"));
    EXPECT_FALSE(like_match("axb", "a\\_b"));
    EXPECT_TRUE(like_match("a\\b", "a\\\\b"));
    EXPECT_FALSE(like_match("a", "a\\"));
    EXPECT_FALSE(like_pattern_valid("a\\"));
    EXPECT_TRUE(like_pattern_valid("a\\%"));
}

TEST(Like, NoExponentialBlowup)
{
    std::string text(5000, 'a');
    std::string pattern;
    for (int i = 0; i < 50; i++)
        pattern += "%a";
    pattern += "%b";
    EXPECT_FALSE(like_match(text, pattern));
}
