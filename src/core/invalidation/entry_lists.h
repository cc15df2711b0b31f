/*
 * entry_lists.h — FIFO lists of fixed-size entries threaded through one shared `next` array.
 *
 * The invalidation queue is a pool of entries, not a ring: every database with something to
 * publish owns one list (in commit order), and unused entries sit on a free list.  A database
 * whose publisher cannot run therefore holds exactly its own entries and never blocks the space
 * other databases free (a ring's tail would be pinned by its oldest entry); its publisher takes
 * its entries from the front of its list in O(entries taken); and its whole list moves to the
 * free list in O(1).  Lists hold indices, not pointers, so they live in shared memory as is.
 */
#ifndef POOLGUARD_CORE_ENTRY_LISTS_H
#define POOLGUARD_CORE_ENTRY_LISTS_H

/* Plain C++ (the unit tests build it without a server); included by glue headers, like rules.h. */
#include <cstdint>

namespace poolguard
{
namespace core
{

constexpr std::uint32_t no_entry = 0xFFFFFFFFu;

struct EntryList
{
    std::uint32_t first; /* no_entry when empty */
    std::uint32_t last;
    std::uint32_t count;
};

constexpr EntryList empty_entry_list()
{
    return EntryList{no_entry, no_entry, 0};
}

/* Appends entry (not on any list) at the end. */
inline void list_push_back(EntryList &list, std::uint32_t *next, std::uint32_t entry)
{
    next[entry] = no_entry;
    if (list.last == no_entry)
        list.first = entry;
    else
        next[list.last] = entry;
    list.last = entry;
    list.count++;
}

/* Puts entry (not on any list) at the front (the free list: recently used entries are reused first). */
inline void list_push_front(EntryList &list, std::uint32_t *next, std::uint32_t entry)
{
    next[entry] = list.first;
    list.first = entry;
    if (list.last == no_entry)
        list.last = entry;
    list.count++;
}

/* Takes the first entry off the list; no_entry when it is empty. */
inline std::uint32_t list_pop_front(EntryList &list, const std::uint32_t *next)
{
    std::uint32_t entry = list.first;
    if (entry == no_entry)
        return no_entry;
    list.first = next[entry];
    if (list.first == no_entry)
        list.last = no_entry;
    list.count--;
    return entry;
}

/* Moves every entry of `from` to the end of `to` in O(1); `from` is left empty. */
inline void list_append_all(EntryList &to, EntryList &from, std::uint32_t *next)
{
    if (from.first == no_entry)
        return;
    if (to.last == no_entry)
        to.first = from.first;
    else
        next[to.last] = from.first;
    to.last = from.last;
    to.count += from.count;
    from = empty_entry_list();
}

/* A list of entries 0 .. n-1 in order (the free list at start). */
inline void list_fill(EntryList &list, std::uint32_t *next, std::uint32_t n)
{
    list = empty_entry_list();
    for (std::uint32_t i = 0; i < n; i++)
        list_push_back(list, next, i);
}

} // namespace core
} // namespace poolguard

#endif
