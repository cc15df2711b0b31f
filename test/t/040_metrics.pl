# Metrics: poolguard.metrics() is valid Prometheus text, and the HTTP endpoint serves it while
# surviving garbage, oversized, slow, half-open and too many clients.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../perl";
use PoolguardTest;
use IO::Socket::INET;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);

my $port = PostgreSQL::Test::Cluster::get_free_port();
my $node = poolguard_node('metrics',
    qq{poolguard.metrics_listen = '127.0.0.1:$port'},
    q{poolguard.idle_grace = '1s'});
$node->start;
$node->safe_psql('postgres', q{
    CREATE EXTENSION pg_poolguard;
    CREATE ROLE app LOGIN;
    INSERT INTO poolguard.policy (name, application_name, idle_timeout) VALUES ('web "quoted"', 'web%', '1s');
});
$node->wait_for_log(qr/pg_poolguard metrics listening on 127\.0\.0\.1:$port/);

# One reaped session so that counters have something to say.
my $h = $node->background_psql('postgres', on_error_stop => 0,
    extra_params => [ '-d', $node->connstr('postgres') . ' user=app application_name=web-1' ]);
my $pid = $h->query_safe('SELECT pg_backend_pid()');
$node->poll_query_until('postgres', "SELECT count(*) = 0 FROM pg_stat_activity WHERE pid = $pid");
eval { $h->{stdin} .= "SELECT 1;\n\\q\n"; $h->{run}->finish; };

my $text = $node->safe_psql('postgres', 'SELECT poolguard.metrics()');

# Format: every family has HELP and TYPE, every sample belongs to a declared family.  A value is
# a float as Go's ParseFloat reads it: a scan of 72 µs is 7.2e-05 (the first version of this
# check refused a negative exponent, and failed whenever a scan took under 0.1 ms).
my (%help, %type);
sub exposition_problems
{
    my ($text) = @_;
    my @bad;
    for my $line (split /\n/, $text)
    {
        if ($line =~ /^# HELP (\S+) .+$/) { $help{$1} = 1; next; }
        if ($line =~ /^# TYPE (\S+) (gauge|counter)$/) { $type{$1} = $2; next; }
        if ($line =~ /^([a-z_][a-z0-9_]*)(\{(?:[a-z_]+="(?:[^"\\]|\\.)*",?)*\})? ([-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?|NaN|[+-]Inf)$/)
        {
            push @bad, "undeclared $1" unless $type{$1} && $help{$1};
            next;
        }
        push @bad, "malformed: $line";
    }
    return \@bad;
}
is_deeply(exposition_problems("# HELP poolguard_check_seconds A check.\n# TYPE poolguard_check_seconds gauge\n"
        . "poolguard_check_seconds 7.2e-05\npoolguard_check_seconds 1.5e+20\npoolguard_check_seconds 0.25\n"),
    [], 'the check accepts exponents, negative ones too');
is_deeply(exposition_problems("# HELP poolguard_check A check.\n# TYPE poolguard_check gauge\npoolguard_check 1e\n"),
    ['malformed: poolguard_check 1e'], 'the check refuses a value that is no float');
%help = (); %type = ();
is_deeply(exposition_problems($text), [], 'metrics text is valid exposition format 0.0.4');
ok((grep { $type{$_} eq 'counter' && $_ !~ /_total$/ } keys %type) == 0, 'every counter ends in _total');
ok((grep { !/^poolguard_/ } keys %type) == 0, 'every family has the poolguard_ prefix');
like($text, qr/^poolguard_terminations_total\{policy="web \\"quoted\\"",reason="idle_timeout"\} 1$/m,
    'terminations by policy and reason, label escaped');
like($text, qr/^poolguard_sessions\{policy="",state="active"\} [1-9]/m, 'sessions by policy and state');
like($text, qr/^poolguard_worker_scans_total [1-9]/m, 'worker scans');
like($text, qr/^# TYPE poolguard_notification_queue_usage_ratio gauge$/m, 'notification queue usage');
unlike($text, qr/pid=|\b$pid\b/, 'no pids in labels');

# ---- HTTP ----
sub http
{
    my ($request, $timeout) = @_;
    my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port, Proto => 'tcp', Timeout => 5)
      or return "connect failed: $!";
    print $sock $request if defined $request;
    my $response = '';
    local $SIG{ALRM} = sub { die "timeout\n" };
    alarm($timeout // $PostgreSQL::Test::Utils::timeout_default);
    eval { while (my $got = <$sock>) { $response .= $got; } };
    alarm(0);
    close $sock;
    return $response;
}

my $r = http("GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n");
like($r, qr{^HTTP/1\.1 200 OK\r\n}, 'GET /metrics: 200');
like($r, qr{Content-Type: text/plain; version=0\.0\.4}, 'Prometheus content type');
like($r, qr/^poolguard_worker_scans_total \d+/m, 'body is the metrics text');
like(http("GET /other HTTP/1.1\r\n\r\n"), qr{^HTTP/1\.1 404}, 'unknown path: 404');
like(http("POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n"), qr{^HTTP/1\.1 405}, 'POST: 405');
like(http("\x16\x03\x01\x02\x00garbage\r\n\r\n"), qr{^HTTP/1\.1 400}, 'garbage (a TLS hello): 400');
like(http("GET /metrics HTTP/1.1\r\nX-Big: " . ('a' x 20000) . "\r\n\r\n"), qr{^HTTP/1\.1 431}, 'oversized head: 431');

# A slow client and a half-open one do not block others, and are dropped.
my $slow = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port, Proto => 'tcp');
my $half = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port, Proto => 'tcp');
print $half "GET /met";
like(http("GET /metrics HTTP/1.1\r\n\r\n"), qr{^HTTP/1\.1 200}, 'served while a slow and a half-open client wait');
my $t0 = time();
my $eof = '';
eval {
    local $SIG{ALRM} = sub { die "timeout\n" };
    alarm($PostgreSQL::Test::Utils::timeout_default);
    my $buf;
    my $n = sysread($slow, $buf, 100);
    $eof = defined $n && $n == 0 ? 'closed' : 'data';
    alarm(0);
};
is($eof, 'closed', 'a silent client is disconnected (not left open until the test gives up)');
note(sprintf('the silent client was disconnected %.1f s after the test started waiting', time() - $t0));
close $half;

# Many idle connections at once: they cannot hold the slots (issue 19): beyond the per-address
# limit the oldest idle ones are closed unanswered, and service continues.
my @many = map { IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port, Proto => 'tcp') } 1 .. 100;
my $closed = 0;
for my $s (grep { defined } @many[0 .. 63])
{
    my $buf = '';
    my $n;
    eval {
        local $SIG{ALRM} = sub { die "timeout\n" };
        alarm(10);
        $n = sysread($s, $buf, 200);
        alarm(0);
    };
    $closed++ if defined $n && $n == 0;
}
cmp_ok($closed, '>=', 60, 'idle connections beyond the per-address limit are closed unanswered');
close $_ for grep { defined } @many;
like(http("GET /metrics HTTP/1.1\r\n\r\n"), qr{^HTTP/1\.1 200}, 'still serving after the flood');

my $start = $node->safe_psql('postgres', 'SELECT pg_postmaster_start_time()');
is($node->safe_psql('postgres',
        "SELECT count(*) FROM pg_stat_activity WHERE backend_type IN ('pg_poolguard worker', 'pg_poolguard metrics')"),
    '2', 'worker and metrics worker both up');
ok(!$node->log_contains(qr/terminated by signal|server process .* exited with exit code [^01]/),
    'no crash, no cluster restart');

$node->stop;
done_testing();
