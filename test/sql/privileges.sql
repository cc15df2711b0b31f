-- The privilege manifest: every function, view and table of pg_poolguard with who may use it.
-- A new object without an explicit GRANT/REVOKE decision shows up in the first query and fails
-- this test; a changed decision changes the second.
CREATE TEMP VIEW poolguard_objects AS
WITH members AS (
    SELECT d.classid, d.objid
      FROM pg_depend d JOIN pg_extension e ON e.oid = d.refobjid
     WHERE d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e' AND e.extname = 'pg_poolguard')
SELECT 'function' AS kind, p.oid::regprocedure::text AS object, p.proacl AS acl, p.proowner AS owner
  FROM members m JOIN pg_proc p ON m.classid = 'pg_proc'::regclass AND p.oid = m.objid
UNION ALL
SELECT CASE c.relkind WHEN 'r' THEN 'table' WHEN 'v' THEN 'view' ELSE c.relkind::text END,
       c.oid::regclass::text, c.relacl, c.relowner
  FROM members m JOIN pg_class c ON m.classid = 'pg_class'::regclass AND c.oid = m.objid
UNION ALL
SELECT 'schema', n.nspname::text, n.nspacl, n.nspowner FROM pg_namespace n WHERE n.nspname = 'poolguard';

-- Objects left with default privileges (nobody decided): none.
SELECT kind, object FROM poolguard_objects WHERE acl IS NULL ORDER BY 1, 2;

-- Who may use what, besides the owner.
SELECT o.kind, o.object,
       coalesce(string_agg(CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE a.grantee::regrole::text END
                           || ' ' || a.privilege_type, ', ' ORDER BY 1),
                '(owner only)') AS granted
  FROM poolguard_objects o
  LEFT JOIN LATERAL aclexplode(o.acl) a ON a.grantee <> o.owner
 GROUP BY o.kind, o.object
 ORDER BY 1, 2;

-- What a plain application role can and cannot do.
CREATE ROLE regress_poolguard_app;
CREATE ROLE regress_poolguard_monitor IN ROLE pg_monitor;
SET ROLE regress_poolguard_app;
SELECT poolguard.version() IS NOT NULL AS version;
SELECT poolguard.cache_generation('regress_scope') > 0 AS cache_generation;
SELECT count(*) >= 0 AS publisher_pids FROM poolguard.publisher_pids();
SELECT kind FROM poolguard.invalidations_since(0);
SELECT count(*) AS others_sessions FROM poolguard.sessions WHERE role_name <> current_user;
SELECT count(*) AS others_terminations FROM poolguard.terminations WHERE role_name <> current_user;
SELECT count(*) AS others_app_summary FROM poolguard.app_summary WHERE role_name IS DISTINCT FROM current_user;
SELECT count(*) AS own_app_summary FROM poolguard.app_summary WHERE role_name = current_user;
SELECT count(*) AS others_pool_advice FROM poolguard.pool_advice WHERE role_name IS DISTINCT FROM current_user;
SELECT poolguard.worker_pid();
SELECT poolguard.metrics();
SELECT * FROM poolguard.stats;
SELECT * FROM poolguard.policy_status;
SELECT * FROM poolguard.identity_status;
SELECT * FROM poolguard.invalidation_stats;
SELECT * FROM poolguard.invalidation_publishers;
SELECT * FROM poolguard.memory;
SELECT poolguard.reload();
SELECT * FROM poolguard.reap(true);
SELECT poolguard.invalidate('regress_scope');
SELECT count(*) >= 0 AS tracked_tables FROM poolguard.tracked_tables;
CREATE TEMP TABLE regress_tracked (id int PRIMARY KEY);
SELECT poolguard.track_table('regress_tracked');
SELECT poolguard.untrack_table('regress_tracked');
CREATE TRIGGER track AFTER INSERT ON regress_tracked
    FOR EACH ROW EXECUTE FUNCTION poolguard.tracking_trigger('s', 't', 'id');
DROP TABLE regress_tracked;
SELECT poolguard.cdc_key();
SELECT poolguard.reset_stats();
-- No role can make the worker reload through a trigger of its own.
CREATE TEMP TABLE regress_wakeup (x int);
CREATE TRIGGER wake AFTER INSERT ON regress_wakeup
    FOR EACH STATEMENT EXECUTE FUNCTION poolguard.policy_changed();
DROP TABLE regress_wakeup;
RESET ROLE;

-- Even where EXECUTE was granted, policy_changed() serves only the policy table.
CREATE TEMP TABLE regress_wakeup (x int);
CREATE TRIGGER wake AFTER INSERT ON regress_wakeup
    FOR EACH STATEMENT EXECUTE FUNCTION poolguard.policy_changed();
INSERT INTO regress_wakeup VALUES (1);
DROP TABLE regress_wakeup;

-- Monitoring roles read the monitoring surface.
SET ROLE regress_poolguard_monitor;
SELECT poolguard.metrics() LIKE '%poolguard_sessions%' AS metrics;
SELECT count(*) >= 0 AS stats FROM poolguard.stats;
SELECT count(*) >= 0 AS policy_status FROM poolguard.policy_status;
SELECT count(*) >= 0 AS identity_status FROM poolguard.identity_status;
SELECT count(*) >= 0 AS invalidation_stats FROM poolguard.invalidation_stats;
SELECT count(*) >= 0 AS invalidation_publishers FROM poolguard.invalidation_publishers;
SELECT count(*) > 0 AS sees_all_sessions FROM poolguard.sessions WHERE role_name <> current_user;
SELECT count(*) > 0 AS sees_all_app_summary FROM poolguard.app_summary WHERE role_name <> current_user;
SELECT count(*) >= 0 AS pool_advice FROM poolguard.pool_advice;
SELECT count(*) FILTER (WHERE figure = 'shared_memory_size' AND bytes > 0) AS shared_memory_size,
       count(*) FILTER (WHERE figure = 'client_backends' AND processes > 0) > 0 AS client_backends
  FROM poolguard.memory;
SELECT poolguard.reload();
SELECT poolguard.cdc_key();
RESET ROLE;

DROP ROLE regress_poolguard_app;
DROP ROLE regress_poolguard_monitor;
