# High availability as DBAs run it: three PostgreSQL nodes managed by Patroni (Debian's patroni)
# over etcd (Debian's etcd-server), the library preloaded through Patroni's own configuration.
#   1. Patroni's sessions (its superuser, replication and rewind roles, REST health checks) are
#      never ended or refused, with strict policies for every other session;
#   2. patronictl switchover: the new primary enforces the same policies, its generations exceed
#      every generation the old primary handed out, invalidations_since() answers a reader that
#      continues from the old primary's generations with resync;
#   3. failover (the primary's node dies: Patroni and postmaster killed): the same; the old primary
#      comes back through pg_rewind as a replica and replays the extension's WAL records;
#   4. a Node client (pg-poolguard-cache) on the three-host URL with target_session_attrs=read-write
#      follows both: its listener reconnects to the new primary, its cached entry is re-checked
#      there (resync), and after a commit on the new primary it never serves the old value;
#   5. policy changes made on the new primary replicate and apply on the replicas.
# Times (switchover / failover -> policies enforced on the new primary) are printed as notes for
# bench/RESULTS.md; nothing here asserts how fast a machine is.
use strict;
use warnings;
use File::Path qw(make_path);
use FindBin;
use lib "$FindBin::RealBin/../perl";
use HTTP::Tiny;
use IPC::Run;
use JSON::PP qw(decode_json encode_json);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use PoolguardTest;
use Test::More;
use Time::HiRes qw(time usleep);

for my $cmd ('patroni', 'patronictl', 'etcd')
{
    plan skip_all => "$cmd is not installed (make deps installs Debian's patroni and etcd-server)"
        unless system("command -v $cmd >/dev/null 2>&1") == 0;
}

my $timeout = $PostgreSQL::Test::Utils::timeout_default;
my $base = PostgreSQL::Test::Utils::tempdir('patroni');
my $bindir = `pg_config --bindir`;
chomp $bindir;
my $socketdir = PostgreSQL::Test::Utils::tempdir_short();
my $scope = 'poolguard_ha';

# ---- etcd on loopback ----
my ($etcd_client, $etcd_peer) = (PostgreSQL::Test::Cluster::get_free_port(), PostgreSQL::Test::Cluster::get_free_port());
my $etcd = IPC::Run::start(
    [ 'etcd', '--name', 'etcd0', '--data-dir', "$base/etcd",
      '--listen-client-urls', "http://127.0.0.1:$etcd_client",
      '--advertise-client-urls', "http://127.0.0.1:$etcd_client",
      '--listen-peer-urls', "http://127.0.0.1:$etcd_peer",
      '--initial-advertise-peer-urls', "http://127.0.0.1:$etcd_peer",
      '--initial-cluster', "etcd0=http://127.0.0.1:$etcd_peer" ],
    '>', "$base/etcd.log", '2>&1');
my $http = HTTP::Tiny->new(timeout => 5);
poll_until(sub { my $r = $http->get("http://127.0.0.1:$etcd_client/health"); $r->{success} }, 'etcd answers /health')
    or BAIL_OUT('etcd did not start: ' . slurp_file("$base/etcd.log"));

# ---- three Patroni nodes ----
my %nodes;
for my $name ('pg1', 'pg2', 'pg3')
{
    my $node = {
        name => $name,
        port => PostgreSQL::Test::Cluster::get_free_port(),
        rest => PostgreSQL::Test::Cluster::get_free_port(),
        data => "$base/$name/data",
        conf => "$base/$name/patroni.yml",
        log => "$base/$name/patroni.log",
    };
    make_path("$base/$name");
    write_config($node);
    $nodes{$name} = $node;
}

