/*
 * pool_advice.cpp — the sample ring and the pool-size advice (see pool_advice.h for the rules).
 */
#include "core/advice/pool_advice.h"

#include <algorithm>
#include <cinttypes>
#include <cstdio>

#include "core/no_server_headers.h" /* last: fails the build if a server header slipped in */

namespace poolguard::core
{

namespace
{

int64_t slot_length(int64_t window_us)
{
    return std::max<int64_t>(window_us / advice_slots, 1);
}

/* Nearest-rank percentile of sorted values (n > 0). */
int percentile(const int *sorted, int n, int pct)
{
    int rank = (pct * n + 99) / 100; /* ceil(pct/100 * n), 1-based */
    rank = std::clamp(rank, 1, n);
    return sorted[rank - 1];
}

} // namespace

void advice_record(AdviceRing *ring, int64_t now_us, int held, int active, int64_t window_us)
{
    held = std::max(held, 0);
    active = std::clamp(active, 0, held);
    if (ring->count > 0)
    {
        AdviceSlot *newest = &ring->slots[ring->newest];
        /* A clock that went back starts a new slot rather than stretching an old one. */
        if (now_us >= newest->start_us && now_us - newest->start_us < slot_length(window_us))
        {
            newest->held_max = std::max(newest->held_max, (int32_t)held);
            newest->active_max = std::max(newest->active_max, (int32_t)active);
            return;
        }
    }
    ring->newest = ring->count == 0 ? 0 : (ring->newest + 1) % advice_slots;
    if (ring->count < advice_slots)
        ring->count++;
    AdviceSlot *slot = &ring->slots[ring->newest];
    slot->start_us = now_us;
    slot->held_max = held;
    slot->active_max = active;
}

bool advice_expired(const AdviceRing &ring, int64_t now_us, int64_t window_us)
{
    if (ring.count == 0)
        return true;
    return ring.slots[ring.newest].start_us < now_us - window_us;
}

int advice_headroom(int active_max)
{
    return std::max(1, (active_max + 3) / 4);
}

Advice advise(const AdviceRing &ring, const AdviceFacts &facts)
{
    Advice a = {};
    a.recommended_max = -1;
    a.memory_freed = -1;
    int values[advice_slots];
    int64_t oldest = facts.now_us;
    for (int i = 0; i < ring.count && i < advice_slots; i++)
    {
        const AdviceSlot &s = ring.slots[(ring.newest - i + advice_slots) % advice_slots];
        if (s.start_us < facts.now_us - facts.window_us)
            break; /* older slots are older still */
        values[a.samples++] = s.active_max;
        a.held_peak = std::max(a.held_peak, (int)s.held_max);
        oldest = std::min(oldest, s.start_us);
    }
    a.held_peak = std::max(a.held_peak, facts.held_now);
    if (a.samples == 0)
    {
        std::snprintf(a.why, sizeof(a.why), "no sample in the window yet: the worker samples every scan");
        return a;
    }
    a.covered_us = facts.now_us - oldest;
    std::sort(values, values + a.samples);
    a.active_p50 = percentile(values, a.samples, 50);
    a.active_p95 = percentile(values, a.samples, 95);
    a.active_max = values[a.samples - 1];

    int headroom = advice_headroom(a.active_max);
    a.saturated = a.held_peak > 0 && a.active_max >= a.held_peak;
    a.recommended_max = std::min(a.active_max + headroom, std::max(a.held_peak, 1));
    a.surplus = std::clamp(facts.held_now - a.recommended_max, 0, std::max(facts.idle_now, 0));
    if (facts.idle_memory >= 0 && facts.idle_now > 0)
        a.memory_freed = facts.idle_memory / facts.idle_now * a.surplus;
    else if (a.surplus == 0)
        a.memory_freed = 0;

    char window[32], freed[32], held_mem[32];
    format_duration(a.covered_us, window, sizeof(window));
    format_bytes(a.memory_freed, freed, sizeof(freed));
    format_bytes(facts.idle_memory, held_mem, sizeof(held_mem));
    if (a.saturated)
        std::snprintf(
            a.why, sizeof(a.why),
            "holds %d connections (peak %d) and all %d were active at once in the last %s: the pool "
            "was saturated; keep max %d, or raise it if requests wait for a connection",
            facts.held_now, a.held_peak, a.active_max, window, a.recommended_max);
    else if (a.surplus > 0)
        std::snprintf(a.why, sizeof(a.why),
                      "holds %d connections (peak %d, %d idle holding %s) but at most %d were active at once "
                      "in the last %s (p95 %d, %d samples): max %d (%d + headroom %d) would close %d idle "
                      "connections and free about %s",
                      facts.held_now, a.held_peak, facts.idle_now, held_mem, a.active_max, window,
                      a.active_p95, a.samples, a.recommended_max, a.active_max, headroom, a.surplus, freed);
    else
        std::snprintf(
            a.why, sizeof(a.why),
            "holds %d connections (peak %d); at most %d were active at once in the last %s (p95 %d, "
            "%d samples): max %d (%d + headroom %d) fits; nothing idle to close now",
            facts.held_now, a.held_peak, a.active_max, window, a.active_p95, a.samples, a.recommended_max,
            a.active_max, headroom);
    return a;
}

void format_bytes(int64_t bytes, char *out, size_t size)
{
    if (bytes < 0)
        std::snprintf(out, size, "an unknown amount");
    else if (bytes < 10 * 1024)
        std::snprintf(out, size, "%" PRId64 " bytes", bytes);
    else if (bytes < 1024 * 1024)
        std::snprintf(out, size, "%" PRId64 " kB", bytes / 1024);
    else if (bytes < (int64_t)1024 * 1024 * 1024)
        std::snprintf(out, size, "%.2f MiB", (double)bytes / (1024.0 * 1024.0));
    else
        std::snprintf(out, size, "%.2f GiB", (double)bytes / (1024.0 * 1024.0 * 1024.0));
}

void format_duration(int64_t us, char *out, size_t size)
{
    int64_t s = std::max<int64_t>(us, 0) / 1000000;
    if (s < 120)
        std::snprintf(out, size, "%" PRId64 " s", s);
    else if (s < 2 * 3600)
        std::snprintf(out, size, "%" PRId64 " min", s / 60);
    else if (s < 2 * 86400)
        std::snprintf(out, size, "%.1f h", (double)s / 3600.0);
    else
        std::snprintf(out, size, "%.1f d", (double)s / 86400.0);
}

} // namespace poolguard::core
