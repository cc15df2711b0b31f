#include "core/metrics/http.h"

#include <gtest/gtest.h>

using namespace poolguard::core;

TEST(Http, CompleteRequests)
{
    auto r = parse_http_request("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", 8192);
    EXPECT_EQ(r.status, HttpParse::ok);
    EXPECT_EQ(r.method, "GET");
    EXPECT_EQ(r.path, "/metrics");
    r = parse_http_request("GET /metrics?x=1 HTTP/1.0\n\n", 8192);
    EXPECT_EQ(r.status, HttpParse::ok);
    EXPECT_EQ(r.path, "/metrics");
    EXPECT_EQ(parse_http_request("POST / HTTP/1.1\r\n\r\n", 8192).method, "POST");
}

TEST(Http, IncompleteAndTooLarge)
{
    EXPECT_EQ(parse_http_request("GET /metrics HTTP/1.1\r\nHost:", 8192).status, HttpParse::incomplete);
    EXPECT_EQ(parse_http_request("", 8192).status, HttpParse::incomplete);
    EXPECT_EQ(parse_http_request("GET /" + std::string(100, 'a'), 64).status, HttpParse::too_large);
    std::string big = "GET / HTTP/1.1\r\nX: " + std::string(100, 'a') + "\r\n\r\n";
    EXPECT_EQ(parse_http_request(big, 64).status, HttpParse::too_large);
}

TEST(Http, Malformed)
{
    EXPECT_EQ(parse_http_request("\x16\x03\x01\x02garbage", 8192).status, HttpParse::bad_request);
    EXPECT_EQ(parse_http_request("GET metrics HTTP/1.1\r\n\r\n", 8192).status, HttpParse::bad_request);
    EXPECT_EQ(parse_http_request("GET /metrics HTTP/2\r\n\r\n", 8192).status, HttpParse::bad_request);
    EXPECT_EQ(parse_http_request("GET /\x01 HTTP/1.1\r\n\r\n", 8192).status, HttpParse::bad_request);
    EXPECT_EQ(parse_http_request(" / HTTP/1.1\r\n\r\n", 8192).status, HttpParse::bad_request);
    EXPECT_EQ(parse_http_request("GETGETGETGETGETGETGET", 8192).status, HttpParse::bad_request);
}

TEST(Http, Response)
{
    std::string r = http_response(404, "text/plain", "no");
    EXPECT_EQ(r, "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n"
                 "Connection: close\r\n\r\nno");
}

TEST(Http, ListenAddress)
{
    auto a = parse_listen_address("127.0.0.1:9187");
    ASSERT_TRUE(a);
    EXPECT_EQ(a->host, "127.0.0.1");
    EXPECT_EQ(a->port, 9187);
    a = parse_listen_address("[::1]:80");
    ASSERT_TRUE(a);
    EXPECT_EQ(a->host, "::1");
    EXPECT_FALSE(parse_listen_address("127.0.0.1"));
    EXPECT_FALSE(parse_listen_address("127.0.0.1:0"));
    EXPECT_FALSE(parse_listen_address("127.0.0.1:70000"));
    EXPECT_FALSE(parse_listen_address(":9187"));
    EXPECT_FALSE(parse_listen_address("::1:9187"));
    EXPECT_FALSE(parse_listen_address("[::1]9187"));
    EXPECT_FALSE(parse_listen_address("host:12ab"));
}
