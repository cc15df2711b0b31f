# Caps that wait (on_limit = 'wait', login_wait): a login over the cap waits in line for a place
# and is admitted when one frees, or refused after the bound (never past authentication_timeout);
# waiting logins hold no place, are bounded in number, leave the line when their client goes
# away, and a storm of them cannot take the server: the excess is refused at once and a
# superuser still logs in.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../perl";
use PoolguardTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);

my $node = poolguard_node('caps_wait', 'max_connections = 40', 'poolguard.max_waiting_logins = 4');
$node->start;
$node->safe_psql('postgres', q{
    CREATE EXTENSION pg_poolguard;
    CREATE ROLE app LOGIN;
});

sub status
{
    my ($column) = @_;
    return $node->safe_psql('postgres', "SELECT $column FROM poolguard.policy_status WHERE policy = 'w'");
}

sub waiting_is
{
    my ($n) = @_;
    return $node->poll_query_until('postgres',
        "SELECT waiting = $n FROM poolguard.policy_status WHERE policy = 'w'");
}

# ---- a third login waits, holding no place, and is admitted when one closes ----
set_policy($node, q{(name, role_name, max_connections, on_limit, login_wait)
    VALUES ('w', 'app', 2, 'wait', '5 min')});
my @held = (hold($node, 'user=app'), hold($node, 'user=app'));
my $third = start_login($node, 'user=app application_name=third');
ok(waiting_is(1), 'the login over the cap waits');
is(status('sessions'), '2', 'a waiting login holds no place of the policy');
$held[0]->[0]->quit;
my ($ret, $err) = finish_login($third);
is($ret, 0, 'the waiting login is admitted when a place frees') or diag($err);
is(status('waited'), '1', 'the admitted wait is counted');
is(status('waiting'), '0', 'nobody waits any more');

# ---- in order: the first to wait is the first admitted ----
@held = ($held[1], hold($node, 'user=app'));
my $first = start_login($node, 'user=app application_name=first', 'SELECT pg_sleep(600)');
ok(waiting_is(1), 'the first login waits');
my $second = start_login($node, 'user=app application_name=second');
ok(waiting_is(2), 'the second login waits behind it');
$held[0]->[0]->quit;
ok($node->poll_query_until('postgres',
    "SELECT count(*) = 1 FROM pg_stat_activity WHERE application_name = 'first' AND state = 'active'"),
    'the first in line took the freed place');
is(status('waiting'), '1', 'the second still waits');
$node->safe_psql('postgres', "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'first'");
($ret, $err) = finish_login($second);
is($ret, 0, 'the second is admitted when the first leaves') or diag($err);
finish_login($first);
$held[1]->[0]->quit;
ok($node->poll_query_until('postgres', "SELECT sessions = 0 FROM poolguard.policy_status WHERE policy = 'w'"),
    'every place is free again');

# ---- the bound: refused with 53300 after login_wait, saying how long it waited ----
set_policy($node, q{(name, role_name, max_connections, on_limit, login_wait)
    VALUES ('w', 'app', 2, 'wait', '2 s')});
@held = (hold($node, 'user=app'), hold($node, 'user=app'));
my $t0 = time();
($ret, $err) = login($node, 'user=app');
my $elapsed = time() - $t0;
isnt($ret, 0, 'with no place freed the login is refused');
like($err, qr/FATAL:  too many connections for poolguard policy "w"/, 'the client is refused');
like(slurp_file($node->logfile), qr/FATAL:  53300: too many connections for poolguard policy "w"/, "with 53300");
like($err, qr/DETAIL:  The login waited ([\d.]+) s for a place and none was free; the policy allows 2 connections and 2 are in use, and waits at most 2\.000 s \(login_wait\)\./,
    'the DETAIL says how long it waited');
my ($waited) = $err =~ /The login waited ([\d.]+) s/;
cmp_ok($waited // 0, '>=', 2, 'it waited at least login_wait');
cmp_ok($elapsed, '>=', 2, 'the client saw it wait at least login_wait');
is(status('rejected'), '1', 'the refusal is counted');

# ---- never past authentication_timeout ----
set_policy($node, q{(name, role_name, max_connections, on_limit, login_wait)
    VALUES ('w', 'app', 2, 'wait', '10 min')});
$node->safe_psql('postgres', "ALTER SYSTEM SET authentication_timeout = '3s'; SELECT pg_reload_conf()");
ok($node->poll_query_until('postgres', "SELECT current_setting('authentication_timeout') = '3s'"),
    'authentication_timeout is 3 s');
($ret, $err) = login($node, 'user=app');
like($err, qr/FATAL:  too many connections for poolguard policy "w"\n.*DETAIL:  The login waited ([\d.]+) s/,
    'a login bounded by authentication_timeout still gets the clear refusal');
($waited) = $err =~ /The login waited ([\d.]+) s/;
cmp_ok($waited // 0, '>=', 2.5, 'it waited until shortly before authentication_timeout');
$node->safe_psql('postgres', "ALTER SYSTEM RESET authentication_timeout; SELECT pg_reload_conf()");

# ---- a client that goes away leaves the line ----
my $quitter = start_login($node, 'user=app application_name=quitter');
ok(waiting_is(1), 'a login waits');
$quitter->[0]->kill_kill;
ok(waiting_is(0), 'its client went away: it left the line');
ok($node->poll_query_until('postgres',
    "SELECT count(*) = 0 FROM pg_stat_activity WHERE backend_type = 'client backend' AND usename = 'app' AND pid NOT IN ($held[0]->[1], $held[1]->[1])"),
    'and its backend exited');
is(status('sessions'), '2', 'the places are as they were');

# ---- a storm: at most max_waiting_logins wait, the rest are refused at once ----
my @storm = map { start_login($node, 'user=app application_name=storm') } 1 .. 12;
ok(waiting_is(4), 'four logins wait (poolguard.max_waiting_logins)');
ok($node->poll_query_until('postgres', "SELECT rejected >= 9 FROM poolguard.policy_status WHERE policy = 'w'"),
    'the other eight are refused without waiting');
is($node->safe_psql('postgres', 'SELECT 1', extra_params => [ '-d', $node->connstr('postgres') ]), '1',
    'a superuser still logs in during the storm');
$_->[0]->quit for @held;
my ($admitted, $refused_at_once, $other) = (0, 0, 0);
for my $c (@storm)
{
    my ($r, $e) = finish_login($c);
    if ($r == 0) { $admitted++; }
    elsif ($e =~ /already wait for a place, the most that may wait \(poolguard\.max_waiting_logins, at most a quarter of max_connections\); this login did not wait\./)
    { $refused_at_once++; }
    else { $other++; diag($e); }
}
is($admitted, 4, 'the four that waited are admitted once places free');
is($refused_at_once, 8, 'the excess was refused at once with a clear message');
is($other, 0, 'no other outcome');
is(status('waiting'), '0', 'the line is empty');

$node->stop;
done_testing();
