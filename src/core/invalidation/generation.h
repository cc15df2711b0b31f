/*
 * generation.h — arithmetic of cache generations.
 *
 * Generations come from one global 64-bit counter.  At server start the counter and every slot
 * of the generation table are seeded with the wall clock in microseconds since the Unix epoch,
 * and each publication takes max(counter + 1, clock): generations follow the clock.  So every
 * generation any server of a cluster hands out is greater than those handed out before — after
 * a restart, and on a standby promoted to primary (which also raises a floor under every slot at
 * promotion, so everything reads as changed) — provided the servers' clocks agree to within the
 * time between a publication and a failover, and no server handed out more than a million
 * generations per second for long (then the counter runs ahead of the clock; it catches up).
 * A clock that goes back is harmless on one server (the counter never decreases) but may, across
 * a failover, let the new primary hand out generations that are not newer: keep clocks in sync.
 */
#ifndef POOLGUARD_CORE_GENERATION_H
#define POOLGUARD_CORE_GENERATION_H

#include <cstdint>

namespace poolguard
{
namespace core
{

/* Seed for the counter and the slots, from microseconds since the Unix epoch. */
constexpr std::uint64_t generation_seed(std::int64_t unix_microseconds)
{
    return unix_microseconds > 0 ? static_cast<std::uint64_t>(unix_microseconds) : 1;
}

/* The generation a reader must compare with: the later of the key's and its scope's. */
constexpr std::uint64_t effective_generation(std::uint64_t key_generation, std::uint64_t scope_generation)
{
    return key_generation > scope_generation ? key_generation : scope_generation;
}

/*
 * The generation a standby gives a replayed item the primary handed out as `primary`, when the
 * last generation it applied (or its floor) is `last`: the primary's own, unless that is not
 * newer — which happens only while a standby that (re)started replays WAL written before its
 * start: its floor (its clock at start) is then ahead of those items.  A reader may already have
 * read the floor with the data as it was before the item's change, so the item must read as
 * newer than everything read before it was replayed.
 */
constexpr std::uint64_t replayed_generation(std::uint64_t primary, std::uint64_t last)
{
    return primary > last ? primary : last + 1;
}

/* A cached value tagged with `tagged` is fresh iff nothing newer was published for it. */
constexpr bool generation_is_fresh(std::uint64_t tagged, std::uint64_t current)
{
    return current <= tagged;
}

/*
 * Whether a committing backend should wake the WAL writer to flush its INVALIDATIONS record, when
 * the last such wake (by any backend) was at `last_wake` and it is now `now` (microseconds), and
 * the WAL writer flushes at most once per `interval` (wal_writer_delay) when woken.  A wake less
 * than `interval` after the last one would only make the WAL writer write() the page again (it
 * flushes no more often than that): the record is flushed by the next commit's flush or by the
 * WAL writer's own next round, as early as a wake could have.  A clock that went back by more than
 * `interval` makes a wake due (a wake is never held off for longer than that).
 */
constexpr bool walwriter_wake_due(std::int64_t now, std::int64_t last_wake, std::int64_t interval)
{
    return last_wake == 0 || now - last_wake >= interval || now - last_wake <= -interval;
}

} // namespace core
} // namespace poolguard

#endif
