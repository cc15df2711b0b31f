# Hot standby and failover: the worker runs on a streaming standby, loads the replicated
# policies (it notices changes by their row digest: no trigger fires there), reaps and caps as
# on a primary, carries on through promotion, and generations after promotion exceed every
# generation the old primary handed out — also when the primary restarted after the standby
# started (its clock seed is then newer than the standby's).
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../perl";
use PoolguardTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $primary = poolguard_node('primary', { allows_streaming => 1 },
    "poolguard.naptime = '100ms'",
    "poolguard.idle_grace = '0'");
$primary->start;
$primary->safe_psql('postgres', q{
    CREATE EXTENSION pg_poolguard;
    CREATE ROLE app LOGIN;
});
$primary->backup('base');
my $standby = PostgreSQL::Test::Cluster->new('standby');
$standby->init_from_backup($primary, 'base', has_streaming => 1);
$standby->start;

my $worker_q = "SELECT pid FROM pg_stat_activity WHERE backend_type = 'pg_poolguard worker'";
ok($standby->poll_query_until('postgres', "SELECT count(*) = 1 FROM ($worker_q) w"),
    'the worker runs on the hot standby');
my $standby_worker = $standby->safe_psql('postgres', $worker_q);

# The primary restarts after the standby started: its generation seed is newer.
$primary->restart;

# ---- replicated policies, enforced on the standby ----
$primary->safe_psql('postgres', q{
    INSERT INTO poolguard.policy (name, application_name, idle_timeout) VALUES ('idler', 'idler%', '300ms');
    INSERT INTO poolguard.policy (name, application_name, max_connections) VALUES ('capped', 'capped%', 1);
});
$primary->wait_for_catchup($standby, 'replay');
ok($standby->poll_query_until('postgres',
        q{SELECT string_agg(policy, ',' ORDER BY policy) = 'capped,idler' FROM poolguard.policy_status}),
    'the standby loads the replicated policies without reload()');

my ($idler, $idler_pid) = @{ hold($standby, 'user=app application_name=idler-1') };
ok($standby->poll_query_until('postgres',
        "SELECT count(*) = 1 FROM poolguard.terminations WHERE pid = $idler_pid AND reason = 'idle_timeout'"),
    'an idle session on the standby is reaped by idle_timeout');

my ($capped, $capped_pid) = @{ hold($standby, 'user=app application_name=capped-1') };
my ($ret, $err) = login($standby, 'user=app application_name=capped-2');
like($err, qr/too many connections for poolguard policy "capped"/, 'the cap is enforced on the standby');

# A change on the primary applies on the standby once replayed.
$primary->safe_psql('postgres', "UPDATE poolguard.policy SET max_connections = 2 WHERE name = 'capped'");
$primary->wait_for_catchup($standby, 'replay');
ok($standby->poll_query_until('postgres',
        q{SELECT max_connections = 2 FROM poolguard.policy_status WHERE policy = 'capped'}),
    'a policy change on the primary applies on the standby after replay');
($ret, $err) = login($standby, 'user=app application_name=capped-2');
is($ret, 0, 'the raised cap admits the second login on the standby');

# Views and metrics work there; invalidate() does not.
like($standby->safe_psql('postgres', 'SELECT poolguard.metrics()'), qr/poolguard_sessions/, 'metrics on the standby');
($ret, my $out, $err) = $standby->psql('postgres', "SELECT poolguard.invalidate('s', 'k')");
like($err, qr/cannot invalidate cache entries during recovery/, 'invalidate() on a standby fails clearly');
like($err, qr/HINT:  Call poolguard.invalidate\(\) on the primary/, 'with a hint');

# ---- generations the old primary handed out ----
$primary->safe_psql('postgres', q{
    CREATE TABLE t (k text);
    SELECT poolguard.invalidate('s', 'k');
});
$primary->safe_psql('postgres', "SELECT poolguard.invalidate('s', 'k')") for 1 .. 3;
my $old_max = $primary->safe_psql('postgres', q{
    SELECT greatest(poolguard.cache_generation('s', 'k'), poolguard.cache_generation('other'))});
$primary->wait_for_catchup($standby, 'replay');
$capped->quit;

# ---- promotion ----
$primary->stop;
$standby->promote;
$standby->poll_query_until('postgres', 'SELECT NOT pg_is_in_recovery()') or die 'promotion failed';
is($standby->safe_psql('postgres', $worker_q), $standby_worker, 'the worker survives promotion without a restart');

my ($idler2, $idler2_pid) = @{ hold($standby, 'user=app application_name=idler-2') };
ok($standby->poll_query_until('postgres',
        "SELECT count(*) = 1 FROM poolguard.terminations WHERE pid = $idler2_pid"),
    'the promoted server keeps enforcing');

ok($standby->poll_query_until('postgres',
        "SELECT poolguard.cache_generation('s', 'k') > $old_max AND poolguard.cache_generation('other') > $old_max"),
    'after promotion every generation reads newer than any the old primary handed out');
$standby->safe_psql('postgres', "SELECT poolguard.invalidate('s', 'k')");
ok($standby->safe_psql('postgres', "SELECT poolguard.cache_generation('s', 'k') > $old_max") eq 't',
    'new invalidations on the promoted server are newer too');

done_testing();
