/*
 * feed_ring.h — the positions of the invalidation feed: the last `capacity` items, in generation
 * order, in a fixed ring of slots.
 *
 * The ring itself only orders slots and generations; the caller stores each item in its own
 * array at the slot feed_push() returns.  `horizon` is the greatest generation the ring can no
 * longer vouch for in ANY database: everything handed out before this server started, or before
 * a floor was raised.  Items evicted to make room are another database's loss only: feed_push()
 * reports the evicted generation, and the caller raises the horizon of the evicted item's
 * database alone (FeedHorizons below), so that one database's flood makes only its own readers,
 * never another database's, resync (issue 19).  Generations are strictly increasing from the
 * oldest item to the newest; an item that would break that is refused (feed_accepts), and the
 * global horizon covers it.
 */
#ifndef POOLGUARD_CORE_FEED_RING_H
#define POOLGUARD_CORE_FEED_RING_H

/* Plain C++ (the unit tests build it without a server); included by glue headers, like entry_lists.h. */
#include <cstdint>

namespace poolguard
{
namespace core
{

struct FeedRing
{
    std::uint32_t capacity; /* slots */
    std::uint32_t head;     /* the slot the next item takes */
    std::uint32_t count;    /* items held */
    std::uint64_t horizon;  /* items at or below it may be missing */
};

inline FeedRing feed_make(std::uint32_t capacity, std::uint64_t horizon)
{
    return FeedRing{capacity, 0, 0, horizon};
}

/* The slot of the i-th oldest item (i < count). */
inline std::uint32_t feed_slot(const FeedRing &r, std::uint32_t i)
{
    return (r.head + r.capacity - r.count + i) % r.capacity;
}

/* The newest generation the ring knows of: its newest item's, or the horizon when empty. */
inline std::uint64_t feed_newest(const FeedRing &r, const std::uint64_t *generations)
{
    if (r.count == 0)
        return r.horizon;
    std::uint64_t g = generations[feed_slot(r, r.count - 1)];
    return g > r.horizon ? g : r.horizon;
}

/* Whether an item of this generation can be appended (it is newer than everything held). */
inline bool feed_accepts(const FeedRing &r, const std::uint64_t *generations, std::uint64_t generation)
{
    return r.capacity > 0 && generation > feed_newest(r, generations);
}

/*
 * Appends an item (feed_accepts must hold) and returns its slot.  When the ring is full the
 * oldest item is evicted: its slot is the one returned (the caller reads the evicted item's
 * database there before overwriting it) and *evicted is set to its generation (0: nothing was
 * evicted).  The ring's own horizon does not move: the caller raises the evicted database's.
 */
inline std::uint32_t feed_push(FeedRing &r, std::uint64_t *generations, std::uint64_t generation,
                               std::uint64_t *evicted = nullptr)
{
    if (evicted != nullptr)
        *evicted = 0;
    if (r.count == r.capacity)
    {
        if (evicted != nullptr)
            *evicted = generations[feed_slot(r, 0)];
        r.count--;
    }
    std::uint32_t slot = r.head;
    generations[slot] = generation;
    r.head = (r.head + 1) % r.capacity;
    r.count++;
    return slot;
}

/* Everything at or below `generation` may be missing from now on (a floor was raised). */
inline void feed_raise_horizon(FeedRing &r, std::uint64_t generation)
{
    if (generation > r.horizon)
        r.horizon = generation;
}

/* Whether a reader that has seen everything up to `after` must resync (the global part). */
inline bool feed_needs_resync(const FeedRing &r, std::uint64_t after)
{
    return after < r.horizon;
}

/*
 * Per-database horizons and newest generations of the feed: a fixed open-addressing table (no
 * allocation, bounded probing).  A database gets an entry the first time it appends; the entries
 * of one server life are never freed (a dropped database's entry only wastes a row).  A database
 * that finds no entry within feed_probe_limit probes shares the `overflow` row with every other
 * such database: their readers may then resync for each other's evictions (never for a database
 * with its own row), and their resync rows show the newest generation among them.
 */
constexpr std::uint32_t feed_database_rows = 512; /* a power of two */
constexpr std::uint32_t feed_probe_limit = 16;

struct FeedDatabase
{
    std::uint32_t database; /* 0: unused */
    std::uint64_t horizon;  /* this database's items at or below it may have been evicted */
    std::uint64_t newest;   /* the newest generation this database appended */
};

struct FeedDatabases
{
    FeedDatabase rows[feed_database_rows];
    FeedDatabase overflow;
};

inline std::uint32_t feed_database_hash(std::uint32_t database)
{
    std::uint32_t h = database * 0x9E3779B1u; /* Fibonacci hashing: OIDs are often consecutive */
    return h ^ (h >> 16);
}

/*
 * The row of database: found, or claimed when claim and a free row is within reach; nullptr when
 * !claim and the database never appended; the overflow row when none is within reach.
 */
inline FeedDatabase *feed_database_row(FeedDatabases &t, std::uint32_t database, bool claim)
{
    std::uint32_t h = feed_database_hash(database);
    for (std::uint32_t probe = 0; probe < feed_probe_limit; probe++)
    {
        FeedDatabase *row = &t.rows[(h + probe) & (feed_database_rows - 1)];
        if (row->database == database)
            return row;
        if (row->database == 0)
        {
            if (!claim)
                return nullptr;
            row->database = database;
            row->horizon = 0;
            row->newest = 0;
            return row;
        }
    }
    return &t.overflow;
}

/* Records that database appended an item of this generation. */
inline void feed_database_appended(FeedDatabases &t, std::uint32_t database, std::uint64_t generation)
{
    FeedDatabase *row = feed_database_row(t, database, true);
    if (generation > row->newest)
        row->newest = generation;
}

/* Records that an item of database with this generation was evicted. */
inline void feed_database_evicted(FeedDatabases &t, std::uint32_t database, std::uint64_t generation)
{
    FeedDatabase *row = feed_database_row(t, database, true);
    if (generation > row->horizon)
        row->horizon = generation;
}

/*
 * Whether a reader of database that has seen everything up to `after` must resync, and if so the
 * generation to continue from (*resync_at): the newest generation of its own database the feed
 * vouches for, never another database's.
 */
inline bool feed_database_needs_resync(const FeedRing &r, FeedDatabases &t, std::uint32_t database,
                                       std::uint64_t after, std::uint64_t *resync_at)
{
    const FeedDatabase *row = feed_database_row(t, database, false);
    std::uint64_t own_horizon = row == nullptr ? 0 : row->horizon;
    std::uint64_t own_newest = row == nullptr ? 0 : row->newest;
    std::uint64_t horizon = own_horizon > r.horizon ? own_horizon : r.horizon;
    if (after >= horizon)
        return false;
    *resync_at = own_newest > horizon ? own_newest : horizon;
    return true;
}

/* The position (0 .. count) of the oldest item with a generation greater than `after`. */
inline std::uint32_t feed_first_after(const FeedRing &r, const std::uint64_t *generations,
                                      std::uint64_t after)
{
    std::uint32_t lo = 0, hi = r.count;
    while (lo < hi)
    {
        std::uint32_t mid = lo + (hi - lo) / 2;
        if (generations[feed_slot(r, mid)] <= after)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

} // namespace core
} // namespace poolguard

#endif
