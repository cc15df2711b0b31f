
-- ---------------------------------------------------------------------------------------------
-- The reaper (src/reaper/): one pass on demand, and loading the policies now.
-- ---------------------------------------------------------------------------------------------
CREATE FUNCTION poolguard.reap(dry_run boolean DEFAULT false,
                               OUT pid integer, OUT reason text, OUT policy text, OUT action text)
    RETURNS SETOF record
    LANGUAGE c
    AS 'MODULE_PATHNAME', 'poolguard_reap';
COMMENT ON FUNCTION poolguard.reap(boolean) IS 'one reaper pass now, in this backend; returns the actions taken';
REVOKE ALL ON FUNCTION poolguard.reap(boolean) FROM PUBLIC;

CREATE FUNCTION poolguard.reload() RETURNS integer
    LANGUAGE c
    AS 'MODULE_PATHNAME', 'poolguard_reload';
COMMENT ON FUNCTION poolguard.reload() IS 'load the policies now; returns how many are in force';
REVOKE ALL ON FUNCTION poolguard.reload() FROM PUBLIC;
