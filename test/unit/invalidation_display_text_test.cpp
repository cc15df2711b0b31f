/* Scope names as valid UTF-8 wherever they are shown (issue 19, finding 7). */
#include "core/invalidation/display_text.h"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

using namespace poolguard::core;

namespace
{

std::string show(const std::string &s, bool utf8, bool ascii = false)
{
    std::vector<char> out(display_utf8_room(s.size()));
    std::size_t n = display_utf8(s.data(), s.size(), utf8, ascii, out.data());
    return std::string(out.data(), n);
}

bool valid_utf8(const std::string &s)
{
    const unsigned char *p = reinterpret_cast<const unsigned char *>(s.data());
    for (std::size_t i = 0; i < s.size();)
    {
        std::uint32_t cp;
        std::size_t n = utf8_sequence(p + i, s.size() - i, &cp);
        if (n == 0)
            return false;
        i += n;
    }
    return true;
}

} // namespace

TEST(DisplayText, Utf8DatabaseIsCopied)
{
    EXPECT_EQ(show("caf\xc3\xa9", true), "caf\xc3\xa9");
    EXPECT_EQ(show("\xf0\x9f\x98\x80", true), "\xf0\x9f\x98\x80");
    EXPECT_EQ(show("plain", true), "plain");
}

TEST(DisplayText, Latin1AndSqlAsciiBytesBecomeTheirCharacters)
{
    EXPECT_EQ(show("\xff", false), "\xc3\xbf"); /* U+00FF */
    EXPECT_EQ(show("caf\xe9", false), "caf\xc3\xa9");
    EXPECT_EQ(show("\x80\x81", false), "\xc2\x80\xc2\x81");
}

TEST(DisplayText, InvalidUtf8BecomesReplacementCharacter)
{
    EXPECT_EQ(show("a\xffz", true), "a\xef\xbf\xbdz");
    EXPECT_EQ(show("\xc3", true), "\xef\xbf\xbd");                 /* truncated */
    EXPECT_EQ(show("\xed\xa0\x80", true).size(), 9u);              /* a surrogate: three U+FFFD */
    EXPECT_EQ(show("\xc0\xaf", true), "\xef\xbf\xbd\xef\xbf\xbd"); /* overlong */
}

TEST(DisplayText, AsciiOnlyEscapes)
{
    EXPECT_EQ(show("\xff", false, true), "\\u00ff");
    EXPECT_EQ(show("caf\xc3\xa9", true, true), "caf\\u00e9");
    EXPECT_EQ(show("\xf0\x9f\x98\x80", true, true), "\\U0001f600");
}

TEST(DisplayText, RandomBytesAlwaysGiveValidUtf8WithinTheRoom)
{
    std::mt19937 rng(7);
    for (int round = 0; round < 5000; round++)
    {
        std::string s(rng() % 64, '\0');
        for (auto &c : s)
            c = static_cast<char>(rng());
        bool utf8 = round & 1;
        std::string shown = show(s, utf8);
        EXPECT_TRUE(valid_utf8(shown));
        EXPECT_LT(shown.size(), display_utf8_room(s.size()));
        std::string ascii = show(s, utf8, true);
        for (unsigned char c : ascii)
            EXPECT_LT(c, 0x80);
    }
}

#include "core/invalidation/notify_payload.h"

/* NOTIFY (SQL_ASCII, LATIN1) and logical-message (non-UTF8) JSON: bytes >= 0x80 as \u00XX. */
TEST(PayloadEncoding, HighBytesEscapedWhenAsked)
{
    static Payload p;
    payload_reset(p, true);
    ASSERT_TRUE(payload_append(p, "s\xff", 2, "k\xe9", 2, 7));
    EXPECT_STREQ(payload_finish(p), "[{\"scope\":\"s\\u00ff\",\"key\":\"k\\u00e9\",\"generation\":7}]");
    EXPECT_EQ(item_json_length("s\xff", 2, "k\xe9", 2, 7, true), std::string(p.data).size() - 2);
    payload_reset(p);
    ASSERT_TRUE(payload_append(p, "caf\xc3\xa9", 5, nullptr, 0, 1));
    EXPECT_STREQ(payload_finish(p), "[{\"scope\":\"caf\xc3\xa9\",\"key\":null,\"generation\":1}]");
}
