/*
 * reaper.cpp — the worker's cycle.  (Filled in by the reaper: policy loading and session scans.)
 */
#include "worker.h"

#include "guc.h"

namespace poolguard {

long worker_cycle(void)
{
    return guc_naptime_ms;
}

}  // namespace poolguard
