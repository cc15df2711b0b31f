
-- ---------------------------------------------------------------------------------------------
-- Cumulative counters since stats_reset.
-- ---------------------------------------------------------------------------------------------
CREATE FUNCTION poolguard.stats_info(
        OUT scans bigint, OUT last_scan timestamptz, OUT last_scan_duration interval,
        OUT terminated bigint, OUT cancelled bigint, OUT dry_run_actions bigint,
        OUT rejected_connections bigint, OUT evicted_connections bigint,
        OUT invalidations bigint, OUT notifications_sent bigint, OUT stats_reset timestamptz)
    RETURNS record
    LANGUAGE c
    AS 'MODULE_PATHNAME', 'poolguard_stats_info';
REVOKE ALL ON FUNCTION poolguard.stats_info() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION poolguard.stats_info() TO pg_monitor;

CREATE VIEW poolguard.stats AS SELECT * FROM poolguard.stats_info();
COMMENT ON VIEW poolguard.stats IS 'pg_poolguard counters since stats_reset';
REVOKE ALL ON poolguard.stats FROM PUBLIC;
GRANT SELECT ON poolguard.stats TO pg_monitor;

CREATE FUNCTION poolguard.reset_stats() RETURNS timestamptz
    LANGUAGE c
    AS 'MODULE_PATHNAME', 'poolguard_reset_stats';
COMMENT ON FUNCTION poolguard.reset_stats() IS 'zero pg_poolguard counters (history is kept)';
REVOKE ALL ON FUNCTION poolguard.reset_stats() FROM PUBLIC;

-- Per login identity (policy, role, database, application_name): logins, refills, ends.
CREATE FUNCTION poolguard.identity_status_info(
        OUT policy text, OUT role_name name, OUT database_name name, OUT application_name text,
        OUT logins bigint, OUT refills bigint, OUT ended bigint, OUT ended_unused bigint,
        OUT last_login timestamptz, OUT last_end timestamptz)
    RETURNS SETOF record
    LANGUAGE c
    AS 'MODULE_PATHNAME', 'poolguard_identity_status_info';
REVOKE ALL ON FUNCTION poolguard.identity_status_info() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION poolguard.identity_status_info() TO pg_monitor;

CREATE VIEW poolguard.identity_status AS SELECT * FROM poolguard.identity_status_info();
COMMENT ON VIEW poolguard.identity_status IS 'per login identity of a policy: logins, refills (logins soon after the policy ended a session), ended sessions';
REVOKE ALL ON poolguard.identity_status FROM PUBLIC;
GRANT SELECT ON poolguard.identity_status TO pg_monitor;
