/*
 * display_text.h — scope names as valid UTF-8 wherever they leave their database (issue 19):
 * the Prometheus text of /metrics (declared UTF-8) and of poolguard.metrics().
 *
 * A scope is stored as the bytes of its database's encoding.  From a UTF8 database they are
 * copied (a byte that starts no valid sequence becomes U+FFFD); from any other encoding every byte
 * >= 0x80 becomes the character U+0080..U+00FF of the same number — exactly the character in a
 * LATIN1 database, the byte in a SQL_ASCII one, a readable stand-in in other encodings.  With
 * ascii_only, every non-ASCII character is written as the six or ten characters \uXXXX or
 * \UXXXXXXXX instead (for a text that must survive any client encoding).
 */
#ifndef POOLGUARD_CORE_DISPLAY_TEXT_H
#define POOLGUARD_CORE_DISPLAY_TEXT_H

#include <cstddef>
#include <cstdint>

namespace poolguard
{
namespace core
{

/* Room display_utf8 needs for len input bytes (the NUL included). */
constexpr std::size_t display_utf8_room(std::size_t len)
{
    return 10 * len + 1;
}

/* The length of the valid UTF-8 sequence at s (1..4), or 0 when it is not one. */
inline std::size_t utf8_sequence(const unsigned char *s, std::size_t len, std::uint32_t *cp)
{
    unsigned char c = s[0];
    std::size_t n;
    std::uint32_t v;
    if (c < 0x80)
    {
        *cp = c;
        return 1;
    }
    if (c >= 0xC2 && c <= 0xDF)
        n = 2, v = c & 0x1F;
    else if (c >= 0xE0 && c <= 0xEF)
        n = 3, v = c & 0x0F;
    else if (c >= 0xF0 && c <= 0xF4)
        n = 4, v = c & 0x07;
    else
        return 0;
    if (len < n)
        return 0;
    for (std::size_t i = 1; i < n; i++)
    {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        v = (v << 6) | (s[i] & 0x3F);
    }
    /* Overlong forms, surrogates and code points past U+10FFFF are not valid UTF-8. */
    if ((n == 3 && v < 0x800) || (n == 4 && (v < 0x10000 || v > 0x10FFFF)) || (v >= 0xD800 && v <= 0xDFFF))
        return 0;
    *cp = v;
    return n;
}

inline std::size_t put_utf8(char *out, std::uint32_t cp)
{
    if (cp < 0x80)
    {
        out[0] = static_cast<char>(cp);
        return 1;
    }
    if (cp < 0x800)
    {
        out[0] = static_cast<char>(0xC0 | (cp >> 6));
        out[1] = static_cast<char>(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000)
    {
        out[0] = static_cast<char>(0xE0 | (cp >> 12));
        out[1] = static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out[2] = static_cast<char>(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = static_cast<char>(0xF0 | (cp >> 18));
    out[1] = static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out[2] = static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out[3] = static_cast<char>(0x80 | (cp & 0x3F));
    return 4;
}

inline std::size_t put_escape(char *out, std::uint32_t cp)
{
    static const char hex[] = "0123456789abcdef";
    int digits = cp > 0xFFFF ? 8 : 4;
    out[0] = '\\';
    out[1] = cp > 0xFFFF ? 'U' : 'u';
    for (int i = 0; i < digits; i++)
        out[2 + i] = hex[(cp >> (4 * (digits - 1 - i))) & 0xF];
    return 2 + static_cast<std::size_t>(digits);
}

/*
 * Writes s (len bytes of a database whose encoding is UTF8 when source_utf8) to out, which has
 * display_utf8_room(len) bytes, NUL-terminated; returns the bytes written (without the NUL).
 */
inline std::size_t display_utf8(const char *s, std::size_t len, bool source_utf8, bool ascii_only, char *out)
{
    const unsigned char *in = reinterpret_cast<const unsigned char *>(s);
    std::size_t o = 0;
    for (std::size_t i = 0; i < len;)
    {
        std::uint32_t cp;
        std::size_t n = 1;
        if (in[i] < 0x80)
            cp = in[i];
        else if (!source_utf8)
            cp = in[i];
        else if ((n = utf8_sequence(in + i, len - i, &cp)) == 0)
        {
            cp = 0xFFFD;
            n = 1;
        }
        i += n;
        if (cp < 0x80)
            out[o++] = static_cast<char>(cp);
        else if (ascii_only)
            o += put_escape(out + o, cp);
        else
            o += put_utf8(out + o, cp);
    }
    out[o] = '\0';
    return o;
}

} // namespace core
} // namespace poolguard

#endif
