-- pg_poolguard 1.1 -> 1.2: ALTER EXTENSION pg_poolguard UPDATE TO '1.2'.
--
-- Frozen once 1.2 is released: later changes go into the next step script.  After this step the
-- catalog equals a fresh install of 1.2 (extension/*.sql); test/t/080_release_upgrade.pl compares them.

\echo Use "ALTER EXTENSION pg_poolguard UPDATE TO '1.2'" to load this file. \quit

-- The server memory picture (issue 27).
CREATE FUNCTION poolguard.memory_info(
        OUT figure text, OUT policy text, OUT state text, OUT processes integer, OUT bytes bigint,
        OUT age interval)
    RETURNS SETOF record
    LANGUAGE c
    AS 'MODULE_PATHNAME', 'poolguard_memory_info';
REVOKE ALL ON FUNCTION poolguard.memory_info() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION poolguard.memory_info() TO pg_monitor;

CREATE VIEW poolguard.memory AS SELECT * FROM poolguard.memory_info();
COMMENT ON VIEW poolguard.memory IS 'the shared memory segment, private memory of client sessions by policy and state, what ending every idle session would free, pg_poolguard''s and other server processes';
REVOKE ALL ON poolguard.memory FROM PUBLIC;
GRANT SELECT ON poolguard.memory TO pg_monitor;
