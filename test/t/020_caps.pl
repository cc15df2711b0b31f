# Per-policy connection caps at login: exact under a storm, clear refusals, slots released,
# group roles, application_name and client_addr caps, exemptions, evict_idle, lowered caps.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../perl";
use PoolguardTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = poolguard_node('caps',
    "poolguard.idle_grace = '1s'",
    "poolguard.exempt_roles = 'vip'",
    'max_connections = 120');
$node->start;
$node->safe_psql('postgres', q{
    CREATE EXTENSION pg_poolguard;
    CREATE ROLE app LOGIN;
    CREATE ROLE app_group NOLOGIN;
    CREATE ROLE member1 LOGIN IN ROLE app_group;
    CREATE ROLE member2 LOGIN IN ROLE app_group;
    CREATE ROLE boss LOGIN SUPERUSER;
    CREATE ROLE vip LOGIN;
});

# ---- the storm: 80 simultaneous logins against a cap of 10 ----
# Every admitted session stays until the test lets it go (it waits for an advisory lock the test
# holds), so the cap stays full until all 80 logins were decided, however slow the machine is.
set_policy($node, q{(name, role_name, max_connections) VALUES ('storm', 'app', 10)});
my $gate = $node->background_psql('postgres');
$gate->query_safe('SELECT pg_advisory_lock(4242)');
my @clients = map { start_login($node, 'user=app', 'SELECT pg_advisory_lock_shared(4242)') } 1 .. 80;
ok($node->poll_query_until('postgres', q{
        SELECT (SELECT count(*) FROM pg_stat_activity WHERE usename = 'app' AND wait_event = 'advisory')
             + (SELECT rejected FROM poolguard.policy_status WHERE policy = 'storm') = 80}),
    'all 80 logins were decided while the admitted ones stay connected (admitted and waiting + refused = 80)');
$gate->query_safe('SELECT pg_advisory_unlock(4242)');
my ($admitted, $refused, $other) = (0, 0, 0);
for my $c (@clients)
{
    my ($ret, $stderr) = finish_login($c);
    if ($ret == 0) { $admitted++; }
    elsif ($stderr =~ /FATAL:  too many connections for poolguard policy "storm"/) { $refused++; }
    else { $other++; diag("exit $ret: $stderr"); }
}
$gate->quit;
is($admitted, 10, '80 simultaneous logins against a cap of 10 admit exactly 10');
is($refused, 70, 'every other login is refused naming the policy');
is($other, 0, 'no other failures');
my @codes = (slurp_file($node->logfile) =~ /FATAL:  53300: too many connections for poolguard policy "storm"/g);
is(scalar @codes, 70, 'every refusal has SQLSTATE 53300');
like(slurp_file($node->logfile), qr/DETAIL:  The policy allows 10 connections and 10 are in use\./,
    'detail gives the limit and the count in use');
ok(policy_sessions($node, 'storm', 0), 'slots released after disconnect');
is($node->safe_psql('postgres', "SELECT sessions, max_connections, rejected FROM poolguard.policy_status WHERE policy = 'storm'"),
    '0|10|70', 'refusals counted per policy');

# ---- slots are released when a backend is terminated ----
set_policy($node, q{(name, role_name, max_connections) VALUES ('two', 'app', 2)});
my $a1 = hold($node, 'user=app');
my $a2 = hold($node, 'user=app');
my ($ret, $err) = login($node, 'user=app');
like($err, qr/too many connections for poolguard policy "two"/, 'third login refused');
$node->safe_psql('postgres', "SELECT pg_terminate_backend($a1->[1])");
gone($node, $a1->[1]);
($ret, $err) = login($node, 'user=app');
is($ret, 0, 'a terminated backend frees its slot');
release($node, $a2);

# ---- group roles share one cap ----
set_policy($node, q{(name, role_name, max_connections) VALUES ('group', 'app_group', 1)});
my $m1 = hold($node, 'user=member1');
($ret, $err) = login($node, 'user=member2');
like($err, qr/too many connections for poolguard policy "group"/, 'members of a capped group share the cap');
$node->safe_psql('postgres', 'CREATE ROLE member3 LOGIN; GRANT app_group TO member3');
($ret, $err) = login($node, 'user=member3');
like($err, qr/poolguard policy "group"/, 'a role granted into the group is counted from its next login');
release($node, $m1);

# ---- application_name and client_addr caps, cap of 0 ----
set_policy($node, q{(name, application_name, max_connections) VALUES ('cron', 'cron%', 1)});
my $c1 = hold($node, 'user=app application_name=cron-1');
($ret, $err) = login($node, 'user=app application_name=cron-2');
like($err, qr/poolguard policy "cron"/, 'application_name cap');
($ret, $err) = login($node, 'user=app application_name=web');
is($ret, 0, 'other applications are not capped');
release($node, $c1);

set_policy($node, q{(name, client_addr, max_connections) VALUES ('no-tcp', '127.0.0.0/8', 0)});
($ret, $err) = login($node, 'user=app host=127.0.0.1');
like($err, qr/poolguard policy "no-tcp"/, 'a cap of 0 refuses every login from the network');
like($err, qr/The policy allows 0 connections/, 'detail for a cap of 0');
($ret, $err) = login($node, 'user=app');
is($ret, 0, 'Unix-socket logins do not match a client_addr policy');

