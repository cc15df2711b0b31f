
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
    -- added in 1.2 (last, as ALTER TABLE ADD COLUMN places it): all its idle sessions together
    idle_memory_budget          bigint,
    -- 1.2: a warm floor, and caps that wait
    min_idle                    integer,
    login_wait                  interval,
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
    CONSTRAINT policy_on_limit_valid CHECK (on_limit IN ('reject', 'evict_idle', 'wait')),
    CONSTRAINT policy_idle_memory_budget_positive CHECK (idle_memory_budget > 0),
    CONSTRAINT policy_min_idle_not_negative CHECK (min_idle >= 0),
    CONSTRAINT policy_login_wait_bounded CHECK (login_wait >= interval '0' AND login_wait <= interval '10 minutes')
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

REVOKE ALL ON FUNCTION poolguard.policy_validate() FROM PUBLIC;

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
-- Nobody but the owner: a trigger on any other table would wake the worker into a reload.
REVOKE ALL ON FUNCTION poolguard.policy_changed() FROM PUBLIC;

CREATE TRIGGER policy_changed
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON poolguard.policy
    FOR EACH STATEMENT EXECUTE FUNCTION poolguard.policy_changed();
