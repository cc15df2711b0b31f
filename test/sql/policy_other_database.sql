-- Outside poolguard.database the functions and views work, but the policy table is inert and
-- refuses writes with an error naming poolguard.database.
CREATE DATABASE regress_poolguard_elsewhere;
\c regress_poolguard_elsewhere
CREATE EXTENSION pg_poolguard;
INSERT INTO poolguard.policy (name) VALUES ('here');
SELECT count(*) >= 1 AS sessions_visible FROM poolguard.sessions;
SELECT poolguard.version();
-- invalidations_since() returns only the current database's items.
SELECT generation AS start FROM poolguard.invalidations_since(0) \gset
SELECT poolguard.invalidate('elsewhere', 'x');
\c contrib_regression
SELECT count(*) AS other_database_items FROM poolguard.invalidations_since(:start) WHERE kind = 'item';
\c regress_poolguard_elsewhere
SELECT kind, scope, key FROM poolguard.invalidations_since(:start);
\c contrib_regression
-- (WITH FORCE: the invalidation above started a publisher connected to it.)
DROP DATABASE regress_poolguard_elsewhere WITH (FORCE);
