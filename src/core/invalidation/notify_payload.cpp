/*
 * notify_payload.cpp — JSON escaping and packing of invalidation items into NOTIFY payloads.
 */
#include "core/invalidation/notify_payload.h"

#include <cstdio>
#include <cstring>

#include "core/no_server_headers.h" /* last: fails the build if a server header slipped in */

namespace poolguard
{
namespace core
{

namespace
{

/* Bytes of the escape of one byte (1 when it needs none); high: bytes >= 0x80 as \u00XX. */
std::size_t escaped_size(unsigned char c, bool high)
{
    if (high && c >= 0x80)
        return 6;
    switch (c)
    {
    case '"':
    case '\\':
    case '\b':
    case '\f':
    case '\n':
    case '\r':
    case '\t':
        return 2;
    default:
        return c < 0x20 ? 6 : 1;
    }
}

/* Writes the escape of s at out (room checked by the caller); returns the bytes written. */
std::size_t write_escaped(char *out, const char *s, std::size_t len, bool high)
{
    static const char hex[] = "0123456789abcdef";
    char *o = out;
    for (std::size_t i = 0; i < len; i++)
    {
        unsigned char c = static_cast<unsigned char>(s[i]);
        switch (c)
        {
        case '"':
            *o++ = '\\';
            *o++ = '"';
            break;
        case '\\':
            *o++ = '\\';
            *o++ = '\\';
            break;
        case '\b':
            *o++ = '\\';
            *o++ = 'b';
            break;
        case '\f':
            *o++ = '\\';
            *o++ = 'f';
            break;
        case '\n':
            *o++ = '\\';
            *o++ = 'n';
            break;
        case '\r':
            *o++ = '\\';
            *o++ = 'r';
            break;
        case '\t':
            *o++ = '\\';
            *o++ = 't';
            break;
        default:
            if (c < 0x20 || (high && c >= 0x80))
            {
                std::memcpy(o, "\\u00", 4);
                o[4] = hex[c >> 4];
                o[5] = hex[c & 0xf];
                o += 6;
            }
            else
                *o++ = static_cast<char>(c);
        }
    }
    return static_cast<std::size_t>(o - out);
}

std::size_t digits(std::uint64_t v)
{
    std::size_t n = 1;
    while (v >= 10)
    {
        v /= 10;
        n++;
    }
    return n;
}

std::size_t write_literal(char *out, const char *lit)
{
    std::size_t n = std::strlen(lit);
    std::memcpy(out, lit, n);
    return n;
}

std::size_t write_u64(char *out, std::uint64_t v)
{
    char buf[24];
    int n = std::snprintf(buf, sizeof(buf), "%llu", static_cast<unsigned long long>(v));
    std::memcpy(out, buf, static_cast<std::size_t>(n));
    return static_cast<std::size_t>(n);
}

constexpr const char scope_open[] = "{\"scope\":\"";
constexpr const char key_open[] = "\",\"key\":\"";
constexpr const char key_null[] = "\",\"key\":null";
constexpr const char generation_after_key[] = "\",\"generation\":";
constexpr const char generation_after_null[] = ",\"generation\":";
constexpr const char resync_open[] = "{\"scope\":null,\"key\":null,\"generation\":";
constexpr const char resync_close[] = ",\"resync\":true}";

/* Room check shared by both appends: separator + item + the closing ']' must fit. */
bool fits(const Payload &p, std::size_t item_len)
{
    std::size_t need = (p.items > 0 ? 1 : 0) + item_len + 1;
    return p.len + need <= max_payload_bytes;
}

} // namespace

std::size_t json_escaped_length(const char *s, std::size_t len, bool escape_high_bytes)
{
    std::size_t n = 0;
    for (std::size_t i = 0; i < len; i++)
        n += escaped_size(static_cast<unsigned char>(s[i]), escape_high_bytes);
    return n;
}

std::size_t item_json_length(const char *scope, std::size_t scope_len, const char *key, std::size_t key_len,
                             std::uint64_t generation, bool escape_high_bytes)
{
    std::size_t n = sizeof(scope_open) - 1 + json_escaped_length(scope, scope_len, escape_high_bytes);
    if (key == nullptr)
        n += sizeof(key_null) - 1 + sizeof(generation_after_null) - 1;
    else
        n += sizeof(key_open) - 1 + json_escaped_length(key, key_len, escape_high_bytes) +
             sizeof(generation_after_key) - 1;
    return n + digits(generation) + 1; /* the closing brace */
}

void payload_reset(Payload &p, bool escape_high_bytes)
{
    p.escape_high_bytes = escape_high_bytes;
    p.data[0] = '[';
    p.data[1] = '\0';
    p.len = 1;
    p.items = 0;
}

bool payload_append(Payload &p, const char *scope, std::size_t scope_len, const char *key,
                    std::size_t key_len, std::uint64_t generation)
{
    if (!fits(p, item_json_length(scope, scope_len, key, key_len, generation, p.escape_high_bytes)))
        return false;
    char *o = p.data + p.len;
    if (p.items > 0)
        *o++ = ',';
    o += write_literal(o, scope_open);
    o += write_escaped(o, scope, scope_len, p.escape_high_bytes);
    if (key == nullptr)
    {
        o += write_literal(o, key_null);
        o += write_literal(o, generation_after_null);
    }
    else
    {
        o += write_literal(o, key_open);
        o += write_escaped(o, key, key_len, p.escape_high_bytes);
        o += write_literal(o, generation_after_key);
    }
    o += write_u64(o, generation);
    *o++ = '}';
    *o = '\0';
    p.len = static_cast<std::size_t>(o - p.data);
    p.items++;
    return true;
}

bool payload_append_resync(Payload &p, std::uint64_t generation)
{
    std::size_t item_len = sizeof(resync_open) - 1 + digits(generation) + sizeof(resync_close) - 1;
    if (!fits(p, item_len))
        return false;
    char *o = p.data + p.len;
    if (p.items > 0)
        *o++ = ',';
    o += write_literal(o, resync_open);
    o += write_u64(o, generation);
    o += write_literal(o, resync_close);
    *o = '\0';
    p.len = static_cast<std::size_t>(o - p.data);
    p.items++;
    return true;
}

const char *payload_finish(Payload &p)
{
    p.data[p.len] = ']';
    p.data[p.len + 1] = '\0';
    return p.data;
}

} // namespace core
} // namespace poolguard
