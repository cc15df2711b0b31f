/*
 * sampling.h — the worker's memory sampling budget and a pid index (pure C++).
 *
 * The worker re-reads every client session's private memory for the views and /metrics, a few
 * sessions per cycle, so that each is read about once per poolguard.memory_sample_interval while
 * no one cycle reads more than a fixed number (a scan at 5,000 sessions stays short).  The views
 * then serve those figures with their age instead of reading /proc for every row.
 */
#ifndef POOLGUARD_CORE_SAMPLING_H
#define POOLGUARD_CORE_SAMPLING_H

#include <cstddef>
#include <cstdint>

namespace poolguard::core
{

/* The worker's running share of reads (worker-local). */
struct SampleBudget
{
    double credit = 0;   /* reads owed, carried over from earlier cycles */
    int64_t last_at = 0; /* time of the last cycle (µs); 0 = none yet */
};

/*
 * How many sessions to read this cycle: sessions × elapsed / interval, carried over across
 * cycles (so a short naptime reads a few each cycle, a long one more), at most max_per_cycle and
 * at most one lap (sessions).  The first cycle (and one after the clock went back) owes a full
 * lap, so that figures exist soon after the worker starts.  interval <= 0: none.
 */
int sessions_to_sample(SampleBudget *budget, int64_t now, int sessions, int64_t interval, int max_per_cycle);

/*
 * The oldest a served figure can be while the worker keeps up (sessions × naptime / interval ≤
 * max_per_cycle): one interval plus one naptime.  Otherwise the lap takes sessions /
 * max_per_cycle cycles.  -1 when sampling is off.
 */
int64_t sample_age_bound(int sessions, int64_t interval, int64_t naptime, int max_per_cycle);

/* An open-addressing index from pid (> 0) to a row number, in storage the caller provides. */
class PidIndex
{
  public:
    struct Slot
    {
        int32_t pid; /* 0 = empty */
        int32_t index;
    };

    /* Slots to provide for n pids: a power of two, at least twice n. */
    static size_t capacity_for(size_t n);

    /* slots: capacity_for(n) entries; cleared here. */
    PidIndex(Slot *slots, size_t capacity);

    /* Adds pid → index (a pid added twice keeps its first index); pid <= 0 is ignored. */
    void insert(int pid, int index);

    /* Adds pid → index, or points an added pid at index instead; pid <= 0 is ignored. */
    void assign(int pid, int index);

    /* The index of pid, -1 if absent. */
    int find(int pid) const;

  private:
    Slot *slots_;
    size_t mask_;
};

} // namespace poolguard::core

#endif
