# Real clients from Debian's packages (test/stacks/): Django, SQLAlchemy, psycopg_pool, HikariCP
# and Rails' ActiveRecord, in bursts and quiet periods longer than the rule.  Under the settings of
# docs/stacks.md each stack has 0 failed requests and reaches the rule's idle target in quiet, and
# its logins in quiet are counted; without them each shows the failure the guide prevents.  A
# stack whose packages are missing is skipped, saying which (scripts/test.sh installs them).
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../perl";
use PoolguardTest;
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $dir = "$FindBin::RealBin/../stacks";
my $python = '/usr/bin/python3';
my @jars = map { "/usr/share/java/$_.jar" } qw(HikariCP postgresql slf4j-api slf4j-nop);

# What each stack needs, and how it starts.
my %stacks = (
    django => { check => [ $python, '-c', 'import django, psycopg2' ], cmd => [ $python, "$dir/django_client.py" ] },
    sqlalchemy => { check => [ $python, '-c', 'import sqlalchemy, psycopg2' ], cmd => [ $python, "$dir/sqlalchemy_client.py" ] },
    psycopg_pool => { check => [ $python, '-c', 'import psycopg_pool' ], cmd => [ $python, "$dir/psycopg_pool_client.py" ] },
    hikaricp => { check => [ 'sh', '-c', join(' && ', 'command -v java >/dev/null', map { "test -r $_" } @jars) ],
                  cmd => [ 'java', '-Xshare:auto', '-XX:TieredStopAtLevel=1', '-cp', join(':', @jars), "$dir/Hikari.java" ] },
    rails => { check => [ 'ruby', '-e', 'require "active_record"; require "pg"' ], cmd => [ 'ruby', "$dir/rails_client.rb" ] },
);

my $node = poolguard_node('stacks', 'poolguard.naptime = 100ms', "poolguard.idle_grace = '1s'", 'max_connections = 60');
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION pg_poolguard');
my $port = $node->port;

sub sql { return $node->safe_psql('postgres', $_[0]); }

# The worker has scanned after $at + $seconds (the quiet period outlasted the rule, and it acted).
sub quiet_past
{
    my ($at, $seconds) = @_;
    return $node->poll_query_until('postgres',
        "SELECT last_scan > '$at'::timestamptz + interval '$seconds s' FROM poolguard.stats");
}

