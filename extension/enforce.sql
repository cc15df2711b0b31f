
-- ---------------------------------------------------------------------------------------------
-- Enforcement (src/enforce/): what the scan sees, what was done.
-- ---------------------------------------------------------------------------------------------
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

CREATE FUNCTION poolguard.termination_history(
        OUT at timestamptz, OUT pid integer, OUT role_name name, OUT database_name name,
        OUT application_name text, OUT client_addr inet, OUT reason text, OUT policy text,
        OUT action text, OUT state text, OUT state_duration interval, OUT backend_age interval,
        OUT private_memory bigint)
    RETURNS SETOF record
    LANGUAGE c
    AS 'MODULE_PATHNAME', 'poolguard_termination_history';
-- Everyone, for the rows of roles whose privileges they have (pg_read_all_stats: all rows).
REVOKE ALL ON FUNCTION poolguard.termination_history() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION poolguard.termination_history() TO PUBLIC;

CREATE VIEW poolguard.terminations AS SELECT * FROM poolguard.termination_history();
COMMENT ON VIEW poolguard.terminations IS 'the last poolguard.history_size actions (shared memory; empty after a restart)';
REVOKE ALL ON poolguard.terminations FROM PUBLIC;
GRANT SELECT ON poolguard.terminations TO PUBLIC;
