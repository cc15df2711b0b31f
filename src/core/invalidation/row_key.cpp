/*
 * row_key.cpp — the invalidation key of a tracked table's row: the text of a one-column key, or
 * a JSON array of strings for a composite key (escaped as JSON.stringify escapes them).
 */
#include "core/invalidation/row_key.h"

#include <cstring>

#include "core/no_server_headers.h" /* last: fails the build if a server header slipped in */

namespace poolguard
{
namespace core
{

namespace
{

/* Appends bytes to out while they fit; counts them either way. */
struct Writer
{
    char *out;
    std::size_t cap;
    std::size_t len = 0;

    void put(char c)
    {
        if (len + 1 < cap)
            out[len] = c;
        len++;
    }
    void put(const char *s, std::size_t n)
    {
        for (std::size_t i = 0; i < n; i++)
            put(s[i]);
    }
    void finish()
    {
        if (cap > 0)
            out[len < cap ? len : cap - 1] = '\0';
    }
};

void put_json_string(Writer &w, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    w.put('"');
    for (const unsigned char *p = reinterpret_cast<const unsigned char *>(s); *p != 0; p++)
    {
        unsigned char c = *p;
        switch (c)
        {
        case '"':
            w.put("\\\"", 2);
            break;
        case '\\':
            w.put("\\\\", 2);
            break;
        case '\b':
            w.put("\\b", 2);
            break;
        case '\f':
            w.put("\\f", 2);
            break;
        case '\n':
            w.put("\\n", 2);
            break;
        case '\r':
            w.put("\\r", 2);
            break;
        case '\t':
            w.put("\\t", 2);
            break;
        default:
            if (c < 0x20)
            {
                char u[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
                w.put(u, sizeof(u));
            }
            else
                w.put(static_cast<char>(c)); /* UTF-8 bytes pass through, as in JSON.stringify */
        }
    }
    w.put('"');
}

} // namespace

std::size_t row_key(const char *const *parts, int n, char *out, std::size_t cap)
{
    Writer w{out, cap};
    if (n == 1)
        w.put(parts[0], std::strlen(parts[0]));
    else
    {
        w.put('[');
        for (int i = 0; i < n; i++)
        {
            if (i > 0)
                w.put(',');
            put_json_string(w, parts[i]);
        }
        w.put(']');
    }
    w.finish();
    return w.len;
}

} // namespace core
} // namespace poolguard
