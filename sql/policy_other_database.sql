-- Outside poolguard.database the functions and views work, but the policy table is inert and
-- refuses writes with an error naming poolguard.database.
CREATE DATABASE regress_poolguard_elsewhere;
\c regress_poolguard_elsewhere
CREATE EXTENSION pg_poolguard;
INSERT INTO poolguard.policy (name) VALUES ('here');
SELECT count(*) >= 1 AS sessions_visible FROM poolguard.sessions;
SELECT poolguard.version();
\c contrib_regression
DROP DATABASE regress_poolguard_elsewhere;
