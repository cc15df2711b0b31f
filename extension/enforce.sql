
-- ---------------------------------------------------------------------------------------------
-- Enforcement (src/enforce/): what the scan sees, what was done.
-- ---------------------------------------------------------------------------------------------
CREATE FUNCTION poolguard.session_info(
        OUT pid integer, OUT role_name name, OUT database_name name, OUT application_name text,
        OUT client_addr inet, OUT backend_start timestamptz, OUT state text,
        OUT state_change timestamptz, OUT idle_for interval, OUT private_memory bigint,
        OUT policy text, OUT verdict text, OUT deadline timestamptz, OUT exempt_reason text,
        OUT memory_sampled_at timestamptz)
    RETURNS SETOF record
    LANGUAGE c
    AS 'MODULE_PATHNAME', 'poolguard_session_info_1_2';
-- Everyone, for the rows of roles whose privileges they have (pg_read_all_stats: all rows).
REVOKE ALL ON FUNCTION poolguard.session_info() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION poolguard.session_info() TO PUBLIC;

CREATE VIEW poolguard.sessions AS SELECT * FROM poolguard.session_info();
COMMENT ON VIEW poolguard.sessions IS 'client sessions, the policy each matches, and what the reaper would do now';
REVOKE ALL ON poolguard.sessions FROM PUBLIC;
GRANT SELECT ON poolguard.sessions TO PUBLIC;

-- One session's private memory read now (the view serves the worker's sample and its time).
CREATE FUNCTION poolguard.session_memory(pid integer) RETURNS bigint
    LANGUAGE c STRICT VOLATILE
    AS 'MODULE_PATHNAME', 'poolguard_session_memory';
COMMENT ON FUNCTION poolguard.session_memory(integer) IS 'private memory of one client session, read now (NULL unless the caller may see the session in poolguard.sessions)';
-- Everyone, for the sessions of roles whose privileges they have (pg_read_all_stats: all).
REVOKE ALL ON FUNCTION poolguard.session_memory(integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION poolguard.session_memory(integer) TO PUBLIC;

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

-- ---------------------------------------------------------------------------------------------
-- What pg_poolguard did for each app identity (database, role, application_name).
-- ---------------------------------------------------------------------------------------------
CREATE FUNCTION poolguard.app_summary_info(
        OUT database_name name, OUT role_name name, OUT application_name text,
        OUT sessions_ended bigint, OUT idle_timeout bigint, OUT idle_in_transaction_timeout bigint,
        OUT max_connection_age bigint, OUT max_idle bigint, OUT max_idle_memory bigint,
        OUT evict_idle bigint, OUT queries_cancelled bigint, OUT logins_refused bigint,
        OUT invalidations_published bigint, OUT database_notifications bigint,
        OUT database_invalidations_delivered bigint, OUT database_resyncs bigint,
        OUT last_event timestamptz, OUT stats_reset timestamptz)
    RETURNS SETOF record
    LANGUAGE c
    AS 'MODULE_PATHNAME', 'poolguard_app_summary_info';
-- Everyone, for the rows of roles whose privileges they have (pg_read_all_stats: all rows).
REVOKE ALL ON FUNCTION poolguard.app_summary_info() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION poolguard.app_summary_info() TO PUBLIC;

-- The counters, and the identities connected now with nothing counted yet (all zeros: the
-- policies have done nothing to them so far), with the policies their sessions match.
CREATE VIEW poolguard.app_summary AS
    SELECT COALESCE(c.database_name, s.database_name) AS database_name,
           COALESCE(c.role_name, s.role_name) AS role_name,
           COALESCE(c.application_name, s.application_name) AS application_name,
           COALESCE(s.sessions, 0) AS sessions_now,
           s.policies,
           COALESCE(c.sessions_ended, 0) AS sessions_ended,
           COALESCE(c.idle_timeout, 0) AS idle_timeout,
           COALESCE(c.idle_in_transaction_timeout, 0) AS idle_in_transaction_timeout,
           COALESCE(c.max_connection_age, 0) AS max_connection_age,
           COALESCE(c.max_idle, 0) AS max_idle,
           COALESCE(c.max_idle_memory, 0) AS max_idle_memory,
           COALESCE(c.evict_idle, 0) AS evict_idle,
           COALESCE(c.queries_cancelled, 0) AS queries_cancelled,
           COALESCE(c.logins_refused, 0) AS logins_refused,
           COALESCE(c.invalidations_published, 0) AS invalidations_published,
           c.database_notifications, c.database_invalidations_delivered, c.database_resyncs,
           c.last_event, c.stats_reset
      FROM poolguard.app_summary_info() c
      FULL JOIN (SELECT a.database_name, a.role_name, a.application_name,
                        pg_catalog.count(*) AS sessions,
                        pg_catalog.array_agg(DISTINCT a.policy) FILTER (WHERE a.policy IS NOT NULL) AS policies
                   FROM poolguard.sessions a
                  GROUP BY a.database_name, a.role_name, a.application_name) s
        ON c.database_name OPERATOR(pg_catalog.=) s.database_name
       AND c.role_name OPERATOR(pg_catalog.=) s.role_name
       AND c.application_name OPERATOR(pg_catalog.=) s.application_name;
COMMENT ON VIEW poolguard.app_summary IS
    'per app identity (database, role, application_name): sessions now, sessions ended by reason, queries cancelled, logins refused, invalidations published, and its database''s notifications, deliveries and resyncs';
REVOKE ALL ON poolguard.app_summary FROM PUBLIC;
GRANT SELECT ON poolguard.app_summary TO PUBLIC;

-- ---------------------------------------------------------------------------------------------
-- The server memory picture: what is shared, what each kind of process holds privately, what
-- ending the idle sessions would free.  Monitoring only: it reads every server process's memory.
-- ---------------------------------------------------------------------------------------------
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
