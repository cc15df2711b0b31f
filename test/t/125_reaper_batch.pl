# Reaping many sessions due together (issue 22, item 3).  The worker prepares every target of a
# scan, then re-checks and signals them one after the other, then records them: its record of each
# action is taken at the signal, so at − state_duration is the moment the session went idle and
# state_duration − the limit is how late it was ended (what bench/reaper_scale.sh reports).  The
# memory figure recorded for a time rule's action is the worker's latest sample of the session,
# not a /proc read per target before its signal.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../perl";
use PoolguardTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

# Samples are re-read once an hour: within this test a session's sample is the one the worker
# read one cycle after its login.
my $node = poolguard_node('batch', "poolguard.memory_sample_interval = '1h'", "poolguard.naptime = '100ms'");
$node->start;
$node->safe_psql('postgres', q{
    CREATE EXTENSION pg_poolguard;
    CREATE ROLE app LOGIN;
});

# ---- twenty sessions due together: each ended, each recorded at its signal ----
my @batch = map { hold($node, "user=app application_name=batch-$_") } 1 .. 20;
my $kept = hold($node, 'user=app application_name=kept');
my $pids = join(',', map { $_->[1] } @batch);
# What the server says of each (idle since, started at) while they sit idle, before any rule.
$node->safe_psql('postgres', qq{
    CREATE TABLE seen AS SELECT pid, state, state_change, backend_start FROM pg_stat_activity WHERE pid IN ($pids)});
is($node->safe_psql('postgres', "SELECT count(*) FILTER (WHERE state = 'idle') FROM seen"), '20',
    'precondition: twenty idle sessions');
set_policy($node, q{(name, application_name, idle_timeout) VALUES ('batch', 'batch-%', '1s')});
ok(gone($node, $_->[1]), "batch session $_->[1] ended") for @batch;
ok(alive($node, $kept->[1]), 'a session the policy does not match is kept');
is($node->safe_psql('postgres', "SELECT count(*) FROM poolguard.terminations
        WHERE pid IN ($pids) AND reason = 'idle_timeout' AND policy = 'batch' AND action = 'terminate'"),
    '20', 'one terminations row for each of them');
is($node->safe_psql('postgres', q{SELECT count(*) FROM poolguard.terminations t JOIN seen s USING (pid)
        WHERE t.at - t.state_duration = s.state_change}),
    '20', 'state_duration is measured to the signal (at): at − state_duration is when each went idle');
is($node->safe_psql('postgres', q{SELECT count(*) FROM poolguard.terminations t JOIN seen s USING (pid)
        WHERE t.at - t.backend_age = s.backend_start}),
    '20', 'backend_age too');
is($node->safe_psql('postgres', "SELECT count(*) FROM poolguard.terminations
        WHERE pid IN ($pids) AND state_duration >= interval '1s'"),
    '20', 'none was ended before its deadline');
finish_quietly($_) for @batch;

# ---- a time rule's action records the worker's sample, read no /proc before its signal ----
my $s = hold($node, 'user=app application_name=mem-1');
my $pid = $s->[1];
ok($node->poll_query_until('postgres',
        "SELECT memory_sampled_at IS NOT NULL FROM poolguard.sessions WHERE pid = $pid"),
    'the worker sampled the new session');
my $bytes = $node->safe_psql('postgres', "SELECT private_memory FROM poolguard.sessions WHERE pid = $pid");
# ~40 MB of temp buffers after the sample: a read now would see them, the sample does not.
$s->[0]->query_safe(q{SET temp_buffers = '64MB';
    CREATE TEMP TABLE t AS SELECT g, repeat('x', 500) AS pad FROM generate_series(1, 80000) g;
    SELECT count(*) FROM t});
is($node->safe_psql('postgres', "SELECT private_memory FROM poolguard.sessions WHERE pid = $pid"),
    $bytes, 'precondition: the sample is still the one from before the temp buffers');
cmp_ok($node->safe_psql('postgres', "SELECT poolguard.session_memory($pid)"), '>', $bytes + 30_000_000,
    'precondition: a read now sees the temp buffers');
set_policy($node, q{(name, application_name, idle_timeout) VALUES ('mem', 'mem-%', '1s')});
ok(gone($node, $pid), 'idle_timeout ends the session');
is($node->safe_psql('postgres', "SELECT reason || ' ' || private_memory FROM poolguard.terminations WHERE pid = $pid"),
    "idle_timeout $bytes", 'the termination records the worker\'s sample of the session');
finish_quietly($s);

release($node, $kept);
$node->stop;
done_testing();
