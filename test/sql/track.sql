-- poolguard.track_table(): committed row changes published as (scope, primary key) and
-- (table_scope, NULL); idempotent; owner only; partitioned tables; the tracked_tables view.
-- Generations (poolguard.cache_generation) show what a transaction published.
\set SHOW_CONTEXT never
CREATE TEMP TABLE gens (name text PRIMARY KEY, g bigint);
CREATE FUNCTION pg_temp.moved(name text, scope text, key text DEFAULT NULL) RETURNS boolean
    LANGUAGE sql AS $$
    WITH cur AS (SELECT poolguard.cache_generation(scope, key) AS g),
         prev AS (SELECT g FROM gens WHERE gens.name = moved.name),
         up AS (INSERT INTO gens SELECT name, g FROM cur ON CONFLICT (name) DO UPDATE SET g = excluded.g)
    SELECT (SELECT g FROM cur) > coalesce((SELECT g FROM prev), 0) $$;

CREATE TABLE mentor_assignments (mentor_id int, school_id int, PRIMARY KEY (mentor_id, school_id));
CREATE TABLE schools (id int PRIMARY KEY, name text);
SELECT poolguard.track_table('schools');
SELECT poolguard.track_table('mentor_assignments');
SELECT poolguard.track_table('mentor_assignments');  -- idempotent
SELECT * FROM poolguard.tracked_tables ORDER BY table_name::text;
SELECT tgname FROM pg_trigger WHERE tgrelid = 'schools'::regclass ORDER BY 1;

-- Baselines.
SELECT pg_temp.moved('s1', 'schools', '1') IS NOT NULL, pg_temp.moved('s2', 'schools', '2') IS NOT NULL,
       pg_temp.moved('st', 'table:schools') IS NOT NULL,
       pg_temp.moved('m', 'mentor_assignments', '["7","1"]') IS NOT NULL,
       pg_temp.moved('mt', 'table:mentor_assignments') IS NOT NULL;

-- A rolled-back change publishes nothing.
BEGIN;
INSERT INTO schools VALUES (1, 'North');
ROLLBACK;
SELECT pg_temp.moved('s1', 'schools', '1') AS row_key, pg_temp.moved('st', 'table:schools') AS table_scope;

-- A committed insert publishes its key and the table; the other key does not move.
INSERT INTO schools VALUES (1, 'North'), (2, 'South');
SELECT pg_temp.moved('s1', 'schools', '1') AS row_key, pg_temp.moved('s2', 'schools', '2') AS row_key_2,
       pg_temp.moved('st', 'table:schools') AS table_scope;
UPDATE schools SET name = 'North 2' WHERE id = 1;
SELECT pg_temp.moved('s1', 'schools', '1') AS s1, pg_temp.moved('s2', 'schools', '2') AS s2,
       pg_temp.moved('st', 'table:schools') AS table_scope;
-- A key change publishes both the old and the new key.
SELECT pg_temp.moved('s3', 'schools', '3') IS NOT NULL;
UPDATE schools SET id = 3 WHERE id = 2;
SELECT pg_temp.moved('s2', 'schools', '2') AS old_key, pg_temp.moved('s3', 'schools', '3') AS new_key;
-- Composite keys: a JSON array of the columns' text, in key order.
INSERT INTO mentor_assignments VALUES (7, 1);
SELECT pg_temp.moved('m', 'mentor_assignments', '["7","1"]') AS composite_key,
       pg_temp.moved('mt', 'table:mentor_assignments') AS table_scope;
DELETE FROM mentor_assignments WHERE mentor_id = 7;
SELECT pg_temp.moved('m', 'mentor_assignments', '["7","1"]') AS deleted_key;
-- TRUNCATE: both scopes whole.
SELECT pg_temp.moved('sw', 'schools') IS NOT NULL;
TRUNCATE schools;
SELECT pg_temp.moved('sw', 'schools') AS row_scope, pg_temp.moved('st', 'table:schools') AS table_scope;

-- A bulk write: past 1000 row keys in a transaction, rows publish their whole row scope.
SELECT pg_temp.moved('sw', 'schools') IS NOT NULL, pg_temp.moved('s1', 'schools', '1') IS NOT NULL;
INSERT INTO schools SELECT i, 'bulk' FROM generate_series(1, 999) i;
-- (Not checked: that the whole row scope stayed.  Generation slots are shared by hash under a
-- secret drawn at each start, so 999 keys share the scope's slot in about 1.5 % of runs: a
-- spurious invalidation, which the design allows.)
SELECT pg_temp.moved('sw', 'schools') IS NOT NULL, pg_temp.moved('s1', 'schools', '1') AS key_999;
BEGIN;
INSERT INTO schools SELECT i, 'bulk' FROM generate_series(1000, 2000) i;
UPDATE schools SET name = 'bulk 2' WHERE id = 1;
COMMIT;
SELECT pg_temp.moved('sw', 'schools') AS row_scope_1002, pg_temp.moved('s1', 'schools', '1') AS key_1002;
TRUNCATE schools;

