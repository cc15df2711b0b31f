-- Every released version installs, and updates step by step to the current one (like
-- pg_stat_statements' oldextversions).  In a database of its own: the tests before keep theirs.
-- (test/t/080_release_upgrade.pl compares the updated catalog with a fresh install in full.)
CREATE DATABASE regress_poolguard_old;
\c regress_poolguard_old

CREATE EXTENSION pg_poolguard VERSION '1.0';
SELECT extversion FROM pg_extension WHERE extname = 'pg_poolguard';
-- 1.0's session_info(): 13 columns, served by the library's 1.0 entry point.
SELECT prosrc AS entry_point, array_length(proargnames, 1) AS columns
  FROM pg_proc WHERE oid = 'poolguard.session_info()'::regprocedure;
SELECT count(*) > 0 AS sessions_work FROM poolguard.sessions;
SELECT to_regprocedure('poolguard.publisher_pids()') IS NULL AS no_publisher_pids;
SELECT has_table_privilege('public', 'poolguard.stats', 'SELECT') AS public_reads_stats;
-- The paths the control file and versions/ offer.
SELECT source, target, path FROM pg_extension_update_paths('pg_poolguard')
 WHERE path IS NOT NULL ORDER BY 1, 2;

ALTER EXTENSION pg_poolguard UPDATE TO '1.1';
SELECT extversion FROM pg_extension WHERE extname = 'pg_poolguard';
SELECT prosrc AS entry_point, array_length(proargnames, 1) AS columns
  FROM pg_proc WHERE oid = 'poolguard.session_info()'::regprocedure;
SELECT count(*) > 0 AS sessions_work FROM poolguard.sessions;
SELECT to_regprocedure('poolguard.publisher_pids()') IS NOT NULL AS publisher_pids,
       to_regprocedure('poolguard.invalidations_since(bigint, interval)') IS NOT NULL AS invalidations_since;
SELECT has_table_privilege('public', 'poolguard.stats', 'SELECT') AS public_reads_stats;

ALTER EXTENSION pg_poolguard UPDATE TO '1.2';
SELECT extversion FROM pg_extension WHERE extname = 'pg_poolguard';
-- No way down: downgrades are not supported.
SELECT count(*) AS downgrade_paths FROM pg_extension_update_paths('pg_poolguard')
 WHERE path IS NOT NULL AND source > target;

\c contrib_regression
DROP DATABASE regress_poolguard_old;
