# The reaper: every rule, exemptions, dry run, priority, matching, live policy changes, and the
# reason the client is told.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../perl";
use IPC::Run;
use PoolguardTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);

my $node = poolguard_node('reaper', "poolguard.idle_grace = '1s'");
$node->start;
$node->safe_psql('postgres', q{
    CREATE EXTENSION pg_poolguard;
    CREATE ROLE app LOGIN;
    CREATE ROLE app_group NOLOGIN;
    CREATE ROLE member LOGIN IN ROLE app_group;
    CREATE ROLE boss LOGIN SUPERUSER;
    CREATE ROLE vip LOGIN;
});

# ---- idle_timeout, deadline-driven, with the reason told to the client ----
# Deadline-driven: with a naptime of an hour, the worker scans once after the session is idle
# (reload() wakes it) and then sleeps until the session's deadline, not until the next naptime:
# the session ends within the harness's deadline only if the worker wakes at its deadline.
my $offset = -s $node->logfile;
$node->safe_psql('postgres', "ALTER SYSTEM SET poolguard.naptime = '1h'; SELECT pg_reload_conf()");
$node->wait_for_log(qr/pg_poolguard worker reloaded its configuration \(naptime 3600000 ms/, $offset);
set_policy($node, q{(name, application_name, idle_timeout) VALUES ('web', 'web%', '2s')});
my $s = hold($node, 'user=app application_name=web-1');
$node->safe_psql('postgres', 'SELECT poolguard.reload()');
ok(gone($node, $s->[1]), 'idle session ended by idle_timeout at its deadline, long before the 1 h naptime');
note('fired ' . $node->safe_psql('postgres',
        "SELECT extract(epoch FROM state_duration - interval '2s') FROM poolguard.terminations WHERE pid = $s->[1]")
    . ' s after its deadline');
$offset = -s $node->logfile;
$node->safe_psql('postgres', "ALTER SYSTEM RESET poolguard.naptime; SELECT pg_reload_conf()");
$node->wait_for_log(qr/pg_poolguard worker reloaded its configuration \(naptime 1000 ms/, $offset);
my $stderr = finish_quietly($s->[0]);
like($stderr, qr/terminating connection due to administrator command/, 'client sees the FATAL');
like($stderr, qr/DETAIL:  pg_poolguard ended this session: it was idle for [\d.]+ s, and policy "web" ends sessions idle for longer than 2 s \(idle_timeout\)\./,
    'client is told the reason, limit and policy');
my $row = $node->safe_psql('postgres',
    "SELECT reason, policy, action, role_name, application_name, state, state_duration >= '2s'
       FROM poolguard.terminations WHERE pid = $s->[1]");
is($row, 'idle_timeout|web|terminate|app|web-1|idle|t', 'terminations row records the action');
ok($node->log_contains(qr/pg_poolguard terminated session $s->[1]: idle_timeout 2s exceeded\n.*DETAIL:  The session of role "app" in database "postgres" \(application "web-1"\) matched policy "web"; it was in state "idle" for [\d.]+ s and is [\d.]+ s old\./),
    'one LOG line for the action');

# ---- a session not matched by the policy is left alone ----
my $other = hold($node, 'user=app application_name=batch');
my $web = hold($node, 'user=app application_name=web-2');
ok(gone($node, $web->[1]), 'matching session ended');
ok(alive($node, $other->[1]), 'non-matching session (application_name) kept');

# ---- idle_in_transaction_timeout ----
set_policy($node, q{(name, role_name, idle_in_transaction_timeout) VALUES ('tx', 'app', '1s')});
my $tx = $node->background_psql('postgres', extra_params => [ '-U', 'app' ], on_error_stop => 0);
my $txpid = $tx->query_safe('BEGIN; SELECT pg_backend_pid()');
ok(gone($node, $txpid), 'idle-in-transaction session ended');
like(finish_quietly($tx), qr/it was idle in a transaction for [\d.]+ s, and policy "tx" ends sessions idle in a transaction for longer than 1 s \(idle_in_transaction_timeout\)\./, 'told why');
ok(alive($node, $other->[1]), 'plain idle session of the same role kept (only the tx rule applies)');

# ---- max_query_duration cancels, keeps the session ----
set_policy($node, q{(name, application_name, max_query_duration) VALUES ('reports', 'report%', '1s')});
my $rep = hold($node, 'user=app application_name=report-1');
my $reppid = $rep->[1];
$rep->[0]->query_until(qr/started/, "\\echo started\nSELECT pg_sleep(3600);\n\\echo done\n");
my $started = time();
$node->poll_query_until('postgres',
    "SELECT count(*) = 1 FROM poolguard.terminations WHERE pid = $reppid AND action = 'cancel'");
$rep->[0]->{run}->pump() until $rep->[0]->{stdout} =~ /done/ || time() - $started > $PostgreSQL::Test::Utils::timeout_default;
like($rep->[0]->{stderr}, qr/canceling statement due to user request/, 'query cancelled');
like($rep->[0]->{stderr}, qr/pg_poolguard cancelled this query: it ran for [\d.]+ s, and policy "reports" cancels queries running longer than 1 s \(max_query_duration\)\./,
    'client is told why the query was cancelled');
ok(alive($node, $reppid), 'session kept after the cancel');
$rep->[0]->quit;

# ---- max_idle: keep N, end the longest idle first, after the grace ----
set_policy($node, q{(name, application_name, max_idle) VALUES ('pool', 'pool%', 2)});
my @pool = map { hold($node, "user=app application_name=pool-$_") } 1 .. 4;
ok(gone($node, $pool[0]->[1]) && gone($node, $pool[1]->[1]), 'the two longest-idle sessions ended');
ok(alive($node, $pool[2]->[1]) && alive($node, $pool[3]->[1]), 'max_idle keeps the two most recent');
is($node->safe_psql('postgres', "SELECT count(*) FROM poolguard.terminations WHERE reason = 'max_idle'"), '2',
    'two max_idle rows');
$_->[0]->quit for @pool[2, 3];
like(finish_quietly($pool[0]->[0]),
    qr/DETAIL:  pg_poolguard ended this session: it was idle for [\d.]+ s, and policy "pool" keeps at most 2 idle sessions, ending the longest-idle ones first \(max_idle\)\./,
    'max_idle: the client is told the idle time and the count kept, not seconds against a count');
finish_quietly($pool[1]->[0]);

# ---- max_connection_age ends an old session once it is idle ----
set_policy($node, q{(name, application_name, max_connection_age) VALUES ('old', 'old%', '2s')});
my $old = hold($node, 'user=app application_name=old-1');
ok(gone($node, $old->[1]), 'old idle session ended');
is($node->safe_psql('postgres', "SELECT reason FROM poolguard.terminations WHERE pid = $old->[1]"),
    'max_connection_age', 'reason max_connection_age');
like(finish_quietly($old->[0]),
    qr/DETAIL:  pg_poolguard ended this session: it was [\d.]+ s old, and policy "old" ends idle sessions older than 2 s \(max_connection_age\)\./,
    'max_connection_age: age compared with the limit');

# ---- max_idle_memory ----
set_policy($node, q{(name, application_name, max_idle_memory) VALUES ('fat', 'fat%', 20000000)});
my $thin = hold($node, 'user=app application_name=fat-thin');
my $fat = hold($node, 'user=app application_name=fat-big');
$fat->[0]->query_safe(q{SET temp_buffers = '64MB'; CREATE TEMP TABLE t AS SELECT g, repeat('x', 500) AS pad FROM generate_series(1, 80000) g; SELECT count(*) FROM t});
ok(gone($node, $fat->[1]), 'session holding much private memory ended when idle');
my $mem = $node->safe_psql('postgres', "SELECT reason, private_memory > 20000000 FROM poolguard.terminations WHERE pid = $fat->[1]");
is($mem, 'max_idle_memory|t', 'row records reason and the memory it held');
ok(alive($node, $thin->[1]), 'small idle session kept');
cmp_ok($node->safe_psql('postgres', "SELECT private_memory FROM poolguard.sessions WHERE pid = $thin->[1]"), '>', 0,
    'sessions view reports private memory');
like(finish_quietly($fat->[0]),
    qr/DETAIL:  pg_poolguard ended this session: it was idle holding \d+ bytes of private memory, and policy "fat" ends idle sessions holding more than 20000000 bytes \(max_idle_memory\)\./,
    'max_idle_memory: bytes compared with bytes');
$thin->[0]->quit;

# ---- exemptions: superusers, exempt_roles; dry run ----
set_policy($node, q{(name, idle_timeout) VALUES ('all', '1s')});
$node->append_conf('postgresql.conf', "poolguard.exempt_roles = 'vip'");
$node->reload;
my $boss = hold($node, 'user=boss application_name=x');
my $vip = hold($node, 'user=vip application_name=x');
my $plain = hold($node, 'user=app application_name=x');
ok(gone($node, $plain->[1]), 'a plain session is ended by the catch-all policy');
ok(alive($node, $boss->[1]), 'superuser exempt');
ok(alive($node, $vip->[1]), 'exempt_roles exempt');
is($node->safe_psql('postgres', "SELECT count(*) FROM poolguard.terminations WHERE pid IN ($boss->[1], $vip->[1])"), '0',
    'no action recorded for exempt sessions');
# The sessions view says they are exempt and why, instead of a blank verdict under a policy.
is($node->safe_psql('postgres',
        "SELECT string_agg(role_name || ':' || policy || ':' || verdict || ':' || exempt_reason || ':' || (deadline IS NULL), ',' ORDER BY role_name)"
      . " FROM poolguard.sessions WHERE pid IN ($boss->[1], $vip->[1])"),
    'boss:all:exempt:superuser:true,vip:all:exempt:exempt_roles:true',
    'sessions view: verdict exempt, with the reason');
$_->[0]->quit for ($boss, $vip);
finish_quietly($plain->[0]);

set_policy($node, q{(name, idle_timeout, dry_run) VALUES ('all', '1s', true)});
my $dry = hold($node, 'user=app application_name=dry');
ok($node->poll_query_until('postgres',
        "SELECT count(*) = 1 FROM poolguard.terminations WHERE pid = $dry->[1] AND action = 'dry_run'"),
    'policy dry_run records a dry_run action');
ok(alive($node, $dry->[1]), 'dry run signals nobody');
# A few scans later still one row (built by waiting for the scans, not by a sleep).
my $scans = $node->safe_psql('postgres', 'SELECT scans FROM poolguard.stats');
ok($node->poll_query_until('postgres', "SELECT scans >= $scans + 3 FROM poolguard.stats"), 'three more scans');
is($node->safe_psql('postgres', "SELECT count(*) FROM poolguard.terminations WHERE pid = $dry->[1]"), '1',
    'a dry-run verdict is recorded once, not every scan');
$dry->[0]->quit;

# ---- priority ordering and group roles ----
$node->safe_psql('postgres', q{TRUNCATE poolguard.policy;
    INSERT INTO poolguard.policy (name, priority, role_name, idle_timeout) VALUES ('group', 10, 'app_group', '1s');
    INSERT INTO poolguard.policy (name, priority, idle_timeout) VALUES ('fallback', 0, '0');});
my $m = hold($node, 'user=member application_name=m');
my $a = hold($node, 'user=app application_name=a');
ok(gone($node, $m->[1]), 'member of app_group matched by the group policy');
is($node->safe_psql('postgres', "SELECT policy FROM poolguard.terminations WHERE pid = $m->[1]"), 'group',
    'the higher-priority policy wins');
is($node->safe_psql('postgres', "SELECT policy, verdict IS NULL FROM poolguard.sessions WHERE pid = $a->[1]"),
    'fallback|t', 'others fall back to the next policy, which turns idle_timeout off');
finish_quietly($m->[0]);
$a->[0]->quit;

# ---- client_addr (TCP) vs Unix sockets ----
set_policy($node, q{(name, client_addr, idle_timeout) VALUES ('local-tcp', '127.0.0.0/8', '1s')});
my $unix = hold($node, 'user=app application_name=unix');
my ($tin, $tout, $terr) = ("SELECT pg_backend_pid();\n", '', '');
my $tcp = IPC::Run::start(
    [ $node->installed_command('psql'), '-XAtq',
      '-d', 'host=127.0.0.1 port=' . $node->port . ' dbname=postgres user=app' ],
    '<', \$tin, '>', \$tout, '2>', \$terr,
    IPC::Run::timeout($PostgreSQL::Test::Utils::timeout_default));
$tcp->pump until $tout =~ /^(\d+)$/m;
my $tcppid = $1;
ok(gone($node, $tcppid), 'TCP session from 127.0.0.1 matched by cidr');
ok(alive($node, $unix->[1]), 'Unix-socket session does not match a client_addr policy');
$tcp->kill_kill;
$unix->[0]->quit;

# ---- GUC defaults, reap() and the reap caller ----
$node->safe_psql('postgres', 'TRUNCATE poolguard.policy');
$node->append_conf('postgresql.conf', "poolguard.enabled = off\npoolguard.idle_timeout = '1s'");
$node->reload;
$node->poll_query_until('postgres', "SELECT current_setting('poolguard.enabled') = 'off'");
my $d = hold($node, 'user=app application_name=defaults');
$node->poll_query_until('postgres', "SELECT verdict = 'idle_timeout' FROM poolguard.sessions WHERE pid = $d->[1]");
ok(alive($node, $d->[1]), 'poolguard.enabled = off: the worker acts on nobody');
is($node->safe_psql('postgres', "SELECT reason, policy IS NULL, action FROM poolguard.reap(true) WHERE pid = $d->[1]"),
    'idle_timeout|t|dry_run', 'reap(true) reports without acting');
ok(alive($node, $d->[1]), 'reap(dry_run) signals nobody');
is($node->safe_psql('postgres', "SELECT reason, action FROM poolguard.reap() WHERE pid = $d->[1]"),
    'idle_timeout|terminate', 'reap() acts now with the GUC defaults');
ok(gone($node, $d->[1]), 'reap() ended the session');
finish_quietly($d->[0]);

my ($ret, $out, $err) = $node->psql('postgres', 'SELECT * FROM poolguard.reap()', extra_params => [ '-U', 'app' ]);
like($err, qr/permission denied for function reap/, 'non-superusers may not reap');

# ---- the worker survives its policy table or extension going away ----
$node->safe_psql('postgres', 'DROP EXTENSION pg_poolguard');
my $wpid = $node->safe_psql('postgres', "SELECT pid FROM pg_stat_activity WHERE backend_type = 'pg_poolguard worker'");
$node->safe_psql('postgres', 'CREATE EXTENSION pg_poolguard');
is($node->safe_psql('postgres', "SELECT pid FROM pg_stat_activity WHERE backend_type = 'pg_poolguard worker'"), $wpid,
    'worker keeps running across DROP/CREATE EXTENSION');

$node->stop;
done_testing();
