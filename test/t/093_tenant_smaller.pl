# Issue 19, finding 12 (the smaller ones):
#   - /metrics slots cannot be held by idle clients: 70 idle TCP connections no longer make it
#     answer 503 to a new scraper (core::choose_client_slot, test/unit/metrics_http_test.cpp);
#   - the worker warns for every database whose installed SQL is older than the library, not
#     only its own;
#   - terminations are matched to viewers by role OID: a new role with a dropped role's name sees
#     none of its rows.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../perl";
use IO::Socket::INET;
use PoolguardTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $port = PostgreSQL::Test::Cluster::get_free_port();
my $node = poolguard_node('tenant_smaller', "poolguard.metrics_listen = '127.0.0.1:$port'",
    "poolguard.naptime = '200ms'", "poolguard.idle_grace = '0'");
$node->start;
$node->safe_psql('postgres', q{
    CREATE EXTENSION pg_poolguard;
    CREATE ROLE gone_soon LOGIN;
    CREATE DATABASE old_tenant;
    CREATE DATABASE current_tenant;
});
$node->safe_psql('old_tenant', q{CREATE EXTENSION pg_poolguard VERSION '1.0'});
$node->safe_psql('current_tenant', q{CREATE EXTENSION pg_poolguard});
$node->wait_for_log(qr/pg_poolguard metrics listening on 127\.0\.0\.1:$port/);

# ---- terminations by role OID ----
set_policy($node, q{(name, role_name, idle_timeout) VALUES ('quick', 'gone_soon', '1s')});
my $s = hold($node, 'user=gone_soon');
ok(gone($node, $s->[1]), 'the session of gone_soon is reaped');
$node->safe_psql('postgres', 'DROP ROLE gone_soon; CREATE ROLE gone_soon LOGIN');
is($node->safe_psql('postgres', "SELECT count(*) FROM poolguard.terminations WHERE pid = $s->[1]"), '1',
    'a superuser still sees the dropped role\'s row');
my ($ret, $out, $err) = $node->psql('postgres',
    "SELECT count(*) FROM poolguard.terminations WHERE pid = $s->[1]",
    extra_params => [ '-U', 'gone_soon' ]);
is($out, '0', 'a new role with the dropped role\'s name sees none of its rows');

# ---- /metrics under 70 idle connections ----
my @idle = grep { defined } map {
    IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port, Proto => 'tcp')
} 1 .. 70;
is(scalar(@idle), 70, '70 idle TCP connections are open');
my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port, Proto => 'tcp')
  or die "connect: $!";
print $sock "GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n";
my $response = '';
eval {
    local $SIG{ALRM} = sub { die "timeout\n" };
    alarm($PostgreSQL::Test::Utils::timeout_default);
    while (my $line = <$sock>) { $response .= $line; }
    alarm(0);
};
close $sock;
like($response, qr{^HTTP/1\.1 200 OK\r\n}, 'a new scraper is answered 200 while 70 idle clients are connected');
like($response, qr/^poolguard_worker_scans_total \d+/m, 'with the metrics');
close $_ for @idle;

# ---- the SQL version of every database (checked once per worker life: after a restart) ----
my $offset = -s $node->logfile;
$node->restart;
$node->wait_for_log(
    qr/WARNING:\s+(?:\w{5}:\s+)?pg_poolguard SQL objects in database "old_tenant" are at version 1\.0 but the library is at version \d+\.\d+\n(?:.*\n)*?.*HINT:\s+Run ALTER EXTENSION pg_poolguard UPDATE in database "old_tenant"\./,
    $offset);
pass('the worker warns about a database other than its own whose SQL is older');
# A check has run for every database (the walk is in oid order, current_tenant after old_tenant).
ok($node->poll_query_until('postgres',
        q{SELECT count(*) = 0 FROM pg_stat_activity WHERE backend_type = 'pg_poolguard version check'}),
    'the version checks finished');
ok(!$node->log_contains(qr/database "current_tenant" are at version/), 'no warning for an up-to-date database');

$node->stop;
done_testing();
