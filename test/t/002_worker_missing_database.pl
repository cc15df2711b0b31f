# poolguard.database does not exist: one clear error per backoff step, no crash loop, and the
# worker connects once the database appears.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../perl";
use PoolguardTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);

my $node = poolguard_node('missing_db', q{poolguard.database = 'guarded'});
$node->start;

my $message = qr/pg_poolguard worker could not connect to database "guarded"\n.*DETAIL:\s+The database does not exist\./;

# Wait for the third report: the backoff doubles (1 s, 2 s, 4 s ...), so it takes >= 3 s.
my $started = time();
my $deadline = $started + $PostgreSQL::Test::Utils::timeout_default;
my $count = 0;
while (time() < $deadline)
{
    my @hits = (slurp_file($node->logfile) =~ /$message/g);
    $count = scalar @hits;
    last if $count >= 3;
    select(undef, undef, undef, 0.1);
}
my $elapsed = time() - $started;
cmp_ok($count, '>=', 3, 'the error is logged repeatedly, with backoff');
cmp_ok($elapsed, '>=', 2.9, 'three reports take at least 1 + 2 seconds (backoff, not a loop)');

my $log = slurp_file($node->logfile);
my @exits = ($log =~ /background worker "pg_poolguard worker" .* exited with exit code/g);
cmp_ok(scalar @exits, '<=', 1, 'the worker is not in a crash loop');
like($log, qr/HINT:\s+Create the database or set poolguard\.database/, 'the error says how to fix it');

$node->safe_psql('postgres', 'CREATE DATABASE guarded');
ok($node->poll_query_until('postgres',
        q{SELECT count(*) = 1 FROM pg_stat_activity
          WHERE backend_type = 'pg_poolguard worker' AND datname = 'guarded'}),
    'worker connects once the database exists');

$node->stop;
done_testing();
