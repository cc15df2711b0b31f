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

namespace
{

ClientSlotView slot_of(unsigned char peer_byte, int64_t accepted_at, bool answering = false)
{
    ClientSlotView s;
    s.used = true;
    s.answering = answering;
    s.accepted_at = accepted_at;
    s.peer[0] = 4;
    s.peer[1] = peer_byte;
    return s;
}

const unsigned char *peer_of(unsigned char peer_byte)
{
    static unsigned char peer[peer_size];
    for (int i = 0; i < peer_size; i++)
        peer[i] = 0;
    peer[0] = 4;
    peer[1] = peer_byte;
    return peer;
}

} // namespace

TEST(HttpSlots, FreeSlotFirst)
{
    ClientSlotView slots[3] = {slot_of(1, 10), ClientSlotView(), ClientSlotView()};
    SlotChoice c = choose_client_slot(slots, 3, peer_of(2), 8);
    EXPECT_EQ(c.slot, 1);
    EXPECT_EQ(c.evict, -1);
}

TEST(HttpSlots, IdleClientsCannotHoldEverySlot)
{
    /* 64 idle clients of one address (issue 19: 70 idle TCP connections made /metrics 503). */
    ClientSlotView slots[64];
    for (int i = 0; i < 64; i++)
        slots[i] = slot_of(1, 100 + i);
    SlotChoice c = choose_client_slot(slots, 64, peer_of(1), 8);
    EXPECT_EQ(c.slot, 0) << "the oldest idle client of the same address makes room";
    EXPECT_EQ(c.evict, 0);
    /* Another address: the oldest reader of anyone makes room. */
    slots[0].answering = true;
    c = choose_client_slot(slots, 64, peer_of(2), 8);
    EXPECT_EQ(c.slot, 1);
    EXPECT_EQ(c.evict, 1);
}

TEST(HttpSlots, PerPeerLimit)
{
    ClientSlotView slots[10];
    for (int i = 0; i < 3; i++)
        slots[i] = slot_of(7, 50 - i);
    /* Free slots exist, but address 7 holds its limit of 3: its own oldest reader goes. */
    SlotChoice c = choose_client_slot(slots, 10, peer_of(7), 3);
    EXPECT_EQ(c.slot, 2);
    EXPECT_EQ(c.evict, 2);
    /* Another address still gets a free slot. */
    c = choose_client_slot(slots, 10, peer_of(8), 3);
    EXPECT_EQ(c.slot, 3);
    EXPECT_EQ(c.evict, -1);
}

TEST(HttpSlots, AnswersInFlightAreNeverDisplaced)
{
    ClientSlotView slots[4];
    for (int i = 0; i < 4; i++)
        slots[i] = slot_of((unsigned char)i, i, true);
    SlotChoice c = choose_client_slot(slots, 4, peer_of(9), 8);
    EXPECT_EQ(c.slot, -1) << "every slot is being answered: refuse";
    EXPECT_EQ(c.evict, -1);
    /* At its limit with only answers in flight: refused too. */
    ClientSlotView mine[4] = {slot_of(5, 1, true), slot_of(5, 2, true), ClientSlotView(), ClientSlotView()};
    c = choose_client_slot(mine, 4, peer_of(5), 2);
    EXPECT_EQ(c.slot, -1);
}
