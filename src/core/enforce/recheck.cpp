/*
 * recheck.cpp — the predicate behind every re-check before a signal.
 */
#include "core/enforce/recheck.h"

#include "core/no_server_headers.h" /* last: fails the build if a server header slipped in */

namespace poolguard::core
{

bool still_as_judged(const BackendFacts &judged, const BackendFacts &fresh, Watch watch)
{
    if (fresh.pid <= 0 || fresh.pid != judged.pid || !fresh.client_backend || !judged.client_backend)
        return false;
    if (fresh.backend_start != judged.backend_start || fresh.userid != judged.userid)
        return false;
    if (fresh.state != judged.state)
        return false;
    if (watch == Watch::query_start)
        return fresh.query_start == judged.query_start;
    return fresh.state_change == judged.state_change;
}

} // namespace poolguard::core
