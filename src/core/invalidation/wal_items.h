/*
 * wal_items.h — the item list of pg_poolguard's WAL record (see invalidation_wal.cpp).
 *
 * Items follow each other with no padding, in generation order:
 *   uint16 scope_len | uint16 key_len (0xFFFF: the whole scope) | scope bytes | key bytes
 * (native byte order: WAL is only ever replayed by the same architecture).  The record header
 * carries the database and the first item's generation; item i has generation first + i.
 */
#ifndef POOLGUARD_CORE_WAL_ITEMS_H
#define POOLGUARD_CORE_WAL_ITEMS_H

/* Plain C++ (the unit tests build it without a server); included by glue headers. */
#include <cstddef>
#include <cstdint>
#include <cstring>

namespace poolguard
{
namespace core
{

constexpr std::uint16_t wal_whole_scope = 0xFFFF;

/* Bytes one item takes (key == nullptr: the whole scope). */
inline std::size_t wal_item_size(std::size_t scope_len, const char *key, std::size_t key_len)
{
    return 4 + scope_len + (key == nullptr ? 0 : key_len);
}

/* Writes one item at out (which has room for wal_item_size) and returns the bytes written. */
inline std::size_t wal_item_write(char *out, const char *scope, std::size_t scope_len, const char *key,
                                  std::size_t key_len)
{
    std::uint16_t lens[2] = {static_cast<std::uint16_t>(scope_len),
                             key == nullptr ? wal_whole_scope : static_cast<std::uint16_t>(key_len)};
    std::memcpy(out, lens, 4);
    std::memcpy(out + 4, scope, scope_len);
    if (key != nullptr)
        std::memcpy(out + 4 + scope_len, key, key_len);
    return wal_item_size(scope_len, key, key_len);
}

struct WalItem
{
    const char *scope;
    std::size_t scope_len;
    const char *key; /* nullptr: the whole scope */
    std::size_t key_len;
};

/*
 * Reads the item at data[*pos] (len bytes in all) and advances *pos; false at the end or when the
 * bytes do not hold a whole item (a corrupt record: the caller stops).
 */
inline bool wal_item_read(const char *data, std::size_t len, std::size_t *pos, WalItem *item)
{
    if (*pos + 4 > len)
        return false;
    std::uint16_t lens[2];
    std::memcpy(lens, data + *pos, 4);
    std::size_t key_len = lens[1] == wal_whole_scope ? 0 : lens[1];
    if (*pos + 4 + lens[0] + key_len > len)
        return false;
    item->scope = data + *pos + 4;
    item->scope_len = lens[0];
    item->key = lens[1] == wal_whole_scope ? nullptr : item->scope + lens[0];
    item->key_len = key_len;
    *pos += 4 + lens[0] + key_len;
    return true;
}

} // namespace core
} // namespace poolguard

#endif
