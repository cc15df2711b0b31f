/*
 * process_memory.h — the one definition of a process's private memory: what ending it would
 * give back to the system (pure C++; Linux /proc text in, bytes out).
 *
 * A backend's private memory is its anonymous memory, resident and swapped out (RssAnon +
 * VmSwap of /proc/<pid>/status), less the postmaster's anonymous memory, which every backend
 * starts with as copy-on-write pages it shares with the postmaster and its siblings and whose
 * unwritten part its end does not free.  Never counted: the shared memory segment (shared
 * buffers and every other shared structure — shmem or hugetlb pages, never anonymous ones, even
 * where the kernel calls them "Private_Dirty" because no other process maps them), page cache,
 * the executable and libraries, and the kernel's own structures (page tables, sockets).
 *
 * /proc/<pid>/status is read rather than smaps_rollup: it gives the same anonymous figure
 * (RssAnon = smaps_rollup's Anonymous) from counters the kernel keeps, where smaps_rollup walks
 * every page table entry — including one per shared buffer the backend touched (bench/reaper.sh).
 */
#ifndef POOLGUARD_CORE_PROCESS_MEMORY_H
#define POOLGUARD_CORE_PROCESS_MEMORY_H

#include <cstdint>
#include <string_view>

namespace poolguard::core
{

/* What /proc/<pid>/status says about a process's anonymous memory, in bytes. */
struct ProcessMemory
{
    int64_t anon_resident = -1; /* RssAnon (includes transparent huge pages); -1 = unknown */
    int64_t anon_swapped = 0;   /* VmSwap: its anonymous pages swapped out */
};

/* Parses the text of /proc/<pid>/status; false (and *out unknown) without an RssAnon line. */
bool parse_process_status(std::string_view status_text, ProcessMemory *out);

/*
 * The private memory of a backend in bytes: anon_resident + anon_swapped less the postmaster's
 * (its copy-on-write inheritance), never below 0; -1 if the backend's figure is unknown.  With
 * postmaster unknown (or NULL: the postmaster itself) nothing is subtracted.  The estimate errs
 * low by the inherited pages the backend has since written (a few hundred kB), never high.
 */
int64_t private_memory_bytes(const ProcessMemory &process, const ProcessMemory *postmaster);

/* One line of /proc/<pid>/maps. */
struct Mapping
{
    uint64_t start = 0;
    uint64_t end = 0;
    bool hugetlb = false; /* an explicit huge-page mapping (huge_pages = on / try that got them) */
};

/* Finds the mapping of /proc/<pid>/maps text that contains address; false if none does. */
bool find_mapping(std::string_view maps_text, uint64_t address, Mapping *out);

} // namespace poolguard::core

#endif
