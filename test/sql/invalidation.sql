-- Transactional cache invalidation: generations move only at commit, once per (scope, key).
-- Generations are seeded from the clock, so the tests compare them with each other.
\set VERBOSITY default
SELECT poolguard.cache_generation('mentor', '1') AS g0 \gset
SELECT poolguard.cache_generation('mentor') AS scope0 \gset

-- Inside the transaction nothing moves; after COMMIT the key is newer, its scope is not.
BEGIN;
SELECT poolguard.invalidate('mentor', '1');
SELECT poolguard.cache_generation('mentor', '1') = :g0 AS unchanged_before_commit;
COMMIT;
SELECT poolguard.cache_generation('mentor', '1') > :g0 AS newer_after_commit,
       poolguard.cache_generation('mentor') = :scope0 AS scope_unchanged,
       poolguard.cache_generation('mentor', '2') = :scope0 AS other_key_unchanged;
SELECT poolguard.cache_generation('mentor', '1') AS g1 \gset

-- Outside an explicit transaction the statement's own commit publishes.
SELECT poolguard.invalidate('mentor', '1');
SELECT poolguard.cache_generation('mentor', '1') > :g1 AS autocommit_publishes;
SELECT poolguard.cache_generation('mentor', '1') AS g1 \gset

-- ROLLBACK publishes nothing.
BEGIN;
SELECT poolguard.invalidate('mentor', '1');
ROLLBACK;
SELECT poolguard.cache_generation('mentor', '1') = :g1 AS rollback_publishes_nothing;

-- ROLLBACK TO a savepoint taken before the call drops it; earlier calls stay.
BEGIN;
SELECT poolguard.invalidate('mentor', '1');
SAVEPOINT s1;
SELECT poolguard.invalidate('mentor', '2');
SAVEPOINT s2;
SELECT poolguard.invalidate('mentor', '3');
RELEASE SAVEPOINT s2;
ROLLBACK TO SAVEPOINT s1;
SELECT poolguard.invalidate('mentor', '4');
COMMIT;
SELECT poolguard.cache_generation('mentor', '1') > :g1 AS kept_before_savepoint,
       poolguard.cache_generation('mentor', '2') = :scope0 AS dropped_in_savepoint,
       poolguard.cache_generation('mentor', '3') = :scope0 AS dropped_in_released_child,
       poolguard.cache_generation('mentor', '4') > :g1 AS kept_after_rollback_to;

-- A key first asked for inside a savepoint that rolls back, then again outside it, is kept.
SELECT poolguard.cache_generation('mentor', '5') AS g5 \gset
BEGIN;
SAVEPOINT s;
SELECT poolguard.invalidate('mentor', '5');
ROLLBACK TO SAVEPOINT s;
SELECT poolguard.invalidate('mentor', '5');
COMMIT;
SELECT poolguard.cache_generation('mentor', '5') > :g5 AS asked_again_after_rollback_to;

-- Coalescing: many calls for the same (scope, key) in one transaction publish once.
SELECT coalesce((SELECT invalidations FROM poolguard.invalidation_stats WHERE scope = 'coalesce'), 0) AS n0 \gset
BEGIN;
SELECT count(poolguard.invalidate('coalesce', 'k')) FROM generate_series(1, 100);
SELECT count(poolguard.invalidate('coalesce', (i % 3)::text)) FROM generate_series(1, 300) i;
COMMIT;
SELECT invalidations - :n0 AS published_once_each FROM poolguard.invalidation_stats WHERE scope = 'coalesce';

-- Many distinct keys in one transaction: each published, each with its own generation.
SELECT poolguard.cache_generation('bulk', '1') AS b0 \gset
BEGIN;
SELECT count(poolguard.invalidate('bulk', i::text)) FROM generate_series(1, 2000) i;
COMMIT;
SELECT count(*) AS all_newer
  FROM generate_series(1, 2000) i WHERE poolguard.cache_generation('bulk', i::text) > :b0;
SELECT invalidations AS bulk_invalidations FROM poolguard.invalidation_stats WHERE scope = 'bulk';

-- Scope-wide: key NULL makes every key of the scope newer, and other scopes untouched.
SELECT poolguard.cache_generation('school') AS s0 \gset
SELECT poolguard.cache_generation('mentor', '1') AS m0 \gset
SELECT poolguard.invalidate('school');
SELECT poolguard.cache_generation('school') > :s0 AS scope_newer,
       poolguard.cache_generation('school', 'any key') > :s0 AS every_key_newer,
       poolguard.cache_generation('school', 'any key') = poolguard.cache_generation('school') AS key_follows_scope,
       poolguard.cache_generation('mentor', '1') = :m0 AS other_scope_untouched;
-- A key invalidated after its scope is newer than the scope.
SELECT poolguard.invalidate('school', 'x');
SELECT poolguard.cache_generation('school', 'x') > poolguard.cache_generation('school') AS key_after_scope;

