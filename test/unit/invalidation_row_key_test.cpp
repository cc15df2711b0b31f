#include "core/invalidation/row_key.h"

#include <gtest/gtest.h>

#include <string>

using namespace poolguard::core;

namespace
{

std::string key(std::initializer_list<const char *> parts, std::size_t cap = 1001)
{
    std::string buf(cap, 'x');
    std::size_t n = row_key(parts.begin(), (int)parts.size(), &buf[0], cap);
    return n < cap ? std::string(buf.c_str()) : std::string("<too long: ") + std::to_string(n) + ">";
}

} // namespace

TEST(RowKey, OneColumnIsTheTextUnchanged)
{
    EXPECT_EQ(key({"42"}), "42");
    EXPECT_EQ(key({"a\"b"}), "a\"b");
    EXPECT_EQ(key({""}), "");
}

TEST(RowKey, CompositeIsAJsonArrayOfStrings)
{
    EXPECT_EQ(key({"7", "2"}), "[\"7\",\"2\"]");
    EXPECT_EQ(key({"a\"b", "c\\d", "e\nf\x01"}), "[\"a\\\"b\",\"c\\\\d\",\"e\\nf\\u0001\"]");
    EXPECT_EQ(key({"é", ""}), "[\"é\",\"\"]");
}

TEST(RowKey, ReportsTheLengthWhenItDoesNotFit)
{
    EXPECT_EQ(key({"12345"}, 5), "<too long: 5>");
    EXPECT_EQ(key({"1234"}, 5), "1234");
    char buf[4];
    const char *parts[] = {"ab", "cd"};
    EXPECT_EQ(row_key(parts, 2, buf, sizeof(buf)), std::size_t(11));
    EXPECT_EQ(std::string(buf), "[\"a"); /* a NUL-terminated prefix */
}
