/*
 * http.h — the little HTTP the metrics endpoint speaks (pure C++): parse one request head,
 * parse the listen address.
 */
#ifndef POOLGUARD_CORE_HTTP_H
#define POOLGUARD_CORE_HTTP_H

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace poolguard::core
{

enum class HttpParse
{
    incomplete, /* no blank line yet: read more */
    ok,
    bad_request,
    too_large,
};

struct HttpRequest
{
    HttpParse status = HttpParse::incomplete;
    std::string method;
    std::string path; /* without query string */
};

/* Parses the request head in buffer (which never exceeds max_head bytes of what was read). */
HttpRequest parse_http_request(std::string_view buffer, size_t max_head);

/* Status line and headers of a complete response with a text body. */
std::string http_response(int status, std::string_view content_type, std::string_view body);

struct ListenAddress
{
    std::string host; /* "127.0.0.1", "::1", "0.0.0.0" ... */
    int port = 0;
};

/* "127.0.0.1:9187", "[::1]:9187", "localhost:9187"; nullopt if malformed. */
std::optional<ListenAddress> parse_listen_address(std::string_view text);

/*
 * Who gets a connection slot of the metrics server.  Idle clients must not be able to hold the
 * slots against a scraper (issue 19): a client still sending its request head can be displaced,
 * one whose answer is on its way cannot.
 */
constexpr int peer_size = 17; /* address family byte + up to 16 address bytes */

struct ClientSlotView
{
    bool used = false;
    bool answering = false;  /* its request was read: the response is being sent */
    int64_t accepted_at = 0; /* µs */
    unsigned char peer[peer_size] = {};
};

struct SlotChoice
{
    int slot = -1;  /* -1: refuse the new connection (503) */
    int evict = -1; /* a slot whose client is closed first (== slot), -1 = none */
};

/*
 * The slot for a new connection from peer: if the peer already holds per_peer_limit slots, the
 * oldest of its own that is still sending its request is displaced (none: refused); else a free
 * slot; else the oldest client of anyone that is still sending its request is displaced; else
 * (every slot is being answered) refused.
 */
SlotChoice choose_client_slot(const ClientSlotView *slots, int count, const unsigned char *peer,
                              int per_peer_limit);

} // namespace poolguard::core

#endif
