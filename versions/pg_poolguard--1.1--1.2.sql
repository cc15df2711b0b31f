-- pg_poolguard 1.1 -> 1.2: ALTER EXTENSION pg_poolguard UPDATE TO '1.2'.
--
-- Frozen once 1.2 is released: later changes go into the next step script.  After this step the
-- catalog equals a fresh install of 1.2 (extension/*.sql); test/t/080_release_upgrade.pl compares them.

\echo Use "ALTER EXTENSION pg_poolguard UPDATE TO '1.2'" to load this file. \quit

-- The schema must be one no ordinary role can rename, replace or fill: the control file's
-- "schema = poolguard" makes CREATE EXTENSION use a schema of that name if one exists, and its
-- owner could later rename it and create a schema "poolguard" of its own whose functions
-- superusers and monitoring roles would call (issue 19).  Every name below is qualified.
DO $check_schema$
DECLARE
    owner_name name;
    owner_is_superuser boolean;
    creators text;
BEGIN
    SELECT r.rolname, r.rolsuper INTO owner_name, owner_is_superuser
      FROM pg_catalog.pg_namespace n
      JOIN pg_catalog.pg_roles r ON r.oid OPERATOR(pg_catalog.=) n.nspowner
     WHERE n.nspname OPERATOR(pg_catalog.=) 'poolguard';
    IF NOT owner_is_superuser THEN
        RAISE EXCEPTION 'schema "poolguard" is owned by role "%", not by a superuser', owner_name
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = pg_catalog.format('pg_poolguard lives in schema poolguard. Role "%s" could rename the schema and put functions of its own where superusers call pg_poolguard''s.', owner_name),
                  HINT = 'Check what schema poolguard contains, then drop it or make a superuser its owner (ALTER SCHEMA poolguard OWNER TO a superuser) and revoke CREATE on it from other roles; then run ALTER EXTENSION pg_poolguard UPDATE again.';
    END IF;
    SELECT pg_catalog.string_agg(CASE WHEN a.grantee OPERATOR(pg_catalog.=) 0 THEN 'PUBLIC'
                                      ELSE pg_catalog.quote_ident(r.rolname) END, ', ')
      INTO creators
      FROM pg_catalog.pg_namespace n
     CROSS JOIN LATERAL pg_catalog.aclexplode(n.nspacl) a
      LEFT JOIN pg_catalog.pg_roles r ON r.oid OPERATOR(pg_catalog.=) a.grantee
     WHERE n.nspname OPERATOR(pg_catalog.=) 'poolguard'
       AND a.privilege_type OPERATOR(pg_catalog.=) 'CREATE'
       AND (a.grantee OPERATOR(pg_catalog.=) 0 OR NOT r.rolsuper);
    IF creators IS NOT NULL THEN
        RAISE EXCEPTION 'roles other than superusers may create objects in schema "poolguard"'
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = pg_catalog.format('CREATE on schema poolguard is granted to %s.', creators),
                  HINT = 'Check what schema poolguard contains, revoke CREATE on it from those roles, then run ALTER EXTENSION pg_poolguard UPDATE again.';
    END IF;
END
$check_schema$;

-- ---------------------------------------------------------------------------------------------
-- Issue 22: session_info() gains OUT memory_sampled_at (private_memory is now the worker's
-- sample, served with its time): a new signature, so a new C entry point
-- (poolguard_session_info_1_2); the view is dropped and created again (here, before app_summary,
-- which reads it, is created).  session_memory(pid) reads one session afresh.
-- ---------------------------------------------------------------------------------------------
DROP VIEW poolguard.sessions;
DROP FUNCTION poolguard.session_info();

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

-- Per-app summary (extension/stats.sql, issue 25): app_summary_info() and the app_summary view.
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

-- The idle-memory budget of a policy (issue 23): added last, as a fresh install declares it.
ALTER TABLE poolguard.policy ADD COLUMN idle_memory_budget bigint;
ALTER TABLE poolguard.policy ADD CONSTRAINT policy_idle_memory_budget_positive CHECK (idle_memory_budget > 0);
-- ---------------------------------------------------------------------------------------------
-- poolguard.policy gains min_idle (a warm floor the idle rules keep) and login_wait (how long
-- a login over the cap waits under on_limit = 'wait').
-- ---------------------------------------------------------------------------------------------
ALTER TABLE poolguard.policy ADD COLUMN min_idle integer;
ALTER TABLE poolguard.policy ADD COLUMN login_wait interval;
ALTER TABLE poolguard.policy DROP CONSTRAINT policy_on_limit_valid;
ALTER TABLE poolguard.policy ADD CONSTRAINT policy_on_limit_valid
    CHECK (on_limit IN ('reject', 'evict_idle', 'wait'));
ALTER TABLE poolguard.policy ADD CONSTRAINT policy_min_idle_not_negative CHECK (min_idle >= 0);
ALTER TABLE poolguard.policy ADD CONSTRAINT policy_login_wait_bounded
    CHECK (login_wait >= interval '0' AND login_wait <= interval '10 minutes');

CREATE OR REPLACE FUNCTION poolguard.policy_validate() RETURNS trigger
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
    IF NEW.on_limit IS NULL OR NEW.on_limit NOT IN ('reject', 'evict_idle', 'wait') THEN
        RAISE EXCEPTION 'invalid on_limit % for policy "%"', coalesce(quote_literal(NEW.on_limit), 'NULL'), NEW.name
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'on_limit is ''reject'', ''evict_idle'' or ''wait''.';
    END IF;
    IF NEW.min_idle < 0 THEN
        RAISE EXCEPTION 'min_idle of policy "%" must not be negative', NEW.name
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = format('The value given was %s.', NEW.min_idle),
                  HINT = 'Use NULL or 0 for no warm floor.';
    END IF;
    IF NEW.min_idle > 0 AND NEW.max_idle > 0 AND NEW.min_idle > NEW.max_idle THEN
        RAISE EXCEPTION 'min_idle of policy "%" is above its max_idle', NEW.name
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = format('min_idle is %s and max_idle is %s: the policy cannot keep more idle sessions than it allows.', NEW.min_idle, NEW.max_idle),
                  HINT = 'Set min_idle at or below max_idle.';
    END IF;
    IF NEW.login_wait < interval '0' OR NEW.login_wait > interval '10 minutes' THEN
        RAISE EXCEPTION 'login_wait of policy "%" is out of range', NEW.name
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = format('The value given was %s; it must be between 0 and 10 minutes.', NEW.login_wait),
                  HINT = 'A login never waits longer than authentication_timeout anyway.';
    END IF;
    IF NEW.on_limit = 'wait' AND (NEW.login_wait IS NULL OR NEW.login_wait = interval '0') THEN
        RAISE EXCEPTION 'policy "%" has on_limit ''wait'' but no login_wait', NEW.name
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = 'A login over the cap waits at most login_wait for a place of the policy.',
                  HINT = 'Set login_wait, for example interval ''5 seconds''.';
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
    -- (last: the line numbers of the checks above stay as released)
    IF NEW.idle_memory_budget <= 0 THEN
        RAISE EXCEPTION 'idle_memory_budget of policy "%" must be positive', NEW.name
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = format('The value given was %s; it is a number of bytes.', NEW.idle_memory_budget),
                  HINT = 'Use NULL for no budget.';
    END IF;
    RETURN NEW;
END
$$;

-- ---------------------------------------------------------------------------------------------
-- policy_status_info() gains logins, refills, ended_unused, waiting, waited: a new signature, so
-- a new C entry point (poolguard_policy_status_info_1_2); the view is dropped and created again.
-- identity_status is new.
-- ---------------------------------------------------------------------------------------------
DROP VIEW poolguard.policy_status;
DROP FUNCTION poolguard.policy_status_info();

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

-- Issue 19: the key of the logical decoding messages' authentication tag.
CREATE FUNCTION poolguard.cdc_key() RETURNS bytea
    LANGUAGE c VOLATILE PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'poolguard_cdc_key';
COMMENT ON FUNCTION poolguard.cdc_key() IS
    'this database''s key of the "mac" of pg_poolguard''s logical decoding messages (HMAC-SHA256): a change-data-capture consumer verifies every message with it';
REVOKE ALL ON FUNCTION poolguard.cdc_key() FROM PUBLIC;

-- Pool advice (extension/advice.sql, issue 23): pool_advice_info() and the pool_advice view.
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

-- Table tracking (extension/invalidation.sql, issue 21): track_table(), untrack_table(), tracked_tables.

CREATE FUNCTION poolguard.tracking_trigger() RETURNS trigger
    LANGUAGE c PARALLEL UNSAFE
    AS 'MODULE_PATHNAME', 'poolguard_tracking_trigger';
COMMENT ON FUNCTION poolguard.tracking_trigger() IS
    'the trigger poolguard.track_table() installs: tracking_trigger(scope, table_scope, key_column [, ...])';
-- Publishing invalidations is the owner's by default, as for invalidate(): GRANT EXECUTE on it
-- and on track_table() to the role that runs your migrations (CREATE TRIGGER checks EXECUTE).
REVOKE ALL ON FUNCTION poolguard.tracking_trigger() FROM PUBLIC;

-- The table's owner (or a member of the owning role), or an error.  Internal.
CREATE FUNCTION poolguard._tracked_table_check(tbl regclass)
    RETURNS TABLE (relname name, nspname name, relkind "char", relispartition boolean)
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    owner oid;
BEGIN
    IF tbl IS NULL THEN
        RAISE EXCEPTION 'table must not be NULL' USING ERRCODE = '22004';
    END IF;
    SELECT c.relname, n.nspname, c.relkind, c.relispartition, c.relowner
      INTO relname, nspname, relkind, relispartition, owner
      FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
     WHERE c.oid OPERATOR(pg_catalog.=) tbl;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'relation with OID % does not exist', tbl::oid USING ERRCODE = '42P01';
    END IF;
    IF relkind NOT IN ('r', 'p') THEN
        RAISE EXCEPTION '"%" is not a table', tbl
            USING ERRCODE = '42809',
                  DETAIL = 'Only ordinary and partitioned tables can be tracked.';
    END IF;
    IF NOT pg_catalog.pg_has_role(owner, 'USAGE') THEN
        RAISE EXCEPTION 'must be owner of table %', tbl
            USING ERRCODE = '42501',
                  HINT = 'Run it as the role that owns the table (the one that runs your migrations).';
    END IF;
    RETURN NEXT;
END
$$;
-- It changes nothing and tells only what pg_class tells anyone: callable by whoever may call
-- track_table() or untrack_table(), which run with the caller's rights.
REVOKE ALL ON FUNCTION poolguard._tracked_table_check(regclass) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION poolguard._tracked_table_check(regclass) TO PUBLIC;

CREATE FUNCTION poolguard.track_table(tbl regclass, scope text DEFAULT NULL, table_scope text DEFAULT NULL)
    RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    rel record;
    keys text[];
    args text;
BEGIN
    SELECT * INTO rel FROM poolguard._tracked_table_check(tbl);
    IF rel.relispartition THEN
        RAISE EXCEPTION '"%" is a partition', tbl
            USING ERRCODE = '42809',
                  DETAIL = 'The partitioned table''s tracking covers its partitions.',
                  HINT = 'Track the partitioned table at the root of the tree.';
    END IF;
    SELECT pg_catalog.array_agg(a.attname::text ORDER BY k.ord) INTO keys
      FROM pg_catalog.pg_index i,
           LATERAL pg_catalog.unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
           JOIN pg_catalog.pg_attribute a ON a.attnum OPERATOR(pg_catalog.=) k.attnum
     WHERE i.indrelid OPERATOR(pg_catalog.=) tbl AND i.indisprimary
       AND a.attrelid OPERATOR(pg_catalog.=) tbl;
    IF keys IS NULL THEN
        RAISE EXCEPTION 'table % has no primary key', tbl
            USING ERRCODE = '55000',
                  DETAIL = 'A tracked table''s row changes are published by primary key.',
                  HINT = 'Add a primary key, or use poolguard.invalidation_trigger() with the key columns of your choice.';
    END IF;
    scope := coalesce(scope, CASE WHEN rel.nspname OPERATOR(pg_catalog.=) 'public' THEN rel.relname::text
                                  ELSE rel.nspname::text OPERATOR(pg_catalog.||) '.' OPERATOR(pg_catalog.||) rel.relname::text END);
    table_scope := coalesce(table_scope, 'table:' OPERATOR(pg_catalog.||) scope);
    IF pg_catalog.octet_length(scope) NOT BETWEEN 1 AND 63 OR pg_catalog.octet_length(table_scope) NOT BETWEEN 1 AND 63 THEN
        RAISE EXCEPTION 'invalidation scope is too long'
            USING ERRCODE = '42622',
                  DETAIL = pg_catalog.format('Scopes "%s" and "%s" must be 1 to 63 bytes long.', scope, table_scope),
                  HINT = 'Pass shorter names: poolguard.track_table(table, scope => ..., table_scope => ...).';
    END IF;
    IF pg_catalog.strpos(scope, E'\\') OPERATOR(pg_catalog.>) 0 OR pg_catalog.strpos(table_scope, E'\\') OPERATOR(pg_catalog.>) 0 THEN
        RAISE EXCEPTION 'tracking scope must not contain a backslash'
            USING ERRCODE = '22023';
    END IF;
    IF scope OPERATOR(pg_catalog.=) table_scope THEN
        RAISE EXCEPTION 'scope and table_scope must differ'
            USING ERRCODE = '22023',
                  DETAIL = 'A whole-scope invalidation of the row scope would drop every cached row at each write.';
    END IF;
    args := pg_catalog.array_to_string(ARRAY(SELECT pg_catalog.quote_literal(x)
                                                FROM pg_catalog.unnest(ARRAY[scope, table_scope] OPERATOR(pg_catalog.||) keys) AS x), ', ');
    -- CREATE OR REPLACE: calling it again (with other scopes, or after a primary key change) is safe.
    EXECUTE pg_catalog.format('CREATE OR REPLACE TRIGGER poolguard_track AFTER INSERT OR UPDATE OR DELETE ON %s '
                              'FOR EACH ROW EXECUTE FUNCTION poolguard.tracking_trigger(%s)', tbl, args);
    EXECUTE pg_catalog.format('CREATE OR REPLACE TRIGGER poolguard_track_truncate AFTER TRUNCATE ON %s '
                              'FOR EACH STATEMENT EXECUTE FUNCTION poolguard.tracking_trigger(%L, %L)',
                              tbl, scope, table_scope);
END
$$;
COMMENT ON FUNCTION poolguard.track_table(regclass, text, text) IS
    'publishes the table''s committed row changes: (scope, primary key) per row, (table_scope, NULL) per transaction; defaults: the table''s name and ''table:'' || scope';
REVOKE ALL ON FUNCTION poolguard.track_table(regclass, text, text) FROM PUBLIC;

CREATE FUNCTION poolguard.untrack_table(tbl regclass) RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    t name;
BEGIN
    PERFORM FROM poolguard._tracked_table_check(tbl);
    FOR t IN SELECT tg.tgname FROM pg_catalog.pg_trigger tg
              WHERE tg.tgrelid OPERATOR(pg_catalog.=) tbl AND tg.tgparentid OPERATOR(pg_catalog.=) 0
                AND tg.tgname IN ('poolguard_track', 'poolguard_track_truncate')
                AND tg.tgfoid OPERATOR(pg_catalog.=) 'poolguard.tracking_trigger()'::pg_catalog.regprocedure
    LOOP
        EXECUTE pg_catalog.format('DROP TRIGGER %I ON %s', t, tbl);
    END LOOP;
END
$$;
COMMENT ON FUNCTION poolguard.untrack_table(regclass) IS
    'removes what poolguard.track_table() installed (nothing when the table is not tracked)';
REVOKE ALL ON FUNCTION poolguard.untrack_table(regclass) FROM PUBLIC;

CREATE VIEW poolguard.tracked_tables AS
    SELECT tg.tgrelid::pg_catalog.regclass AS table_name,
           a.args[1] AS scope,
           a.args[2] AS table_scope,
           a.args[3:pg_catalog.array_length(a.args, 1) OPERATOR(pg_catalog.-) 1] AS key_columns,
           c.relkind OPERATOR(pg_catalog.=) 'p' AS partitioned
      FROM pg_catalog.pg_trigger tg
      JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) tg.tgrelid
      CROSS JOIN LATERAL (
          SELECT ARRAY(SELECT pg_catalog.replace(x, E'\\\\', E'\\')
                         FROM pg_catalog.unnest(pg_catalog.string_to_array(
                                  pg_catalog.encode(tg.tgargs, 'escape'), E'\\000')) WITH ORDINALITY AS u(x, n)
                        ORDER BY n) AS args) a
     WHERE tg.tgname OPERATOR(pg_catalog.=) 'poolguard_track'
       AND tg.tgparentid OPERATOR(pg_catalog.=) 0
       AND tg.tgfoid OPERATOR(pg_catalog.=) 'poolguard.tracking_trigger()'::pg_catalog.regprocedure;
COMMENT ON VIEW poolguard.tracked_tables IS
    'tables poolguard.track_table() tracks in this database, with their scopes and key columns';
-- What pg_trigger shows anyone anyway.
REVOKE ALL ON poolguard.tracked_tables FROM PUBLIC;
GRANT SELECT ON poolguard.tracked_tables TO PUBLIC;
