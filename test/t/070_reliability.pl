# Reliability: faults (worker killed, bad reloads, extension dropped, server restart), a churn
# load with caps and reaping, and what unprivileged roles may see.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../perl";
use IPC::Run;
use PoolguardTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use POSIX ();

my $node = poolguard_node('reliability',
    "poolguard.idle_grace = '200ms'",
    'poolguard.history_size = 100000',
    'max_connections = 100');
$node->start;
$node->safe_psql('postgres', q{
    CREATE EXTENSION pg_poolguard;
    CREATE ROLE churner LOGIN;
    CREATE ROLE other LOGIN;
});
my $postmaster_start = $node->safe_psql('postgres', 'SELECT pg_postmaster_start_time()');
my $worker_q = "SELECT pid FROM pg_stat_activity WHERE backend_type = 'pg_poolguard worker'";

# ---- a reaped TCP session, then what an unprivileged role sees of it ----
$node->safe_psql('postgres',
    "INSERT INTO poolguard.policy (name, application_name, idle_timeout) VALUES ('tcp', 'tcp%', '300ms')");
my ($h, $pid) = @{ hold($node, 'host=127.0.0.1 user=churner application_name=tcp-1') };
$node->poll_query_until('postgres', "SELECT count(*) = 1 FROM poolguard.terminations WHERE pid = $pid");
finish_quietly($h);
is($node->safe_psql('postgres', "SELECT client_addr FROM poolguard.terminations WHERE pid = $pid"), '127.0.0.1',
    'a superuser sees the client address');
is($node->safe_psql('postgres', "SELECT count(*) FROM poolguard.terminations WHERE pid = $pid",
        extra_params => [ '-U', 'other' ]), '0', "another role does not see the row at all");
is($node->safe_psql('postgres', "SELECT client_addr FROM poolguard.terminations WHERE pid = $pid",
        extra_params => [ '-U', 'churner' ]), '127.0.0.1', 'the role itself does');
my $history = $node->safe_psql('postgres', 'SELECT count(*) FROM poolguard.terminations');

# ---- the worker terminated: restarted, history intact, no cluster restart ----
# (SIGKILL of any server process makes PostgreSQL itself reinitialize shared memory; the
# worker's own exits never do.)
my $wpid = $node->safe_psql('postgres', $worker_q);
$node->safe_psql('postgres', "SELECT pg_terminate_backend($wpid)");
ok($node->poll_query_until('postgres', "SELECT count(*) = 1 FROM ($worker_q) w WHERE pid <> $wpid"),
    'worker back after pg_terminate_backend');
is($node->safe_psql('postgres', 'SELECT count(*) FROM poolguard.terminations'), $history, 'history intact');

# ---- SIGHUP with invalid values: old values kept, clear log ----
$wpid = $node->safe_psql('postgres', $worker_q);
my $offset = -s $node->logfile;
$node->append_conf('postgresql.conf', "poolguard.naptime = 'soon'\npoolguard.exempt_roles = '\"open'\n");
$node->reload;
$node->wait_for_log(qr/invalid value for parameter "poolguard\.naptime": "soon"/, $offset);
is($node->safe_psql('postgres', 'SHOW poolguard.naptime'), '1s', 'old naptime kept');
is($node->safe_psql('postgres', 'SHOW poolguard.exempt_roles'), '', 'old exempt_roles kept');
is($node->safe_psql('postgres', $worker_q), $wpid, 'worker unaffected by a bad reload');
$node->adjust_conf('postgresql.conf', 'poolguard.naptime', "'1s'");
$node->adjust_conf('postgresql.conf', 'poolguard.exempt_roles', "''");
$node->reload;

# ---- churn around a full cap, with a reaper: exact accounting, no over-admission, no leak ----
# Deterministic on any machine: the cap's 10 places are held open first, so every login of the
# first round is refused whatever the machine's speed; each client makes a fixed number of
# attempts (never a time-based loop) and records what it saw, and the server's accounting must
# match the clients' exactly.
set_policy($node, q{(name, application_name, max_connections, idle_timeout)
    VALUES ('churn', 'churn%', 10, NULL), ('idlers', 'idler%', NULL, '300ms')});
