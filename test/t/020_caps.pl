# Per-policy connection caps at login: exact under a storm, clear refusals, slots released,
# group roles, application_name and client_addr caps, exemptions, evict_idle, lowered caps.
use strict;
use warnings;
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('caps');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'pg_poolguard'
poolguard.idle_grace = '1s'
poolguard.exempt_roles = 'vip'
max_connections = 120
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
    CREATE ROLE boss LOGIN SUPERUSER;
    CREATE ROLE vip LOGIN;
});

sub policy
{
    $node->safe_psql('postgres', "TRUNCATE poolguard.policy; INSERT INTO poolguard.policy $_[0]; SELECT poolguard.reload()");
}

# A held idle session for a connection string suffix.
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

sub gone
{
    my ($pid) = @_;
    return $node->poll_query_until('postgres', "SELECT count(*) = 0 FROM pg_stat_activity WHERE pid = $pid");
}

# ---- the storm: 80 simultaneous logins against a cap of 10 ----
policy(q{(name, role_name, max_connections) VALUES ('storm', 'app', 10)});
my @clients;
for my $i (1 .. 80)
{
    my ($out, $err) = ('', '');
    my $h = IPC::Run::start(
        [ $node->installed_command('psql'), '-XAtq', '-d', $node->connstr('postgres') . ' user=app',
          '-c', 'SELECT pg_sleep(8)' ],
        '>', \$out, '2>', \$err);
    push @clients, [ $h, \$out, \$err ];
}
my ($admitted, $refused, $other) = (0, 0, 0);
for my $c (@clients)
{
    $c->[0]->finish;
    if ($c->[0]->result == 0) { $admitted++; }
    elsif (${ $c->[2] } =~ /FATAL:  too many connections for poolguard policy "storm"/) { $refused++; }
    else { $other++; diag(${ $c->[2] }); }
}
is($admitted, 10, '80 simultaneous logins against a cap of 10 admit exactly 10');
is($refused, 70, 'every other login is refused naming the policy');
is($other, 0, 'no other failures');
my @codes = (slurp_file($node->logfile) =~ /FATAL:  53300: too many connections for poolguard policy "storm"/g);
is(scalar @codes, 70, 'every refusal has SQLSTATE 53300');
like(slurp_file($node->logfile), qr/DETAIL:  The policy allows 10 connections and 10 are in use\./,
    'detail gives the limit and the count in use');
is($node->safe_psql('postgres', "SELECT sessions, max_connections, rejected FROM poolguard.policy_status WHERE policy = 'storm'"),
    '0|10|70', 'slots released after disconnect; refusals counted per policy');

# ---- slots are released when a backend is terminated ----
policy(q{(name, role_name, max_connections) VALUES ('two', 'app', 2)});
my $a1 = hold('user=app');
my $a2 = hold('user=app');
my ($ret, $err) = login('user=app');
like($err, qr/too many connections for poolguard policy "two"/, 'third login refused');
$node->safe_psql('postgres', "SELECT pg_terminate_backend($a1->[1])");
gone($a1->[1]);
($ret, $err) = login('user=app');
is($ret, 0, 'a terminated backend frees its slot');
$a2->[0]->quit;

# ---- group roles share one cap ----
policy(q{(name, role_name, max_connections) VALUES ('group', 'app_group', 1)});
my $m1 = hold('user=member1');
($ret, $err) = login('user=member2');
like($err, qr/too many connections for poolguard policy "group"/, 'members of a capped group share the cap');
$node->safe_psql('postgres', 'CREATE ROLE member3 LOGIN; GRANT app_group TO member3');
($ret, $err) = login('user=member3');
like($err, qr/poolguard policy "group"/, 'a role granted into the group is counted from its next login');
$m1->[0]->quit;

# ---- application_name and client_addr caps, cap of 0 ----
policy(q{(name, application_name, max_connections) VALUES ('cron', 'cron%', 1)});
my $c1 = hold('user=app application_name=cron-1');
($ret, $err) = login('user=app application_name=cron-2');
like($err, qr/poolguard policy "cron"/, 'application_name cap');
($ret, $err) = login('user=app application_name=web');
is($ret, 0, 'other applications are not capped');
$c1->[0]->quit;

policy(q{(name, client_addr, max_connections) VALUES ('no-tcp', '127.0.0.0/8', 0)});
($ret, $err) = login('user=app host=127.0.0.1');
like($err, qr/poolguard policy "no-tcp"/, 'a cap of 0 refuses every login from the network');
like($err, qr/The policy allows 0 connections/, 'detail for a cap of 0');
($ret, $err) = login('user=app');
is($ret, 0, 'Unix-socket logins do not match a client_addr policy');

# ---- exemptions ----
policy(q{(name, max_connections) VALUES ('nobody', 0)});
($ret, $err) = login('user=boss');
is($ret, 0, 'superusers bypass caps');
($ret, $err) = login('user=vip');
is($ret, 0, 'exempt_roles bypass caps');
($ret, $err) = login('user=app');
like($err, qr/poolguard policy "nobody"/, 'everyone else is refused');

