/*
 * http.cpp — strict and small: request line "METHOD SP target SP HTTP/1.x", headers ignored,
 * anything odd is a 400; a head that does not end within max_head bytes is too large.
 */
#include "core/metrics/http.h"

#include <charconv>

#include "core/no_server_headers.h" /* last: fails the build if a server header slipped in */

namespace poolguard::core
{

namespace
{

bool token_char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

const char *reason_phrase(int status)
{
    switch (status)
    {
    case 200:
        return "OK";
    case 400:
        return "Bad Request";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 503:
        return "Service Unavailable";
    default:
        return "Error";
    }
}

} // namespace

HttpRequest parse_http_request(std::string_view buffer, size_t max_head)
{
    HttpRequest req;
    size_t end = buffer.find("\r\n\r\n");
    size_t end_lf = buffer.find("\n\n");
    if (end == std::string_view::npos || (end_lf != std::string_view::npos && end_lf < end))
        end = end_lf;
    if (end == std::string_view::npos)
    {
        req.status = buffer.size() >= max_head ? HttpParse::too_large : HttpParse::incomplete;
        /* A request line that is already malformed need not wait for more bytes. */
        size_t sp = buffer.find(' ');
        size_t probe = sp == std::string_view::npos ? buffer.size() : sp;
        for (size_t i = 0; i < probe && i < 16; i++)
            if (!token_char(buffer[i]))
                req.status = HttpParse::bad_request;
        if (sp == std::string_view::npos && buffer.size() > 16)
            req.status = HttpParse::bad_request;
        return req;
    }
    if (end > max_head)
    {
        req.status = HttpParse::too_large;
        return req;
    }
    std::string_view line = buffer.substr(0, buffer.find('\n'));
    if (!line.empty() && line.back() == '\r')
        line.remove_suffix(1);
    size_t sp1 = line.find(' ');
    size_t sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
    if (sp1 == std::string_view::npos || sp2 == std::string_view::npos || sp1 == 0)
    {
        req.status = HttpParse::bad_request;
        return req;
    }
    std::string_view method = line.substr(0, sp1);
    std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
    std::string_view version = line.substr(sp2 + 1);
    for (char c : method)
        if (!token_char(c))
        {
            req.status = HttpParse::bad_request;
            return req;
        }
    if (target.empty() || target[0] != '/' || (version != "HTTP/1.1" && version != "HTTP/1.0"))
    {
        req.status = HttpParse::bad_request;
        return req;
    }
    for (char c : target)
        if (static_cast<unsigned char>(c) <= ' ' || c == 0x7f)
        {
            req.status = HttpParse::bad_request;
            return req;
        }
    req.method = std::string(method);
    req.path = std::string(target.substr(0, target.find('?')));
    req.status = HttpParse::ok;
    return req;
}

std::string http_response(int status, std::string_view content_type, std::string_view body)
{
    std::string r = "HTTP/1.1 " + std::to_string(status) + " " + reason_phrase(status) + "\r\n";
    r += "Content-Type: ";
    r += content_type;
    r += "\r\nContent-Length: " + std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n";
    r += body;
    return r;
}

namespace
{

bool same_peer(const ClientSlotView &slot, const unsigned char *peer)
{
    for (int i = 0; i < peer_size; i++)
        if (slot.peer[i] != peer[i])
            return false;
    return true;
}

/* The oldest used slot still sending its request (of peer only, when peer is given); -1 if none. */
int oldest_reader(const ClientSlotView *slots, int count, const unsigned char *peer)
{
    int oldest = -1;
    for (int i = 0; i < count; i++)
    {
        if (!slots[i].used || slots[i].answering || (peer != nullptr && !same_peer(slots[i], peer)))
            continue;
        if (oldest < 0 || slots[i].accepted_at < slots[oldest].accepted_at)
            oldest = i;
    }
    return oldest;
}

} // namespace

SlotChoice choose_client_slot(const ClientSlotView *slots, int count, const unsigned char *peer,
                              int per_peer_limit)
{
    SlotChoice choice;
    int mine = 0, free_slot = -1;
    for (int i = 0; i < count; i++)
    {
        if (!slots[i].used)
        {
            if (free_slot < 0)
                free_slot = i;
        }
        else if (same_peer(slots[i], peer))
            mine++;
    }
    if (mine >= per_peer_limit)
    {
        choice.slot = choice.evict = oldest_reader(slots, count, peer);
        return choice;
    }
    if (free_slot >= 0)
    {
        choice.slot = free_slot;
        return choice;
    }
    choice.slot = choice.evict = oldest_reader(slots, count, nullptr);
    return choice;
}

std::optional<ListenAddress> parse_listen_address(std::string_view text)
{
    ListenAddress addr;
    std::string_view port;
    if (!text.empty() && text[0] == '[')
    {
        size_t close = text.find(']');
        if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':')
            return std::nullopt;
        addr.host = std::string(text.substr(1, close - 1));
        port = text.substr(close + 2);
    }
    else
    {
        size_t colon = text.rfind(':');
        if (colon == std::string_view::npos || text.find(':') != colon)
            return std::nullopt;
        addr.host = std::string(text.substr(0, colon));
        port = text.substr(colon + 1);
    }
    if (addr.host.empty() || port.empty())
        return std::nullopt;
    auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), addr.port);
    if (ec != std::errc() || end != port.data() + port.size() || addr.port < 1 || addr.port > 65535)
        return std::nullopt;
    return addr;
}

} // namespace poolguard::core
