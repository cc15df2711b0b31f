# The worker's life cycle: it starts, shows in pg_stat_activity, survives SIGHUP, comes back
# after pg_terminate_backend, survives a failing cycle (logged, retried, no exit), and the
# extension explains itself when not preloaded.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../perl";
use PoolguardTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = poolguard_node('worker');
$node->start;

my $worker_query = q{SELECT pid FROM pg_stat_activity
                     WHERE backend_type = 'pg_poolguard worker' AND datname = 'postgres'};

ok($node->poll_query_until('postgres', "SELECT count(*) = 1 FROM ($worker_query) w"),
    'worker appears in pg_stat_activity with its backend_type, connected to poolguard.database');
my $pid = $node->safe_psql('postgres', $worker_query);

$node->safe_psql('postgres', 'CREATE EXTENSION pg_poolguard');
is($node->safe_psql('postgres', 'SELECT poolguard.version()'), '1.2.0', 'version()');
is($node->safe_psql('postgres', 'SELECT poolguard.worker_pid()'), $pid, 'worker_pid() names the worker');

# SIGHUP: the worker reloads and keeps running.
my $log_offset = -s $node->logfile;
$node->safe_psql('postgres', "ALTER SYSTEM SET poolguard.naptime = '250ms'");
$node->reload;
$node->wait_for_log(qr/pg_poolguard worker reloaded its configuration \(naptime 250 ms/, $log_offset);
is($node->safe_psql('postgres', $worker_query), $pid, 'same worker after SIGHUP');

# Terminated, it is restarted by the postmaster (no cluster restart).
my $postmaster_start = $node->safe_psql('postgres', 'SELECT pg_postmaster_start_time()');
$node->safe_psql('postgres', "SELECT pg_terminate_backend($pid)");
ok($node->poll_query_until('postgres',
        "SELECT count(*) = 1 FROM ($worker_query) w WHERE w.pid <> $pid"),
    'worker restarted after pg_terminate_backend');
is($node->safe_psql('postgres', 'SELECT pg_postmaster_start_time()'), $postmaster_start,
    'no cluster restart');

# A policy load that raises an ERROR (here: a column of the policy table renamed away) is
# caught in a subtransaction: logged as a WARNING with its cause, the last good policies stay in
# force, the worker keeps scanning in the same process and loads again once the cause is gone.
# (Settings made with ALTER ROLE/DATABASE ... SET no longer reach the worker: 091 tests that.)
$pid = $node->safe_psql('postgres', $worker_query);
$log_offset = -s $node->logfile;
$node->safe_psql('postgres', 'ALTER TABLE poolguard.policy RENAME COLUMN on_limit TO on_limit_gone');
$node->psql('postgres', 'SELECT poolguard.reload()');   # fails here, and asks the worker to load
$node->wait_for_log(qr/WARNING:\s+(?:[0-9A-Z]{5}: )?pg_poolguard worker could not load the policies: column "on_limit" does not exist\n.*DETAIL:\s+The \d+ policies loaded last stay in force/,
    $log_offset);
pass('a failing load is logged with its cause and the policies kept');
my $scans = $node->safe_psql('postgres', 'SELECT scans FROM poolguard.stats');
ok($node->poll_query_until('postgres', "SELECT scans > $scans FROM poolguard.stats"),
    'the worker keeps scanning while the load fails');
$node->safe_psql('postgres', 'ALTER TABLE poolguard.policy RENAME COLUMN on_limit_gone TO on_limit');
is($node->safe_psql('postgres', 'SELECT poolguard.reload()'), '0', 'the repaired table loads again');
is($node->safe_psql('postgres', $worker_query), $pid, 'same worker process: a failed load is no exit');
$node->stop;

# Not preloaded: CREATE EXTENSION works, shared-memory functions name shared_preload_libraries.
my $plain = PostgreSQL::Test::Cluster->new('not_preloaded');
$plain->init;
$plain->start;
$plain->safe_psql('postgres', 'CREATE EXTENSION pg_poolguard');
is($plain->safe_psql('postgres', 'SELECT poolguard.version()'), '1.2.0', 'version() without preload');
my ($ret, $out, $err) = $plain->psql('postgres', 'SELECT poolguard.worker_pid()');
isnt($ret, 0, 'shared-memory function fails without preload');
like($err, qr/pg_poolguard must be loaded via shared_preload_libraries/, 'error names shared_preload_libraries');
like($err, qr/HINT:.*shared_preload_libraries/, 'hint says how to fix it');
$plain->stop;

done_testing();