# ---- evict_idle: the longest-idle session makes room ----
policy(q{(name, role_name, max_connections, on_limit) VALUES ('evict', 'app', 2, 'evict_idle')});
my $old = hold('user=app application_name=oldest');
sleep(1);
my $new = hold('user=app application_name=newer');
$node->poll_query_until('postgres',
    "SELECT count(*) = 2 FROM pg_stat_activity WHERE usename = 'app' AND state = 'idle' AND state_change < now() - interval '1.2s'");
($ret, $err) = login('user=app application_name=third');
is($ret, 0, 'at the cap, evict_idle admits the new login');
ok(gone($old->[1]), 'the longest-idle session was evicted');
is($node->safe_psql('postgres', "SELECT count(*) FROM pg_stat_activity WHERE pid = $new->[1]"), '1',
    'the more recent idle session stays');
is($node->safe_psql('postgres', "SELECT reason, policy, action FROM poolguard.terminations WHERE pid = $old->[1]"),
    'evict_idle|evict|terminate', 'eviction recorded in terminations');
eval { $old->[0]->{stdin} .= "SELECT 1;\n\\q\n"; $old->[0]->{run}->finish; };
like($old->[0]->{stderr}, qr/pg_poolguard ended this session to admit a new login: it was idle for [\d.]+ s, and policy "evict" allows 2 connections and, when they are all in use, ends its longest-idle session \(on_limit = evict_idle\)\./,
    'the evicted client is told why');
is($node->safe_psql('postgres', "SELECT evicted FROM poolguard.policy_status WHERE policy = 'evict'"), '1',
    'evictions counted per policy');
# No session idle for at least idle_grace: refuse.
$node->safe_psql('postgres', "ALTER SYSTEM SET poolguard.idle_grace = '1h'; SELECT pg_reload_conf()");
$node->poll_query_until('postgres', "SELECT current_setting('poolguard.idle_grace') = '1h'");
my $busy = hold('user=app application_name=fresh');
($ret, $err) = login('user=app');
like($err, qr/poolguard policy "evict"/, 'evict_idle refuses when no session is idle long enough');
$_->[0]->quit for ($new, $busy);
$node->safe_psql('postgres', "ALTER SYSTEM RESET poolguard.idle_grace; SELECT pg_reload_conf()");

# ---- lowering a cap never ends existing sessions ----
policy(q{(name, role_name, max_connections) VALUES ('lower', 'app', 3)});
my @three = map { hold('user=app') } 1 .. 3;
$node->safe_psql('postgres', "UPDATE poolguard.policy SET max_connections = 1 WHERE name = 'lower'; SELECT poolguard.reload()");
is($node->safe_psql('postgres', "SELECT count(*) FROM pg_stat_activity WHERE usename = 'app'"), '3',
    'existing sessions survive a lowered cap');
is($node->safe_psql('postgres', "SELECT sessions, max_connections FROM poolguard.policy_status WHERE policy = 'lower'"),
    '3|1', 'they are still counted');
($ret, $err) = login('user=app');
like($err, qr/3 are in use/, 'new logins wait for the count to drop');
$three[0]->[0]->quit;
$three[1]->[0]->quit;
$node->poll_query_until('postgres', "SELECT sessions = 1 FROM poolguard.policy_status WHERE policy = 'lower'");
($ret, $err) = login('user=app');
like($err, qr/poolguard policy "lower"/, 'still at the cap of 1');
$three[2]->[0]->quit;
$node->poll_query_until('postgres', "SELECT sessions = 0 FROM poolguard.policy_status WHERE policy = 'lower'");
($ret, $err) = login('user=app');
is($ret, 0, 'admitted once below the cap');

# ---- a cap created after the sessions it matches counts them ----
$node->safe_psql('postgres', 'TRUNCATE poolguard.policy; SELECT poolguard.reload()');
my @pre = map { hold('user=app application_name=pre') } 1 .. 3;
policy(q{(name, application_name, max_connections) VALUES ('late', 'pre%', 2)});
is($node->safe_psql('postgres', "SELECT sessions FROM poolguard.policy_status WHERE policy = 'late'"), '3',
    'sessions that logged in before the policy existed are counted by it');
($ret, $err) = login('user=app application_name=pre-4');
like($err, qr/The policy allows 2 connections and 3 are in use/, 'and a new login is refused');
$pre[0]->[0]->quit;
$pre[1]->[0]->quit;
$node->poll_query_until('postgres', "SELECT sessions = 1 FROM poolguard.policy_status WHERE policy = 'late'");
($ret, $err) = login('user=app application_name=pre-5');
is($ret, 0, 'their exits count down the policy');
$pre[2]->[0]->quit;
$node->poll_query_until('postgres', "SELECT sessions = 0 FROM poolguard.policy_status WHERE policy = 'late'");

$node->stop;
done_testing();