# Patroni's roles are exempt by the recipe in docs (Running under Patroni): its superuser is a
# superuser anyway; the replication role connects as walsenders; pg_rewind's role runs ordinary SQL
# on the new primary, so it must be listed.
sub write_config
{
    my ($n) = @_;
    open my $fh, '>', $n->{conf} or die "cannot write $n->{conf}: $!";
    print $fh <<"YAML";
scope: $scope
name: $n->{name}
log:
  level: INFO
restapi:
  listen: 127.0.0.1:$n->{rest}
  connect_address: 127.0.0.1:$n->{rest}
etcd3:
  hosts: 127.0.0.1:$etcd_client
bootstrap:
  dcs:
    ttl: 20
    loop_wait: 1
    retry_timeout: 5
    maximum_lag_on_failover: 16777216
    postgresql:
      use_pg_rewind: true
      use_slots: true
      parameters:
        shared_preload_libraries: pg_poolguard
        wal_log_hints: 'on'
        hot_standby: 'on'
        max_connections: 60
        max_wal_senders: 10
        max_replication_slots: 10
        wal_keep_size: 128MB
        poolguard.exempt_roles: 'patroni_repl, patroni_rewind'
        poolguard.naptime: 200ms
        poolguard.idle_grace: '0'
  initdb:
    - encoding: UTF8
    - locale: C
postgresql:
  listen: 127.0.0.1:$n->{port}
  connect_address: 127.0.0.1:$n->{port}
  data_dir: $n->{data}
  bin_dir: $bindir
  pgpass: $base/$n->{name}/pgpass
  authentication:
    superuser:
      username: postgres
      password: patroni-super
    replication:
      username: patroni_repl
      password: patroni-repl
    rewind:
      username: patroni_rewind
      password: patroni-rewind
  pg_hba:
    - local all all trust
    - host all all 127.0.0.1/32 trust
    - host replication all 127.0.0.1/32 trust
  parameters:
    unix_socket_directories: '$socketdir'
    log_line_prefix: '%m [%p] %qu=%u a=%a '
tags:
  nofailover: false
  noloadbalance: false
  clonefrom: false
  nosync: false
YAML
    close $fh;
    chmod 0600, $n->{conf};
}

sub start_patroni
{
    my ($n) = @_;
    $n->{proc} = IPC::Run::start([ 'patroni', $n->{conf} ], '>>', $n->{log}, '2>&1');
}

sub poll_until
{
    my ($check, $what) = @_;
    my $deadline = time() + $timeout;
    while (time() < $deadline)
    {
        my $ok = eval { $check->() };
        return 1 if $ok;
        usleep(200_000);
    }
    diag("not reached within ${timeout}s: $what");
    return 0;
}

