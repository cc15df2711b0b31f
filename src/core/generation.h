/*
 * generation.h — arithmetic of cache generations.
 *
 * Generations come from one global 64-bit counter.  At server start the counter and every slot
 * of the generation table are seeded with the wall clock in microseconds since the Unix epoch:
 * the counter advances by one per published invalidation, so unless a server handed out more
 * than a million generations per second for its whole uptime, every generation after a restart
 * is greater than every generation before it, and caches see everything as changed.
 */
#ifndef POOLGUARD_CORE_GENERATION_H
#define POOLGUARD_CORE_GENERATION_H

#include <cstdint>

namespace poolguard {
namespace core {

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

/* A cached value tagged with `tagged` is fresh iff nothing newer was published for it. */
constexpr bool generation_is_fresh(std::uint64_t tagged, std::uint64_t current)
{
    return current <= tagged;
}

}  // namespace core
}  // namespace poolguard

#endif
