# bench/pool_fight.pl (run by bench/pool_fight.sh through `make tap`): a HikariCP pool at its
# defaults (minimumIdle = maximumPoolSize = 10) with a health probe in every quiet period, under
# idle_timeout 2 s (the issue's 10 s rule and 15 s probe, scaled down 5x), with and without the
# policy's warm floor (min_idle 10), alternated in one run.  Prints one "# sample" line a run.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../test/perl";
use PoolguardTest;
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my @jars = map { "/usr/share/java/$_.jar" } qw(HikariCP postgresql slf4j-api slf4j-nop);
plan skip_all => 'HikariCP, pgjdbc or a JDK is missing' unless -r $jars[0] && -r $jars[1] && `sh -c 'command -v java'`;
my $rounds = $ENV{ROUNDS} // 2;
my $probes = $ENV{PROBES} // 4;

my $node = poolguard_node('fight', 'poolguard.naptime = 100ms', 'max_connections = 40');
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION pg_poolguard; CREATE ROLE hik LOGIN');
my $port = $node->port;
sub sql { return $node->safe_psql('postgres', $_[0]); }

for my $round (1 .. $rounds)
{
    for my $variant ('baseline', 'min_idle')
    {
        set_policy($node, "(name, role_name, idle_timeout, min_idle) VALUES ('fight', 'hik', '2s', "
            . ($variant eq 'min_idle' ? '10' : 'NULL') . ')');
        sql('SELECT poolguard.reset_stats()');
        local %ENV = (%ENV, GUIDE => '0', WORKERS => '10', BURST => '30', STACK_USER => 'hik',
            STACK_JDBC_URL => "jdbc:postgresql://127.0.0.1:$port/postgres?ApplicationName=hikari");
        sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = 'hik'");    # none left from the last run
        my ($in, $out) = ('', '');
        my $h = IPC::Run::start([ 'java', '-cp', join(':', @jars), "$FindBin::RealBin/../test/stacks/Hikari.java" ],
            '<', \$in, '>', \$out, '2>', \my $err, IPC::Run::timeout(600));
        my $answers = 0;
        my $ask = sub {
            $in .= "$_[0]\n";
            $answers++;
            $h->pump until (() = $out =~ /^done /mg) >= $answers;
        };
        $ask->('burst');
        # The pool at its minimum (HikariCP fills it in the background): the quiet starts here.
        $node->poll_query_until('postgres', "SELECT count(*) = 10 FROM pg_stat_activity WHERE usename = 'hik'");
        my $logins = sql("SELECT logins FROM poolguard.policy_status WHERE policy = 'fight'");
        my ($max_idle_bytes, $max_idle_sessions) = (0, 0);
        for (1 .. $probes)
        {
            my $t = sql('SELECT clock_timestamp()');
            # a quiet period of 3 s (the probe interval), then the health probe
            $node->poll_query_until('postgres', "SELECT last_scan > '$t'::timestamptz + interval '3 s' FROM poolguard.stats");
            my ($n, $bytes) = split /\|/, sql(
                "SELECT count(*), coalesce(sum(private_memory), 0) FROM poolguard.sessions WHERE role_name = 'hik' AND state = 'idle'");
            $max_idle_sessions = $n if $n > $max_idle_sessions;
            $max_idle_bytes = $bytes if $bytes > $max_idle_bytes;
            $ask->('probe');
        }
        my ($quiet_logins, $ended, $refills) = split /\|/, sql(
            "SELECT logins - $logins, terminated, refills FROM poolguard.policy_status WHERE policy = 'fight'");
        $in .= "quit\n";
        $h->finish;
        my ($failed) = 0;
        $failed += $_ for $out =~ /failed=(\d+)/g;
        note("sample $variant round=$round quiet_logins=$quiet_logins ended=$ended refills=$refills "
            . "failed=$failed max_idle_sessions=$max_idle_sessions max_idle_private_bytes=$max_idle_bytes");
        ok(1, "$variant round $round");
    }
}
$node->stop;
done_testing();
