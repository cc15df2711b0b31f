
-- ---------------------------------------------------------------------------------------------
-- Connection caps: per-policy state and counters (kept by policy name across reloads).
-- ---------------------------------------------------------------------------------------------
CREATE FUNCTION poolguard.policy_status_info(
        OUT policy text, OUT sessions bigint, OUT active bigint, OUT idle bigint,
        OUT idle_in_transaction bigint, OUT max_connections bigint, OUT rejected bigint,
        OUT evicted bigint, OUT terminated bigint, OUT logins bigint, OUT refills bigint,
        OUT ended_unused bigint, OUT waiting bigint, OUT waited bigint)
    RETURNS SETOF record
    LANGUAGE c
    AS 'MODULE_PATHNAME', 'poolguard_policy_status_info_1_2';
REVOKE ALL ON FUNCTION poolguard.policy_status_info() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION poolguard.policy_status_info() TO pg_monitor;

CREATE VIEW poolguard.policy_status AS SELECT * FROM poolguard.policy_status_info();
COMMENT ON VIEW poolguard.policy_status IS 'per policy: counted sessions, states, cap, refusals, evictions, terminations, logins, refills, waits';
REVOKE ALL ON poolguard.policy_status FROM PUBLIC;
GRANT SELECT ON poolguard.policy_status TO pg_monitor;