$node->safe_psql('postgres', 'SELECT poolguard.reset_stats()');
my $counted_q = q{SELECT sessions FROM poolguard.policy_status WHERE policy = 'churn'};
my @held = map { hold($node, "user=churner application_name=churn-held-$_") } 1 .. 10;
is($node->safe_psql('postgres', $counted_q), '10', 'the cap\'s 10 places are held');
my $held_pids = join(',', map { $_->[1] } @held);
my $churn_dir = PostgreSQL::Test::Utils::tempdir();
my $refusal = qr/FATAL:  too many connections for poolguard policy "churn"/;

# churn(ROUND, CLIENTS, ATTEMPTS, SQL): CLIENTS processes, each ATTEMPTS logins one after the
# other; each writes "admitted refused" and any other error to its own file.  While they run,
# samples the policy's count and the sessions certainly admitted and not exiting: the held ones
# and those running a query.  Returns (admitted, refused, [other errors], max counted,
# max admitted seen, samples).
sub churn
{
    my ($round, $clients, $attempts, $sql) = @_;
    my @pids;
    for my $c (1 .. $clients)
    {
        my $pid = fork();
        die "fork failed: $!" unless defined $pid;
        if ($pid == 0)
        {
            my ($admitted, $refused, @other) = (0, 0);
            for my $i (1 .. $attempts)
            {
                my ($out, $err) = ('', '');
                IPC::Run::run([ $node->installed_command('psql'), '-XAtq', '-d',
                        $node->connstr('postgres') . " user=churner application_name=churn-$round-$c", '-c', $sql ],
                    '<', '/dev/null', '>', \$out, '2>', \$err);
                my $code = $? >> 8;
                if ($code == 0) { $admitted++; }
                elsif ($code == 2 && $err =~ $refusal) { $refused++; }
                else { push @other, "exit $code: $err"; }
            }
            open(my $f, '>', "$churn_dir/$round-$c") or POSIX::_exit(1);
            print $f join("\n", "$admitted $refused", @other);
            close $f;
            POSIX::_exit(0);   # not exit: the test modules' END blocks would tear the node down
        }
        push @pids, $pid;
    }
    my ($max_counted, $max_admitted, $samples) = (0, 0, 0);
    my %running = map { $_ => 1 } @pids;
    while (%running)
    {
        my ($counted, $admitted) = split /\|/, $node->safe_psql('postgres', qq{
            SELECT ($counted_q), (SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'churn%'
                                    AND (state = 'active' OR pid IN ($held_pids)))});
        $max_counted = $counted if $counted > $max_counted;
        $max_admitted = $admitted if $admitted > $max_admitted;
        $samples++;
        for my $pid (keys %running)
        {
            delete $running{$pid} if waitpid($pid, POSIX::WNOHANG()) != 0;
        }
    }
    my ($admitted, $refused, @other) = (0, 0);
    for my $c (1 .. $clients)
    {
        my @lines = split /\n/, slurp_file("$churn_dir/$round-$c");
        my ($a, $r) = split / /, shift @lines;
        $admitted += $a;
        $refused += $r;
        push @other, @lines;
    }
    return ($admitted, $refused, \@other, $max_counted, $max_admitted, $samples);
}

my $log_offset = -s $node->logfile;
my ($admitted, $refused, $other, $max_counted, $max_admitted, $samples) = churn('full', 10, 6, 'SELECT 1');
note("churn around a full cap: $samples samples, max counted $max_counted, max admitted $max_admitted");
is($admitted, 0, 'with the cap held full, no churning login is admitted');
is($refused, 60, 'every one of the 60 churning logins was refused, naming the policy');
is(scalar @$other, 0, 'no other failures') or diag(join("\n", @$other));
is($node->safe_psql('postgres', 'SELECT rejected_connections FROM poolguard.stats'), $refused,
    'rejected_connections counts exactly the refusals the clients saw');
my @codes = (substr(slurp_file($node->logfile), $log_offset) =~ /FATAL:  53300: too many connections for poolguard policy "churn"/g);
is(scalar @codes, $refused, 'each refusal was logged with SQLSTATE 53300');
cmp_ok($max_counted, '<=', 10, 'never more than the cap counted');
cmp_ok($max_admitted, '<=', 10, 'never more than the cap admitted');

