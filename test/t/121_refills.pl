# Seeing the fight: logins, refills (a login of the same identity within poolguard.refill_window
# after the policy ended one of its sessions) and ended_unused, per policy, per login identity and
# in /metrics; one WARNING per policy per window when most of what a policy ends comes back.
# A client that reconnects right after each end counts exactly and is warned about once; an app
# that goes away for good is not.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../perl";
use PoolguardTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = poolguard_node('refills', 'poolguard.naptime = 100ms', "poolguard.refill_window = '10min'");
$node->start;
$node->safe_psql('postgres', q{
    CREATE EXTENSION pg_poolguard;
    CREATE ROLE app LOGIN;
    CREATE ROLE gone_app LOGIN;
});
set_policy($node, q{(name, role_name, idle_timeout) VALUES ('fight', 'app', '1s'), ('away', 'gone_app', '1s')});

my $warning = qr/WARNING:  01000: pg_poolguard policy "fight" is fighting a connection pool/;

# A pooled connection that is opened and never used: psql sends nothing until asked.
sub unused_session
{
    my ($connstr, $app) = @_;
    my $h = $node->background_psql('postgres', on_error_stop => 0,
        extra_params => [ '-d', $node->connstr('postgres') . " $connstr application_name=$app" ]);
    ok($node->poll_query_until('postgres',
        "SELECT count(*) = 1 FROM pg_stat_activity WHERE application_name = '$app' AND state = 'idle'"),
        "$app logged in");
    return $h;
}

sub ended
{
    my ($app) = @_;
    return $node->poll_query_until('postgres',
        "SELECT count(*) = 0 FROM pg_stat_activity WHERE application_name = '$app'");
}

# A background_psql whose session the server ended: quit without caring how psql exits.
sub quit_ended
{
    my ($h) = @_;
    eval { $h->quit; };
}

# ---- a pool that refills right after each end ----
my $h = unused_session('user=app', 'pool');
for my $i (1 .. 3)
{
    ok(ended('pool'), "end $i: idle_timeout ended the session");
    quit_ended($h);
    $h = unused_session('user=app', 'pool');    # the pool refills at once
}
ok(ended('pool'), 'end 4: the app stops refilling for now');
quit_ended($h);
is($node->safe_psql('postgres',
    "SELECT logins || ' ' || refills || ' ' || ended_unused FROM poolguard.policy_status WHERE policy = 'fight'"),
    '4 3 4', 'policy_status: 4 logins, exactly 3 refills, 4 ended sessions unused');
is($node->safe_psql('postgres',
    "SELECT role_name || ' ' || database_name || ' ' || application_name || ' ' || logins || ' ' || refills || ' ' || ended || ' ' || ended_unused FROM poolguard.identity_status WHERE policy = 'fight'"),
    'app postgres pool 4 3 4 4', 'identity_status: the same per login identity');
my $metrics = $node->safe_psql('postgres', 'SELECT poolguard.metrics()');
like($metrics, qr/^poolguard_refills_total\{policy="fight"\} 3$/m, '/metrics: refills');
like($metrics, qr/^poolguard_logins_total\{policy="fight"\} 4$/m, '/metrics: logins');
like($metrics, qr/^poolguard_ended_unused_total\{policy="fight"\} 4$/m, '/metrics: ended_unused');
like($metrics, qr/^poolguard_app_logins_total\{database="postgres",application_name="pool"\} 4$/m,
    '/metrics: logins per app identity');
like($metrics, qr/^poolguard_app_refills_total\{database="postgres",application_name="pool"\} 3$/m,
    '/metrics: refills per app identity');
like($metrics, qr/^poolguard_app_ended_unused_total\{database="postgres",application_name="pool"\} 4$/m,
    '/metrics: ended_unused per app identity');

ok($node->wait_for_log($warning), 'the worker names the fight');
my $log = slurp_file($node->logfile);
like($log, qr/$warning\n.*DETAIL:  Of the \d+ sessions the policy ended in the last 1200 s, \d+ were replaced by a login of the same identity within poolguard.refill_window, and \d+ had run no statement since their login; the latest refill was role "app", database "postgres", application_name "pool"\.\n.*HINT:  The pool refills to its minimum after each end, or its health check runs less often than the idle rule/,
    'the warning says what came back, the identity, the likely cause and the fix');

# Still fighting: more refills within the same window do not warn again.
$h = unused_session('user=app', 'pool');
for my $i (5 .. 6)
{
    ok(ended('pool'), "end $i");
    quit_ended($h);
    $h = unused_session('user=app', 'pool');
}
is($node->safe_psql('postgres', "SELECT refills FROM poolguard.policy_status WHERE policy = 'fight'"), '6',
    'refills keep counting exactly');
my $scans = $node->safe_psql('postgres', 'SELECT scans FROM poolguard.stats');
ok($node->poll_query_until('postgres', "SELECT scans >= $scans + 5 FROM poolguard.stats"),
    'the worker scanned again since');
my @warnings = slurp_file($node->logfile) =~ /$warning/g;
is(scalar @warnings, 1, 'one WARNING per policy per window');
ok(ended('pool'), 'the last pooled session ended');
quit_ended($h);

# ---- an app that goes away for good: ends, no refills, no warning ----
my @away = map { unused_session('user=gone_app', "away$_") } 1 .. 4;
ok(ended("away$_"), "away$_ ended") for 1 .. 4;
quit_ended($_) for @away;
$scans = $node->safe_psql('postgres', 'SELECT scans FROM poolguard.stats');
ok($node->poll_query_until('postgres', "SELECT scans >= $scans + 5 FROM poolguard.stats"),
    'the worker scanned after the ends');
is($node->safe_psql('postgres',
    "SELECT logins || ' ' || refills || ' ' || ended_unused FROM poolguard.policy_status WHERE policy = 'away'"),
    '4 0 4', 'an app that went away: 4 logins, 0 refills');
unlike(slurp_file($node->logfile), qr/policy "away" is fighting/, 'and no warning');
$metrics = $node->safe_psql('postgres', 'SELECT poolguard.metrics()');
like($metrics, qr/^poolguard_app_logins_total\{database="postgres",application_name="away1"\} 1$/m,
    '/metrics: the app that went away logged in once per identity');
unlike($metrics, qr/^poolguard_app_refills_total\{database="postgres",application_name="away\d"\}/m,
    '/metrics: and refilled nothing');

# reset_stats() zeroes them.
$node->safe_psql('postgres', 'SELECT poolguard.reset_stats()');
is($node->safe_psql('postgres',
    "SELECT sum(logins + refills + ended_unused) FROM poolguard.policy_status"), '0', 'reset_stats zeroes policy counters');
is($node->safe_psql('postgres',
    "SELECT sum(logins + refills + ended + ended_unused) FROM poolguard.identity_status"), '0', 'and identity counters');

$node->stop;
done_testing();
