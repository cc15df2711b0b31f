/* SHA-256 and HMAC-SHA256 of the logical messages' authentication tag (issue 19, finding 4). */
#include "core/invalidation/hmac_sha256.h"

#include <gtest/gtest.h>

#include <string>

using namespace poolguard::core;

namespace
{

std::string sha256_hex(const std::string &s)
{
    Sha256 c;
    unsigned char out[sha256_bytes];
    char hex[2 * sha256_bytes + 1];
    sha256_init(c);
    sha256_update(c, s.data(), s.size());
    sha256_final(c, out);
    to_hex(out, sizeof(out), hex);
    return hex;
}

std::string hmac_hex(const std::string &key, const std::string &data)
{
    unsigned char out[sha256_bytes];
    char hex[2 * sha256_bytes + 1];
    hmac_sha256(key.data(), key.size(), data.data(), data.size(), out);
    to_hex(out, sizeof(out), hex);
    return hex;
}

} // namespace

TEST(Sha256, FipsVectors)
{
    EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    EXPECT_EQ(sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
              "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    EXPECT_EQ(sha256_hex(std::string(1000000, 'a')),
              "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

/* RFC 4231 test cases 1, 2, 6 and 7. */
TEST(HmacSha256, Rfc4231)
{
    EXPECT_EQ(hmac_hex(std::string(20, '\x0b'), "Hi There"),
              "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
    EXPECT_EQ(hmac_hex("Jefe", "what do ya want for nothing?"),
              "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    EXPECT_EQ(hmac_hex(std::string(131, '\xaa'), "Test Using Larger Than Block-Size Key - Hash Key First"),
              "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
    EXPECT_EQ(hmac_hex(std::string(131, '\xaa'),
                       "This is a test using a larger than block-size key and a larger than block-size data. "
                       "The key needs to be hashed before being used by the HMAC algorithm."),
              "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2");
}