# Half the places given back; churn (with a query that keeps each admitted session active a
# moment) and reap idle sessions meanwhile: logins are admitted and refused, nothing leaks.
release($node, splice(@held, 5));
$held_pids = join(',', map { $_->[1] } @held);
ok(policy_sessions($node, 'churn', 5), 'the released places are given back');
my $rejected_before = $node->safe_psql('postgres', 'SELECT rejected_connections FROM poolguard.stats');
my $terminated_before = $node->safe_psql('postgres', 'SELECT terminated FROM poolguard.stats');
my @idlers = map { hold($node, "user=churner application_name=idler-$_") } 1 .. 5;
my ($admitted2, $refused2, $other2, $max_counted2, $max_admitted2, $samples2) =
    churn('half', 10, 6, 'SELECT pg_sleep(0.02)');
note("churn around a half-full cap: $admitted2 admitted, $refused2 refused, $samples2 samples, "
    . "max counted $max_counted2, max admitted $max_admitted2");
is($admitted2 + $refused2, 60, 'every churning login was admitted or refused by the cap');
is(scalar @$other2, 0, 'no other failures') or diag(join("\n", @$other2));
cmp_ok($admitted2, '>', 0, 'with places free, churning logins were admitted');
is($node->safe_psql('postgres', 'SELECT rejected_connections FROM poolguard.stats') - $rejected_before, $refused2,
    'rejected_connections grew by exactly the refusals the clients saw');
cmp_ok($max_counted2, '<=', 10, 'never more than the cap counted under churn');
cmp_ok($max_admitted2, '<=', 10, 'never more than the cap admitted under churn (active or held sessions)');
my $reaped = 0;
for my $s (@idlers)
{
    $reaped++ if gone($node, $s->[1]);
    finish_quietly($s);
}
is($reaped, 5, 'every idle session was ended by the reaper');
is($node->safe_psql('postgres', "SELECT count(*) FROM poolguard.terminations WHERE reason = 'idle_timeout'
                                   AND pid IN (" . join(',', map { $_->[1] } @idlers) . ')'),
    '5', 'each reaped idle session is recorded');
ok($node->poll_query_until('postgres', qq{
        SELECT ($counted_q) = 5 AND (SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'churn%') = 5}),
    'after the churn the policy counts exactly the 5 held sessions that are still connected (no leaked count)');
release($node, @held);
ok(policy_sessions($node, 'churn', 0), 'and nothing once they are gone');
my ($rejected, $terminated, $rows) = split /\|/, $node->safe_psql('postgres', q{
    SELECT (SELECT rejected_connections FROM poolguard.stats), (SELECT terminated FROM poolguard.stats),
           (SELECT count(*) FROM poolguard.terminations WHERE at >= (SELECT stats_reset FROM poolguard.stats))});
is($rejected, $refused + $refused2, 'in all, rejected_connections = the refusals the clients saw');
cmp_ok($terminated - $terminated_before, '>=', 5, 'the reaper\'s terminations are counted');
is($rows, $terminated, 'every termination is recorded');
is($node->safe_psql('postgres', "SELECT rejected FROM poolguard.policy_status WHERE policy = 'churn'"),
    $refused + $refused2, 'and counted against the policy');
is($node->safe_psql('postgres', 'SELECT pg_postmaster_start_time()'), $postmaster_start, 'no cluster restart under load');
ok(!$node->log_contains(qr/was terminated by signal 11|PANIC/), 'no crash');

# ---- extension dropped and created again; server restart ----
$wpid = $node->safe_psql('postgres', $worker_q);
$node->safe_psql('postgres', 'DROP EXTENSION pg_poolguard');
$node->safe_psql('postgres', 'CREATE EXTENSION pg_poolguard');
is($node->safe_psql('postgres', 'SELECT count(*) FROM poolguard.policy'), '0', 'a new extension starts empty');
is($node->safe_psql('postgres', $worker_q), $wpid, 'worker kept running across DROP/CREATE EXTENSION');

$node->restart;
ok($node->poll_query_until('postgres', "SELECT count(*) = 1 FROM ($worker_q) w"), 'worker back after restart');
is($node->safe_psql('postgres', 'SELECT count(*) FROM poolguard.terminations'), '0',
    'history is empty after a restart');
is($node->safe_psql('postgres', 'SELECT terminated, rejected_connections FROM poolguard.stats'), '0|0',
    'counters start from zero, consistently');

$node->stop;
done_testing();
