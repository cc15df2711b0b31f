# poolguard.pool_advice and the poolguard_pool_advice_* metrics (issue 23, item 2): an app that
# holds N connections of which at most K are ever active at once is advised a pool max of
# K + headroom (max(1, ceil(K / 4))), with the memory closing the surplus idle connections would
# free.  K busy sessions are built deterministically: they wait on an advisory lock another
# session holds (state active), and the test polls until the worker has sampled them.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../perl";
use PoolguardTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $port = PostgreSQL::Test::Cluster::get_free_port();
my $node = poolguard_node('pool_advice', 'poolguard.naptime = 100ms', 'poolguard.advice_window = 60s',
    "poolguard.metrics_listen = '127.0.0.1:$port'");
$node->start;
$node->safe_psql('postgres', q{
    CREATE EXTENSION pg_poolguard;
    CREATE ROLE app LOGIN;
    CREATE ROLE other_app LOGIN;
    CREATE ROLE watcher LOGIN IN ROLE pg_monitor;
});

my ($N, $K) = (6, 2);
my $web = q{SELECT %s FROM poolguard.pool_advice
             WHERE role_name = 'app' AND application_name = 'web' AND client_addr = '127.0.0.1'};

# N connections of one instance (TCP from 127.0.0.1), all idle.
my @conns = map { hold($node, 'user=app application_name=web host=127.0.0.1') } 1 .. $N;
$node->poll_query_until('postgres', sprintf($web, 'connections_now'), $N)
  or die 'the worker did not sample the instance';

# K of them active at once: they wait for an advisory lock a superuser session holds.
my $locker = hold($node, 'application_name=locker');
$locker->[0]->query_safe('SELECT pg_advisory_lock(42)');
for my $c (@conns[0 .. $K - 1])
{
    $c->[0]->{stdin} .= "SELECT pg_advisory_xact_lock_shared(42);\n";
    $c->[0]->{run}->pump_nb;
}
$node->poll_query_until('postgres', q{SELECT count(*) FROM pg_stat_activity
                                       WHERE application_name = 'web' AND wait_event_type = 'Lock'}, $K)
  or die 'the busy sessions did not start waiting';
$node->poll_query_until('postgres', sprintf($web, 'active_max'), $K)
  or die 'the worker did not sample the busy sessions';
$locker->[0]->query_safe('SELECT pg_advisory_unlock(42)');
$node->poll_query_until('postgres', sprintf($web, 'idle_now'), $N)
  or die 'the busy sessions did not go idle';
# The idle sessions' memory is re-read every 10 s (not every scan): wait for a reading taken
# once all N were idle.
my $all_idle_at = $node->safe_psql('postgres', 'SELECT clock_timestamp()');
$node->poll_query_until('postgres', sprintf($web, "idle_now = $N AND idle_memory_at > '$all_idle_at'"))
  or die 'the worker did not read the idle memory';

my $row = $node->safe_psql('postgres', sprintf($web,
    q{connections_now, connections_peak, active_max, active_p95 BETWEEN 0 AND active_max, recommended_max,
      idle_memory > 0, memory_freed > 0, memory_freed = idle_memory / idle_now * 3, saturated}));
# (p95 depends on how many slots the idle phase took: only its bounds are certain.)
is($row, "$N|$N|$K|t|3|t|t|t|f",
    "$N connections, at most $K active at once: a pool max of $K + headroom 1, freeing 3 idle connections' memory");
my $why = $node->safe_psql('postgres', sprintf($web, 'why'));
like($why, qr/holds 6 connections \(peak 6, 6 idle holding [\d.]+ (bytes|kB|MiB)\) but at most 2 were active at once/,
    'why: what it holds and uses');
like($why, qr/max 3 \(2 \+ headroom 1\) would close 3 idle connections and free about [\d.]+ (bytes|kB|MiB)/,
    'why: the advice and what it frees');

