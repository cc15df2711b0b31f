/*
 * cidr.cpp — address parsing with inet_pton and prefix comparison.
 */
#include "core/policy/cidr.h"

#include <arpa/inet.h>

#include <charconv>
#include <cstring>
#include <string>

#include "core/no_server_headers.h" /* last: fails the build if a server header slipped in */

namespace poolguard::core
{

std::optional<IpAddress> parse_ip(std::string_view text)
{
    std::string s(text);
    IpAddress a;

    if (inet_pton(AF_INET, s.c_str(), a.bytes) == 1)
    {
        a.family = 4;
        return a;
    }
    if (inet_pton(AF_INET6, s.c_str(), a.bytes) == 1)
    {
        a.family = 6;
        return a;
    }
    return std::nullopt;
}

std::optional<Cidr> parse_cidr(std::string_view text)
{
    size_t slash = text.find('/');
    auto address = parse_ip(text.substr(0, slash));
    if (!address)
        return std::nullopt;

    int max_bits = address->family == 4 ? 32 : 128;
    int bits = max_bits;
    if (slash != std::string_view::npos)
    {
        std::string_view digits = text.substr(slash + 1);
        auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), bits);
        if (ec != std::errc() || end != digits.data() + digits.size() || digits.empty() || bits < 0 ||
            bits > max_bits)
            return std::nullopt;
    }
    return Cidr{*address, bits};
}

namespace
{

bool prefix_equal(const uint8_t *a, const uint8_t *b, int bits)
{
    int whole = bits / 8, rest = bits % 8;
    if (std::memcmp(a, b, whole) != 0)
        return false;
    if (rest == 0)
        return true;
    uint8_t mask = static_cast<uint8_t>(0xFF << (8 - rest));
    return (a[whole] & mask) == (b[whole] & mask);
}

const uint8_t v4_mapped_prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF};

} // namespace

bool cidr_contains(const Cidr &network, const IpAddress &address)
{
    if (address.family == 0 || network.network.family == 0)
        return false;
    if (network.network.family == address.family)
        return prefix_equal(network.network.bytes, address.bytes, network.bits);
    /* IPv4 network, IPv4-mapped IPv6 client. */
    if (network.network.family == 4 && address.family == 6 &&
        std::memcmp(address.bytes, v4_mapped_prefix, 12) == 0)
        return prefix_equal(network.network.bytes, address.bytes + 12, network.bits);
    return false;
}

} // namespace poolguard::core
