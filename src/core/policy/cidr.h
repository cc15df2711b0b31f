/*
 * cidr.h — IPv4/IPv6 addresses and CIDR containment for client_addr matching (pure C++).
 */
#ifndef POOLGUARD_CORE_CIDR_H
#define POOLGUARD_CORE_CIDR_H

#include <cstdint>
#include <optional>
#include <string_view>

namespace poolguard::core
{

struct IpAddress
{
    int family = 0;         /* 4 or 6; 0 = none (Unix socket) */
    uint8_t bytes[16] = {}; /* network order; IPv4 uses the first 4 */
};

struct Cidr
{
    IpAddress network;
    int bits = 0; /* prefix length: 0..32 or 0..128 */
};

/* Parses "a.b.c.d", "x:y::z" (no prefix). */
std::optional<IpAddress> parse_ip(std::string_view text);

/* Parses "a.b.c.d/n" or an IPv6 prefix; a bare address means a host (/32, /128). */
std::optional<Cidr> parse_cidr(std::string_view text);

/*
 * True if address lies in network.  An IPv4-mapped IPv6 address (::ffff:a.b.c.d) matches an
 * IPv4 network; an address of family 0 (Unix socket) matches nothing.
 */
bool cidr_contains(const Cidr &network, const IpAddress &address);

} // namespace poolguard::core

#endif
