/*
 * reaper.h — the reaper feature's public interface: the worker's cycle.  poolguard.reap() and
 * poolguard.reload() are SQL functions of reaper.cpp and need no declaration here.
 */
#ifndef POOLGUARD_REAPER_H
#define POOLGUARD_REAPER_H

#include "pg/postgres_headers.h"

namespace poolguard
{

/*
 * One cycle of the worker's work, in its own transaction: restart publishers that should run
 * and do not, load the policies if they changed, scan, recount the caps after a load, act.
 * Returns how long the worker may sleep before it is needed again, in milliseconds.  The worker
 * loop (worker/) runs it with errors caught; the reaper owns what a cycle does.
 */
long reaper_cycle(void);

} // namespace poolguard

#endif
