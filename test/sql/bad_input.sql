-- Bad input to every SQL entry point: a clear error, nothing changed.
SELECT * FROM poolguard.reap(NULL);
SELECT * FROM poolguard.reap('perhaps');
SELECT poolguard.version(1);
SELECT poolguard.reload(NULL);
SELECT count(*) FROM poolguard.terminations;
-- Huge and odd values in the policy table.
INSERT INTO poolguard.policy (name, idle_timeout) VALUES ('huge', '100000000 years');
INSERT INTO poolguard.policy (name, max_idle) VALUES ('huge', 2147483648);
INSERT INTO poolguard.policy (name, max_idle_memory) VALUES ('huge', 9223372036854775807);
INSERT INTO poolguard.policy (name, application_name) VALUES ('long', repeat('x', 128));
INSERT INTO poolguard.policy (name, client_addr) VALUES ('v6', 'fd00::/8');
SELECT name, max_idle_memory, client_addr FROM poolguard.policy ORDER BY name;
SELECT poolguard.reload();
-- A huge limit never overflows a deadline.
SELECT count(*) >= 1 AS sessions FROM poolguard.sessions;
DELETE FROM poolguard.policy;
SELECT poolguard.reload();
-- Nothing pg_poolguard ships runs as its owner without a pinned search_path.
SELECT p.proname
  FROM pg_proc p
 WHERE p.pronamespace = 'poolguard'::regnamespace AND p.prosecdef
   AND NOT EXISTS (SELECT 1 FROM unnest(p.proconfig) c WHERE c LIKE 'search_path=%');
