# Caps under hostile users and hostile timing: a session counts by its login identity (SET
# application_name escapes nothing, also after a policy change); eviction never signals a
# session that is busy, waits a bounded time for the victim's place and then refuses clearly;
# catalog locks held around an eviction (REINDEX of pg_authid, DROP ROLE of the victim) never
# hang logins or backend exits.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../perl";
use PoolguardTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);

my $node = poolguard_node('caps_hostile', "poolguard.idle_grace = '1s'");
$node->start;
$node->safe_psql('postgres', q{
    CREATE EXTENSION pg_poolguard;
    CREATE ROLE app LOGIN;
    CREATE ROLE app_group NOLOGIN;
    CREATE ROLE member1 LOGIN IN ROLE app_group;
    CREATE ROLE member2 LOGIN IN ROLE app_group;
    CREATE ROLE bystander LOGIN;
});

# ---- a session is counted by its login identity: SET application_name escapes nothing ----
set_policy($node, q{(name, application_name, max_connections) VALUES ('capped', 'capped%', 1)});
my $escapee = hold($node, 'user=app application_name=capped-1');
$escapee->[0]->query_safe("SET application_name = 'elsewhere'");
is($node->safe_psql('postgres', "SELECT application_name FROM pg_stat_activity WHERE pid = $escapee->[1]"),
    'elsewhere', 'the session now calls itself something else');
# A policy change makes the caps count every session again (reload() here; the worker too).
$node->safe_psql('postgres', q{UPDATE poolguard.policy SET comment = 'changed' WHERE name = 'capped'; SELECT poolguard.reload()});
is($node->safe_psql('postgres', "SELECT sessions FROM poolguard.policy_status WHERE policy = 'capped'"), '1',
    'after the policy change the session is still counted against the policy that admitted it');
my ($ret, $err) = login($node, 'user=app application_name=capped-2');
like($err, qr/too many connections for poolguard policy "capped"/, 'a further login over the cap is still refused');
# And the worker's reconcile (policy change without reload()) agrees.
my $starts = $node->safe_psql('postgres', 'SELECT scans FROM poolguard.stats');
$node->safe_psql('postgres', q{UPDATE poolguard.policy SET comment = 'changed again' WHERE name = 'capped'});
$node->poll_query_until('postgres', "SELECT scans > $starts + 1 FROM poolguard.stats");
($ret, $err) = login($node, 'user=app application_name=capped-3');
like($err, qr/too many connections for poolguard policy "capped"/, 'still refused after the worker reloaded');
# The other way round: a session that logged in as something else and renames itself into
# the policy's pattern was not admitted by it and does not take its place.
release($node, $escapee);
my $renamed = hold($node, 'user=app application_name=other');
$renamed->[0]->query_safe("SET application_name = 'capped-4'");
$node->safe_psql('postgres', q{UPDATE poolguard.policy SET comment = 'third' WHERE name = 'capped'; SELECT poolguard.reload()});
($ret, $err) = login($node, 'user=app application_name=capped-5');
is($ret, 0, 'a session renamed into the pattern later is not counted against the cap');
release($node, $renamed);

# ---- evict_idle never signals a session that is busy ----
set_policy($node, q{(name, role_name, max_connections, on_limit) VALUES ('evict', 'app', 2, 'evict_idle')});
# hold() returns once the session is idle: the first one has been idle longer.
my $busy = hold($node, 'user=app application_name=busy');   # logged in first: idle longest, then busy
my $idle = hold($node, 'user=app application_name=idle');
idle_for($node, $busy->[1], 1.2);
idle_for($node, $idle->[1], 1.2);
$busy->[0]->{stdin} .= "SELECT pg_sleep(300);\n";
$busy->[0]->{run}->pump_nb;
$node->poll_query_until('postgres', "SELECT state = 'active' FROM pg_stat_activity WHERE pid = $busy->[1]");
my $newcomer = start_login($node, 'user=app application_name=third', 'SELECT pg_sleep(2)');
($ret, $err) = finish_login($newcomer);
is($ret, 0, 'the login is admitted by evicting an idle session');
ok(gone($node, $idle->[1]), 'the idle session was the one evicted');
is($node->safe_psql('postgres', "SELECT count(*) FROM pg_stat_activity WHERE pid = $busy->[1]"), '1',
    'the longer-idle session that turned active was not signalled');
# With only busy sessions left, the login is refused and nobody is signalled.  (First the
# admitted login's own exit.)
ok(policy_sessions($node, 'evict', 1), 'the admitted login has left');
my $busy2 = hold($node, 'user=app application_name=busy2');
idle_for($node, $busy2->[1], 1.2);
$busy2->[0]->{stdin} .= "SELECT pg_sleep(300);\n";
$busy2->[0]->{run}->pump_nb;
$node->poll_query_until('postgres', "SELECT state = 'active' FROM pg_stat_activity WHERE pid = $busy2->[1]");
($ret, $err) = login($node, 'user=app application_name=fourth');
like($err, qr/The policy allows 2 connections and 2 are in use/, 'no idle session: refused');
is($node->safe_psql('postgres', "SELECT count(*) FROM pg_stat_activity WHERE pid IN ($busy->[1], $busy2->[1])"), '2',
    'busy sessions survive');
is($node->safe_psql('postgres', "SELECT count(*) FROM poolguard.terminations WHERE pid IN ($busy->[1], $busy2->[1])"), '0',
    'and were never recorded as evicted');
$node->safe_psql('postgres', "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid IN ($busy->[1], $busy2->[1])");
gone($node, $busy->[1]);
gone($node, $busy2->[1]);
eval { $_->[0]->{run}->finish } for ($busy, $busy2);

