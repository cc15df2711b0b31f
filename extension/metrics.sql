
-- ---------------------------------------------------------------------------------------------
-- Metrics (src/metrics/): Prometheus text.
-- ---------------------------------------------------------------------------------------------
CREATE FUNCTION poolguard.metrics() RETURNS text
    LANGUAGE c
    AS 'MODULE_PATHNAME', 'poolguard_metrics';
COMMENT ON FUNCTION poolguard.metrics() IS 'Prometheus text exposition (format 0.0.4) of pg_poolguard state and counters';
-- Monitoring only: it names the policies and the invalidation scopes of every database.
REVOKE ALL ON FUNCTION poolguard.metrics() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION poolguard.metrics() TO pg_monitor;
