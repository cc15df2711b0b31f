/*
 * churn.cpp — refills, the fight warning's rule and the warm floor.
 */
#include "core/policy/churn.h"

#include <algorithm>

#include "core/no_server_headers.h"

namespace poolguard::core
{

void note_end(RecentEnds &ends, Micros at)
{
    if (ends.count == recent_ends_capacity)
    {
        std::copy(ends.at + 1, ends.at + ends.count, ends.at);
        ends.count--;
    }
    ends.at[ends.count++] = at;
}

bool take_refill(RecentEnds &ends, Micros now, Micros window)
{
    int expired = 0;
    while (expired < ends.count && now - ends.at[expired] > window)
        expired++;
    int keep_from = expired < ends.count ? expired + 1 : ends.count; /* the oldest left is matched */
    bool refill = expired < ends.count;
    std::copy(ends.at + keep_from, ends.at + ends.count, ends.at);
    ends.count -= keep_from;
    return refill;
}

void roll(ChurnWindow &w, Micros now, Micros window)
{
    if (w.bucket_start == 0 || now - w.bucket_start >= 2 * window)
    {
        ChurnWindow fresh;
        fresh.warned_at = w.warned_at;
        fresh.bucket_start = now;
        w = fresh;
        return;
    }
    if (now - w.bucket_start >= window)
    {
        w.ends[1] = w.ends[0];
        w.refills[1] = w.refills[0];
        w.unused[1] = w.unused[0];
        std::copy(w.by_reason[0], w.by_reason[0] + reason_count, w.by_reason[1]);
        w.ends[0] = w.refills[0] = w.unused[0] = 0;
        std::fill(w.by_reason[0], w.by_reason[0] + reason_count, 0);
        w.bucket_start += window;
    }
}

void count_end(ChurnWindow &w, Micros now, Micros window, Reason reason, bool unused)
{
    roll(w, now, window);
    w.ends[0]++;
    if (unused)
        w.unused[0]++;
    w.by_reason[0][(int)reason]++;
}

void count_refill(ChurnWindow &w, Micros now, Micros window)
{
    roll(w, now, window);
    w.refills[0]++;
}

ChurnTotals totals(const ChurnWindow &w)
{
    ChurnTotals t;
    t.ends = w.ends[0] + w.ends[1];
    t.refills = w.refills[0] + w.refills[1];
    t.unused = w.unused[0] + w.unused[1];
    for (int r = 0; r < reason_count; r++)
        t.by_reason[r] = w.by_reason[0][r] + w.by_reason[1][r];
    return t;
}

bool should_warn(ChurnWindow &w, Micros now, Micros window)
{
    roll(w, now, window);
    ChurnTotals t = totals(w);
    if (t.ends < fight_min_ends || 2 * t.refills <= t.ends)
        return false;
    if (w.warned_at != 0 && now - w.warned_at < window)
        return false;
    w.warned_at = now;
    return true;
}

FightCause likely_cause(const ChurnTotals &t)
{
    int64_t idle = t.by_reason[(int)Reason::idle_timeout] + t.by_reason[(int)Reason::max_connection_age];
    int64_t surplus = t.by_reason[(int)Reason::max_idle];
    int64_t memory = t.by_reason[(int)Reason::max_idle_memory] + t.by_reason[(int)Reason::idle_memory_budget];
    int64_t evict = t.by_reason[(int)Reason::evict_idle];
    if (surplus >= idle && surplus >= memory && surplus >= evict)
        return FightCause::pool_minimum_above_max_idle;
    if (idle >= memory && idle >= evict)
        return FightCause::idle_rule_vs_pool;
    if (memory >= evict)
        return FightCause::memory_rule;
    return FightCause::cap_evictions;
}

bool floor_spares(Reason reason)
{
    return reason == Reason::idle_timeout || reason == Reason::max_idle ||
           reason == Reason::max_connection_age;
}

int keep_warm_floor(WarmCandidate *candidates, int count, int64_t min_idle)
{
    if (min_idle <= 0)
        return 0;
    /* Most recently used first: those are the ones a pool hands out next. */
    std::sort(candidates, candidates + count,
              [](const WarmCandidate &a, const WarmCandidate &b)
              {
                  if (a.idle_since != b.idle_since)
                      return a.idle_since > b.idle_since;
                  return a.index < b.index;
              });
    int64_t kept = 0;
    for (int i = 0; i < count; i++)
        if (candidates[i].reason == Reason::none)
            kept++;
    int spared = 0;
    for (int i = 0; i < count && kept < min_idle; i++)
    {
        WarmCandidate &c = candidates[i];
        if (c.reason == Reason::none || !floor_spares(c.reason))
            continue;
        c.spared = true;
        kept++;
        spared++;
    }
    return spared;
}

} // namespace poolguard::core
