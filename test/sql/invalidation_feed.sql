-- poolguard.invalidations_since(): the feed of this database's invalidations, in generation
-- order, for readers that cannot LISTEN.  Generations come from the clock: compare, never print.
\set VERBOSITY default

-- The first call (after => 0) is a resync row: its generation is where to continue from.
SELECT kind, generation > 0 AS has_generation, scope, key FROM poolguard.invalidations_since(0);
SELECT generation AS start FROM poolguard.invalidations_since(0) \gset
SELECT count(*) AS nothing_yet FROM poolguard.invalidations_since(:start);

-- Committed items come in commit order with their generations; rolled back ones never.
SELECT poolguard.invalidate('feed', 'a');
BEGIN;
SELECT poolguard.invalidate('feed', 'b');
SELECT poolguard.invalidate('feed');
COMMIT;
BEGIN;
SELECT poolguard.invalidate('feed', 'rolled back');
ROLLBACK;
SELECT kind, scope, key FROM poolguard.invalidations_since(:start);
SELECT bool_and(generation > :start) AS all_newer,
       count(DISTINCT generation) = count(*) AS distinct_generations
  FROM poolguard.invalidations_since(:start);
-- The generation of an item is what cache_generation() reports for it (the scope-wide item is
-- the newest of the scope, so it is what every key of the scope reads now).
SELECT generation = poolguard.cache_generation('feed', 'a') AS same_as_cache_generation
  FROM poolguard.invalidations_since(:start) WHERE kind = 'item' AND key IS NULL;
-- Continuing from an item's generation returns only what came after it.
SELECT generation AS after_a FROM poolguard.invalidations_since(:start) WHERE key = 'a' \gset
SELECT kind, scope, key FROM poolguard.invalidations_since(:after_a);
-- Items in generation order, strictly increasing.
SELECT bool_and(generation > prev) AS increasing
  FROM (SELECT generation, lag(generation, 1, 0::bigint) OVER (ORDER BY generation) AS prev
          FROM poolguard.invalidations_since(:start)) s;

-- With nothing newer, it waits up to max_wait and returns nothing.
SELECT max(generation) AS last FROM poolguard.invalidations_since(:start) \gset
SELECT count(*) AS timed_out FROM poolguard.invalidations_since(:last, '20 ms');

-- Read-only: it runs in a read-only transaction (and so on a hot standby).
BEGIN READ ONLY;
SELECT count(*) AS read_only_ok FROM poolguard.invalidations_since(:start);
COMMIT;

-- Bad input: clear errors.
SELECT * FROM poolguard.invalidations_since(NULL);
SELECT * FROM poolguard.invalidations_since(-1);
SELECT * FROM poolguard.invalidations_since(0, NULL);
SELECT * FROM poolguard.invalidations_since(0, '-1 second');
SELECT * FROM poolguard.invalidations_since(0, '11 minutes');
SELECT * FROM poolguard.invalidations_since(0, '1 month');
SELECT * FROM poolguard.invalidations_since(0, '-1 day');
