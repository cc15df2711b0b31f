/*
 * sampling.cpp — the worker's memory sampling budget and a pid index (see sampling.h).
 */
#include "core/enforce/sampling.h"

#include <algorithm>
#include <cstring>

#include "core/no_server_headers.h" /* last: fails the build if a server header slipped in */

namespace poolguard::core
{

int sessions_to_sample(SampleBudget *budget, int64_t now, int sessions, int64_t interval, int max_per_cycle)
{
    if (interval <= 0 || sessions <= 0 || max_per_cycle <= 0)
    {
        budget->credit = 0;
        budget->last_at = now;
        return 0;
    }
    if (budget->last_at == 0 || now < budget->last_at)
        budget->credit = sessions;
    else
    {
        int64_t elapsed = std::min(now - budget->last_at, interval);
        budget->credit += (double)sessions * (double)elapsed / (double)interval;
    }
    budget->credit = std::min(budget->credit, (double)sessions);
    budget->last_at = now;
    int take = (int)std::min({budget->credit, (double)max_per_cycle, (double)sessions});
    budget->credit -= take;
    return take;
}

int64_t sample_age_bound(int sessions, int64_t interval, int64_t naptime, int max_per_cycle)
{
    if (interval <= 0 || max_per_cycle <= 0)
        return -1;
    if (sessions <= 0)
        return interval + naptime;
    int64_t cycles_per_lap = (sessions + max_per_cycle - 1) / max_per_cycle;
    return std::max(interval, cycles_per_lap * naptime) + naptime;
}

size_t PidIndex::capacity_for(size_t n)
{
    size_t capacity = 16;
    while (capacity < 2 * n)
        capacity *= 2;
    return capacity;
}

PidIndex::PidIndex(Slot *slots, size_t capacity) : slots_(slots), mask_(capacity - 1)
{
    memset(slots, 0, sizeof(Slot) * capacity);
}

void PidIndex::insert(int pid, int index)
{
    if (pid <= 0)
        return;
    for (size_t at = ((uint32_t)pid * 2654435761u) & mask_;; at = (at + 1) & mask_)
    {
        if (slots_[at].pid == pid)
            return;
        if (slots_[at].pid == 0)
        {
            slots_[at].pid = pid;
            slots_[at].index = index;
            return;
        }
    }
}

void PidIndex::assign(int pid, int index)
{
    if (pid <= 0)
        return;
    for (size_t at = ((uint32_t)pid * 2654435761u) & mask_;; at = (at + 1) & mask_)
    {
        if (slots_[at].pid == pid || slots_[at].pid == 0)
        {
            slots_[at].pid = pid;
            slots_[at].index = index;
            return;
        }
    }
}

int PidIndex::find(int pid) const
{
    if (pid <= 0)
        return -1;
    for (size_t at = ((uint32_t)pid * 2654435761u) & mask_;; at = (at + 1) & mask_)
    {
        if (slots_[at].pid == pid)
            return slots_[at].index;
        if (slots_[at].pid == 0)
            return -1;
    }
}

} // namespace poolguard::core
