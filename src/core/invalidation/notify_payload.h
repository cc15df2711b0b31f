/*
 * notify_payload.h — the JSON payloads the publisher sends with NOTIFY.
 *
 * A payload is a JSON array of items, in commit order:
 *   {"scope":"mentor","key":"42","generation":1732890000000123}
 *   {"scope":"mentor","key":null,"generation":...}            (the whole scope)
 *   {"scope":null,"key":null,"generation":...,"resync":true}  (drop or re-check everything)
 * NOTIFY refuses payloads of 8000 bytes or more, so items are packed into as few payloads of at
 * most max_payload_bytes as possible; one item always fits (the limits on scope and key
 * guarantee it even when every byte needs a \u escape).
 *
 * Scopes and keys are bytes in the database's encoding.  A payload made with escape_high_bytes
 * writes every byte >= 0x80 as \u0080..\u00ff, so that it is pure ASCII and valid UTF-8 JSON
 * whatever the database's encoding: exactly the characters of a LATIN1 database, the bytes of a
 * SQL_ASCII one (issue 19).  Without it bytes >= 0x80 are copied (a UTF8 database's text).
 *
 * Payload is a plain struct with no destructor: the publisher keeps it live across NOTIFY
 * calls, which may raise PostgreSQL errors (longjmp).
 */
#ifndef POOLGUARD_CORE_NOTIFY_PAYLOAD_H
#define POOLGUARD_CORE_NOTIFY_PAYLOAD_H

#include <cstddef>
#include <cstdint>

namespace poolguard
{
namespace core
{

/* NOTIFY accepts payloads shorter than 8000 bytes. */
constexpr std::size_t max_payload_bytes = 7999;

struct Payload
{
    char data[max_payload_bytes + 1]; /* "[item,item" while open; "...]\0" once finished */
    std::size_t len;
    std::size_t items;
    bool escape_high_bytes; /* bytes >= 0x80 as \u00XX (set by payload_reset) */
};

/* Bytes s takes as the contents of a JSON string (without the quotes). */
std::size_t json_escaped_length(const char *s, std::size_t len, bool escape_high_bytes = false);

/* Bytes of one item (key == nullptr: the whole scope). */
std::size_t item_json_length(const char *scope, std::size_t scope_len, const char *key, std::size_t key_len,
                             std::uint64_t generation, bool escape_high_bytes = false);

/* Starts an empty payload. */
void payload_reset(Payload &p, bool escape_high_bytes = false);

/*
 * Appends an item if it fits and returns true; returns false and leaves p unchanged if it does
 * not (the caller sends p and starts a new one).
 */
bool payload_append(Payload &p, const char *scope, std::size_t scope_len, const char *key,
                    std::size_t key_len, std::uint64_t generation);

/* Appends the resync item; false if it does not fit. */
bool payload_append_resync(Payload &p, std::uint64_t generation);

/* Closes the array and returns the NUL-terminated JSON text (valid until the next reset). */
const char *payload_finish(Payload &p);

} // namespace core
} // namespace poolguard

#endif
