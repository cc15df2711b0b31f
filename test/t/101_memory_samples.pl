# The views serve the worker's memory samples (issue 22): poolguard.sessions shows each
# session's private memory as the worker last read it, with memory_sampled_at; the figure is
# never read from /proc by the view (a session that grew shows its old sample until the worker
# reads it again), poolguard.session_memory(pid) reads one afresh for whoever may see the
# session; a sample is never shown for another process that took the same PGPROC slot; memory
# rules still act on a figure read right before they act, never on a sample.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../perl";
use PoolguardTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);

# Re-reads once an hour: within this test a sample changes only when its session is new in its
# slot (read one cycle after login) or a rule reads it.
my $node = poolguard_node('samples', "poolguard.memory_sample_interval = '1h'",
    "poolguard.idle_grace = '1s'", "poolguard.naptime = '100ms'");
$node->start;
$node->safe_psql('postgres', q{
    CREATE EXTENSION pg_poolguard;
    CREATE ROLE app LOGIN;
    CREATE ROLE other LOGIN;
});

my $s = hold($node, 'user=app application_name=samp-a');
my $pid = $s->[1];
ok($node->poll_query_until('postgres',
        "SELECT memory_sampled_at IS NOT NULL FROM poolguard.sessions WHERE pid = $pid"),
    'a new session gets a sample from the worker');
my ($bytes, $sampled_at, $ordered) = split /\|/, $node->safe_psql('postgres',
    "SELECT private_memory, memory_sampled_at, memory_sampled_at BETWEEN backend_start AND now()
       FROM poolguard.sessions WHERE pid = $pid");
cmp_ok($bytes, '>=', 0, 'the view shows the sampled figure');
is($ordered, 't', 'sampled after the session started, not in the future');

# The session grows by ~40 MB of temp buffers: the view keeps serving the sample (it reads no
# /proc), session_memory() reads the figure now.
$s->[0]->query_safe(q{SET temp_buffers = '64MB';
    CREATE TEMP TABLE t AS SELECT g, repeat('x', 500) AS pad FROM generate_series(1, 80000) g;
    SELECT count(*) FROM t});
my $scans = $node->safe_psql('postgres', 'SELECT scans FROM poolguard.stats');
ok($node->poll_query_until('postgres', "SELECT scans >= $scans + 3 FROM poolguard.stats"),
    'the worker scanned three more times');
is($node->safe_psql('postgres',
        "SELECT private_memory = $bytes AND memory_sampled_at = '$sampled_at' FROM poolguard.sessions WHERE pid = $pid"),
    't', 'the view serves the same sample, with the time it was read');
my $fresh = $node->safe_psql('postgres', "SELECT poolguard.session_memory($pid)");
cmp_ok($fresh, '>', $bytes + 30_000_000, 'session_memory() reads the temp buffers now');
cmp_ok($node->safe_psql('postgres',
        "SELECT bytes FROM poolguard.memory WHERE figure = 'client_backends' AND state = 'idle'"),
    '<', $fresh, 'poolguard.memory sums the samples too (it reads no client /proc either)');
like($node->safe_psql('postgres', 'SELECT poolguard.metrics()'),
    qr/^poolguard_session_private_memory_bytes\{policy="",state="idle"\} \d+$/m, 'metrics: sampled session memory');

# Visibility, as in the view: a role without app's privileges gets NULL, as for a pid that is no
# client session (the worker) or none at all.
my $as_other = sub {
    my ($sql) = @_;
    return $node->safe_psql('postgres', $sql, extra_params => [ '-U', 'other' ]);
};
is($as_other->("SELECT poolguard.session_memory($pid) IS NULL"), 't', 'another role: NULL');
is($as_other->("SELECT count(*) FROM poolguard.sessions WHERE pid = $pid"), '0', 'and no row in the view');
is($as_other->("SELECT poolguard.session_memory(pg_backend_pid()) IS NOT NULL"), 't', 'its own session: read');
is($node->safe_psql('postgres', 'SELECT poolguard.session_memory(poolguard.worker_pid()) IS NULL'), 't',
    'the worker is no client session: NULL');
is($node->safe_psql('postgres', 'SELECT poolguard.session_memory(0) IS NULL, poolguard.session_memory(NULL) IS NULL'),
    't|t', 'no such session, NULL pid: NULL');

# Sessions have come and gone (every safe_psql above): still one row per session.
is($node->safe_psql('postgres', 'SELECT count(*) - count(DISTINCT pid) FROM poolguard.sessions'), '0',
    'one row per session');

# A memory rule acts on a figure read now: the sample (before the temp buffers) is under the
# limit, the session is not, and it is ended.
cmp_ok($bytes, '<', 20_000_000, 'precondition: the sample is under the limit');
set_policy($node, q{(name, application_name, max_idle_memory) VALUES ('mem', 'samp-%', 20000000)});
ok(gone($node, $pid), 'max_idle_memory ends the session on its fresh figure, not on the sample');
cmp_ok($node->safe_psql('postgres', "SELECT private_memory FROM poolguard.terminations WHERE pid = $pid"),
    '>', 20_000_000, 'the termination records the fresh figure');
finish_quietly($s);
$node->stop;

# ---- a reused PGPROC slot never shows the previous process's figure ----
# Four connection slots, every one held, all queries through one of them: when a session ends
# and another logs in, the new one takes the freed slot.
my $small = poolguard_node('slots', 'max_connections = 4', 'superuser_reserved_connections = 0',
    "poolguard.memory_sample_interval = '1h'", "poolguard.naptime = '1h'");
$small->append_conf('postgresql.conf', 'reserved_connections = 0') if $small->pg_version >= 16;
$small->start;
$small->safe_psql('postgres', 'CREATE EXTENSION pg_poolguard');
my $observer = $small->background_psql('postgres', on_error_stop => 1);
my $poll = sub {
    my ($sql) = @_;
    for (1 .. 10 * $PostgreSQL::Test::Utils::timeout_default)
    {
        return 1 if $observer->query_safe($sql) eq 't';
        usleep(100_000);
    }
    return 0;
};
my $c = hold($small, 'application_name=reuse-old');
my @fill = map { hold($small, "application_name=fill-$_") } 1 .. 2;
# The worker sleeps an hour between cycles: reload() wakes it for one.
$observer->query_safe('SELECT poolguard.reload()');
ok($poll->("SELECT memory_sampled_at IS NOT NULL FROM poolguard.sessions WHERE pid = $c->[1]"),
    'the old session was sampled');
$c->[0]->quit;
ok($poll->("SELECT count(*) = 0 FROM pg_stat_activity WHERE pid = $c->[1]"), 'the old session is gone');
my $d = hold($small, 'application_name=reuse-new');
is($observer->query_safe("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'"), '4',
    'every connection slot is taken: the new session has the old one\'s PGPROC slot');
is($observer->query_safe("SELECT memory_sampled_at IS NULL OR memory_sampled_at >= backend_start
                            FROM poolguard.sessions WHERE pid = $d->[1]"),
    't', 'the new session never shows the old session\'s sample');
$observer->query_safe('SELECT poolguard.reload()');
ok($poll->("SELECT memory_sampled_at >= backend_start AND private_memory >= 0
              FROM poolguard.sessions WHERE pid = $d->[1]"),
    'after a worker cycle it shows its own');
$_->[0]->quit for ($d, @fill);
$observer->quit;
$small->stop;
done_testing();
