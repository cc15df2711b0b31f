# Policy changes apply when — and only when — they commit:
#   - PREPARE TRANSACTION of a change applies at COMMIT PREPARED, even from another session
#     while the preparing session stays idle (nothing leaks into that session's next commit);
#   - ROLLBACK PREPARED applies nothing;
#   - reload() inside the transaction that changed the policies loads the committed ones only,
#     so a rollback leaves the old policies in force.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../perl";
use PoolguardTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = poolguard_node('policy_xact',
    q{max_prepared_transactions = 4},
    q{poolguard.naptime = '200ms'});
$node->start;
$node->safe_psql('postgres', q{
    CREATE EXTENSION pg_poolguard;
    INSERT INTO poolguard.policy (name) VALUES ('old');
    SELECT poolguard.reload();
});

sub in_force
{
    return $node->safe_psql('postgres',
        'SELECT coalesce(string_agg(policy, \',\' ORDER BY policy), \'\') FROM poolguard.policy_status');
}

is(in_force(), 'old', 'the starting policy is in force');

# ---- PREPARE in one session, COMMIT PREPARED in another ----
my $preparer = $node->background_psql('postgres');
$preparer->query_safe(q{
    BEGIN;
    INSERT INTO poolguard.policy (name) VALUES ('prepared');
    PREPARE TRANSACTION 'policy_change';
});
# Give the worker several cycles: nothing may appear before COMMIT PREPARED.
my $scans = $node->safe_psql('postgres', 'SELECT scans FROM poolguard.stats');
$node->poll_query_until('postgres', "SELECT scans >= $scans + 3 FROM poolguard.stats") or die;
is(in_force(), 'old', 'a prepared policy change is not in force');

$node->safe_psql('postgres', "COMMIT PREPARED 'policy_change'");
ok($node->poll_query_until('postgres',
        q{SELECT string_agg(policy, ',' ORDER BY policy) = 'old,prepared' FROM poolguard.policy_status}),
    'COMMIT PREPARED from another session applies the change (the preparing session stays idle)');

# ---- ROLLBACK PREPARED applies nothing ----
$preparer->query_safe(q{
    BEGIN;
    DELETE FROM poolguard.policy WHERE name = 'old';
    PREPARE TRANSACTION 'policy_drop';
});
$node->safe_psql('postgres', "ROLLBACK PREPARED 'policy_drop'");
# The preparing session's next commit must not carry a stale "policies changed" flag either:
# it is harmless but wrong, and invisible; what is visible is the set in force.
$preparer->query_safe('SELECT 1');
$scans = $node->safe_psql('postgres', 'SELECT scans FROM poolguard.stats');
$node->poll_query_until('postgres', "SELECT scans >= $scans + 3 FROM poolguard.stats") or die;
is(in_force(), 'old,prepared', 'ROLLBACK PREPARED leaves the policies as they were');
$preparer->quit;

# ---- reload() in the changing transaction, then ROLLBACK ----
my $n = $node->safe_psql('postgres', q{
    BEGIN;
    INSERT INTO poolguard.policy (name) VALUES ('uncommitted');
    SELECT poolguard.reload();
    ROLLBACK;
});
is($n, '2', 'reload() inside the changing transaction reports the committed policies only');
is(in_force(), 'old,prepared', 'after ROLLBACK the old policies are still in force');
$scans = $node->safe_psql('postgres', 'SELECT scans FROM poolguard.stats');
$node->poll_query_until('postgres', "SELECT scans >= $scans + 3 FROM poolguard.stats") or die;
is(in_force(), 'old,prepared', 'and stay so: the uncommitted row was never published');

# ---- the same transaction, committed, applies ----
$node->safe_psql('postgres', q{
    BEGIN;
    INSERT INTO poolguard.policy (name) VALUES ('committed');
    SELECT poolguard.reload();
    COMMIT;
});
ok($node->poll_query_until('postgres',
        q{SELECT string_agg(policy, ',' ORDER BY policy) = 'committed,old,prepared' FROM poolguard.policy_status}),
    'a committed change applies');

done_testing();
