# bench/cap_wait.pl (run by bench/cap_wait.sh through `make tap`): SQLAlchemy's QueuePool with
# pool_size 10 + max_overflow 10 (the overflow connections close as soon as they are given back)
# on 20 threads, in bursts, under a policy cap of 12 below the pool's burst: on_limit
# 'evict_idle' (the baseline: during a burst no session is idle for idle_grace, so there is
# nothing to evict and the login is refused) against on_limit 'wait' with login_wait 5 s,
# alternated in one run.  Prints one "# sample" line a run.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../test/perl";
use PoolguardTest;
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);

my $python = '/usr/bin/python3';
plan skip_all => 'SQLAlchemy or psycopg2 is missing' if system($python, '-c', 'import sqlalchemy, psycopg2') != 0;
my $rounds = $ENV{ROUNDS} // 2;
my $bursts = $ENV{BURSTS} // 3;
my $dir = "$FindBin::RealBin/../test/stacks";

my $node = poolguard_node('capwait', 'poolguard.naptime = 100ms', 'max_connections = 60');
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION pg_poolguard; CREATE ROLE sqla LOGIN');
my $port = $node->port;
sub sql { return $node->safe_psql('postgres', $_[0]); }

for my $round (1 .. $rounds)
{
    for my $variant ('evict_idle', 'wait')
    {
        set_policy($node, "(name, role_name, max_connections, on_limit, login_wait) VALUES ('cap', 'sqla', 12, '$variant', "
            . ($variant eq 'wait' ? "'5s'" : 'NULL') . ')');
        sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = 'sqla'");    # none left from the last run
        $node->poll_query_until('postgres', "SELECT count(*) = 0 FROM pg_stat_activity WHERE usename = 'sqla'");
        sql('SELECT poolguard.reset_stats()');
        local %ENV = (%ENV, GUIDE => '1', WORKERS => '20', BURST => '200', POOL_SIZE => '10', OVERFLOW => '10',
            REQUEST_SECONDS => '0.05', PYTHONPATH => $dir,
            STACK_CONNINFO => "host=127.0.0.1 port=$port user=sqla dbname=postgres application_name=sqlalchemy");
        my ($in, $out, $err) = ('', '', '');
        my $h = IPC::Run::start([ $python, "$dir/sqlalchemy_client.py" ], '<', \$in, '>', \$out, '2>', \$err,
            IPC::Run::timeout(600));
        my ($requests, $failed, $seconds) = (0, 0, 0);
        for my $b (1 .. $bursts)
        {
            my $t0 = time;
            $in .= "burst\n";
            my @done;
            $h->pump until (@done = $out =~ /^done requests=(\d+) failed=(\d+)$/mg) >= 2 * $b;
            $seconds += time - $t0;
            $requests += $done[-2];
            $failed += $done[-1];
        }
        my ($rejected, $waited, $logins) = split /\|/,
            sql("SELECT rejected, waited, logins FROM poolguard.policy_status WHERE policy = 'cap'");
        $in .= "quit\n";
        $h->finish;
        my ($error) = $out =~ /^error: (.*)$/m;
        note("sample $variant round=$round requests=$requests failed=$failed refused_logins=$rejected "
            . "waited_logins=$waited logins=$logins burst_seconds=" . sprintf('%.2f', $seconds));
        note("first error ($variant): $error") if defined $error;
        ok(1, "$variant round $round");
    }
}
$node->stop;
done_testing();
