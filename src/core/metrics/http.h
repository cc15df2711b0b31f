/*
 * http.h — the little HTTP the metrics endpoint speaks (pure C++): parse one request head,
 * parse the listen address.
 */
#ifndef POOLGUARD_CORE_HTTP_H
#define POOLGUARD_CORE_HTTP_H

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

} // namespace poolguard::core

#endif
