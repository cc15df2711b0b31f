/*
 * recheck.h — "is this still the session we judged?" (pure C++).
 *
 * Every signal pg_poolguard sends (the reaper, poolguard.reap(), evict_idle) is preceded by a
 * fresh read of the target's backend status.  The signal goes out only if that read shows the
 * very state the decision was based on: same process (pid and start time), still a client
 * backend of the same role, same state, and the same moment that state (or the running query)
 * began.  A session that did anything in between is left alone; the next scan judges it anew.
 */
#ifndef POOLGUARD_CORE_RECHECK_H
#define POOLGUARD_CORE_RECHECK_H

#include <cstdint>

namespace poolguard::core
{

/* The status fields a decision depends on (times in µs on one clock). */
struct BackendFacts
{
    int pid = 0;
    bool client_backend = false; /* a regular client backend (not a worker, WAL sender, ...) */
    uint32_t userid = 0;         /* the session's login role */
    int64_t backend_start = 0;   /* process start: tells a reused pid apart */
    int state = -1;              /* the server's state code (idle, active, ...) */
    int64_t state_change = 0;    /* when the current state began */
    int64_t query_start = 0;     /* when the current (or last) query began */
};

enum class Watch : uint8_t
{
    state_change, /* the decision was about the time in the current state (idle rules, eviction) */
    query_start,  /* the decision was about the running query (max_query_duration) */
};

/* True if fresh still shows what judged saw, so acting on the decision is still right. */
bool still_as_judged(const BackendFacts &judged, const BackendFacts &fresh, Watch watch);

} // namespace poolguard::core

#endif
