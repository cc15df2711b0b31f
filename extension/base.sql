-- pg_poolguard: foundation.
-- (extension/*.sql are concatenated, in the order the Makefile's SQL_PARTS lists them, into
-- pg_poolguard--$(EXTVERSION).sql, the full install script of the current version; versions/
-- holds the frozen scripts of released versions and the upgrade steps.)

\echo Use "CREATE EXTENSION pg_poolguard" to load this file. \quit

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
                  DETAIL = pg_catalog.format('Schema poolguard existed before CREATE EXTENSION pg_poolguard, which installs into it. Role "%s" could rename the schema and put functions of its own where superusers call pg_poolguard''s.', owner_name),
                  HINT = 'Check what schema poolguard contains, then drop it or make a superuser its owner (ALTER SCHEMA poolguard OWNER TO a superuser) and revoke CREATE on it from other roles; then run CREATE EXTENSION pg_poolguard again.';
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
                  HINT = 'Check what schema poolguard contains, revoke CREATE on it from those roles, then run CREATE EXTENSION pg_poolguard again.';
    END IF;
END
$check_schema$;

CREATE FUNCTION poolguard.version() RETURNS text
    LANGUAGE c STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'poolguard_version';
COMMENT ON FUNCTION poolguard.version() IS 'pg_poolguard library version';
REVOKE ALL ON FUNCTION poolguard.version() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION poolguard.version() TO PUBLIC;

-- Privileges are decided object by object (test/sql/privileges.sql lists every one and fails when an
-- object has no explicit decision): PUBLIC may use only what a plain application needs
-- (version, cache_generation, its own rows of sessions and terminations); monitoring goes to
-- pg_monitor; policy administration, triggers and internal functions stay with the owner.
GRANT USAGE ON SCHEMA poolguard TO PUBLIC;
