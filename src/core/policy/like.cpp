/*
 * like.cpp — iterative LIKE matcher with single backtrack point (the classic wildcard
 * algorithm): on mismatch, resume after the last '%' one text character further on.
 */
#include "core/policy/like.h"

#include "core/no_server_headers.h" /* last: fails the build if a server header slipped in */

namespace poolguard::core
{

namespace
{

/* Length of the UTF-8 sequence starting with byte c (1 for invalid lead bytes). */
size_t utf8_length(unsigned char c)
{
    if (c < 0x80)
        return 1;
    if ((c & 0xE0) == 0xC0)
        return 2;
    if ((c & 0xF0) == 0xE0)
        return 3;
    if ((c & 0xF8) == 0xF0)
        return 4;
    return 1;
}

} // namespace

bool like_pattern_valid(std::string_view pattern)
{
    for (size_t i = 0; i < pattern.size(); i++)
    {
        if (pattern[i] == '\\')
        {
            if (i + 1 >= pattern.size())
                return false;
            i++;
        }
    }
    return true;
}

bool like_match(std::string_view text, std::string_view pattern)
{
    size_t t = 0, p = 0;
    size_t star_p = std::string_view::npos, star_t = 0;

    while (t < text.size())
    {
        if (p < pattern.size())
        {
            char pc = pattern[p];
            if (pc == '%')
            {
                star_p = ++p;
                star_t = t;
                continue;
            }
            if (pc == '_')
            {
                size_t len = utf8_length(static_cast<unsigned char>(text[t]));
                if (t + len > text.size())
                    len = text.size() - t;
                t += len;
                p++;
                continue;
            }
            if (pc == '\\' && p + 1 < pattern.size())
                pc = pattern[p + 1];
            else if (pc == '\\')
                return false; /* dangling escape never matches */
            if (pc == text[t])
            {
                t++;
                p += (pattern[p] == '\\') ? 2 : 1;
                continue;
            }
        }
        if (star_p == std::string_view::npos)
            return false;
        /* Backtrack: let the last '%' swallow one more character. */
        star_t += utf8_length(static_cast<unsigned char>(text[star_t]));
        if (star_t > text.size())
            return false;
        t = star_t;
        p = star_p;
    }
    while (p < pattern.size() && pattern[p] == '%')
        p++;
    return p == pattern.size();
}

} // namespace poolguard::core
