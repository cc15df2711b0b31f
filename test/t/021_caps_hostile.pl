# Caps under hostile users and hostile timing: a session counts by its login identity (SET
# application_name escapes nothing, also after a policy change); eviction never signals a
# session that is busy, waits a bounded time for the victim's place and then refuses clearly;
# catalog locks held around an eviction (REINDEX of pg_authid, DROP ROLE of the victim) never
# hang logins or backend exits.
use strict;
use warnings;
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);

my $node = PostgreSQL::Test::Cluster->new('caps_hostile');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'pg_poolguard'
poolguard.idle_grace = '1s'
log_error_verbosity = verbose
listen_addresses = '127.0.0.1'
});
$node->append_conf('pg_hba.conf', 'host all all 127.0.0.1/32 trust');
$node->start;
$node->safe_psql('postgres', q{
    CREATE EXTENSION pg_poolguard;
    CREATE ROLE app LOGIN;
    CREATE ROLE app_group NOLOGIN;
    CREATE ROLE member1 LOGIN IN ROLE app_group;
    CREATE ROLE member2 LOGIN IN ROLE app_group;
    CREATE ROLE bystander LOGIN;
});

# Generous deadlines: the machine may be loaded; a hang is forever, not 60 s.
my $deadline = 60;

sub policy
{
    $node->safe_psql('postgres', "TRUNCATE poolguard.policy; INSERT INTO poolguard.policy $_[0]; SELECT poolguard.reload()");
}

sub hold
{
    my ($connstr) = @_;
    my $h = $node->background_psql('postgres', on_error_stop => 0,
        extra_params => [ '-d', $node->connstr('postgres') . " $connstr" ]);
    my $pid = $h->query_safe('SELECT pg_backend_pid()');
    return [ $h, $pid ];
}

sub login
{
    my ($connstr) = @_;
    my ($ret, $out, $err) = $node->psql('postgres', 'SELECT 1',
        extra_params => [ '-d', $node->connstr('postgres') . " $connstr" ]);
    return ($ret, $err);
}