-- Scopes of one's choice; a schema other than public is part of the default scope.
CREATE SCHEMA regress_track;
CREATE TABLE regress_track.item (id text PRIMARY KEY);
SELECT poolguard.track_table('regress_track.item');
SELECT poolguard.track_table('schools', scope => 'school', table_scope => 'table:school');
SELECT * FROM poolguard.tracked_tables ORDER BY table_name::text;
SELECT pg_temp.moved('sc', 'school', '9') IS NOT NULL;
INSERT INTO schools VALUES (9, 'East');
SELECT pg_temp.moved('sc', 'school', '9') AS renamed_scope;

-- Partitioned tables: rows written through the parent or into a partition directly.
-- (A key column's text is its output function's, so a date's follows the writer's DateStyle.)
SET DateStyle = ISO;
CREATE TABLE events (id int, day date, PRIMARY KEY (id, day)) PARTITION BY RANGE (day);
CREATE TABLE events_2026 PARTITION OF events FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
SELECT poolguard.track_table('events');
CREATE TABLE events_2027 PARTITION OF events FOR VALUES FROM ('2027-01-01') TO ('2028-01-01');
SELECT poolguard.track_table('events_2026');
SELECT table_name, scope, key_columns, partitioned FROM poolguard.tracked_tables WHERE scope = 'events';
SELECT pg_temp.moved('e', 'events', '["1","2027-03-01"]') IS NOT NULL, pg_temp.moved('et', 'table:events') IS NOT NULL;
INSERT INTO events_2027 VALUES (1, '2027-03-01');
SELECT pg_temp.moved('e', 'events', '["1","2027-03-01"]') AS partition_row, pg_temp.moved('et', 'table:events') AS table_scope;
-- One statement, many rows, two partitions whose key columns are numbered differently (the
-- trigger computes its key columns once per statement and relation): every row's key moves.
CREATE TABLE events_2028 (note text, day date NOT NULL, id int NOT NULL);
ALTER TABLE events_2028 DROP COLUMN note;
ALTER TABLE events ATTACH PARTITION events_2028 FOR VALUES FROM ('2028-01-01') TO ('2029-01-01');
SELECT pg_temp.moved('e26', 'events', '["2","2026-05-01"]') IS NOT NULL, pg_temp.moved('e28', 'events', '["2","2028-05-01"]') IS NOT NULL,
       pg_temp.moved('e28b', 'events', '["3","2028-06-01"]') IS NOT NULL;
INSERT INTO events VALUES (2, '2026-05-01'), (2, '2028-05-01'), (3, '2028-06-01');
SELECT pg_temp.moved('e26', 'events', '["2","2026-05-01"]') AS row_2026, pg_temp.moved('e28', 'events', '["2","2028-05-01"]') AS row_2028,
       pg_temp.moved('e28b', 'events', '["3","2028-06-01"]') AS row_2028b;
UPDATE events SET id = id WHERE id IN (2, 3);
SELECT pg_temp.moved('e26', 'events', '["2","2026-05-01"]') AS row_2026, pg_temp.moved('e28', 'events', '["2","2028-05-01"]') AS row_2028,
       pg_temp.moved('e28b', 'events', '["3","2028-06-01"]') AS row_2028b;

RESET DateStyle;

-- Bad input.
SELECT poolguard.track_table(NULL);
CREATE TABLE nokey (x int);
SELECT poolguard.track_table('nokey');
CREATE VIEW schools_v AS SELECT * FROM schools;
SELECT poolguard.track_table('schools_v');
SELECT poolguard.track_table('schools', repeat('s', 64));
SELECT poolguard.track_table('schools', repeat('s', 60));
SELECT poolguard.track_table('schools', 'same', 'same');
SELECT poolguard.tracking_trigger();

-- Owner only, even for a role that may execute the functions.
CREATE ROLE regress_track_other;
GRANT USAGE ON SCHEMA poolguard TO regress_track_other;
GRANT EXECUTE ON FUNCTION poolguard.track_table(regclass, text, text), poolguard.untrack_table(regclass),
    poolguard.tracking_trigger() TO regress_track_other;
GRANT TRIGGER ON schools TO regress_track_other;
SET ROLE regress_track_other;
SELECT poolguard.track_table('schools');
SELECT poolguard.untrack_table('schools');
SELECT count(*) > 0 AS sees_tracked_tables FROM poolguard.tracked_tables;
RESET ROLE;

-- Untracking: idempotent; writes publish nothing afterwards.
SELECT poolguard.untrack_table('schools');
SELECT poolguard.untrack_table('schools');
SELECT poolguard.untrack_table('events');
SELECT table_name FROM poolguard.tracked_tables ORDER BY table_name::text;
SELECT pg_temp.moved('sc', 'school', '9') IS NOT NULL;
UPDATE schools SET name = 'West' WHERE id = 9;
SELECT pg_temp.moved('sc', 'school', '9') AS after_untrack;
SELECT count(*) AS triggers_left FROM pg_trigger WHERE tgname LIKE 'poolguard_track%'
   AND tgrelid IN ('schools'::regclass, 'events'::regclass, 'events_2026'::regclass, 'events_2027'::regclass);

DROP TABLE mentor_assignments, schools, events, nokey CASCADE;
DROP SCHEMA regress_track CASCADE;
REVOKE ALL ON SCHEMA poolguard FROM regress_track_other;
REVOKE ALL ON FUNCTION poolguard.track_table(regclass, text, text), poolguard.untrack_table(regclass),
    poolguard.tracking_trigger() FROM regress_track_other;
DROP ROLE regress_track_other;
