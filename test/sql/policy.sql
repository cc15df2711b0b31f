-- The policy catalog: valid rows, every validation error, reload(), the views, permissions.
\set VERBOSITY default
SET client_min_messages = warning;

INSERT INTO poolguard.policy (name, application_name, idle_timeout, max_idle)
VALUES ('web', 'web%', '5 min', 10);
INSERT INTO poolguard.policy (name, priority, role_name, idle_in_transaction_timeout, dry_run, comment)
VALUES ('reports', 10, 'no_such_role', '30s', true, 'warns: role missing');
SELECT name, priority, enabled, role_name, application_name, idle_timeout, max_idle, on_limit, dry_run
  FROM poolguard.policy ORDER BY priority DESC, name;
SELECT poolguard.reload();

-- Every bad value is refused with a message that names the column and the policy.
INSERT INTO poolguard.policy (name, idle_timeout) VALUES ('neg', '-1s');
INSERT INTO poolguard.policy (name, idle_in_transaction_timeout) VALUES ('neg', '-5 min');
INSERT INTO poolguard.policy (name, max_connection_age) VALUES ('neg', '-1 day');
INSERT INTO poolguard.policy (name, max_query_duration) VALUES ('neg', '-1ms');
INSERT INTO poolguard.policy (name, max_idle) VALUES ('neg', -1);
INSERT INTO poolguard.policy (name, max_idle_memory) VALUES ('zero', 0);
INSERT INTO poolguard.policy (name, max_idle_memory) VALUES ('neg', -100);
INSERT INTO poolguard.policy (name, idle_memory_budget) VALUES ('zero', 0);
INSERT INTO poolguard.policy (name, max_connections) VALUES ('neg', -1);
INSERT INTO poolguard.policy (name, on_limit) VALUES ('bad', 'kill');
INSERT INTO poolguard.policy (name, min_idle) VALUES ('neg', -1);
INSERT INTO poolguard.policy (name, max_idle, min_idle) VALUES ('floor', 2, 3);
INSERT INTO poolguard.policy (name, login_wait) VALUES ('neg', '-1s');
INSERT INTO poolguard.policy (name, login_wait) VALUES ('long', '1 hour');
INSERT INTO poolguard.policy (name, max_connections, on_limit) VALUES ('nowait', 2, 'wait');
INSERT INTO poolguard.policy (name) VALUES (NULL);
INSERT INTO poolguard.policy (name) VALUES ('');
INSERT INTO poolguard.policy (name) VALUES (repeat('n', 64));
INSERT INTO poolguard.policy (name, application_name) VALUES ('esc', 'web\');
INSERT INTO poolguard.policy (name, client_addr) VALUES ('addr', 'not-an-address');
INSERT INTO poolguard.policy (name) VALUES ('web');
UPDATE poolguard.policy SET idle_timeout = '-1s' WHERE name = 'web';
-- Nothing was lost by the failed statements.
SELECT name, idle_timeout FROM poolguard.policy ORDER BY name;

-- Zero turns a rule off; escapes are fine; addresses are cidr.
INSERT INTO poolguard.policy (name, idle_timeout, max_idle, application_name, client_addr, max_connections, on_limit)
VALUES ('ok', '0', 0, 'web\%', '10.0.0.0/8', 0, 'evict_idle');
INSERT INTO poolguard.policy (name, client_addr, max_connections, on_limit, login_wait, max_idle, min_idle)
VALUES ('waits', '10.0.0.0/8', 5, 'wait', '5s', 2, 2);
SELECT poolguard.reload();

-- The sessions view sees this session, matched by application_name.
INSERT INTO poolguard.policy (name, application_name) VALUES ('regress', 'pg\_regress%');
SELECT poolguard.reload();
-- A superuser session is exempt: the verdict says so, and why.
SELECT role_name = current_user AS me, database_name, state, policy, verdict, exempt_reason, deadline
  FROM poolguard.sessions WHERE pid = pg_backend_pid();
SELECT count(*) AS actions FROM poolguard.reap(true);
SELECT count(*) >= 0 AS readable FROM poolguard.terminations;

-- Disabled policies are not in force.
UPDATE poolguard.policy SET enabled = false WHERE name = 'regress';
SELECT poolguard.reload();
SELECT policy FROM poolguard.sessions WHERE pid = pg_backend_pid();

-- Non-superusers may not change policies, reload or reap; they may read the views.
CREATE ROLE regress_poolguard_user;
SET ROLE regress_poolguard_user;
INSERT INTO poolguard.policy (name) VALUES ('mine');
DELETE FROM poolguard.policy;
SELECT poolguard.reload();
SELECT * FROM poolguard.reap();
-- Other roles' sessions are not shown at all (pg_read_all_stats sees them).
SELECT count(*) AS others_visible FROM poolguard.sessions WHERE role_name <> current_user;
RESET ROLE;
DROP ROLE regress_poolguard_user;

-- The GUCs the reaper reads.
SELECT name, setting, unit, context FROM pg_settings WHERE name LIKE 'poolguard.%' ORDER BY name;

DELETE FROM poolguard.policy;
