/*
 * wal_items.h — the payload of pg_poolguard's INVALIDATIONS WAL record (see invalidation_wal.cpp),
 * written by the primary and decoded by redo and rm_desc with the same functions here.
 *
 * The record: a header {uint32 database | uint32 count | uint64 first generation}, then `count`
 * items that follow each other with no padding, in generation order:
 *   uint16 scope_len | uint16 key_len (0xFFFF: the whole scope) | scope bytes | key bytes
 * (native byte order: WAL is only ever replayed by the same architecture).  Item i has generation
 * first + i.
 *
 * Redo trusts nothing in a record: id 128 is the shared experimental resource-manager id, so
 * another extension's record (or a corrupt one) may arrive here.  wal_record_check() accepts a
 * record only when the header is whole, the count is in 1..bytes/4, every scope is 1..max_scope_bytes
 * long, every key at most max_key_bytes, the items end exactly at the record's end and the
 * generations do not wrap; redo skips (with a WARNING) whatever it refuses.
 */
#ifndef POOLGUARD_CORE_WAL_ITEMS_H
#define POOLGUARD_CORE_WAL_ITEMS_H

/* Plain C++ (the unit tests build it without a server); included by glue headers. */
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "core/invalidation/invalidation_key.h"

namespace poolguard
{
namespace core
{

constexpr std::uint16_t wal_whole_scope = 0xFFFF;

/* The record header (the same layout as the server's {Oid, uint32, uint64}). */
struct WalRecordHeader
{
    std::uint32_t database;
    std::uint32_t count;
    std::uint64_t first_generation;
};
static_assert(sizeof(WalRecordHeader) == 16, "the WAL header layout is part of the WAL format");

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
 * Reads the item at data[*pos] (len bytes in all) and advances *pos; false at the end, or when
 * the bytes do not hold a whole item or its lengths exceed the interface's limits (an empty or
 * too long scope, a too long key: a record pg_poolguard did not write; the caller stops).
 */
inline bool wal_item_read(const char *data, std::size_t len, std::size_t *pos, WalItem *item)
{
    if (*pos > len || len - *pos < 4)
        return false;
    std::uint16_t lens[2];
    std::memcpy(lens, data + *pos, 4);
    bool whole_scope = lens[1] == wal_whole_scope;
    std::size_t key_len = whole_scope ? 0 : lens[1];
    if (lens[0] == 0 || lens[0] > max_scope_bytes || key_len > max_key_bytes)
        return false;
    if (len - *pos - 4 < lens[0] + key_len)
        return false;
    item->scope = data + *pos + 4;
    item->scope_len = lens[0];
    item->key = whole_scope ? nullptr : item->scope + lens[0];
    item->key_len = key_len;
    *pos += 4 + lens[0] + key_len;
    return true;
}

/* Why wal_record_check refused a record (for redo's WARNING and rm_desc). */
enum class WalRecordProblem
{
    none,
    short_header,
    bad_count,
    bad_item,
    trailing_bytes,
    generation_wraps,
};

inline const char *wal_record_problem_text(WalRecordProblem p)
{
    switch (p)
    {
    case WalRecordProblem::none:
        return "no problem";
    case WalRecordProblem::short_header:
        return "the record is shorter than its header";
    case WalRecordProblem::bad_count:
        return "the item count does not fit the record";
    case WalRecordProblem::bad_item:
        return "an item's lengths exceed the record or the limits";
    case WalRecordProblem::trailing_bytes:
        return "bytes follow the last item";
    case WalRecordProblem::generation_wraps:
        return "the generations would wrap around";
    }
    return "unknown";
}

/*
 * Checks a whole INVALIDATIONS record (data, len: its main data) and fills *header; *items and
 * *items_len then describe the item bytes, every one of which wal_item_read accepts.  The one
 * decoder of redo and rm_desc.
 */
inline WalRecordProblem wal_record_check(const char *data, std::size_t len, WalRecordHeader *header,
                                         const char **items, std::size_t *items_len)
{
    if (data == nullptr || len < sizeof(WalRecordHeader))
        return WalRecordProblem::short_header;
    std::memcpy(header, data, sizeof(WalRecordHeader));
    const char *body = data + sizeof(WalRecordHeader);
    std::size_t body_len = len - sizeof(WalRecordHeader);
    if (header->count == 0 || header->count > body_len / 4)
        return WalRecordProblem::bad_count;
    if (header->first_generation > UINT64_MAX - header->count)
        return WalRecordProblem::generation_wraps;
    std::size_t pos = 0;
    WalItem item;
    for (std::uint32_t i = 0; i < header->count; i++)
        if (!wal_item_read(body, body_len, &pos, &item))
            return WalRecordProblem::bad_item;
    if (pos != body_len)
        return WalRecordProblem::trailing_bytes;
    *items = body;
    *items_len = body_len;
    return WalRecordProblem::none;
}

} // namespace core
} // namespace poolguard

#endif
