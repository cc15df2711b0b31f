-- poolguard.max_invalidations_per_transaction (issue 19, finding 9): the commit path works under
-- a lock every database shares, in time proportional to the commit's items, so one transaction
-- publishes at most the bound.  Past it, every invalidation of the transaction becomes the
-- scope-wide one of its scope (one item per scope, whatever the number of keys); only more
-- distinct scopes than the bound is an error.
\set VERBOSITY default
SHOW poolguard.max_invalidations_per_transaction;
SET poolguard.max_invalidations_per_transaction = 100;
SELECT generation AS start FROM poolguard.invalidations_since(0) \gset

-- Within the bound: every key is its own item.
SELECT count(poolguard.invalidate('bound_small', g::text)) FROM generate_series(1, 100) g;
SELECT count(*) AS items, count(key) AS keyed
  FROM poolguard.invalidations_since(:start) WHERE scope = 'bound_small';
SELECT max(generation) AS start FROM poolguard.invalidations_since(:start) \gset

-- Past it: 5,000 keys of one scope (and whatever follows) publish one scope-wide item per scope.
BEGIN;
SELECT poolguard.invalidate('bound_other', 'before');
SELECT count(poolguard.invalidate('bound_big', g::text)) FROM generate_series(1, 5000) g;
SELECT poolguard.invalidate('bound_other', 'after');
COMMIT;
SELECT kind, scope, key FROM poolguard.invalidations_since(:start) ORDER BY scope;
-- The scope-wide item covers every key of the scope.
SELECT poolguard.cache_generation('bound_big', '4999') =
       (SELECT generation FROM poolguard.invalidations_since(:start) WHERE scope = 'bound_big')
       AS every_key_newer;
SELECT max(generation) AS start FROM poolguard.invalidations_since(:start) \gset

-- Collapsing keeps transactional semantics: a rolled back subtransaction's scope is not published,
-- the collapse itself is not undone.
BEGIN;
SELECT count(poolguard.invalidate('bound_kept', g::text)) FROM generate_series(1, 150) g;
SAVEPOINT s;
SELECT poolguard.invalidate('bound_rolled_back', 'x');
ROLLBACK TO SAVEPOINT s;
SELECT poolguard.invalidate('bound_kept', 'late');
COMMIT;
SELECT kind, scope, key FROM poolguard.invalidations_since(:start) ORDER BY scope;
SELECT max(generation) AS start FROM poolguard.invalidations_since(:start) \gset

-- A rolled back transaction past the bound publishes nothing.
BEGIN;
SELECT count(poolguard.invalidate('bound_none', g::text)) FROM generate_series(1, 500) g;
ROLLBACK;
SELECT count(*) AS nothing FROM poolguard.invalidations_since(:start);

-- More distinct scopes than the bound: a clear error, and nothing is published.
SET poolguard.max_invalidations_per_transaction = 3;
BEGIN;
SELECT poolguard.invalidate('bound_s' || g) FROM generate_series(1, 4) g;
ROLLBACK;
SELECT count(*) AS nothing FROM poolguard.invalidations_since(:start);

-- Only a superuser sets it (a tenant cannot raise its own bound).
RESET poolguard.max_invalidations_per_transaction;
CREATE ROLE bound_tenant;
SET ROLE bound_tenant;
SET poolguard.max_invalidations_per_transaction = 1000000;
RESET ROLE;
DROP ROLE bound_tenant;
SET poolguard.max_invalidations_per_transaction = 0;
RESET poolguard.max_invalidations_per_transaction;