# ---- the wait for the victim's place is bounded, then a clear refusal ----
set_policy($node, q{(name, role_name, max_connections, on_limit) VALUES ('bounded', 'app', 1, 'evict_idle')});
my $frozen = hold($node, 'user=app application_name=frozen');
idle_for($node, $frozen->[1], 1.2);
kill 'STOP', $frozen->[1];   # it will not act on SIGTERM (nor free its place) until SIGCONT
# Bounded by the test harness's deadline only: a hang shows as a login that did not end.
my $t0 = time();
($ret, $err) = finish_login(start_login($node, 'user=app application_name=waiting'));
my $waited = time() - $t0;
isnt($ret, -1, 'the login ended while the victim was still stopped (it did not wait for it)');
like($err, qr/FATAL:  too many connections for poolguard policy "bounded"/, 'refused after the bounded wait');
like($err, qr/DETAIL:  An idle session of the policy was ended to make room, but its place was not free within 1000 ms/,
    'the detail says the place was not freed in time');
like($err, qr/HINT:  Try again in a moment/, 'with a hint');
like(slurp_file($node->logfile), qr/FATAL:  53300: too many connections for poolguard policy "bounded"/, 'SQLSTATE 53300');
cmp_ok($waited, '>=', 1.0, sprintf('the login waited for the place before refusing (%.1f s, at least the 1 s bound)', $waited));
is($node->safe_psql('postgres', "SELECT count(*) FROM pg_stat_activity WHERE pid = $frozen->[1]"), '1',
    'the victim was still there when the login gave up');
kill 'CONT', $frozen->[1];
ok(gone($node, $frozen->[1]), 'the victim exits once it runs again');
($ret, $err) = login($node, 'user=app application_name=later');
is($ret, 0, 'and its place is free');

# ---- catalog locks around an eviction never hang logins or exits ----
# The victim's role is member1; the login is member2 (both in the capped group).  While
# pg_authid is being reindexed, PostgreSQL itself makes every new connection wait for it (the
# shared relcache needs its indexes), so everything below is watched through a session opened
# before.
set_policy($node, q{(name, role_name, max_connections, on_limit) VALUES ('group', 'app_group', 1, 'evict_idle')});
my $monitor = $node->background_psql('postgres', on_error_stop => 0);
sub gone_now
{
    my ($pid) = @_;
    my $t0 = time();
    while (time() - $t0 < $PostgreSQL::Test::Utils::timeout_default)
    {
        # pg_stat_activity joins pg_authid (locked): read the status function itself.
        return 1 if $monitor->query_safe("SELECT count(*) FROM pg_stat_get_activity(NULL) WHERE pid = $pid") eq '0';
        select(undef, undef, undef, 0.1);
    }
    return 0;
}
my $victim = hold($node, 'user=member1 application_name=victim');
my $bystander = hold($node, 'user=bystander application_name=bystander');
idle_for($node, $victim->[1], 1.2);
my $reindex = $node->background_psql('postgres', on_error_stop => 0);
my $reindex_pid = $reindex->query_safe('SELECT pg_backend_pid()');
$reindex->query_safe('BEGIN; REINDEX TABLE pg_authid');   # holds pg_authid's indexes exclusively
my $blocked = start_login($node, 'user=member2 application_name=during-reindex');
# Wait until the login is blocked behind the catalog lock (pg_locks: it reads no catalog).
my $waiting_login = 0;
my $t_lock = time();
while (time() - $t_lock < $PostgreSQL::Test::Utils::timeout_default)
{
    $waiting_login = $monitor->query_safe("SELECT count(*) FROM pg_locks WHERE NOT granted AND pid <> $reindex_pid");
    last if $waiting_login > 0;
    select(undef, undef, undef, 0.1);
}
ok($waiting_login > 0, 'the login waits behind the catalog lock');
# Backend exits take the caps lock on the way out: they must not wait for the login.
$bystander->[0]->quit;
ok(gone_now($bystander->[1]), 'an unrelated session exits while a login evicts under a catalog lock');
# The lock holder itself can be terminated and exits (with the catalog read under the caps
# lock, it would wait for the caps lock held by a login waiting for it: a deadlock no
# detector sees).
$monitor->query_safe("SELECT pg_terminate_backend($reindex_pid)");
ok(gone_now($reindex_pid), 'the backend holding the catalog lock exits when terminated');
eval { $reindex->quit };
($ret, $err) = finish_login($blocked);
is($ret, 0, 'the waiting login completes by evicting the idle member') or diag($err);
ok(gone_now($victim->[1]), 'the victim was evicted');
$monitor->quit;

# DROP ROLE of the victim's role in an open transaction: eviction goes on, nothing waits on it.
$node->safe_psql('postgres', 'CREATE ROLE doomed LOGIN IN ROLE app_group');
ok(policy_sessions($node, 'group', 0), 'the group\'s places are free');
my $doomed = hold($node, 'user=doomed application_name=doomed');
idle_for($node, $doomed->[1], 1.2);
my $dropper = $node->background_psql('postgres', on_error_stop => 0);
$dropper->query_safe('BEGIN; DROP ROLE doomed');
my $during_drop = start_login($node, 'user=member2 application_name=during-drop');
($ret, $err) = finish_login($during_drop);
is($ret, 0, 'a login evicting a session whose role is being dropped completes') or diag($err);
ok(gone($node, $doomed->[1]), 'and the session was evicted');
$dropper->query_safe('ROLLBACK');
$dropper->quit;

# Nothing is left waiting: the accounting is consistent and logins work.
ok(policy_sessions($node, 'group', 0), 'nothing counted once everybody left');
($ret, $err) = login($node, 'user=member1');
is($ret, 0, 'logins work afterwards');

$node->stop;
done_testing();
