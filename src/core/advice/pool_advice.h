/*
 * pool_advice.h — pool-size advice for one app identity (pure C++, no server headers).
 *
 * The worker records, each scan, how many connections an identity holds and how many of them are
 * active (running a query) into a fixed ring of advice_slots slots.  A slot covers at least
 * window / advice_slots of time: scans closer together than that merge into the newest slot
 * (keeping the maxima), so the ring always spans the window whatever poolguard.naptime is.  The
 * advice reads the slots inside the window: p50 / p95 / max of each slot's peak of concurrently
 * active sessions, and the peak of connections held.
 *
 * Recommended pool max (per instance: the identity includes the client address):
 *   active_max + headroom, headroom = max(1, ceil(active_max / 4)),
 * never more than the identity's peak of connections held (a pool larger than it ever grew to is
 * no advice).  When every connection was active at once at some point (active_max >= held_peak),
 * the pool was saturated: the advice keeps the size and says so.
 * The memory it would free: the idle private memory held now times surplus / idle sessions now
 * (the average idle session), surplus = min(idle now, held now - recommended).
 */
#ifndef POOLGUARD_CORE_POOL_ADVICE_H
#define POOLGUARD_CORE_POOL_ADVICE_H

#include <cstddef>
#include <cstdint>

namespace poolguard::core
{

constexpr int advice_slots = 64;

struct AdviceSlot
{
    int64_t start_us; /* when the slot's first scan ran (µs, any epoch); 0 = unused */
    int32_t held_max;
    int32_t active_max;
};

/* Plain data: lives in shared memory. */
struct AdviceRing
{
    int32_t newest; /* index of the newest slot */
    int32_t count;  /* slots used (<= advice_slots) */
    AdviceSlot slots[advice_slots];
};

/* Records one scan's counts (see above).  window_us > 0. */
void advice_record(AdviceRing *ring, int64_t now_us, int held, int active, int64_t window_us);

/* True when the ring has no slot inside the window ending now (the identity can be forgotten). */
bool advice_expired(const AdviceRing &ring, int64_t now_us, int64_t window_us);

/* The headroom added to the peak of active sessions. */
int advice_headroom(int active_max);

struct AdviceFacts
{
    int64_t now_us;
    int64_t window_us;
    int held_now;        /* connections of the identity in the latest scan */
    int idle_now;        /* of which idle (not in a transaction) */
    int64_t idle_memory; /* private memory of those idle sessions, bytes; -1 = not measured */
};

struct Advice
{
    int samples;        /* slots inside the window */
    int64_t covered_us; /* time from the oldest slot in the window to now */
    int held_peak;
    int active_p50;
    int active_p95;
    int active_max;
    int recommended_max;  /* -1 = no samples */
    int surplus;          /* idle connections over the recommendation, held now */
    int64_t memory_freed; /* bytes; -1 = unknown */
    bool saturated;
    char why[320];
};

Advice advise(const AdviceRing &ring, const AdviceFacts &facts);

/* "512 kB", "1.50 MiB", "2.29 GiB" (binary units, as pg_size_pretty but with two decimals). */
void format_bytes(int64_t bytes, char *out, size_t size);

/* "45 s", "12 min", "2.0 h", "3.0 d" */
void format_duration(int64_t us, char *out, size_t size);

} // namespace poolguard::core

#endif