# A login in the background (it may have to wait); finish it with finish_within().
sub start_login
{
    my ($connstr, $sql) = @_;
    my ($out, $err) = ('', '');
    my $h = IPC::Run::start(
        [ $node->installed_command('psql'), '-XAtq', '-d', $node->connstr('postgres') . " $connstr",
          '-c', $sql // 'SELECT 1' ],
        '>', \$out, '2>', \$err, IPC::Run::timeout($deadline));
    return [ $h, \$out, \$err ];
}

sub finish_within
{
    my ($c) = @_;
    my $ok = eval { $c->[0]->finish; 1 };
    if (!$ok)
    {
        $c->[0]->kill_kill;
        return (-1, "timed out: $@");
    }
    my @results = $c->[0]->results;
    return ($results[0], ${ $c->[2] });
}

sub gone
{
    my ($pid) = @_;
    return $node->poll_query_until('postgres', "SELECT count(*) = 0 FROM pg_stat_activity WHERE pid = $pid");
}

sub idle_for_grace
{
    my ($pid) = @_;
    return $node->poll_query_until('postgres',
        "SELECT state = 'idle' AND state_change < now() - interval '1.2s' FROM pg_stat_activity WHERE pid = $pid");
}

# ---- a session is counted by its login identity: SET application_name escapes nothing ----
policy(q{(name, application_name, max_connections) VALUES ('capped', 'capped%', 1)});
my $escapee = hold('user=app application_name=capped-1');
$escapee->[0]->query_safe("SET application_name = 'elsewhere'");
is($node->safe_psql('postgres', "SELECT application_name FROM pg_stat_activity WHERE pid = $escapee->[1]"),
    'elsewhere', 'the session now calls itself something else');
# A policy change makes the caps count every session again (reload() here; the worker too).
$node->safe_psql('postgres', q{UPDATE poolguard.policy SET comment = 'changed' WHERE name = 'capped'; SELECT poolguard.reload()});
is($node->safe_psql('postgres', "SELECT sessions FROM poolguard.policy_status WHERE policy = 'capped'"), '1',
    'after the policy change the session is still counted against the policy that admitted it');
my ($ret, $err) = login('user=app application_name=capped-2');
like($err, qr/too many connections for poolguard policy "capped"/, 'a further login over the cap is still refused');
# And the worker's reconcile (policy change without reload()) agrees.
my $starts = $node->safe_psql('postgres', 'SELECT scans FROM poolguard.stats');
$node->safe_psql('postgres', q{UPDATE poolguard.policy SET comment = 'changed again' WHERE name = 'capped'});
$node->poll_query_until('postgres', "SELECT scans > $starts + 1 FROM poolguard.stats");
($ret, $err) = login('user=app application_name=capped-3');
like($err, qr/too many connections for poolguard policy "capped"/, 'still refused after the worker reloaded');
# The other way round: a session that logged in as something else and renames itself into
# the policy's pattern was not admitted by it and does not take its place.
$escapee->[0]->quit;
gone($escapee->[1]);
my $renamed = hold('user=app application_name=other');
$renamed->[0]->query_safe("SET application_name = 'capped-4'");
$node->safe_psql('postgres', q{UPDATE poolguard.policy SET comment = 'third' WHERE name = 'capped'; SELECT poolguard.reload()});
($ret, $err) = login('user=app application_name=capped-5');
is($ret, 0, 'a session renamed into the pattern later is not counted against the cap');
$renamed->[0]->quit;

# ---- evict_idle never signals a session that is busy ----
policy(q{(name, role_name, max_connections, on_limit) VALUES ('evict', 'app', 2, 'evict_idle')});
my $busy = hold('user=app application_name=busy');   # logged in first: idle longest, then busy
sleep(1);
my $idle = hold('user=app application_name=idle');
idle_for_grace($busy->[1]);
idle_for_grace($idle->[1]);
$busy->[0]->{stdin} .= "SELECT pg_sleep(300);\n";
$busy->[0]->{run}->pump_nb;
$node->poll_query_until('postgres', "SELECT state = 'active' FROM pg_stat_activity WHERE pid = $busy->[1]");
my $newcomer = start_login('user=app application_name=third', 'SELECT pg_sleep(2)');
($ret, $err) = finish_within($newcomer);
is($ret, 0, 'the login is admitted by evicting an idle session');
ok(gone($idle->[1]), 'the idle session was the one evicted');
is($node->safe_psql('postgres', "SELECT count(*) FROM pg_stat_activity WHERE pid = $busy->[1]"), '1',
    'the longer-idle session that turned active was not signalled');
# With only busy sessions left, the login is refused and nobody is signalled.
my $busy2 = hold('user=app application_name=busy2');
idle_for_grace($busy2->[1]);
$busy2->[0]->{stdin} .= "SELECT pg_sleep(300);\n";
$busy2->[0]->{run}->pump_nb;
$node->poll_query_until('postgres', "SELECT state = 'active' FROM pg_stat_activity WHERE pid = $busy2->[1]");
($ret, $err) = login('user=app application_name=fourth');
like($err, qr/The policy allows 2 connections and 2 are in use/, 'no idle session: refused');
is($node->safe_psql('postgres', "SELECT count(*) FROM pg_stat_activity WHERE pid IN ($busy->[1], $busy2->[1])"), '2',
    'busy sessions survive');
is($node->safe_psql('postgres', "SELECT count(*) FROM poolguard.terminations WHERE pid IN ($busy->[1], $busy2->[1])"), '0',
    'and were never recorded as evicted');
$node->safe_psql('postgres', "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid IN ($busy->[1], $busy2->[1])");
gone($busy->[1]);
gone($busy2->[1]);
eval { $_->[0]->{run}->finish } for ($busy, $busy2);

# ---- the wait for the victim's place is bounded, then a clear refusal ----
policy(q{(name, role_name, max_connections, on_limit) VALUES ('bounded', 'app', 1, 'evict_idle')});
my $frozen = hold('user=app application_name=frozen');
idle_for_grace($frozen->[1]);
kill 'STOP', $frozen->[1];   # it will not act on SIGTERM (nor free its place) until SIGCONT
my $t0 = time();
($ret, $err) = login('user=app application_name=waiting');
my $waited = time() - $t0;
like($err, qr/FATAL:  too many connections for poolguard policy "bounded"/, 'refused after the bounded wait');
like($err, qr/DETAIL:  An idle session of the policy was ended to make room, but its place was not free within 1000 ms/,
    'the detail says the place was not freed in time');
like($err, qr/HINT:  Try again in a moment/, 'with a hint');
like(slurp_file($node->logfile), qr/FATAL:  53300: too many connections for poolguard policy "bounded"/, 'SQLSTATE 53300');
cmp_ok($waited, '<', 30, sprintf('the login gave up after %.1f s, not never', $waited));
kill 'CONT', $frozen->[1];
ok(gone($frozen->[1]), 'the victim exits once it runs again');
($ret, $err) = login('user=app application_name=later');
is($ret, 0, 'and its place is free');

# ---- catalog locks around an eviction never hang logins or exits ----
# The victim's role is member1; the login is member2 (both in the capped group).  While
# pg_authid is being reindexed, PostgreSQL itself makes every new connection wait for it (the
# shared relcache needs its indexes), so everything below is watched through a session opened
# before.
policy(q{(name, role_name, max_connections, on_limit) VALUES ('group', 'app_group', 1, 'evict_idle')});
my $monitor = $node->background_psql('postgres', on_error_stop => 0);
sub gone_now
{
    my ($pid) = @_;
    my $t0 = time();
    while (time() - $t0 < $deadline)
    {
        # pg_stat_activity joins pg_authid (locked): read the status function itself.
        return 1 if $monitor->query_safe("SELECT count(*) FROM pg_stat_get_activity(NULL) WHERE pid = $pid") eq '0';
        select(undef, undef, undef, 0.1);
    }
    return 0;
}
my $victim = hold('user=member1 application_name=victim');
my $bystander = hold('user=bystander application_name=bystander');
idle_for_grace($victim->[1]);
my $reindex = $node->background_psql('postgres', on_error_stop => 0);
my $reindex_pid = $reindex->query_safe('SELECT pg_backend_pid()');
$reindex->query_safe('BEGIN; REINDEX TABLE pg_authid');   # holds pg_authid's indexes exclusively
my $blocked = start_login('user=member2 application_name=during-reindex');
# Give the login time to reach the cap check and the eviction.
$monitor->query_safe('SELECT pg_sleep(1)');
# Backend exits take the caps lock on the way out: they must not wait for the login.
$bystander->[0]->quit;
ok(gone_now($bystander->[1]), 'an unrelated session exits while a login evicts under a catalog lock');
# The lock holder itself can be terminated and exits (with the catalog read under the caps
# lock, it would wait for the caps lock held by a login waiting for it: a deadlock no
# detector sees).
$monitor->query_safe("SELECT pg_terminate_backend($reindex_pid)");
ok(gone_now($reindex_pid), 'the backend holding the catalog lock exits when terminated');
eval { $reindex->quit };
($ret, $err) = finish_within($blocked);
is($ret, 0, 'the waiting login completes by evicting the idle member') or diag($err);
ok(gone_now($victim->[1]), 'the victim was evicted');
$monitor->quit;

# DROP ROLE of the victim's role in an open transaction: eviction goes on, nothing waits on it.
$node->safe_psql('postgres', 'CREATE ROLE doomed LOGIN IN ROLE app_group');
$node->poll_query_until('postgres', "SELECT sessions = 0 FROM poolguard.policy_status WHERE policy = 'group'");
my $doomed = hold('user=doomed application_name=doomed');
idle_for_grace($doomed->[1]);
my $dropper = $node->background_psql('postgres', on_error_stop => 0);
$dropper->query_safe('BEGIN; DROP ROLE doomed');
my $during_drop = start_login('user=member2 application_name=during-drop');
($ret, $err) = finish_within($during_drop);
is($ret, 0, 'a login evicting a session whose role is being dropped completes') or diag($err);
ok(gone($doomed->[1]), 'and the session was evicted');
$dropper->query_safe('ROLLBACK');
$dropper->quit;

# Nothing is left waiting: the accounting is consistent and logins work.
$node->poll_query_until('postgres', "SELECT sessions = 0 FROM poolguard.policy_status WHERE policy = 'group'");
($ret, $err) = login('user=member1');
is($ret, 0, 'logins work afterwards');

$node->stop;
done_testing();