-- Generations strictly increase from commit to commit.
SELECT poolguard.cache_generation('order', 'a') AS o0 \gset
SELECT poolguard.invalidate('order', 'a');
SELECT poolguard.cache_generation('order', 'a') AS o1 \gset
SELECT poolguard.invalidate('order', 'a');
SELECT :o0 < :o1 AND :o1 < poolguard.cache_generation('order', 'a') AS strictly_increasing;

-- The empty string is a key, distinct from "the whole scope".
SELECT poolguard.cache_generation('empty') AS e0 \gset
SELECT poolguard.invalidate('empty', '');
SELECT poolguard.cache_generation('empty', '') > :e0 AS empty_key_newer,
       poolguard.cache_generation('empty') = :e0 AS scope_not_invalidated;

-- The trigger: INSERT invalidates NEW's key, DELETE OLD's, UPDATE both when they differ.
CREATE TABLE assignment (id int PRIMARY KEY, mentor_id int, school_id int);
CREATE TRIGGER assignment_invalidates AFTER INSERT OR UPDATE OR DELETE ON assignment
    FOR EACH ROW EXECUTE FUNCTION poolguard.invalidation_trigger('mentor', 'mentor_id', 'school_id');
CREATE FUNCTION gens(VARIADIC keys text[]) RETURNS bigint[] LANGUAGE sql
    AS $$ SELECT array_agg(poolguard.cache_generation('mentor', k) ORDER BY o) FROM unnest(keys) WITH ORDINALITY u(k, o) $$;
CREATE FUNCTION moved(before bigint[], after bigint[]) RETURNS text LANGUAGE sql
    AS $$ SELECT string_agg(CASE WHEN a > b THEN 'moved' ELSE 'same' END, ',' ORDER BY o)
            FROM unnest(before, after) WITH ORDINALITY u(b, a, o) $$;
SELECT gens('10', '11', '100', '101') AS t0 \gset
INSERT INTO assignment VALUES (1, 10, 100);
SELECT moved(:'t0', gens('10', '11', '100', '101')) AS insert_invalidates_new;
SELECT gens('10', '11', '100', '101') AS t1 \gset
UPDATE assignment SET mentor_id = 11 WHERE id = 1;
SELECT moved(:'t1', gens('10', '11', '100', '101')) AS update_invalidates_old_and_new;
SELECT gens('10', '11', '100', '101') AS t2 \gset
DELETE FROM assignment WHERE id = 1;
SELECT moved(:'t2', gens('10', '11', '100', '101')) AS delete_invalidates_old;
-- A NULL key column is skipped; a rolled-back change publishes nothing.
SELECT gens('10', '11', '100', '101') AS t3 \gset
INSERT INTO assignment VALUES (2, NULL, 101);
BEGIN;
INSERT INTO assignment VALUES (3, 10, 100);
ROLLBACK;
SELECT moved(:'t3', gens('10', '11', '100', '101')) AS null_skipped_rollback_nothing;
-- TRUNCATE as a statement-level trigger invalidates the whole scope.
CREATE TRIGGER assignment_truncate AFTER TRUNCATE ON assignment
    FOR EACH STATEMENT EXECUTE FUNCTION poolguard.invalidation_trigger('mentor');
SELECT poolguard.cache_generation('mentor') AS before_truncate \gset
TRUNCATE assignment;
SELECT poolguard.cache_generation('mentor') > :before_truncate AS truncate_invalidates_scope;

-- Stats: one row per scope of this database.
SELECT scope, invalidations, last_generation = poolguard.cache_generation(scope, 'x') OR scope <> 'school' AS last_ok,
       last_invalidated_at > now() - interval '1 hour' AS recent
  FROM poolguard.invalidation_stats
 WHERE scope IN ('school', 'order', 'empty', 'mentor')
 ORDER BY scope;

-- Bad input: clear errors, nothing published.
SELECT invalidations AS before_errors FROM poolguard.invalidation_stats WHERE scope = 'mentor' \gset
SELECT poolguard.invalidate(NULL);
SELECT poolguard.invalidate(NULL, 'k');
SELECT poolguard.invalidate('');
SELECT poolguard.invalidate(repeat('s', 64));
SELECT count(*) AS scope_of_63_bytes_ok FROM (SELECT poolguard.invalidate(repeat('s', 63))) s;
SELECT poolguard.invalidate('mentor', repeat('k', 1001));
SELECT poolguard.invalidate('mentor', repeat('é', 501));
SELECT count(*) AS key_of_1000_bytes_ok FROM (SELECT poolguard.invalidate('mentor', repeat('k', 1000))) s;
SELECT poolguard.cache_generation(NULL);
SELECT poolguard.cache_generation('', 'k');
BEGIN;
SELECT poolguard.invalidate('mentor', '1');
SELECT poolguard.invalidate('', '1');
COMMIT;
SELECT invalidations - :before_errors AS only_the_valid_1000_byte_key
  FROM poolguard.invalidation_stats WHERE scope = 'mentor';
