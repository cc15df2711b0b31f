
-- ---------------------------------------------------------------------------------------------
-- The worker (src/worker/): is it running.
-- ---------------------------------------------------------------------------------------------
CREATE FUNCTION poolguard.worker_pid() RETURNS integer
    LANGUAGE c PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'poolguard_worker_pid';
COMMENT ON FUNCTION poolguard.worker_pid() IS 'pid of the running pg_poolguard worker, NULL when none runs';
REVOKE ALL ON FUNCTION poolguard.worker_pid() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION poolguard.worker_pid() TO pg_monitor;
