-- pg_poolguard: transactional cache invalidation (generations, notifications, triggers).

CREATE FUNCTION poolguard.invalidate(scope text, key text DEFAULT NULL) RETURNS void
    LANGUAGE c VOLATILE PARALLEL UNSAFE
    AS 'MODULE_PATHNAME', 'poolguard_invalidate';
COMMENT ON FUNCTION poolguard.invalidate(text, text) IS
    'schedules the invalidation of (scope, key), or of the whole scope when key is NULL, for publication at commit';
-- Only the owner may invalidate by default: GRANT EXECUTE to the application role (see docs/security.md).
REVOKE ALL ON FUNCTION poolguard.invalidate(text, text) FROM PUBLIC;

CREATE FUNCTION poolguard.cache_generation(scope text, key text DEFAULT NULL) RETURNS bigint
    LANGUAGE c VOLATILE PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'poolguard_cache_generation';
COMMENT ON FUNCTION poolguard.cache_generation(text, text) IS
    'current generation of (scope, key): the greater of the key''s and the scope''s; read it before the data';
REVOKE ALL ON FUNCTION poolguard.cache_generation(text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION poolguard.cache_generation(text, text) TO PUBLIC;

CREATE FUNCTION poolguard.invalidation_trigger() RETURNS trigger
    LANGUAGE c PARALLEL UNSAFE
    AS 'MODULE_PATHNAME', 'poolguard_invalidation_trigger';
COMMENT ON FUNCTION poolguard.invalidation_trigger() IS
    'AFTER ... FOR EACH ROW trigger: invalidation_trigger(''scope'', ''key_column'' [, ...]) invalidates the key columns'' old and new values';
REVOKE ALL ON FUNCTION poolguard.invalidation_trigger() FROM PUBLIC;

CREATE FUNCTION poolguard.invalidation_stats(
        OUT scope text, OUT invalidations bigint, OUT last_generation bigint,
        OUT last_invalidated_at timestamptz)
    RETURNS SETOF record
    LANGUAGE c VOLATILE PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'poolguard_invalidation_stats';
REVOKE ALL ON FUNCTION poolguard.invalidation_stats() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION poolguard.invalidation_stats() TO pg_monitor;

CREATE VIEW poolguard.invalidation_stats AS
    SELECT scope, invalidations, last_generation, last_invalidated_at
      FROM poolguard.invalidation_stats();
COMMENT ON VIEW poolguard.invalidation_stats IS
    'published invalidations per scope of this database since server start (scope NULL: scopes past the first 256)';
REVOKE ALL ON poolguard.invalidation_stats FROM PUBLIC;
GRANT SELECT ON poolguard.invalidation_stats TO pg_monitor;

CREATE FUNCTION poolguard.invalidation_publishers(
        OUT datid oid, OUT pid integer, OUT pending bigint, OUT ring_used bigint,
        OUT publisher_starts bigint, OUT start_failures bigint, OUT notifications bigint,
        OUT items_published bigint, OUT resyncs bigint, OUT ring_overflows bigint,
        OUT queue_warnings bigint, OUT last_queue_usage double precision,
        OUT last_published_at timestamptz)
    RETURNS SETOF record
    LANGUAGE c VOLATILE PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'poolguard_invalidation_publishers';
REVOKE ALL ON FUNCTION poolguard.invalidation_publishers() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION poolguard.invalidation_publishers() TO pg_monitor;

CREATE VIEW poolguard.invalidation_publishers AS
    SELECT d.datname, p.*
      FROM poolguard.invalidation_publishers() p
      LEFT JOIN pg_catalog.pg_database d ON d.oid OPERATOR(pg_catalog.=) p.datid;
COMMENT ON VIEW poolguard.invalidation_publishers IS
    'per-database publisher state and counters: notifications sent, resyncs, ring overflows, worker start failures, NOTIFY queue warnings';
REVOKE ALL ON poolguard.invalidation_publishers FROM PUBLIC;
GRANT SELECT ON poolguard.invalidation_publishers TO pg_monitor;

CREATE FUNCTION poolguard.publisher_pids() RETURNS SETOF integer
    LANGUAGE c VOLATILE PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'poolguard_publisher_pids';
COMMENT ON FUNCTION poolguard.publisher_pids() IS
    'pids of the running pg_poolguard publisher(s) of the current database: a listener accepts notifications only from these';
-- Deliberately PUBLIC: any role that may connect may NOTIFY on the channel, so every listening
-- app role must be able to tell the publisher's notifications from forged ones.  It returns
-- only the current database's publisher pids (pg_stat_activity shows them there anyway) and
-- nothing about other databases.
GRANT EXECUTE ON FUNCTION poolguard.publisher_pids() TO PUBLIC;

CREATE FUNCTION poolguard.invalidations_since(
        after bigint, max_wait interval DEFAULT '0',
        OUT kind text, OUT generation bigint, OUT scope text, OUT key text)
    RETURNS SETOF record
    LANGUAGE c VOLATILE PARALLEL UNSAFE
    AS 'MODULE_PATHNAME', 'poolguard_invalidations_since';
COMMENT ON FUNCTION poolguard.invalidations_since(bigint, interval) IS
    'this database''s invalidations with a generation greater than after, oldest first (or one resync row), waiting up to max_wait for the first; read-only: works on hot standbys and behind transaction poolers';
-- Deliberately PUBLIC: it is the LISTEN of readers that cannot LISTEN (standbys, transaction
-- poolers).  Any role that may connect to a database may LISTEN to its notifications, which carry
-- the same items; it returns only the current database's items.
REVOKE ALL ON FUNCTION poolguard.invalidations_since(bigint, interval) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION poolguard.invalidations_since(bigint, interval) TO PUBLIC;
