-- pg_poolguard 1.0: foundation.
-- (src/sql/*.sql are concatenated in name order into pg_poolguard--1.0.sql by the Makefile.)

\echo Use "CREATE EXTENSION pg_poolguard" to load this file. \quit

CREATE FUNCTION poolguard.version() RETURNS text
    LANGUAGE c STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'poolguard_version';
COMMENT ON FUNCTION poolguard.version() IS 'pg_poolguard library version';

CREATE FUNCTION poolguard.worker_pid() RETURNS integer
    LANGUAGE c PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'poolguard_worker_pid';
COMMENT ON FUNCTION poolguard.worker_pid() IS 'pid of the running pg_poolguard worker, NULL when none runs';

-- Everyone may read the views and call the public functions; what is privileged is revoked
-- function by function.
GRANT USAGE ON SCHEMA poolguard TO PUBLIC;
