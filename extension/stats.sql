
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
