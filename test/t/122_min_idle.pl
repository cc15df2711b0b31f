# Not fighting: min_idle keeps a warm floor of idle sessions per policy.  idle_timeout and
# max_idle end the longest-idle sessions down to the floor and no further; max_idle_memory still
# ends a bloated one.  A pool that keeps its minimum open then logs in nothing in quiet periods.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../perl";
use PoolguardTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = poolguard_node('min_idle', 'poolguard.naptime = 100ms', "poolguard.idle_grace = '0'");
$node->start;
$node->safe_psql('postgres', q{
    CREATE EXTENSION pg_poolguard;
    CREATE ROLE app LOGIN;
});

sub idle_count
{
    return $node->safe_psql('postgres',
        "SELECT count(*) FROM pg_stat_activity WHERE usename = 'app' AND state = 'idle'");
}

sub scans_pass
{
    my ($n) = @_;
    my $scans = $node->safe_psql('postgres', 'SELECT scans FROM poolguard.stats');
    return $node->poll_query_until('postgres', "SELECT scans >= $scans + $n FROM poolguard.stats");
}

# ---- idle_timeout ends down to the floor: the two most recently used stay ----
set_policy($node, q{(name, role_name, idle_timeout, min_idle) VALUES ('warm', 'app', '1s', 2)});
my @s = map { hold($node, "user=app application_name=s$_") } 1 .. 4;
# s3 and s4 were used last.
$s[2]->[0]->query_safe('SELECT 3');
$s[3]->[0]->query_safe('SELECT 4');
ok(gone($node, $s[0]->[1]) && gone($node, $s[1]->[1]), 'the two longest-idle sessions are ended');
ok(scans_pass(15), 'the worker scanned well past idle_timeout');
ok(alive($node, $s[2]->[1]) && alive($node, $s[3]->[1]), 'the warm floor of two is kept');
is(idle_count(), '2', 'two idle sessions');
is($node->safe_psql('postgres', "SELECT terminated FROM poolguard.policy_status WHERE policy = 'warm'"), '2',
    'two ends, no more');
is($node->safe_psql('postgres', "SELECT verdict FROM poolguard.sessions WHERE pid = $s[2]->[1]"), '',
    'the sessions view shows no verdict for a session the floor keeps');

# ---- with max_idle: it keeps max_idle, min_idle cannot exceed it ----
my ($ret, $out, $err) = $node->psql('postgres',
    q{INSERT INTO poolguard.policy (name, max_idle, min_idle) VALUES ('bad', 1, 2)});
like($err, qr/min_idle of policy "bad" is above its max_idle/, 'min_idle above max_idle is refused');

# ---- max_idle_memory still ends a bloated session below the floor ----
set_policy($node, q{(name, role_name, min_idle, max_idle_memory) VALUES ('warm', 'app', 2, 1)});
ok(gone($node, $s[2]->[1]) && gone($node, $s[3]->[1]), 'max_idle_memory is not held back by the floor');
like($node->safe_psql('postgres', q{SELECT string_agg(DISTINCT reason, ',') FROM poolguard.terminations WHERE policy = 'warm'}),
    qr/max_idle_memory/, 'ended for max_idle_memory');

$node->stop;
done_testing();
