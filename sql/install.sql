-- The extension installs into its fixed schema and reports its version.
CREATE EXTENSION pg_poolguard;
SELECT poolguard.version();
SELECT extname, extrelocatable, nspname
  FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
 WHERE extname = 'pg_poolguard';
-- Not relocatable.
ALTER EXTENSION pg_poolguard SET SCHEMA public;
