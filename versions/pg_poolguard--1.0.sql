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

-- ---------------------------------------------------------------------------------------------
-- The policy catalog.  One row a policy; the first enabled policy a session matches wins, in
-- the order priority DESC, name ASC (byte order).  NULL match column = any; NULL rule column =
-- inherit the GUC default (where one exists, else off); 0 = off for this policy.
-- ---------------------------------------------------------------------------------------------
CREATE TABLE poolguard.policy (
    name                        text PRIMARY KEY,
    priority                    integer NOT NULL DEFAULT 0,
    enabled                     boolean NOT NULL DEFAULT true,
    -- match columns
    role_name                   name,
    database_name               name,
    application_name            text,
    client_addr                 cidr,
    -- rule columns
    idle_timeout                interval,
    idle_in_transaction_timeout interval,
    max_connection_age          interval,
    max_query_duration          interval,
    max_idle                    integer,
    max_idle_memory             bigint,
    max_connections             integer,
    on_limit                    text NOT NULL DEFAULT 'reject',
    dry_run                     boolean NOT NULL DEFAULT false,
    comment                     text,
    -- Backstops for the friendlier checks of poolguard.policy_validate() (which run first).
    CONSTRAINT policy_name_valid CHECK (name <> '' AND octet_length(name) < 64),
    CONSTRAINT policy_durations_not_negative CHECK (
        idle_timeout >= interval '0' AND idle_in_transaction_timeout >= interval '0'
        AND max_connection_age >= interval '0' AND max_query_duration >= interval '0'),
    CONSTRAINT policy_durations_bounded CHECK (
        idle_timeout <= interval '100 years' AND idle_in_transaction_timeout <= interval '100 years'
        AND max_connection_age <= interval '100 years' AND max_query_duration <= interval '100 years'),
    CONSTRAINT policy_counts_not_negative CHECK (max_idle >= 0 AND max_connections >= 0),
    CONSTRAINT policy_max_idle_memory_positive CHECK (max_idle_memory > 0),
    CONSTRAINT policy_on_limit_valid CHECK (on_limit IN ('reject', 'evict_idle'))
);
COMMENT ON TABLE poolguard.policy IS 'pg_poolguard policies: who they match and the limits they enforce';

-- pg_dump keeps the policies.
SELECT pg_catalog.pg_extension_config_dump('poolguard.policy', '');

REVOKE ALL ON poolguard.policy FROM PUBLIC;

-- Clear errors for bad rows, before the CHECK backstops would fire.
CREATE FUNCTION poolguard.policy_validate() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    home text := current_setting('poolguard.database', true);
    col text;
    val interval;
BEGIN
    IF home IS NOT NULL AND home <> current_database() THEN
        RAISE EXCEPTION 'poolguard.policy is only used in database "%"', home
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = format('This is database "%s"; the pg_poolguard worker reads policies from poolguard.database.', current_database()),
                  HINT = format('Connect to database "%s" to change policies.', home);
    END IF;
    IF TG_OP = 'DELETE' OR TG_OP = 'TRUNCATE' THEN
        RETURN OLD;
    END IF;

    IF NEW.name IS NULL OR NEW.name = '' OR octet_length(NEW.name) > 63 THEN
        RAISE EXCEPTION 'invalid policy name %', coalesce(quote_literal(NEW.name), 'NULL')
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = 'A policy name must be 1 to 63 bytes long.';
    END IF;
    FOREACH col IN ARRAY ARRAY['idle_timeout', 'idle_in_transaction_timeout',
                               'max_connection_age', 'max_query_duration'] LOOP
        EXECUTE format('SELECT ($1).%I', col) INTO val USING NEW;
        IF val < interval '0' THEN
            RAISE EXCEPTION '% of policy "%" must not be negative', col, NEW.name
                USING ERRCODE = 'invalid_parameter_value',
                      DETAIL = format('The value given was %s.', val),
                      HINT = 'Use NULL to inherit the server default, or 0 to turn the rule off for this policy.';
        END IF;
        IF val > interval '100 years' THEN
            RAISE EXCEPTION '% of policy "%" is too large', col, NEW.name
                USING ERRCODE = 'invalid_parameter_value',
                      DETAIL = format('The value given was %s; the largest accepted is 100 years.', val),
                      HINT = 'Use 0 to turn the rule off for this policy.';
        END IF;
    END LOOP;
    IF NEW.max_idle < 0 THEN
        RAISE EXCEPTION 'max_idle of policy "%" must not be negative', NEW.name
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = format('The value given was %s.', NEW.max_idle),
                  HINT = 'Use NULL or 0 for no limit on idle sessions.';
    END IF;
    IF NEW.max_idle_memory <= 0 THEN
        RAISE EXCEPTION 'max_idle_memory of policy "%" must be positive', NEW.name
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = format('The value given was %s; it is a number of bytes.', NEW.max_idle_memory),
                  HINT = 'Use NULL for no memory limit.';
    END IF;
    IF NEW.max_connections < 0 THEN
        RAISE EXCEPTION 'max_connections of policy "%" must not be negative', NEW.name
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = format('The value given was %s.', NEW.max_connections),
                  HINT = 'Use NULL for no cap, or 0 to refuse every login this policy matches.';
    END IF;
    IF NEW.on_limit IS NULL OR NEW.on_limit NOT IN ('reject', 'evict_idle') THEN
        RAISE EXCEPTION 'invalid on_limit % for policy "%"', coalesce(quote_literal(NEW.on_limit), 'NULL'), NEW.name
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'on_limit is ''reject'' or ''evict_idle''.';
    END IF;
    IF NEW.application_name IS NOT NULL
       AND (octet_length(NEW.application_name) > 127 OR NEW.application_name ~ '(^|[^\\])(\\\\)*\\$') THEN
        RAISE EXCEPTION 'invalid application_name pattern for policy "%"', NEW.name
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = 'The pattern must be a LIKE pattern of at most 127 bytes that does not end in an escape character.',
                  HINT = 'Use % for any sequence, _ for one character, \ to escape them.';
    END IF;
    IF NEW.role_name IS NOT NULL AND NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = NEW.role_name) THEN
        RAISE WARNING 'role "%" of policy "%" does not exist', NEW.role_name, NEW.name
            USING DETAIL = 'The policy matches no session until the role is created.';
    END IF;
    IF NEW.database_name IS NOT NULL AND NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = NEW.database_name) THEN
        RAISE WARNING 'database "%" of policy "%" does not exist', NEW.database_name, NEW.name
            USING DETAIL = 'The policy matches no session until the database is created.';
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER policy_validate
    BEFORE INSERT OR UPDATE OR DELETE ON poolguard.policy
    FOR EACH ROW EXECUTE FUNCTION poolguard.policy_validate();