# Visibility: another role sees none of app's rows; pg_monitor sees them.
is($node->safe_psql('postgres', q{SELECT count(*) FROM poolguard.pool_advice WHERE role_name = 'app' AND application_name = 'web'},
    extra_params => [ '-U', 'other_app' ]), '0', "another role sees none of app's rows");
is($node->safe_psql('postgres', q{SELECT count(*) FROM poolguard.pool_advice WHERE role_name = 'app' AND application_name = 'web'},
    extra_params => [ '-U', 'app' ]), '1', 'the app reads its own row');
is($node->safe_psql('postgres', q{SELECT count(*) FROM poolguard.pool_advice WHERE role_name = 'app' AND application_name = 'web'},
    extra_params => [ '-U', 'watcher' ]), '1', 'pg_monitor reads every row');

# The same in /metrics, per (database, application_name, client), never a role.
$node->wait_for_log(qr/pg_poolguard metrics listening on 127\.0\.0\.1:$port/);
my $text = http_get($port, "/metrics");
like($text, qr/^poolguard_pool_advice_recommended_max\{database="postgres",application_name="web",client="127\.0\.0\.1"\} 3$/m,
    'metrics: recommended pool max');
like($text, qr/^poolguard_pool_advice_active_max\{database="postgres",application_name="web",client="127\.0\.0\.1"\} 2$/m,
    'metrics: active max');
like($text, qr/^poolguard_pool_advice_connections\{database="postgres",application_name="web",client="127\.0\.0\.1"\} 6$/m,
    'metrics: connections now');
like($text, qr/^poolguard_pool_advice_memory_freed_bytes\{database="postgres",application_name="web",client="127\.0\.0\.1"\} [1-9]\d*$/m,
    'metrics: memory the advice would free');
my @samples = grep { /^poolguard_pool_advice/ } split /\n/, $text;
is((grep { /role=|="(?:other_)?app"/ } @samples), 0, 'no role in any label');

# The publisher series of item 3's alerts (examples/alerts.yml): a database with a publisher slot
# shows whether one runs, what waits for it and its failed starts.
$node->safe_psql('postgres', q{SELECT poolguard.invalidate('advice', '1')});
my $deadline = time + $PostgreSQL::Test::Utils::timeout_default;
my $pub = '';
until ($pub =~ /^poolguard_publisher_pending_invalidations\{database="postgres"\} 0$/m || time > $deadline)
{
    $pub = http_get($port, '/metrics');
    select(undef, undef, undef, 0.1) unless $pub =~ /^poolguard_publisher_pending_invalidations\{database="postgres"\} 0$/m;
}
like($pub, qr/^poolguard_publisher_pending_invalidations\{database="postgres"\} 0$/m, 'metrics: nothing left for the publisher');
like($pub, qr/^poolguard_publisher_running\{database="postgres"\} [01]$/m, 'metrics: whether a publisher runs');
like($pub, qr/^poolguard_publisher_start_failures_total\{database="postgres"\} 0$/m, 'metrics: its failed starts');

# Bounded per database: past 16 identities of one database, the rest share its overflow row.
$node->safe_psql('postgres', 'CREATE DATABASE shop');
my @many = map { hold($node, "user=app application_name=many-$_", 'shop') } 1 .. 18;
$node->poll_query_until('postgres', q{SELECT connections_now FROM poolguard.pool_advice
                                       WHERE database_name = 'shop' AND role_name IS NULL}, 2)
  or die 'no overflow row';
is($node->safe_psql('postgres', q{SELECT count(*) FROM poolguard.pool_advice
                                   WHERE database_name = 'shop' AND role_name IS NOT NULL}),
    '16', 'at most 16 identities of one database');
is($node->safe_psql('postgres', sprintf($web, 'connections_now')), $N, "another database's identity is kept");

$_->[0]->quit for (@conns, @many, $locker);
$node->stop;
done_testing();