# run(STACK, ROLE, POLICY_COLUMNS, GUIDE, IDLE_TARGET, PROBES, ENV...): bursts and quiet periods;
# returns { failed, requests, quiet_logins, refills, terminated, errors }.
sub run
{
    my ($stack, $role, $policy, $guide, $target, $probes, %env) = @_;
    my ($cols, $vals) = @$policy;
    sql("DO \$\$BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$role') THEN CREATE ROLE $role LOGIN; END IF; END\$\$");
    set_policy($node, "(name, role_name, $cols) VALUES ('stack', '$role', $vals)");
    sql('SELECT poolguard.reset_stats()');
    local %ENV = (%ENV, GUIDE => $guide ? '1' : '0', WORKERS => '8', BURST => '24',
        STACK_CONNINFO => "host=127.0.0.1 port=$port user=$role dbname=postgres application_name=$stack",
        STACK_JDBC_URL => "jdbc:postgresql://127.0.0.1:$port/postgres?ApplicationName=$stack",
        STACK_USER => $role, PYTHONPATH => $dir, %env);
    my ($in, $out, $err) = ('', '', '');
    my $h = IPC::Run::start($stacks{$stack}{cmd}, '<', \$in, '>', \$out, '2>', \$err,
        IPC::Run::timeout($PostgreSQL::Test::Utils::timeout_default));
    my %r = (failed => 0, requests => 0, quiet_logins => 0, errors => '');
    my $answers = 0;
    my $ask = sub {
        my ($cmd) = @_;
        $in .= "$cmd\n";
        $answers++;
        my @done;
        $h->pump until (@done = $out =~ /^done requests=(\d+) failed=(\d+)$/mg) >= 2 * $answers;
        $r{requests} += $done[-2];
        $r{failed} += $done[-1];
    };
    my $rule_seconds = $cols =~ /idle_timeout/ ? 2 : 1;
    for my $cycle (1 .. 2)
    {
        $ask->('burst');
        last if $cycle == 2;    # the last burst comes after the last quiet period
        # A pool with a minimum fills it in the background: the quiet period starts once it is there.
        $node->poll_query_until('postgres', "SELECT count(*) >= $env{POOL_MIN} FROM pg_stat_activity WHERE usename = '$role'")
            if $env{POOL_MIN};
        my $quiet_start = sql('SELECT clock_timestamp()');
        my $logins = sql("SELECT logins FROM poolguard.policy_status WHERE policy = 'stack'");
        quiet_past($quiet_start, $rule_seconds + 0.5);
        for (1 .. $probes)
        {
            $ask->('probe');
            quiet_past(sql('SELECT clock_timestamp()'), $rule_seconds + 0.5);
        }
        ok($node->poll_query_until('postgres',
            "SELECT count(*) <= $target FROM pg_stat_activity WHERE usename = '$role' AND state = 'idle'"),
            "$stack: at most $target idle in quiet period $cycle");
        $r{quiet_logins} += sql("SELECT logins FROM poolguard.policy_status WHERE policy = 'stack'") - $logins;
        # What the idle sessions the rule kept hold: the memory the quiet period costs.
        $r{idle_memory} = sql("SELECT coalesce(sum(private_memory), 0) FROM poolguard.sessions
                                WHERE role_name = '$role' AND state = 'idle'");
    }
    $in .= "quit\n";
    $h->finish;
    ($r{errors}) = $out =~ /^error: (.*)$/m;
    $r{errors} //= '';
    diag("$stack stderr: $err") if $err =~ /\S/ && $h->result != 0;
    ($r{refills}, $r{terminated}) = split /\|/,
        sql("SELECT refills, terminated FROM poolguard.policy_status WHERE policy = 'stack'");
    return \%r;
}

my $idle_timeout = [ 'idle_timeout', "'2s'" ];
my $max_idle = [ 'max_idle', '2' ];
# Below what any session holds after its first request (a fresh backend's private memory is
# more): every session idle past idle_grace is ended for its memory.
my $max_idle_memory = [ 'max_idle_memory', '65536' ];

# POOLGUARD_STACKS=django,rails runs only those (while working on one).
my %only = map { $_ => 1 } split /,/, ($ENV{POOLGUARD_STACKS} // '');
for my $stack (sort keys %stacks)
{
    next if %only && !$only{$stack};
    # A missing interpreter (no ruby or java in make test-all's chroots) is a skip, not a death.
    my ($o, $e) = ('', '');
    my $ok = eval { IPC::Run::run($stacks{$stack}{check}, '>', \$o, '2>', \$e) };
    $e = (split /\n/, $@)[0] if !defined $ok && $@;
    ($e) = grep { /\S/ } reverse split /\n/, $e;    # a traceback's last line names what is missing
    $e //= '';
    SKIP:
    {
        skip("$stack: its Debian packages are not installed (scripts/test.sh installs them): $e", 1) unless $ok;
        my $role = "stack_$stack";

        for my $rule ([ 'idle_timeout', $idle_timeout, 0 ], [ 'max_idle', $max_idle, 2 ],
            [ 'max_idle_memory', $max_idle_memory, 0 ])
        {
            my ($name, $policy, $target) = @$rule;
            my %env = $stack eq 'hikaricp' ? (MIN_IDLE => $target) : ();
            my $r = run($stack, $role, $policy, 1, $target, 0, %env);
            is($r->{failed}, 0, "$stack, guide's settings, $name: 0 of $r->{requests} requests failed")
                or diag("first error: $r->{errors}");
            note("$stack, guide, $name: logins in quiet periods $r->{quiet_logins}, ended by the server $r->{terminated}, refills $r->{refills}, idle private memory in quiet $r->{idle_memory} bytes");
            cmp_ok($r->{terminated}, '>', 0, "$stack, guide's settings, $name: the server ended sessions (the rule acted)")
                if $name eq 'max_idle_memory';
            is($r->{quiet_logins}, 0, "$stack, guide's settings, $name: no logins in quiet periods");
        }

        if ($stack eq 'hikaricp')
        {
            # HikariCP validates on borrow: nothing fails, but at its defaults (minimumIdle =
            # maximumPoolSize) a health probe in a quiet period makes it refill what the rule ended.
            my $r = run($stack, $role, $idle_timeout, 0, 8, 1, POOL_MIN => 8);
            is($r->{failed}, 0, 'hikaricp, defaults: nothing fails (it validates on borrow)');
            cmp_ok($r->{quiet_logins}, '>', 0, "hikaricp, defaults + probes: the pool refills in quiet ($r->{quiet_logins} logins)");
            cmp_ok($r->{refills}, '>', 0, "hikaricp, defaults + probes: counted as refills ($r->{refills})");
            # The warm floor: min_idle = the pool's minimum, nothing is ended, nothing refilled.
            $r = run($stack, $role, [ 'idle_timeout, min_idle', "'2s', 8" ], 0, 8, 1, POOL_MIN => 8);
            is($r->{failed}, 0, 'hikaricp, defaults + min_idle 8: nothing fails');
            is($r->{terminated}, 0, 'hikaricp, defaults + min_idle 8: the server ends nothing');
            is($r->{quiet_logins}, 0, 'hikaricp, defaults + min_idle 8 + probes: no logins in quiet periods');
        }
        else
        {
            my $r = run($stack, $role, $idle_timeout, 0, 0, 0);
            cmp_ok($r->{failed}, '>', 0,
                "$stack without the guide's setting: $r->{failed} of $r->{requests} requests failed after quiet periods ($r->{errors})");
        }

        if ($stack eq 'sqlalchemy')
        {
            # A cap below the pool's burst: pool 10 + overflow 10 on 20 threads, each request
            # holding its connection 0.5 s, under max_connections 12.  Waiting turns the refusals
            # into waits (the overflow connections give their places back as soon as they are used).
            my %burst = (WORKERS => '20', BURST => '40', POOL_SIZE => '10', OVERFLOW => '10', REQUEST_SECONDS => '0.5');
            my $r = run($stack, $role, [ 'max_connections, on_limit, login_wait', "12, 'wait', '30s'" ], 1, 10, 0, %burst);
            my ($rejected, $waited) = split /\|/, sql("SELECT rejected, waited FROM poolguard.policy_status WHERE policy = 'stack'");
            is($r->{failed}, 0, "sqlalchemy pool 10 + overflow 10, cap 12, on_limit 'wait': 0 of $r->{requests} requests failed")
                or diag("first error: $r->{errors}");
            is($rejected, 0, "sqlalchemy, cap 12, on_limit 'wait': no login refused");
            cmp_ok($waited, '>', 0, "sqlalchemy, cap 12, on_limit 'wait': logins over the cap waited and were admitted ($waited)");
            $r = run($stack, $role, [ 'max_connections, on_limit', "12, 'evict_idle'" ], 1, 10, 0, %burst);
            ($rejected) = split /\|/, sql("SELECT rejected FROM poolguard.policy_status WHERE policy = 'stack'");
            cmp_ok($r->{failed}, '>', 0,
                "sqlalchemy, cap 12, on_limit 'evict_idle': $r->{failed} of $r->{requests} requests failed, $rejected logins refused ($r->{errors})");
        }
    }
}

$node->stop;
done_testing();
