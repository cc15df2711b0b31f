-- The extension installs into its fixed schema and reports its version.
CREATE EXTENSION pg_poolguard;
SELECT poolguard.version();
-- The library and the installed SQL are the same release (EXTVERSION X.Y, library X.Y.0).
SELECT poolguard.version() = extversion || '.0' AS library_matches_sql
  FROM pg_extension WHERE extname = 'pg_poolguard';
SELECT extname, extrelocatable, nspname
  FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
 WHERE extname = 'pg_poolguard';
-- Not relocatable.
ALTER EXTENSION pg_poolguard SET SCHEMA public;
