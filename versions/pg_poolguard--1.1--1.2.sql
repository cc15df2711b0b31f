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
