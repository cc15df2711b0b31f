# Reliability: faults (worker killed, bad reloads, extension dropped, server restart), a churn
# load with caps and reaping, and what unprivileged roles may see.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use POSIX ();
use Time::HiRes qw(time usleep);

my $node = PostgreSQL::Test::Cluster->new('reliability');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'pg_poolguard'
poolguard.idle_grace = '200ms'
poolguard.history_size = 100000
max_connections = 100
listen_addresses = '127.0.0.1'
});
$node->append_conf('pg_hba.conf', 'host all all 127.0.0.1/32 trust');
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
my $h = $node->background_psql('postgres', on_error_stop => 0,
    extra_params => [ '-d', 'host=127.0.0.1 port=' . $node->port . ' dbname=postgres user=churner application_name=tcp-1' ]);
my $pid = $h->query_safe('SELECT pg_backend_pid()');
$node->poll_query_until('postgres', "SELECT count(*) = 1 FROM poolguard.terminations WHERE pid = $pid");
eval { $h->{stdin} .= "SELECT 1;\n\\q\n"; $h->{run}->finish; };
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

# ---- churn: 25 clients connecting, querying, idling, disconnecting, with a cap and a reaper ----
$node->safe_psql('postgres', q{
    TRUNCATE poolguard.policy;
    INSERT INTO poolguard.policy (name, application_name, max_connections) VALUES ('churn', 'churn%', 10);
    INSERT INTO poolguard.policy (name, application_name, idle_timeout) VALUES ('idlers', 'idler%', '300ms');
    SELECT poolguard.reset_stats();
});
my $seconds = 30;
my $deadline = time() + $seconds;
my @children;
for my $c (1 .. 25)
{
    my $child = fork();
    die "fork failed" unless defined $child;
    if ($child == 0)
    {
        my $app = $c <= 5 ? "idler-$c" : "churn-$c";
        # idlers hold their session idle (psql runs a shell command in between), churners
        # connect, query briefly and leave.
        my @sql = $c <= 5 ? ('-c', 'SELECT 1', '-c', '\! sleep 1', '-c', 'SELECT 2')
                          : ('-c', 'SELECT pg_sleep(0.05)');
        while (time() < $deadline)
        {
            system($node->installed_command('psql'), '-XAtq', '-d',
                $node->connstr('postgres') . " user=churner application_name=$app", @sql);
        }
        POSIX::_exit(0); # not exit: the test modules' END blocks would tear the node down
    }
    push @children, $child;
}
my ($max_counted, $max_live, $samples) = (0, 0, 0);
while (time() < $deadline)
{
    my ($counted, $live) = split /\|/, $node->safe_psql('postgres', q{
        SELECT (SELECT sessions FROM poolguard.policy_status WHERE policy = 'churn'),
               (SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'churn%')});
    $max_counted = $counted if $counted > $max_counted;
    $max_live = $live if $live > $max_live;
    $samples++;
    usleep(100_000);
}
waitpid($_, 0) for @children;
note("churn: $samples samples, max counted $max_counted, max live $max_live");
cmp_ok($max_counted, '<=', 10, 'never more than the cap counted');
# pg_stat_activity may show one more for an instant: a backend gives its place back at the start
# of its exit, a moment before its activity entry disappears.
cmp_ok($max_live, '<=', 12, 'connected sessions follow the cap (an exiting backend may still show)');
my ($rejected, $terminated, $rows) = split /\|/, $node->safe_psql('postgres', q{
    SELECT (SELECT rejected_connections FROM poolguard.stats), (SELECT terminated FROM poolguard.stats),
           (SELECT count(*) FROM poolguard.terminations WHERE at >= (SELECT stats_reset FROM poolguard.stats))});
cmp_ok($rejected, '>', 0, 'the cap refused logins under churn');
cmp_ok($terminated, '>', 0, 'idle sessions were reaped under churn');
is($rows, $terminated, 'every termination is recorded');
ok($node->poll_query_until('postgres', q{
        SELECT (SELECT sessions FROM poolguard.policy_status WHERE policy = 'churn') =
               (SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'churn%')}),
    'shared-memory counts match pg_stat_activity afterwards');
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
