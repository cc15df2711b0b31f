# Idle-memory budgets (issue 23): when the private memory of idle sessions, all together (the
# server's poolguard.idle_memory_budget) or one policy's (its idle_memory_budget), exceeds the
# budget, the worker ends idle sessions, the largest first, until it is under; exempt sessions are
# neither counted nor ended; dry_run only records; the client is told why; /metrics shows budgets.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../perl";
use PoolguardTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = poolguard_node('budget', "poolguard.idle_grace = '1s'", "poolguard.exempt_roles = 'keeper'");
$node->start;
$node->safe_psql('postgres', q{
    CREATE EXTENSION pg_poolguard;
    CREATE ROLE app LOGIN;
    CREATE ROLE keeper LOGIN;
});

# An idle session of ROLE that filled ROWS rows (~530 bytes each) of temp buffers: memory of its
# own, as in 100_memory.pl.
sub holder
{
    my ($role, $app, $rows) = @_;
    my $s = hold($node, "user=$role application_name=$app");
    $s->[0]->query_safe(qq{SET temp_buffers = '128MB';
        CREATE TEMP TABLE t AS SELECT g, repeat('x', 500) AS pad FROM generate_series(1, $rows) g;
        SELECT count(*) FROM t});
    return $s;
}
sub shown
{
    my ($pid) = @_;
    return $node->safe_psql('postgres', "SELECT poolguard.session_memory($pid)"); # read now
}
my $MB = 1024 * 1024;

my $big = holder('app', 'budget-big', 120000);  # ~64 MB
my $mid = holder('app', 'budget-mid', 60000);   # ~32 MB
my $small = holder('app', 'budget-small', 20000); # ~11 MB
my $keeper = holder('keeper', 'budget-keeper', 150000); # exempt, the largest of all
my %shown = map { $_->[1] => shown($_->[1]) } ($big, $mid, $small, $keeper);
note('shown: ' . join(', ', map { "$_ => $shown{$_}" } sort keys %shown));
cmp_ok($shown{ $big->[1] } - $shown{ $mid->[1] }, '>', 15 * $MB, 'big holds clearly more than mid');
cmp_ok($shown{ $mid->[1] } - $shown{ $small->[1] }, '>', 10 * $MB, 'mid holds clearly more than small');

my $scans_sql = 'SELECT scans FROM poolguard.stats';
sub scans_pass
{
    my ($n) = @_;
    my $scans = $node->safe_psql('postgres', $scans_sql);
    return $node->poll_query_until('postgres', "SELECT scans >= $scans + $n FROM poolguard.stats");
}

# ---- bad input ----
my ($ret, $out, $err) = $node->psql('postgres',
    q{INSERT INTO poolguard.policy (name, idle_memory_budget) VALUES ('zero', 0)});
like($err, qr/ERROR:  idle_memory_budget of policy "zero" must be positive/, 'a budget of 0 bytes is refused');
($ret, $out, $err) = $node->psql('postgres', q{SET poolguard.idle_memory_budget = -1});
isnt($ret, 0, 'a negative server budget is refused');

# ---- a policy's budget: over it by less than the largest, exactly the largest goes ----
# The policy's idle sessions hold big + mid + small; the budget leaves room for mid + small and
# 5 MB of drift, so ending big alone brings it under.
my $budget = $shown{ $mid->[1] } + $shown{ $small->[1] } + 5 * $MB;
set_policy($node, qq{(name, application_name, idle_memory_budget) VALUES ('apps', 'budget-%', $budget)});
ok(gone($node, $big->[1]), 'policy budget: the largest idle session is ended');
is($node->safe_psql('postgres', "SELECT reason, policy, action FROM poolguard.terminations WHERE pid = $big->[1]"),
    'idle_memory_budget|apps|terminate', 'recorded as idle_memory_budget of policy "apps"');
like(finish_quietly($big->[0]),
    qr/DETAIL:  pg_poolguard ended this session: it was idle holding \d+ bytes of private memory, and policy "apps" allows its idle sessions together at most $budget bytes, ending the largest ones first \(idle_memory_budget\)\./,
    'the client is told the budget and its policy');
ok(scans_pass(3), 'the worker scanned three more times');
ok(alive($node, $mid->[1]) && alive($node, $small->[1]), 'under the budget now: mid and small stay');
ok(alive($node, $keeper->[1]), 'the exempt session, larger than all, is never ended (nor counted)');
like($node->safe_psql('postgres', 'SELECT poolguard.metrics()'),
    qr/^poolguard_idle_memory_budget_bytes\{policy="apps"\} $budget$/m, 'metrics: the policy budget');

# ---- the server's budget, in dry run first ----
# No policy now: mid and small are the only idle sessions counted; a budget under their sum by
# less than mid's share ends mid only.
$node->safe_psql('postgres', 'TRUNCATE poolguard.policy; SELECT poolguard.reload()');
my $server_budget = $shown{ $small->[1] } + 5 * $MB;
$node->safe_psql('postgres', qq{ALTER SYSTEM SET poolguard.idle_memory_budget = $server_budget;
    ALTER SYSTEM SET poolguard.dry_run = on; SELECT pg_reload_conf()});
ok($node->poll_query_until('postgres',
        "SELECT count(*) = 1 FROM poolguard.terminations WHERE pid = $mid->[1] AND action = 'dry_run'"),
    'dry run: the largest counted session is recorded');
is($node->safe_psql('postgres', "SELECT reason, policy FROM poolguard.terminations WHERE pid = $mid->[1]"),
    'idle_memory_budget|', 'as idle_memory_budget of the server setting (no policy)');
ok(alive($node, $mid->[1]), 'dry run: nobody is ended');
is($node->safe_psql('postgres', "SELECT count(*) FROM poolguard.terminations WHERE pid IN ($small->[1], $keeper->[1])"),
    '0', 'dry run: only the largest is chosen');

$node->safe_psql('postgres', q{ALTER SYSTEM SET poolguard.dry_run = off; SELECT pg_reload_conf()});
ok(gone($node, $mid->[1]), 'server budget: the largest idle session is ended');
like(finish_quietly($mid->[0]),
    qr/DETAIL:  pg_poolguard ended this session: it was idle holding \d+ bytes of private memory, and the server setting poolguard.idle_memory_budget allows idle sessions together at most $server_budget bytes, ending the largest ones first\./,
    'the client is told the server setting');
ok(scans_pass(3), 'the worker scanned three more times');
ok(alive($node, $small->[1]), 'under the budget now: small stays');
ok(alive($node, $keeper->[1]), 'the exempt session stays');
is($node->safe_psql('postgres', q{SELECT string_agg(application_name || ':' || action, ',' ORDER BY at)
                                  FROM poolguard.terminations WHERE reason = 'idle_memory_budget'}),
    'budget-big:terminate,budget-mid:dry_run,budget-mid:terminate', 'exactly these, in this order');
my $metrics = $node->safe_psql('postgres', 'SELECT poolguard.metrics()');
like($metrics, qr/^poolguard_idle_memory_budget_bytes\{policy=""\} $server_budget$/m, 'metrics: the server budget');
like($metrics, qr/^poolguard_terminations_total\{policy="",reason="idle_memory_budget"\} 1$/m,
    'metrics: the server budget\'s termination');
like($metrics, qr/^poolguard_terminations_total\{policy="apps",reason="idle_memory_budget"\} 1$/m,
    'metrics: the policy budget\'s termination');
like($metrics, qr/^poolguard_idle_sessions_private_memory_bytes \d+/m, 'next to the idle sessions\' memory');

$small->[0]->quit;
$keeper->[0]->quit;
$node->stop;
done_testing();
