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

CREATE FUNCTION poolguard.cdc_key() RETURNS bytea
    LANGUAGE c VOLATILE PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'poolguard_cdc_key';
COMMENT ON FUNCTION poolguard.cdc_key() IS
    'this database''s key of the "mac" of pg_poolguard''s logical decoding messages (HMAC-SHA256): a change-data-capture consumer verifies every message with it';
-- Owner only: whoever holds the key can forge this database's messages.  A superuser grants
-- EXECUTE to the change-data-capture consumer's role (see the cache invalidation docs).
REVOKE ALL ON FUNCTION poolguard.cdc_key() FROM PUBLIC;

-- pg_poolguard: table tracking.  poolguard.track_table(t) installs two triggers on t that
-- publish its committed row changes as invalidations: (scope, primary key) for each written row
-- and (table_scope, NULL) once per transaction; TRUNCATE invalidates both scopes whole.  They are
-- ordinary triggers on the table (pg_dump dumps them with it; partitions inherit the row trigger),
-- so the list of tracked tables is read from pg_trigger: nothing to keep in sync, nothing to
-- restore separately.  The functions run with the caller's rights and accept only the table's
-- owner; their search_path is pinned and every name is qualified.

CREATE FUNCTION poolguard.tracking_trigger() RETURNS trigger
    LANGUAGE c PARALLEL UNSAFE
    AS 'MODULE_PATHNAME', 'poolguard_tracking_trigger';
COMMENT ON FUNCTION poolguard.tracking_trigger() IS
    'the trigger poolguard.track_table() installs: tracking_trigger(scope, table_scope, key_column [, ...])';
-- Publishing invalidations is the owner's by default, as for invalidate(): GRANT EXECUTE on it
-- and on track_table() to the role that runs your migrations (CREATE TRIGGER checks EXECUTE).
REVOKE ALL ON FUNCTION poolguard.tracking_trigger() FROM PUBLIC;

-- The table's owner (or a member of the owning role), or an error.  Internal.
CREATE FUNCTION poolguard._tracked_table_check(tbl regclass)
    RETURNS TABLE (relname name, nspname name, relkind "char", relispartition boolean)
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    owner oid;
BEGIN
    IF tbl IS NULL THEN
        RAISE EXCEPTION 'table must not be NULL' USING ERRCODE = '22004';
    END IF;
    SELECT c.relname, n.nspname, c.relkind, c.relispartition, c.relowner
      INTO relname, nspname, relkind, relispartition, owner
      FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
     WHERE c.oid OPERATOR(pg_catalog.=) tbl;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'relation with OID % does not exist', tbl::oid USING ERRCODE = '42P01';
    END IF;
    IF relkind NOT IN ('r', 'p') THEN
        RAISE EXCEPTION '"%" is not a table', tbl
            USING ERRCODE = '42809',
                  DETAIL = 'Only ordinary and partitioned tables can be tracked.';
    END IF;
    IF NOT pg_catalog.pg_has_role(owner, 'USAGE') THEN
        RAISE EXCEPTION 'must be owner of table %', tbl
            USING ERRCODE = '42501',
                  HINT = 'Run it as the role that owns the table (the one that runs your migrations).';
    END IF;
    RETURN NEXT;
END
$$;
-- It changes nothing and tells only what pg_class tells anyone: callable by whoever may call
-- track_table() or untrack_table(), which run with the caller's rights.
REVOKE ALL ON FUNCTION poolguard._tracked_table_check(regclass) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION poolguard._tracked_table_check(regclass) TO PUBLIC;

CREATE FUNCTION poolguard.track_table(tbl regclass, scope text DEFAULT NULL, table_scope text DEFAULT NULL)
    RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    rel record;
    keys text[];
    args text;
