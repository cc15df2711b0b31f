/*
 * bgworker.h — the BackgroundWorker setup every pg_poolguard worker shares (the reaper's worker,
 * the metrics server, the publishers).
 */
#ifndef POOLGUARD_BGWORKER_H
#define POOLGUARD_BGWORKER_H

#include "pg/postgres_headers.h"

namespace poolguard
{

/*
 * Fills a BackgroundWorker of this library: connected to a database, started after recovery
 * (callers that serve hot standbys set an earlier bgw_start_time), restarted restart_seconds
 * after an exit with code 1; name and type are both `type`.
 */
void init_background_worker(BackgroundWorker *worker, const char *function, const char *type,
                            int restart_seconds);

/*
 * Connects this background process to a database (by name, or by oid when database_name is
 * NULL) as the bootstrap superuser, with the server's settings only: whatever ALTER DATABASE or
 * ALTER ROLE ... SET says for this database or role is undone (with a WARNING naming it), the
 * role, session_authorization, search_path (pg_catalog, pg_temp) and the transaction and timeout
 * settings are pinned, and the result is verified (FATAL otherwise).  `who` names the process in
 * messages ("pg_poolguard worker").  An ignored role or session_authorization is a WARNING;
 * other ignored settings are logged at settings_elevel (LOG for the long-lived workers, DEBUG1
 * for the short-lived publishers and version checks, which would repeat it at every start).
 */
void connect_background_worker(const char *database_name, Oid database, const char *who, int settings_elevel);

} // namespace poolguard

#endif
