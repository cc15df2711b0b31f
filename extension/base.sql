-- pg_poolguard: foundation.
-- (extension/*.sql are concatenated, in the order the Makefile's SQL_PARTS lists them, into
-- pg_poolguard--$(EXTVERSION).sql, the full install script of the current version; versions/
-- holds the frozen scripts of released versions and the upgrade steps.)

\echo Use "CREATE EXTENSION pg_poolguard" to load this file. \quit

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