BEGIN
    SELECT * INTO rel FROM poolguard._tracked_table_check(tbl);
    IF rel.relispartition THEN
        RAISE EXCEPTION '"%" is a partition', tbl
            USING ERRCODE = '42809',
                  DETAIL = 'The partitioned table''s tracking covers its partitions.',
                  HINT = 'Track the partitioned table at the root of the tree.';
    END IF;
    SELECT pg_catalog.array_agg(a.attname::text ORDER BY k.ord) INTO keys
      FROM pg_catalog.pg_index i,
           LATERAL pg_catalog.unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
           JOIN pg_catalog.pg_attribute a ON a.attnum OPERATOR(pg_catalog.=) k.attnum
     WHERE i.indrelid OPERATOR(pg_catalog.=) tbl AND i.indisprimary
       AND a.attrelid OPERATOR(pg_catalog.=) tbl;
    IF keys IS NULL THEN
        RAISE EXCEPTION 'table % has no primary key', tbl
            USING ERRCODE = '55000',
                  DETAIL = 'A tracked table''s row changes are published by primary key.',
                  HINT = 'Add a primary key, or use poolguard.invalidation_trigger() with the key columns of your choice.';
    END IF;
    scope := coalesce(scope, CASE WHEN rel.nspname OPERATOR(pg_catalog.=) 'public' THEN rel.relname::text
                                  ELSE rel.nspname::text OPERATOR(pg_catalog.||) '.' OPERATOR(pg_catalog.||) rel.relname::text END);
    table_scope := coalesce(table_scope, 'table:' OPERATOR(pg_catalog.||) scope);
    IF pg_catalog.octet_length(scope) NOT BETWEEN 1 AND 63 OR pg_catalog.octet_length(table_scope) NOT BETWEEN 1 AND 63 THEN
        RAISE EXCEPTION 'invalidation scope is too long'
            USING ERRCODE = '42622',
                  DETAIL = pg_catalog.format('Scopes "%s" and "%s" must be 1 to 63 bytes long.', scope, table_scope),
                  HINT = 'Pass shorter names: poolguard.track_table(table, scope => ..., table_scope => ...).';
    END IF;
    IF pg_catalog.strpos(scope, E'\\') OPERATOR(pg_catalog.>) 0 OR pg_catalog.strpos(table_scope, E'\\') OPERATOR(pg_catalog.>) 0 THEN
        RAISE EXCEPTION 'tracking scope must not contain a backslash'
            USING ERRCODE = '22023';
    END IF;
    IF scope OPERATOR(pg_catalog.=) table_scope THEN
        RAISE EXCEPTION 'scope and table_scope must differ'
            USING ERRCODE = '22023',
                  DETAIL = 'A whole-scope invalidation of the row scope would drop every cached row at each write.';
    END IF;
    args := pg_catalog.array_to_string(ARRAY(SELECT pg_catalog.quote_literal(x)
                                                FROM pg_catalog.unnest(ARRAY[scope, table_scope] OPERATOR(pg_catalog.||) keys) AS x), ', ');
    -- CREATE OR REPLACE: calling it again (with other scopes, or after a primary key change) is safe.
    EXECUTE pg_catalog.format('CREATE OR REPLACE TRIGGER poolguard_track AFTER INSERT OR UPDATE OR DELETE ON %s '
                              'FOR EACH ROW EXECUTE FUNCTION poolguard.tracking_trigger(%s)', tbl, args);
    EXECUTE pg_catalog.format('CREATE OR REPLACE TRIGGER poolguard_track_truncate AFTER TRUNCATE ON %s '
                              'FOR EACH STATEMENT EXECUTE FUNCTION poolguard.tracking_trigger(%L, %L)',
                              tbl, scope, table_scope);
END
$$;
COMMENT ON FUNCTION poolguard.track_table(regclass, text, text) IS
    'publishes the table''s committed row changes: (scope, primary key) per row, (table_scope, NULL) per transaction; defaults: the table''s name and ''table:'' || scope';
REVOKE ALL ON FUNCTION poolguard.track_table(regclass, text, text) FROM PUBLIC;

CREATE FUNCTION poolguard.untrack_table(tbl regclass) RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    t name;
BEGIN
    PERFORM FROM poolguard._tracked_table_check(tbl);
    FOR t IN SELECT tg.tgname FROM pg_catalog.pg_trigger tg
              WHERE tg.tgrelid OPERATOR(pg_catalog.=) tbl AND tg.tgparentid OPERATOR(pg_catalog.=) 0
                AND tg.tgname IN ('poolguard_track', 'poolguard_track_truncate')
                AND tg.tgfoid OPERATOR(pg_catalog.=) 'poolguard.tracking_trigger()'::pg_catalog.regprocedure
    LOOP
        EXECUTE pg_catalog.format('DROP TRIGGER %I ON %s', t, tbl);
    END LOOP;
END
$$;
COMMENT ON FUNCTION poolguard.untrack_table(regclass) IS
    'removes what poolguard.track_table() installed (nothing when the table is not tracked)';
REVOKE ALL ON FUNCTION poolguard.untrack_table(regclass) FROM PUBLIC;

CREATE VIEW poolguard.tracked_tables AS
    SELECT tg.tgrelid::pg_catalog.regclass AS table_name,
           a.args[1] AS scope,
           a.args[2] AS table_scope,
           a.args[3:pg_catalog.array_length(a.args, 1) OPERATOR(pg_catalog.-) 1] AS key_columns,
           c.relkind OPERATOR(pg_catalog.=) 'p' AS partitioned
      FROM pg_catalog.pg_trigger tg
      JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) tg.tgrelid
      CROSS JOIN LATERAL (
          SELECT ARRAY(SELECT pg_catalog.replace(x, E'\\\\', E'\\')
                         FROM pg_catalog.unnest(pg_catalog.string_to_array(
                                  pg_catalog.encode(tg.tgargs, 'escape'), E'\\000')) WITH ORDINALITY AS u(x, n)
                        ORDER BY n) AS args) a
     WHERE tg.tgname OPERATOR(pg_catalog.=) 'poolguard_track'
       AND tg.tgparentid OPERATOR(pg_catalog.=) 0
       AND tg.tgfoid OPERATOR(pg_catalog.=) 'poolguard.tracking_trigger()'::pg_catalog.regprocedure;
COMMENT ON VIEW poolguard.tracked_tables IS
    'tables poolguard.track_table() tracks in this database, with their scopes and key columns';
-- What pg_trigger shows anyone anyway.
REVOKE ALL ON poolguard.tracked_tables FROM PUBLIC;
GRANT SELECT ON poolguard.tracked_tables TO PUBLIC;
