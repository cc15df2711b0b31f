# The worker's life cycle: it starts, shows in pg_stat_activity, survives SIGHUP, comes back
# after pg_terminate_backend, survives a failing cycle (logged, retried, no exit), and the
# extension explains itself when not preloaded.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('worker');
$node->init;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'pg_poolguard'");
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

# A cycle that raises an ERROR (here: the policy table locked, the worker's lock_timeout hit) is
# caught by the worker's recovery (run_catching_errors): logged with its cause and retry hint,
# the transaction aborted, and the worker keeps its process and resumes once the cause is gone.
$node->safe_psql('postgres', "ALTER ROLE postgres IN DATABASE postgres SET lock_timeout = '100ms'");
$pid = $node->safe_psql('postgres', $worker_query);
$node->safe_psql('postgres', "SELECT pg_terminate_backend($pid)");   # reconnect with the setting
ok($node->poll_query_until('postgres',
        "SELECT count(*) = 1 FROM ($worker_query) w WHERE w.pid <> $pid"),
    'worker restarted with lock_timeout set');
$pid = $node->safe_psql('postgres', $worker_query);
$log_offset = -s $node->logfile;
my $locker = $node->background_psql('postgres');
$locker->query_safe('SET lock_timeout = 0; BEGIN; LOCK TABLE poolguard.policy IN ACCESS EXCLUSIVE MODE');
$node->wait_for_log(qr/LOG:\s+pg_poolguard worker could not complete a cycle: canceling statement due to lock timeout\n.*HINT:\s+The worker retries in \d+ ms\./,
    $log_offset);
pass('a failing cycle is logged with its cause and when the worker retries');
my $scans = $node->safe_psql('postgres', 'SELECT scans FROM poolguard.stats');
$locker->query_safe('COMMIT');
$locker->quit;
ok($node->poll_query_until('postgres', "SELECT scans > $scans FROM poolguard.stats"),
    'the worker scans again once the lock is gone');
is($node->safe_psql('postgres', $worker_query), $pid, 'same worker process: a failed cycle is no exit');
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
