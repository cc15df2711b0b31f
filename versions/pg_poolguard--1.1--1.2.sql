-- pg_poolguard 1.1 -> 1.2: ALTER EXTENSION pg_poolguard UPDATE TO '1.2'.
--
-- Frozen once 1.2 is released: later changes go into the next step script.  After this step the
-- catalog equals a fresh install of 1.2 (extension/*.sql); test/t/080_release_upgrade.pl compares them.

\echo Use "ALTER EXTENSION pg_poolguard UPDATE TO '1.2'" to load this file. \quit

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