-- Trigger misuse.
SELECT poolguard.invalidation_trigger();
CREATE TABLE t_bad (id int);
CREATE TRIGGER no_scope AFTER INSERT ON t_bad FOR EACH ROW EXECUTE FUNCTION poolguard.invalidation_trigger();
INSERT INTO t_bad VALUES (1);
DROP TRIGGER no_scope ON t_bad;
CREATE TRIGGER no_column AFTER INSERT ON t_bad FOR EACH ROW EXECUTE FUNCTION poolguard.invalidation_trigger('s');
INSERT INTO t_bad VALUES (1);
DROP TRIGGER no_column ON t_bad;
CREATE TRIGGER bad_column AFTER INSERT ON t_bad FOR EACH ROW EXECUTE FUNCTION poolguard.invalidation_trigger('s', 'nope');
INSERT INTO t_bad VALUES (1);
DROP TRIGGER bad_column ON t_bad;
CREATE TRIGGER before_trigger BEFORE INSERT ON t_bad FOR EACH ROW EXECUTE FUNCTION poolguard.invalidation_trigger('s', 'id');
INSERT INTO t_bad VALUES (1);
DROP TRIGGER before_trigger ON t_bad;
CREATE TRIGGER statement_trigger AFTER INSERT ON t_bad FOR EACH STATEMENT EXECUTE FUNCTION poolguard.invalidation_trigger('s', 'id');
INSERT INTO t_bad VALUES (1);
DROP TRIGGER statement_trigger ON t_bad;
CREATE TRIGGER long_scope AFTER INSERT ON t_bad FOR EACH ROW EXECUTE FUNCTION poolguard.invalidation_trigger('ssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssss', 'id');
INSERT INTO t_bad VALUES (1);
DROP TABLE t_bad;
-- PREPARE TRANSACTION cannot carry invalidations to COMMIT PREPARED.
BEGIN;
SELECT poolguard.invalidate('mentor', '1');
PREPARE TRANSACTION 'p1';

-- Privileges: invalidate and the trigger function are the owner's; cache_generation is public
-- (an app role still needs USAGE on the schema, as for every poolguard object).
CREATE ROLE poolguard_app_test;
SELECT has_function_privilege('poolguard_app_test', 'poolguard.cache_generation(text, text)', 'EXECUTE') AS generation_public,
       has_function_privilege('poolguard_app_test', 'poolguard.invalidate(text, text)', 'EXECUTE') AS invalidate_public,
       has_function_privilege('poolguard_app_test', 'poolguard.invalidation_trigger()', 'EXECUTE') AS trigger_public;
GRANT USAGE ON SCHEMA poolguard TO poolguard_app_test;
SET ROLE poolguard_app_test;
SELECT poolguard.cache_generation('mentor', '1') > 0 AS app_can_read;
-- Every app role may learn its database's publisher pids (to check who sent a notification).
SELECT count(*) <= 1 AS app_can_list_publishers FROM poolguard.publisher_pids();
SELECT poolguard.invalidate('mentor', '1');
RESET ROLE;
GRANT EXECUTE ON FUNCTION poolguard.invalidate(text, text) TO poolguard_app_test;
SET ROLE poolguard_app_test;
SELECT count(*) AS granted_can_invalidate FROM (SELECT poolguard.invalidate('mentor', '1')) s;
RESET ROLE;
-- CREATE TRIGGER needs EXECUTE on the trigger function; the trigger then fires for any writer.
CREATE TABLE trigger_acl (id int);
ALTER TABLE trigger_acl OWNER TO poolguard_app_test;
SET ROLE poolguard_app_test;
CREATE TRIGGER acl AFTER INSERT ON trigger_acl FOR EACH ROW EXECUTE FUNCTION poolguard.invalidation_trigger('acl', 'id');
RESET ROLE;
GRANT EXECUTE ON FUNCTION poolguard.invalidation_trigger() TO poolguard_app_test;
SET ROLE poolguard_app_test;
CREATE TRIGGER acl AFTER INSERT ON trigger_acl FOR EACH ROW EXECUTE FUNCTION poolguard.invalidation_trigger('acl', 'id');
RESET ROLE;
REVOKE ALL ON FUNCTION poolguard.invalidation_trigger() FROM poolguard_app_test;
SELECT poolguard.cache_generation('acl', '1') AS acl0 \gset
INSERT INTO trigger_acl VALUES (1);
SELECT poolguard.cache_generation('acl', '1') > :acl0 AS trigger_fires_after_revoke;
DROP TABLE trigger_acl;
REVOKE ALL ON FUNCTION poolguard.invalidate(text, text) FROM poolguard_app_test;
REVOKE ALL ON SCHEMA poolguard FROM poolguard_app_test;
DROP ROLE poolguard_app_test;

-- Cleanup.
DROP TABLE assignment;
DROP FUNCTION gens(text[]);
DROP FUNCTION moved(bigint[], bigint[]);
