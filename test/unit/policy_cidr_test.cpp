#include "core/policy/cidr.h"

#include <gtest/gtest.h>

using namespace poolguard::core;

static bool in(const char *net, const char *addr)
{
    auto n = parse_cidr(net);
    auto a = parse_ip(addr);
    EXPECT_TRUE(n.has_value()) << net;
    EXPECT_TRUE(a.has_value()) << addr;
    return cidr_contains(*n, *a);
}

TEST(Cidr, Parse)
{
    EXPECT_TRUE(parse_cidr("10.0.0.0/8"));
    EXPECT_TRUE(parse_cidr("10.1.2.3"));
    EXPECT_EQ(parse_cidr("10.1.2.3")->bits, 32);
    EXPECT_EQ(parse_cidr("::1")->bits, 128);
    EXPECT_TRUE(parse_cidr("fd00::/8"));
    EXPECT_FALSE(parse_cidr("10.0.0.0/33"));
    EXPECT_FALSE(parse_cidr("10.0.0.0/"));
    EXPECT_FALSE(parse_cidr("10.0.0.0/8x"));
    EXPECT_FALSE(parse_cidr("10.0.0/8"));
    EXPECT_FALSE(parse_cidr("fd00::/129"));
    EXPECT_FALSE(parse_cidr("nonsense"));
    EXPECT_FALSE(parse_cidr(""));
}

TEST(Cidr, V4)
{
    EXPECT_TRUE(in("10.0.0.0/8", "10.200.3.4"));
    EXPECT_FALSE(in("10.0.0.0/8", "11.0.0.1"));
    EXPECT_TRUE(in("192.168.1.0/25", "192.168.1.127"));
    EXPECT_FALSE(in("192.168.1.0/25", "192.168.1.128"));
    EXPECT_TRUE(in("0.0.0.0/0", "8.8.8.8"));
    EXPECT_TRUE(in("127.0.0.1/32", "127.0.0.1"));
    EXPECT_FALSE(in("127.0.0.1/32", "127.0.0.2"));
}

TEST(Cidr, V6AndMapped)
{
    EXPECT_TRUE(in("::1/128", "::1"));
    EXPECT_TRUE(in("fd00::/8", "fdab::1"));
    EXPECT_FALSE(in("fd00::/8", "fe80::1"));
    EXPECT_TRUE(in("127.0.0.0/8", "::ffff:127.0.0.5"));
    EXPECT_FALSE(in("127.0.0.0/8", "::1"));
    EXPECT_FALSE(in("::/0", "10.0.0.1")); /* IPv6 network never matches a plain IPv4 client */
}

TEST(Cidr, UnixSocketMatchesNothing)
{
    IpAddress none;
    EXPECT_FALSE(cidr_contains(*parse_cidr("0.0.0.0/0"), none));
    EXPECT_FALSE(cidr_contains(*parse_cidr("::/0"), none));
}