CREATE TRIGGER policy_validate_truncate
    BEFORE TRUNCATE ON poolguard.policy
    FOR EACH STATEMENT EXECUTE FUNCTION poolguard.policy_validate();

-- At commit, tells the worker to load the policies again (no reload() call needed).
CREATE FUNCTION poolguard.policy_changed() RETURNS trigger
    LANGUAGE c
    AS 'MODULE_PATHNAME', 'poolguard_policy_changed';

CREATE TRIGGER policy_changed
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON poolguard.policy
    FOR EACH STATEMENT EXECUTE FUNCTION poolguard.policy_changed();

CREATE FUNCTION poolguard.reload() RETURNS integer
    LANGUAGE c
    AS 'MODULE_PATHNAME', 'poolguard_reload';
COMMENT ON FUNCTION poolguard.reload() IS 'load the policies now; returns how many are in force';
REVOKE ALL ON FUNCTION poolguard.reload() FROM PUBLIC;

-- ---------------------------------------------------------------------------------------------
-- The reaper: one pass on demand, what it sees, what it did.
-- ---------------------------------------------------------------------------------------------
CREATE FUNCTION poolguard.reap(dry_run boolean DEFAULT false,
                               OUT pid integer, OUT reason text, OUT policy text, OUT action text)
    RETURNS SETOF record
    LANGUAGE c
    AS 'MODULE_PATHNAME', 'poolguard_reap';
COMMENT ON FUNCTION poolguard.reap(boolean) IS 'one reaper pass now, in this backend; returns the actions taken';
REVOKE ALL ON FUNCTION poolguard.reap(boolean) FROM PUBLIC;

CREATE FUNCTION poolguard.session_info(
        OUT pid integer, OUT role_name name, OUT database_name name, OUT application_name text,
        OUT client_addr inet, OUT backend_start timestamptz, OUT state text,
        OUT state_change timestamptz, OUT idle_for interval, OUT private_memory bigint,
        OUT policy text, OUT verdict text, OUT deadline timestamptz)
    RETURNS SETOF record
    LANGUAGE c
    AS 'MODULE_PATHNAME', 'poolguard_sessions';

CREATE VIEW poolguard.sessions AS SELECT * FROM poolguard.session_info();
COMMENT ON VIEW poolguard.sessions IS 'client sessions, the policy each matches, and what the reaper would do now';
GRANT SELECT ON poolguard.sessions TO PUBLIC;

CREATE FUNCTION poolguard.termination_history(
        OUT at timestamptz, OUT pid integer, OUT role_name name, OUT database_name name,
        OUT application_name text, OUT client_addr inet, OUT reason text, OUT policy text,
        OUT action text, OUT state text, OUT state_duration interval, OUT backend_age interval,
        OUT private_memory bigint)
    RETURNS SETOF record
    LANGUAGE c
    AS 'MODULE_PATHNAME', 'poolguard_terminations';

CREATE VIEW poolguard.terminations AS SELECT * FROM poolguard.termination_history();
COMMENT ON VIEW poolguard.terminations IS 'the last poolguard.history_size actions (shared memory; empty after a restart)';
GRANT SELECT ON poolguard.terminations TO PUBLIC;

