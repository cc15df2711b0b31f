/*
 * row_key.h — the invalidation key of a tracked table's row (poolguard.track_table()).
 *
 * A one-column primary key's key is the column's text output, unchanged ("42"), so that
 * cache.get('scope', 42, ...) and a tracked table agree.  A composite key is a JSON array of the
 * columns' text outputs in key order (["7","2024-01-01"]): JSON.stringify(values.map(String))
 * in JavaScript builds the same string for integers and plain strings.
 */
#ifndef POOLGUARD_CORE_INVALIDATION_ROW_KEY_H
#define POOLGUARD_CORE_INVALIDATION_ROW_KEY_H

#include <cstddef>

namespace poolguard
{
namespace core
{

/*
 * Writes the key of the row whose key columns print as parts[0..n-1] (each NUL-terminated, none
 * null) into out (capacity cap, NUL-terminated when it fits).  Returns the key's length in bytes
 * without the NUL; when that is >= cap, out holds a truncated prefix only.  No allocation.
 */
std::size_t row_key(const char *const *parts, int n, char *out, std::size_t cap);

} // namespace core
} // namespace poolguard

#endif
