-- pg_poolguard 1.1 -> 1.2: ALTER EXTENSION pg_poolguard UPDATE TO '1.2'.
--
-- Frozen once 1.2 is released: later changes go into the next step script.  After this step the
-- catalog equals a fresh install of 1.2 (extension/*.sql); test/t/080_release_upgrade.pl compares them.

\echo Use "ALTER EXTENSION pg_poolguard UPDATE TO '1.2'" to load this file. \quit