-- ---------------------------------------------------------------------------------------------
-- Connection caps: per-policy state and counters (kept by policy name across reloads).
-- ---------------------------------------------------------------------------------------------
CREATE FUNCTION poolguard.policy_status_info(
        OUT policy text, OUT sessions bigint, OUT active bigint, OUT idle bigint,
        OUT idle_in_transaction bigint, OUT max_connections bigint, OUT rejected bigint,
        OUT evicted bigint, OUT terminated bigint)
    RETURNS SETOF record
    LANGUAGE c
    AS 'MODULE_PATHNAME', 'poolguard_policy_status';

CREATE VIEW poolguard.policy_status AS SELECT * FROM poolguard.policy_status_info();
COMMENT ON VIEW poolguard.policy_status IS 'per policy: counted sessions, states, cap, refusals, evictions, terminations';
GRANT SELECT ON poolguard.policy_status TO PUBLIC;

-- pg_poolguard 1.0: transactional cache invalidation (generations, notifications, triggers).

CREATE FUNCTION poolguard.invalidate(scope text, key text DEFAULT NULL) RETURNS void
    LANGUAGE c VOLATILE PARALLEL UNSAFE
    AS 'MODULE_PATHNAME', 'poolguard_invalidate';
COMMENT ON FUNCTION poolguard.invalidate(text, text) IS
    'schedules the invalidation of (scope, key), or of the whole scope when key is NULL, for publication at commit';
-- Only the owner may invalidate by default: GRANT EXECUTE to the application role (see README).
REVOKE ALL ON FUNCTION poolguard.invalidate(text, text) FROM PUBLIC;

CREATE FUNCTION poolguard.cache_generation(scope text, key text DEFAULT NULL) RETURNS bigint
    LANGUAGE c VOLATILE PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'poolguard_cache_generation';
COMMENT ON FUNCTION poolguard.cache_generation(text, text) IS
    'current generation of (scope, key): the greater of the key''s and the scope''s; read it before the data';
GRANT EXECUTE ON FUNCTION poolguard.cache_generation(text, text) TO PUBLIC;

CREATE FUNCTION poolguard.invalidation_trigger() RETURNS trigger
    LANGUAGE c PARALLEL UNSAFE
    AS 'MODULE_PATHNAME', 'poolguard_invalidation_trigger';
COMMENT ON FUNCTION poolguard.invalidation_trigger() IS
    'AFTER ... FOR EACH ROW trigger: invalidation_trigger(''scope'', ''key_column'' [, ...]) invalidates the key columns'' old and new values';
REVOKE ALL ON FUNCTION poolguard.invalidation_trigger() FROM PUBLIC;

CREATE FUNCTION poolguard.invalidation_stats(
        OUT scope text, OUT invalidations bigint, OUT last_generation bigint,
        OUT last_invalidated_at timestamptz)
    RETURNS SETOF record
    LANGUAGE c VOLATILE PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'poolguard_invalidation_stats';

CREATE VIEW poolguard.invalidation_stats AS
    SELECT scope, invalidations, last_generation, last_invalidated_at
      FROM poolguard.invalidation_stats();
COMMENT ON VIEW poolguard.invalidation_stats IS
    'published invalidations per scope of this database since server start (scope NULL: scopes past the first 256)';

CREATE FUNCTION poolguard.invalidation_publishers(
        OUT datid oid, OUT pid integer, OUT pending bigint, OUT ring_used bigint,
        OUT publisher_starts bigint, OUT start_failures bigint, OUT notifications bigint,
        OUT items_published bigint, OUT resyncs bigint, OUT ring_overflows bigint,
        OUT queue_warnings bigint, OUT last_queue_usage double precision,
        OUT last_published_at timestamptz)
    RETURNS SETOF record
    LANGUAGE c VOLATILE PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'poolguard_invalidation_publishers';

CREATE VIEW poolguard.invalidation_publishers AS
    SELECT d.datname, p.*
      FROM poolguard.invalidation_publishers() p
      LEFT JOIN pg_catalog.pg_database d ON d.oid = p.datid;
COMMENT ON VIEW poolguard.invalidation_publishers IS
    'per-database publisher state and counters: notifications sent, resyncs, ring overflows, worker start failures, NOTIFY queue warnings';

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
    AS 'MODULE_PATHNAME', 'poolguard_stats';

CREATE VIEW poolguard.stats AS SELECT * FROM poolguard.stats_info();
COMMENT ON VIEW poolguard.stats IS 'pg_poolguard counters since stats_reset';
GRANT SELECT ON poolguard.stats TO PUBLIC;

CREATE FUNCTION poolguard.reset_stats() RETURNS timestamptz
    LANGUAGE c
    AS 'MODULE_PATHNAME', 'poolguard_reset_stats';
COMMENT ON FUNCTION poolguard.reset_stats() IS 'zero pg_poolguard counters (history is kept)';
REVOKE ALL ON FUNCTION poolguard.reset_stats() FROM PUBLIC;

CREATE FUNCTION poolguard.metrics() RETURNS text
    LANGUAGE c
    AS 'MODULE_PATHNAME', 'poolguard_metrics';
COMMENT ON FUNCTION poolguard.metrics() IS 'Prometheus text exposition (format 0.0.4) of pg_poolguard state and counters';
