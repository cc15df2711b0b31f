/*
 * smaps.h — a backend's private memory from Linux /proc/<pid>/smaps_rollup (pure C++).
 */
#ifndef POOLGUARD_CORE_SMAPS_H
#define POOLGUARD_CORE_SMAPS_H

#include <cstdint>
#include <string_view>

namespace poolguard::core
{

/*
 * Private_Clean + Private_Dirty in bytes from the text of smaps_rollup (or smaps), or -1 if
 * neither line is present.  Shared buffers are shared memory and never count.
 */
int64_t parse_private_memory(std::string_view smaps_text);

} // namespace poolguard::core

#endif