# ---- exemptions ----
set_policy($node, q{(name, max_connections) VALUES ('nobody', 0)});
($ret, $err) = login($node, 'user=boss');
is($ret, 0, 'superusers bypass caps');
($ret, $err) = login($node, 'user=vip');
is($ret, 0, 'exempt_roles bypass caps');
($ret, $err) = login($node, 'user=app');
like($err, qr/poolguard policy "nobody"/, 'everyone else is refused');

# ---- evict_idle: the longest-idle session makes room ----
set_policy($node, q{(name, role_name, max_connections, on_limit) VALUES ('evict', 'app', 2, 'evict_idle')});
# (hold() returns once the session is idle: the first one has been idle longer.)
my $old = hold($node, 'user=app application_name=oldest');
my $new = hold($node, 'user=app application_name=newer');
ok(idle_for($node, $old->[1], 1.2) && idle_for($node, $new->[1], 1.2), 'both sessions idle for longer than idle_grace');
($ret, $err) = login($node, 'user=app application_name=third');
is($ret, 0, 'at the cap, evict_idle admits the new login');
ok(gone($node, $old->[1]), 'the longest-idle session was evicted');
is($node->safe_psql('postgres', "SELECT count(*) FROM pg_stat_activity WHERE pid = $new->[1]"), '1',
    'the more recent idle session stays');
is($node->safe_psql('postgres', "SELECT reason, policy, action FROM poolguard.terminations WHERE pid = $old->[1]"),
    'evict_idle|evict|terminate', 'eviction recorded in terminations');
like(finish_quietly($old), qr/pg_poolguard ended this session to admit a new login: it was idle for [\d.]+ s, and policy "evict" allows 2 connections and, when they are all in use, ends its longest-idle session \(on_limit = evict_idle\)\./,
    'the evicted client is told why');
is($node->safe_psql('postgres', "SELECT evicted FROM poolguard.policy_status WHERE policy = 'evict'"), '1',
    'evictions counted per policy');
# No session idle for at least idle_grace: refuse.  (First the admitted login's own exit.)
ok(policy_sessions($node, 'evict', 1), 'the admitted login has left');
$node->safe_psql('postgres', "ALTER SYSTEM SET poolguard.idle_grace = '1h'; SELECT pg_reload_conf()");
$node->poll_query_until('postgres', "SELECT current_setting('poolguard.idle_grace') = '1h'");
my $busy = hold($node, 'user=app application_name=fresh');
($ret, $err) = login($node, 'user=app');
like($err, qr/poolguard policy "evict"/, 'evict_idle refuses when no session is idle long enough');
release($node, $new, $busy);
$node->safe_psql('postgres', "ALTER SYSTEM RESET poolguard.idle_grace; SELECT pg_reload_conf()");

# ---- lowering a cap never ends existing sessions ----
ok($node->poll_query_until('postgres', "SELECT count(*) = 0 FROM pg_stat_activity WHERE usename = 'app'"),
    'no session of app left from before');
set_policy($node, q{(name, role_name, max_connections) VALUES ('lower', 'app', 3)});
my @three = map { hold($node, 'user=app') } 1 .. 3;
$node->safe_psql('postgres', "UPDATE poolguard.policy SET max_connections = 1 WHERE name = 'lower'; SELECT poolguard.reload()");
is($node->safe_psql('postgres', "SELECT count(*) FROM pg_stat_activity WHERE usename = 'app'"), '3',
    'existing sessions survive a lowered cap');
is($node->safe_psql('postgres', "SELECT sessions, max_connections FROM poolguard.policy_status WHERE policy = 'lower'"),
    '3|1', 'they are still counted');
($ret, $err) = login($node, 'user=app');
like($err, qr/3 are in use/, 'new logins wait for the count to drop');
release($node, @three[0, 1]);
ok(policy_sessions($node, 'lower', 1), 'two of them gone');
($ret, $err) = login($node, 'user=app');
like($err, qr/poolguard policy "lower"/, 'still at the cap of 1');
release($node, $three[2]);
ok(policy_sessions($node, 'lower', 0), 'all gone');
($ret, $err) = login($node, 'user=app');
is($ret, 0, 'admitted once below the cap');

# ---- a cap created after the sessions it matches counts them ----
$node->safe_psql('postgres', 'TRUNCATE poolguard.policy; SELECT poolguard.reload()');
my @pre = map { hold($node, 'user=app application_name=pre') } 1 .. 3;
set_policy($node, q{(name, application_name, max_connections) VALUES ('late', 'pre%', 2)});
is($node->safe_psql('postgres', "SELECT sessions FROM poolguard.policy_status WHERE policy = 'late'"), '3',
    'sessions that logged in before the policy existed are counted by it');
($ret, $err) = login($node, 'user=app application_name=pre-4');
like($err, qr/The policy allows 2 connections and 3 are in use/, 'and a new login is refused');
release($node, @pre[0, 1]);
ok(policy_sessions($node, 'late', 1), 'two of them gone');
($ret, $err) = login($node, 'user=app application_name=pre-5');
is($ret, 0, 'their exits count down the policy');
release($node, $pre[2]);
ok(policy_sessions($node, 'late', 0), 'the last one gone');

$node->stop;
done_testing();
