-- pg_poolguard 1.1 -> 1.2: ALTER EXTENSION pg_poolguard UPDATE TO '1.2'.
--
-- Frozen once 1.2 is released: later changes go into the next step script.  After this step the
-- catalog equals a fresh install of 1.2 (extension/*.sql); test/t/080_release_upgrade.pl compares them.

\echo Use "ALTER EXTENSION pg_poolguard UPDATE TO '1.2'" to load this file. \quit

-- Issue 19: the key of the logical decoding messages' authentication tag.
CREATE FUNCTION poolguard.cdc_key() RETURNS bytea
    LANGUAGE c VOLATILE PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'poolguard_cdc_key';
COMMENT ON FUNCTION poolguard.cdc_key() IS
    'this database''s key of the "mac" of pg_poolguard''s logical decoding messages (HMAC-SHA256): a change-data-capture consumer verifies every message with it';
REVOKE ALL ON FUNCTION poolguard.cdc_key() FROM PUBLIC;
