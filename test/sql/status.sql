-- Status views and counters: shapes, per-policy rows, reset_stats() and its permission.
INSERT INTO poolguard.policy (name, role_name, max_connections, on_limit)
VALUES ('capped', 'no_such_role_either', 5, 'evict_idle');
INSERT INTO poolguard.policy (name, application_name) VALUES ('uncapped', 'pg\_regress%');
SELECT poolguard.reload();
SELECT policy, sessions, max_connections, rejected, evicted, terminated
  FROM poolguard.policy_status ORDER BY policy;
-- This session matches 'uncapped' but, as a superuser, is exempt: it is never counted.
SELECT policy, sessions, active FROM poolguard.policy_status WHERE policy = 'uncapped';
SELECT scans >= 0 AS scans, terminated, cancelled, dry_run_actions, rejected_connections,
       evicted_connections, stats_reset <= now() AS reset_in_past
  FROM poolguard.stats;
-- In one transaction: now() is its start, so "just reset" needs no bound on the machine's speed.
BEGIN;
SELECT poolguard.reset_stats() >= now() AS reset;
SELECT terminated, rejected_connections, stats_reset >= now() AS just_reset FROM poolguard.stats;
COMMIT;
CREATE ROLE regress_poolguard_reader;
SET ROLE regress_poolguard_reader;
SELECT poolguard.reset_stats();
-- Monitoring views belong to pg_monitor.
SELECT count(*) >= 0 AS readable FROM poolguard.stats;
SELECT count(*) >= 0 AS readable FROM poolguard.policy_status;
RESET ROLE;
GRANT pg_monitor TO regress_poolguard_reader;
SET ROLE regress_poolguard_reader;
SELECT poolguard.reset_stats();
SELECT count(*) >= 0 AS readable FROM poolguard.stats;
SELECT count(*) >= 0 AS readable FROM poolguard.policy_status;
RESET ROLE;
DROP ROLE regress_poolguard_reader;
DELETE FROM poolguard.policy;
SELECT poolguard.reload();
