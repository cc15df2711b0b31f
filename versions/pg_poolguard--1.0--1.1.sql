-- pg_poolguard 1.0 -> 1.1: ALTER EXTENSION pg_poolguard UPDATE TO '1.1'.
--
-- Frozen once 1.1 is released: later changes go into the next step script.  After this step the
-- catalog equals a fresh install of 1.1 (extension/*.sql); test/t/release_upgrade.pl compares them.

\echo Use "ALTER EXTENSION pg_poolguard UPDATE TO '1.1'" to load this file. \quit

-- ---------------------------------------------------------------------------------------------
-- Hardening: every object gets a deliberate privilege.  PUBLIC keeps only what a plain
-- application needs (version, cache_generation, publisher_pids, its own rows of sessions and
-- terminations); monitoring goes to pg_monitor; administration stays with the owner.
-- ---------------------------------------------------------------------------------------------
REVOKE ALL ON FUNCTION poolguard.version() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION poolguard.version() TO PUBLIC;
REVOKE ALL ON FUNCTION poolguard.worker_pid() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION poolguard.worker_pid() TO pg_monitor;

REVOKE ALL ON FUNCTION poolguard.policy_validate() FROM PUBLIC;
-- Nobody but the owner: a trigger on any other table would wake the worker into a reload.
REVOKE ALL ON FUNCTION poolguard.policy_changed() FROM PUBLIC;

REVOKE ALL ON FUNCTION poolguard.termination_history() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION poolguard.termination_history() TO PUBLIC;
REVOKE ALL ON poolguard.terminations FROM PUBLIC;
GRANT SELECT ON poolguard.terminations TO PUBLIC;

REVOKE ALL ON FUNCTION poolguard.policy_status_info() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION poolguard.policy_status_info() TO pg_monitor;
REVOKE ALL ON poolguard.policy_status FROM PUBLIC;
GRANT SELECT ON poolguard.policy_status TO pg_monitor;

REVOKE ALL ON FUNCTION poolguard.cache_generation(text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION poolguard.cache_generation(text, text) TO PUBLIC;

REVOKE ALL ON FUNCTION poolguard.invalidation_stats() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION poolguard.invalidation_stats() TO pg_monitor;
REVOKE ALL ON poolguard.invalidation_stats FROM PUBLIC;
GRANT SELECT ON poolguard.invalidation_stats TO pg_monitor;

REVOKE ALL ON FUNCTION poolguard.invalidation_publishers() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION poolguard.invalidation_publishers() TO pg_monitor;
REVOKE ALL ON poolguard.invalidation_publishers FROM PUBLIC;
GRANT SELECT ON poolguard.invalidation_publishers TO pg_monitor;

REVOKE ALL ON FUNCTION poolguard.stats_info() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION poolguard.stats_info() TO pg_monitor;
REVOKE ALL ON poolguard.stats FROM PUBLIC;
GRANT SELECT ON poolguard.stats TO pg_monitor;

-- Monitoring only: it names the policies and the invalidation scopes of every database.
REVOKE ALL ON FUNCTION poolguard.metrics() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION poolguard.metrics() TO pg_monitor;

-- ---------------------------------------------------------------------------------------------
-- session_info() gains OUT exempt_reason: a new signature, so a new C entry point
-- (poolguard_session_info_1_1); the library keeps poolguard_sessions for 1.0's 13 columns.
-- The view depends on the function's row type: both are dropped and created again.
-- ---------------------------------------------------------------------------------------------
DROP VIEW poolguard.sessions;
DROP FUNCTION poolguard.session_info();

CREATE FUNCTION poolguard.session_info(
        OUT pid integer, OUT role_name name, OUT database_name name, OUT application_name text,
        OUT client_addr inet, OUT backend_start timestamptz, OUT state text,
        OUT state_change timestamptz, OUT idle_for interval, OUT private_memory bigint,
        OUT policy text, OUT verdict text, OUT deadline timestamptz, OUT exempt_reason text)
    RETURNS SETOF record
    LANGUAGE c
    AS 'MODULE_PATHNAME', 'poolguard_session_info_1_1';
-- Everyone, for the rows of roles whose privileges they have (pg_read_all_stats: all rows).
REVOKE ALL ON FUNCTION poolguard.session_info() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION poolguard.session_info() TO PUBLIC;

CREATE VIEW poolguard.sessions AS SELECT * FROM poolguard.session_info();
COMMENT ON VIEW poolguard.sessions IS 'client sessions, the policy each matches, and what the reaper would do now';
REVOKE ALL ON poolguard.sessions FROM PUBLIC;
GRANT SELECT ON poolguard.sessions TO PUBLIC;

-- ---------------------------------------------------------------------------------------------
-- C functions renamed after their SQL functions (same signatures): the 1.0 names stay in the
-- library for 1.0's SQL; 1.1's SQL calls the new ones.
-- ---------------------------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION poolguard.termination_history(
        OUT at timestamptz, OUT pid integer, OUT role_name name, OUT database_name name,
        OUT application_name text, OUT client_addr inet, OUT reason text, OUT policy text,
        OUT action text, OUT state text, OUT state_duration interval, OUT backend_age interval,
        OUT private_memory bigint)
    RETURNS SETOF record
    LANGUAGE c
    AS 'MODULE_PATHNAME', 'poolguard_termination_history';

CREATE OR REPLACE FUNCTION poolguard.policy_status_info(
        OUT policy text, OUT sessions bigint, OUT active bigint, OUT idle bigint,
        OUT idle_in_transaction bigint, OUT max_connections bigint, OUT rejected bigint,
        OUT evicted bigint, OUT terminated bigint)
    RETURNS SETOF record
    LANGUAGE c
    AS 'MODULE_PATHNAME', 'poolguard_policy_status_info';

CREATE OR REPLACE FUNCTION poolguard.stats_info(
        OUT scans bigint, OUT last_scan timestamptz, OUT last_scan_duration interval,
        OUT terminated bigint, OUT cancelled bigint, OUT dry_run_actions bigint,
        OUT rejected_connections bigint, OUT evicted_connections bigint,
        OUT invalidations bigint, OUT notifications_sent bigint, OUT stats_reset timestamptz)
    RETURNS record
    LANGUAGE c
    AS 'MODULE_PATHNAME', 'poolguard_stats_info';

-- ---------------------------------------------------------------------------------------------
-- invalidation_publishers: the join operator is schema-qualified (same columns).
-- ---------------------------------------------------------------------------------------------
CREATE OR REPLACE VIEW poolguard.invalidation_publishers AS
    SELECT d.datname, p.*
      FROM poolguard.invalidation_publishers() p
      LEFT JOIN pg_catalog.pg_database d ON d.oid OPERATOR(pg_catalog.=) p.datid;

-- ---------------------------------------------------------------------------------------------
-- New in 1.1: publisher_pids() for listeners.
-- ---------------------------------------------------------------------------------------------
CREATE FUNCTION poolguard.publisher_pids() RETURNS SETOF integer
    LANGUAGE c VOLATILE PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'poolguard_publisher_pids';
COMMENT ON FUNCTION poolguard.publisher_pids() IS
    'pids of the running pg_poolguard publisher(s) of the current database: a listener accepts notifications only from these';
-- Deliberately PUBLIC: any role that may connect may NOTIFY on the channel, so every listening
-- app role must be able to tell the publisher's notifications from forged ones.
GRANT EXECUTE ON FUNCTION poolguard.publisher_pids() TO PUBLIC;

-- ---------------------------------------------------------------------------------------------
-- New in 1.1: invalidations_since() for readers that cannot LISTEN (hot standbys, transaction
-- poolers).
-- ---------------------------------------------------------------------------------------------
CREATE FUNCTION poolguard.invalidations_since(
        after bigint, max_wait interval DEFAULT '0',
        OUT kind text, OUT generation bigint, OUT scope text, OUT key text)
    RETURNS SETOF record
    LANGUAGE c VOLATILE PARALLEL UNSAFE
    AS 'MODULE_PATHNAME', 'poolguard_invalidations_since';
COMMENT ON FUNCTION poolguard.invalidations_since(bigint, interval) IS
    'this database''s invalidations with a generation greater than after, oldest first (or one resync row), waiting up to max_wait for the first; read-only: works on hot standbys and behind transaction poolers';
-- Deliberately PUBLIC: any role that may connect to a database may LISTEN to its notifications,
-- which carry the same items; it returns only the current database's items.
REVOKE ALL ON FUNCTION poolguard.invalidations_since(bigint, interval) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION poolguard.invalidations_since(bigint, interval) TO PUBLIC;