# psql against one node's server, as the Patroni superuser unless CONNSTR says otherwise.
sub sql
{
    my ($n, $query, $connstr) = @_;
    my ($out, $err) = ('', '');
    my $ok = IPC::Run::run(
        [ "$bindir/psql", '-XAtq', '-v', 'ON_ERROR_STOP=1', '-d',
          "host=127.0.0.1 port=$n->{port} dbname=postgres user=postgres " . ($connstr // ''), '-c', $query ],
        '>', \$out, '2>', \$err, IPC::Run::timeout($timeout));
    chomp $out;
    return wantarray ? ($ok, $out, $err) : ($ok ? $out : undef);
}

sub cluster_members
{
    my $r = $http->get("http://127.0.0.1:$nodes{pg1}{rest}/cluster");
    $r = $http->get("http://127.0.0.1:$nodes{pg2}{rest}/cluster") unless $r->{success};
    $r = $http->get("http://127.0.0.1:$nodes{pg3}{rest}/cluster") unless $r->{success};
    return () unless $r->{success};
    my %m;
    # The REST answer is JSON; these three fields are all this test needs.
    while ($r->{content} =~ /\{[^{}]*"name":\s*"(pg\d)"[^{}]*\}/g)
    {
        my ($member, $obj) = ($1, $&);
        my ($role) = $obj =~ /"role":\s*"([a-z_]+)"/;
        my ($state) = $obj =~ /"state":\s*"([a-z ]+)"/;
        $m{$member} = { role => $role // '', state => $state // '' };
    }
    return %m;
}

sub leader
{
    my %m = cluster_members();
    for my $name (sort keys %m)
    {
        return $nodes{$name} if $m{$name}{role} eq 'leader' && $m{$name}{state} eq 'running';
    }
    return undef;
}

# All of WANT's members are running replicas streaming from the leader.
sub replicas_streaming
{
    my @want = @_;
    my %m = cluster_members();
    for my $name (@want)
    {
        return 0 unless $m{$name} && $m{$name}{role} =~ /replica/ && $m{$name}{state} =~ /running|streaming/;
    }
    my $l = leader() or return 0;
    my $n = sql($l, "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'");
    return defined $n && $n >= scalar(@want);
}

start_patroni($nodes{pg1});
my $primary;
ok(poll_until(sub { $primary = leader() }, 'a leader is elected'), 'pg1 bootstraps the cluster as leader');
start_patroni($nodes{$_}) for ('pg2', 'pg3');
ok(poll_until(sub { replicas_streaming(grep { $_ ne $primary->{name} } sort keys %nodes) }, 'both replicas stream'),
    'pg2 and pg3 join as streaming replicas');
is(sql($primary, 'SHOW shared_preload_libraries'), 'pg_poolguard', "the library is preloaded through Patroni's configuration");

# ---- the extension, an app role and strict policies for every other session ----
sql($primary, q{
    CREATE EXTENSION pg_poolguard;
    CREATE ROLE app LOGIN;
    INSERT INTO poolguard.policy (name, priority, role_name, idle_timeout, max_connections)
        VALUES ('app', 10, 'app', '1s', 2);
    INSERT INTO poolguard.policy (name, priority, idle_timeout, idle_in_transaction_timeout, max_connections)
        VALUES ('everyone', 0, '1s', '1s', 3);
}) // BAIL_OUT('could not set up the extension on the leader');

# ---- a Node client on the three-host URL (clients/node/test/apps/ha_client.js) ----
my $clients_dir = "$FindBin::RealBin/../../clients/node";
my $client_skip =
      system('command -v node >/dev/null 2>&1') != 0 ? 'node is not installed (make deps installs Debian\'s nodejs)'
    : !-d "$clients_dir/node_modules/pg" || !-d "$clients_dir/node_modules/postgres"
    ? 'clients/node has no node_modules (npm ci in clients/node; make test does it)'
    : undef;
my ($client, $client_in, $client_out, $client_err) = (undef, '', '', '');
sql($primary, q{CREATE TABLE kv (k text PRIMARY KEY, v text); INSERT INTO kv VALUES ('x', 'v0')})
    // BAIL_OUT('could not create the Node client\'s table');
my $client_url = 'postgresql://postgres@' . join(',', map { "127.0.0.1:$nodes{$_}{port}" } sort keys %nodes)
    . '/postgres?target_session_attrs=read-write';
unless ($client_skip)
{
    $client = IPC::Run::start([ 'node', "$clients_dir/test/apps/ha_client.js", $client_url ],
        '<', \$client_in, '>', \$client_out, '2>', \$client_err);
}

# One command to the Node client, its JSON answer (undef: none within the deadline).
sub client_cmd
{
    my ($cmd, $wait) = @_;
    my $lines = () = $client_out =~ /\n/g;
    $client_in .= "$cmd\n";
    my $deadline = time() + ($wait // $timeout);
    while (time() < $deadline)
    {
        $client->pump_nb;
        my @l = split /\n/, $client_out;
        return decode_json($l[$lines]) if scalar(@l) > $lines && $client_out =~ /\n\z/;
        usleep(100_000);
    }
    diag("the Node client did not answer '$cmd' within the deadline: $client_err");
    return undef;
}

# After a switchover or failover to NEW: the client's listener is on NEW, its entry (loaded from
# the old primary) is re-checked against NEW and reloaded, and once a commit on NEW changed the
# value it serves the new value (a strong read at once) and never the old one again.
sub client_follows
{
    my ($label, $new, $old_value, $value) = @_;
  SKIP:
    {
        skip $client_skip, 3 if $client_skip;
        my $before;
        ok(poll_until(sub {
                $before = client_cmd('status');
                $before && $before->{listening} && ($before->{port} // 0) == $new->{port}
            }, "$label: the Node client listens on $new->{name}"),
            "$label: the Node client's listener reconnected to the new primary $new->{name} (three-host URL, read-write)")
            or diag(encode_json($before // {}));
        my $g = client_cmd('get');
        ok($g && ($g->{value} // '') eq $old_value && $g->{staleOnRecheck} > $before->{staleOnRecheck},
            "$label: the Node client resynced: its cached entry was re-checked against the new primary and reloaded")
            or diag(encode_json($g // {}));
        sql($new, "UPDATE kv SET v = '$value' WHERE k = 'x'; SELECT poolguard.invalidate('kv', 'x')")
            // diag("$label: the commit on $new->{name} failed");
        my $r = client_cmd("expect $value " . ($timeout * 1000), 2 * $timeout + 60);
        ok($r && $r->{ok}, "$label: after a commit on the new primary the Node client serves '$value' "
                . '(a strong read at once, cached reads once notified) and never the old value again')
            or diag(encode_json($r // {}));
    }
}

SKIP:
{
    skip $client_skip, 1 if $client_skip;
    my $s = client_cmd('get');
    ok($s && ($s->{value} // '') eq 'v0' && ($s->{port} // 0) == $primary->{port},
        "the Node client caches through the three-host URL, its listener on the leader $primary->{name}")
        or diag(encode_json($s // {}) . " $client_err");
}

sub worker_running
{
    my ($n) = @_;
    return (sql($n, "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'pg_poolguard worker'") // '') eq '1';
}

# An idle app session on NODE: returns [handle, pid].
sub app_session
{
    my ($n, $app) = @_;
    my ($in, $out, $err) = ('', '', '');
    my $h = IPC::Run::start(
        [ "$bindir/psql", '-XAtq', '-d', "host=127.0.0.1 port=$n->{port} dbname=postgres user=app application_name=$app" ],
        '<', \$in, '>', \$out, '2>', \$err, IPC::Run::timeout($timeout));
    $in .= "SELECT pg_backend_pid();\n";
    poll_until(sub { $h->pump_nb; $out =~ /^(\d+)$/m }, "a pid from $app") or return [ $h, 0 ];
    my ($pid) = $out =~ /^(\d+)$/m;
    return [ $h, $pid, \$in ];
}

sub finish_session
{
    my ($s) = @_;
    ${ $s->[2] } .= "\\q\n" if $s->[2];
    eval { $s->[0]->finish; 1 } or eval { $s->[0]->kill_kill };
}

# NODE enforces the policies: an idle app session is ended for idle_timeout, and a third app
# login is refused while two are held.
sub enforces
{
    my ($n, $label) = @_;
    my $idle = app_session($n, "$label-idle");
    my $ended = $idle->[1] && poll_until(sub {
            sql($n, "SELECT count(*) FROM poolguard.terminations WHERE pid = $idle->[1] AND reason = 'idle_timeout'") eq '1'
        }, "$label: idle session $idle->[1] ended");
    finish_session($idle);
    # The cap: two held (kept busy in a transaction-less loop would be reaped; hold them active).
    my @held = map {
        my ($o, $e) = ('', '');
        IPC::Run::start([ "$bindir/psql", '-XAtq', '-d',
            "host=127.0.0.1 port=$n->{port} dbname=postgres user=app application_name=$label-held-$_",
            '-c', "SELECT pg_sleep($timeout)" ], '>', \$o, '2>', \$e);
    } 1 .. 2;
    my $counted = poll_until(sub {
            sql($n, "SELECT count(*) FROM pg_stat_activity WHERE usename = 'app' AND application_name LIKE '$label-held-%' AND state = 'active'") eq '2'
        }, "$label: two app sessions held");
    my ($ok, $out, $err) = sql($n, 'SELECT 1', 'user=app');
    my $refused = !$ok && $err =~ /too many connections for poolguard policy "app"/;
    diag("$label: third login was not refused: $err") unless $refused;
    sql($n, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name LIKE '$label-held-%'");
    $_->kill_kill for @held;
    return $ended && $counted && $refused;
}

ok(poll_until(sub { worker_running($primary) }, 'worker on the leader'), 'the worker runs on the leader');
ok(enforces($primary, 'boot'), 'the leader enforces idle_timeout and the cap');
for my $name (grep { $_ ne $primary->{name} } sort keys %nodes)
{
    ok(poll_until(sub {
            sql($nodes{$name}, q{SELECT string_agg(policy, ',' ORDER BY policy) FROM poolguard.policy_status}) eq 'app,everyone'
        }, "$name loads the replicated policies"), "replica $name has the policies in force");
}

# Generations the first primary hands out.
sub invalidate_some
{
    my ($n, $times) = @_;
    sql($n, "SELECT poolguard.invalidate('s', 'k')") for 1 .. $times;
    return sql($n, "SELECT greatest(poolguard.cache_generation('s', 'k'), poolguard.cache_generation('other'))");
}
my $old_max = invalidate_some($primary, 3);
my ($feed_pos) = split /\|/, sql($primary, q{SELECT max(generation) FROM poolguard.invalidations_since(0)});

# ---- switchover ----
my ($old, $candidate) = ($primary, $nodes{ (grep { $_ ne $primary->{name} } sort keys %nodes)[0] });
my $t0 = time();
my ($sw_ok, $sw_out, $sw_err) = ('', '', '');
IPC::Run::run([ 'patronictl', '-c', $old->{conf}, 'switchover', '--leader', $old->{name},
                '--candidate', $candidate->{name}, '--force', $scope ],
    '>', \$sw_out, '2>', \$sw_err, IPC::Run::timeout($timeout));
ok(poll_until(sub { my $l = leader(); $l && $l->{name} eq $candidate->{name} && sql($l, 'SELECT pg_is_in_recovery()') eq 'f' },
        'the candidate leads'), "switchover: $candidate->{name} is the new primary") or diag("$sw_out $sw_err");
$primary = $candidate;
my $promoted_s = time() - $t0;
ok(poll_until(sub { enforces($primary, 'switchover') }, 'the new primary enforces'),
    'switchover: the new primary ends idle sessions and refuses over the cap');
my $switchover_s = time() - $t0;
note(sprintf('switchover: new primary writable after %.1f s, policies proven enforced after %.1f s '
        . '(the proof itself waits out a 1 s idle_timeout)', $promoted_s, $switchover_s));
ok(poll_until(sub {
        sql($primary, "SELECT poolguard.cache_generation('s', 'k') > $old_max AND poolguard.cache_generation('other') > $old_max") eq 't'
    }, 'generations newer than the old primary'),
    'switchover: every generation on the new primary exceeds those the old primary handed out');
is(sql($primary, "SELECT kind FROM poolguard.invalidations_since($feed_pos)"), 'resync',
    "switchover: a reader continuing from the old primary's generations is told to resync");

ok(poll_until(sub { replicas_streaming($old->{name}) }, 'the old primary streams'),
    'switchover: the old primary rejoins as a streaming replica');
client_follows('switchover', $primary, 'v0', 'v1');

# ---- failover: the primary's node dies (Patroni and postmaster, SIGKILL) ----
$old_max = invalidate_some($primary, 3);
($feed_pos) = split /\|/, sql($primary, q{SELECT max(generation) FROM poolguard.invalidations_since(0)});
my $dead = $primary;
my ($postmaster) = split /\n/, slurp_file("$dead->{data}/postmaster.pid");
$t0 = time();
$dead->{proc}->signal('KILL');
eval { $dead->{proc}->finish };
kill 'KILL', $postmaster;
ok(poll_until(sub { my $l = leader(); $l && $l->{name} ne $dead->{name} && sql($l, 'SELECT pg_is_in_recovery()') eq 'f' },
        'a surviving node leads'), 'failover: a surviving replica is promoted');
$primary = leader();
my $failover_promoted_s = time() - $t0;
ok(poll_until(sub { enforces($primary, 'failover') }, 'the promoted node enforces'),
    'failover: the new primary ends idle sessions and refuses over the cap');
note(sprintf('failover (node killed, ttl 20 s, loop_wait 1 s): new primary writable after %.1f s, '
        . 'policies proven enforced after %.1f s', $failover_promoted_s, time() - $t0));
ok(poll_until(sub {
        sql($primary, "SELECT poolguard.cache_generation('s', 'k') > $old_max AND poolguard.cache_generation('other') > $old_max") eq 't'
    }, 'generations newer than the dead primary'),
    'failover: every generation on the new primary exceeds those the dead primary handed out');
is(sql($primary, "SELECT kind FROM poolguard.invalidations_since($feed_pos)"), 'resync',
    "failover: a reader continuing from the dead primary's generations is told to resync");
client_follows('failover', $primary, 'v1', 'v2');

# ---- the old primary comes back through pg_rewind and replays the extension's records ----
my $new_max = invalidate_some($primary, 2);
start_patroni($dead);
ok(poll_until(sub { replicas_streaming($dead->{name}) }, 'the dead node streams again'),
    'failover: the old primary rejoins as a streaming replica');
ok(slurp_file($dead->{log}) =~ /pg_rewind|rewind/i, "failover: Patroni ran pg_rewind on the old primary")
    or diag(slurp_file($dead->{log}));
$new_max = invalidate_some($primary, 1);
ok(poll_until(sub { sql($dead, "SELECT poolguard.cache_generation('s', 'k')") eq $new_max },
        'the rewound node replays'), "the rewound node replays the extension's WAL records (generation $new_max)");

# ---- policy changes on the new primary apply on every replica ----
sql($primary, "UPDATE poolguard.policy SET max_connections = 1 WHERE name = 'app'");
for my $name (grep { $_ ne $primary->{name} } sort keys %nodes)
{
    ok(poll_until(sub {
            sql($nodes{$name}, q{SELECT max_connections FROM poolguard.policy_status WHERE policy = 'app'}) eq '1'
        }, "$name applies the change"), "a policy change on the new primary applies on $name");
}

# ---- Patroni's own sessions: never ended, never refused ----
for my $name (sort keys %nodes)
{
    is(sql($nodes{$name}, q{SELECT count(*) FROM poolguard.terminations
            WHERE role_name IN ('postgres', 'patroni_repl', 'patroni_rewind') OR application_name LIKE 'Patroni%'}),
        '0', "$name ended none of Patroni's sessions");
    my $r = $http->get("http://127.0.0.1:$nodes{$name}{rest}/health");
    ok($r->{success}, "$name: Patroni's REST health check answers 200");
}
for my $name (sort keys %nodes)
{
    my $log = slurp_file($nodes{$name}{log});
    # The server logs through Patroni; the test's own app logins are refused on purpose.
    my @refused = grep { !/ u=app / } $log =~ /^([^\n]*too many connections for poolguard policy[^\n]*)$/mg;
    is(scalar(@refused), 0, "$name: Patroni was refused no connection") or diag(join("\n", @refused));
}

# ---- shut down ----
if ($client)
{
    client_cmd('quit', 30);
    eval { $client->finish; 1 } or $client->kill_kill;
}
for my $name (sort keys %nodes)
{
    my $n = $nodes{$name};
    next unless $n->{proc};
    $n->{proc}->signal('TERM');
}
for my $name (sort keys %nodes)
{
    my $n = $nodes{$name};
    next unless $n->{proc};
    eval { $n->{proc}->finish; 1 } or $n->{proc}->kill_kill;
}
$etcd->signal('TERM');
eval { $etcd->finish; 1 } or $etcd->kill_kill;

done_testing();
