
-- ---------------------------------------------------------------------------------------------
-- Pool advice (issue 23): per app identity (database, role, application_name, client address),
-- the connections it holds against the sessions it ever had active at once over
-- poolguard.advice_window, and the pool max each instance would need.
-- ---------------------------------------------------------------------------------------------
CREATE FUNCTION poolguard.pool_advice_info(
        OUT database_name name, OUT role_name name, OUT application_name text, OUT client_addr inet,
        OUT connections_now integer, OUT connections_peak integer, OUT active_p50 integer,
        OUT active_p95 integer, OUT active_max integer, OUT idle_now integer, OUT idle_memory bigint,
        OUT recommended_max integer, OUT memory_freed bigint, OUT samples integer,
        OUT sampled_over interval, OUT sampled_at timestamptz, OUT saturated boolean, OUT why text,
        OUT idle_memory_at timestamptz)
    RETURNS SETOF record
    LANGUAGE c
    AS 'MODULE_PATHNAME', 'poolguard_pool_advice_info';
-- Everyone, for the rows of roles whose privileges they have (pg_read_all_stats: all rows).
REVOKE ALL ON FUNCTION poolguard.pool_advice_info() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION poolguard.pool_advice_info() TO PUBLIC;

CREATE VIEW poolguard.pool_advice AS
    SELECT a.database_name, a.role_name, a.application_name, a.client_addr, a.connections_now,
           a.connections_peak, a.active_p50, a.active_p95, a.active_max, a.idle_now, a.idle_memory,
           a.idle_memory_at, a.recommended_max, a.memory_freed, a.samples, a.sampled_over,
           a.sampled_at, a.saturated, a.why
      FROM poolguard.pool_advice_info() a;
COMMENT ON VIEW poolguard.pool_advice IS
    'per app identity (database, role, application_name, client address): connections now and at peak, concurrently active sessions p50/p95/max over poolguard.advice_window, idle private memory, the recommended pool max per instance and the memory it would free, and why';
REVOKE ALL ON poolguard.pool_advice FROM PUBLIC;
GRANT SELECT ON poolguard.pool_advice TO PUBLIC;
