# PoolguardTest — the helpers every TAP test of pg_poolguard shares (test/t/NNN_name.pl).
#
#   use FindBin;
#   use lib "$FindBin::RealBin/../perl";
#   use PoolguardTest;
#
# Nothing here sleeps and hopes: every wait polls for its condition with a deadline
# ($PostgreSQL::Test::Utils::timeout_default, 180 s unless PG_TEST_TIMEOUT_DEFAULT says otherwise)
# and fails saying what was not reached.
package PoolguardTest;
use strict;
use warnings;
use Exporter 'import';
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

our @EXPORT = qw(poolguard_node set_policy hold release finish_quietly login start_login finish_login gone alive
  idle_for policy_sessions http_get);

# poolguard_node(NAME, [\%INIT_OPTIONS,] CONF_LINES...): an initialized (not started) cluster
# with the library preloaded, listening on 127.0.0.1 with trust for TCP clients, and the extra
# settings given; INIT_OPTIONS go to PostgreSQL::Test::Cluster::init (allows_streaming => 1 ...).
sub poolguard_node
{
    my ($name, @conf) = @_;
    my %init = ref $conf[0] eq 'HASH' ? %{ shift @conf } : ();
    my $node = PostgreSQL::Test::Cluster->new($name);
    $node->init(%init);
    $node->append_conf('postgresql.conf', join("\n",
        "shared_preload_libraries = 'pg_poolguard'",
        "listen_addresses = '127.0.0.1'",
        "log_error_verbosity = verbose",
        @conf) . "\n");
    $node->append_conf('pg_hba.conf', 'host all all 127.0.0.1/32 trust');
    return $node;
}

# set_policy(NODE, VALUES_CLAUSE [, RELOAD]): replaces every policy by the rows given
# ("(name, ...) VALUES (...)"); applies them at once unless RELOAD is 0.
sub set_policy
{
    my ($node, $rows, $reload) = @_;
    $reload //= 1;
    $node->safe_psql('postgres', "TRUNCATE poolguard.policy; INSERT INTO poolguard.policy $rows"
        . ($reload ? '; SELECT poolguard.reload()' : ''));
}

# hold(NODE, CONNSTR_SUFFIX [, DBNAME]): an idle session kept open; returns [handle, pid].
sub hold
{
    my ($node, $connstr, $db) = @_;
    $db //= 'postgres';
    my $h = $node->background_psql($db, on_error_stop => 0,
        extra_params => [ '-d', $node->connstr($db) . " $connstr" ]);
    my $pid = $h->query_safe('SELECT pg_backend_pid()');
    return [ $h, $pid ];
}

# release(NODE, HELD...): ends held sessions (hold()) and waits until each backend has exited,
# so that what follows never sees a session still on its way out (pg_stat_activity, caps).
sub release
{
    my ($node, @held) = @_;
    for my $s (@held)
    {
        eval { $s->[0]->quit; 1 } or eval { $s->[0]->{run}->kill_kill };
        gone($node, $s->[1]) or die "session $s->[1] did not exit within the deadline";
    }
    return 1;
}

# finish_quietly(HELD or BACKGROUND_PSQL): ends the psql of a session the server has ended (or
# is about to end); returns what psql printed on stderr (the FATAL, the DETAIL the client saw).
sub finish_quietly
{
    my ($s) = @_;
    my $h = ref $s eq 'ARRAY' ? $s->[0] : $s;
    eval { $h->{stdin} .= "SELECT 1;\n\\q\n"; $h->{run}->finish; };
    return $h->{stderr};
}

# idle_for(NODE, PID, SECONDS): waits until the backend has been idle for longer than SECONDS
# (e.g. poolguard.idle_grace) by the server's clock; false if not reached within the deadline.
sub idle_for
{
    my ($node, $pid, $seconds) = @_;
    return $node->poll_query_until('postgres',
        "SELECT state = 'idle' AND state_change < now() - interval '$seconds s' FROM pg_stat_activity WHERE pid = $pid");
}

# policy_sessions(NODE, POLICY, COUNT): waits until the policy counts COUNT sessions (poll with a
# deadline); false if not reached.
sub policy_sessions
{
    my ($node, $policy, $count) = @_;
    return $node->poll_query_until('postgres',
        "SELECT sessions = $count FROM poolguard.policy_status WHERE policy = '$policy'");
}

# login(NODE, CONNSTR_SUFFIX [, SQL]): one short session; returns (exit code, stderr).  The SQL
# goes by -c, not stdin: a refused login's psql exits before reading stdin, and writing to it
# then died with "Broken pipe" (seen once under load).
sub login
{
    my ($node, $connstr, $sql) = @_;
    my ($ret, $err) = finish_login(start_login($node, $connstr, $sql));
    return ($ret, $err);
}

# start_login(NODE, CONNSTR_SUFFIX [, SQL]): a login in the background (it may have to wait);
# finish it with finish_login().
sub start_login
{
    my ($node, $connstr, $sql) = @_;
    my ($out, $err) = ('', '');
    my $h = IPC::Run::start(
        [ $node->installed_command('psql'), '-XAtq', '-d', $node->connstr('postgres') . " $connstr",
          '-c', $sql // 'SELECT 1' ],
        '>', \$out, '2>', \$err, IPC::Run::timeout($PostgreSQL::Test::Utils::timeout_default));
    return [ $h, \$out, \$err ];
}

# finish_login(LOGIN): waits for it (bounded); returns (exit code, stderr, stdout), exit code -1
# when it did not end within the deadline.
sub finish_login
{
    my ($c) = @_;
    my $ok = eval { $c->[0]->finish; 1 };
    if (!$ok)
    {
        $c->[0]->kill_kill;
        return (-1, "timed out: $@", ${ $c->[1] });
    }
    my @results = $c->[0]->results;
    return ($results[0], ${ $c->[2] }, ${ $c->[1] });
}

# gone(NODE, PID): true once the backend has exited (polled with a deadline).
sub gone
{
    my ($node, $pid) = @_;
    return $node->poll_query_until('postgres', "SELECT count(*) = 0 FROM pg_stat_activity WHERE pid = $pid");
}

# alive(NODE, PID): whether the backend exists now.
sub alive
{
    my ($node, $pid) = @_;
    return $node->safe_psql('postgres', "SELECT count(*) FROM pg_stat_activity WHERE pid = $pid") == 1;
}

# http_get(PORT, PATH): one HTTP/1.1 GET to 127.0.0.1:PORT; returns the raw response (bytes), or
# "connect failed: ..." (reads until the server closes, at most the default timeout).
sub http_get
{
    my ($port, $path) = @_;
    require IO::Socket::INET;
    my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port, Proto => 'tcp', Timeout => 5)
      or return "connect failed: $!";
    binmode $sock;
    print $sock "GET $path HTTP/1.1\r\nHost: localhost\r\n\r\n";
    my $response = '';
    local $SIG{ALRM} = sub { die "timeout\n" };
    alarm($PostgreSQL::Test::Utils::timeout_default);
    eval { while (my $got = <$sock>) { $response .= $got; } };
    alarm(0);
    close $sock;
    return $response;
}

1;
