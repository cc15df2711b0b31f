# 10,000 policies, one role each (issue 22): more policies than max_policies draw the WARNING;
# raised to 10,000 (restart), logins match the right tenant's policy through the index (own role,
# a group role with an application_name prefix, the catch-all), a cap on one tenant's policy
# refuses at the cap, and an update of one policy applies without a reload call (polled); the
# per-policy tables (caps, event counters, refill windows) reuse entries when full; the worker's
# cached policy table oid follows CREATE and DROP EXTENSION (item 8).
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../perl";
use PoolguardTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

# log_min_messages = debug1: the worker's "loaded N policies" tells when it has looked.
my $node = poolguard_node('policies_at_scale', 'max_connections = 30', 'log_min_messages = debug1');
$node->start;
# The worker looks for the policy table before the extension exists (and caches "not found").
ok(eval { $node->wait_for_log(qr/pg_poolguard loaded 0 policies/); 1 },
    'the worker looked for the policy table before the extension existed');
# Login roles for a few tenants only (the policies name 9,998 tenant roles; the index does not
# care whether a role exists, and creating 10,000 roles is not what is tested here).
$node->safe_psql('postgres', q{
    CREATE EXTENSION pg_poolguard;
    CREATE ROLE grp NOLOGIN;
    CREATE ROLE grp2 NOLOGIN;
    CREATE ROLE t1 LOGIN;
    CREATE ROLE t7 LOGIN IN ROLE grp;
    CREATE ROLE t5000 LOGIN;
    CREATE ROLE t9998 LOGIN;
    CREATE ROLE stranger LOGIN;
    INSERT INTO poolguard.policy (name, role_name, priority)
        SELECT 'tenant_' || i, 't' || i, 0 FROM generate_series(1, 9998) AS i;
    -- members of grp using a grp-app... application_name: before their own tenant policy
    INSERT INTO poolguard.policy (name, role_name, application_name, priority)
        VALUES ('grp_app', 'grp', 'grp-app%', 1);
    -- everybody else: last
    INSERT INTO poolguard.policy (name, priority) VALUES ('everyone', -1);
});
is($node->safe_psql('postgres', 'SELECT count(*) FROM poolguard.policy'), '10000', '10,000 policies');
# No reload(): the change trigger wakes the worker, whose cached "not found" the new table's
# relcache invalidation dropped.
ok($node->poll_query_until('postgres', 'SELECT count(*) >= 1000 FROM poolguard.policy_status'),
    'the worker loads the policies of a table created after it looked (its cached oid was invalidated)');

# ---- more enabled policies than max_policies (1000 by default): a WARNING, the first 1000 used ----
my ($ret, $out, $err) = $node->psql('postgres', 'SELECT poolguard.reload()');
is($out, '1000', 'reload uses max_policies (1000, the default) of them');
like($err, qr/WARNING:  pg_poolguard uses only the first 1000 of 10000 enabled policies/,
    'the WARNING names how many are used and how many exist');
like($err, qr/HINT:  Raise poolguard\.max_policies/, 'and hints at max_policies');

# ---- raised to 10,000 ----
$node->append_conf('postgresql.conf', "poolguard.max_policies = 10000\n");
$node->restart;
($ret, $out, $err) = $node->psql('postgres', 'SELECT poolguard.reload()');
is($out, '10000', 'with max_policies = 10000 all 10,000 are in force');
unlike($err, qr/WARNING/, 'no WARNING when they fit');

# The policy each login matched, as poolguard.sessions shows it.
sub policy_of
{
    my ($held) = @_;
    return $node->safe_psql('postgres', "SELECT policy FROM poolguard.sessions WHERE pid = $held->[1]");
}
my $s9998 = hold($node, 'user=t9998 application_name=web');
is(policy_of($s9998), 'tenant_9998', 'a tenant matches its own policy (the 9,998th)');
my $s1 = hold($node, 'user=t1');
is(policy_of($s1), 'tenant_1', 'and another tenant its own');
my $s7 = hold($node, 'user=t7 application_name=grp-app-1');
is(policy_of($s7), 'grp_app', 'a member of grp with a grp-app... application_name matches the group policy first');
my $s7b = hold($node, 'user=t7 application_name=other');
is(policy_of($s7b), 'tenant_7', 'the same role with another application_name matches its own policy');
my $sx = hold($node, 'user=stranger');
is(policy_of($sx), 'everyone', 'a role without a policy matches the catch-all, the last of 10,000');
release($node, $s9998, $s1, $s7, $s7b, $sx);

# ---- a grant after the worker has matched a session is seen at its next scan ----
# The worker keeps each login role's role names across scans; a GRANT must drop them.
$node->safe_psql('postgres', q{
    INSERT INTO poolguard.policy (name, role_name, idle_timeout, priority) VALUES ('grp2_idle', 'grp2', '1s', 5);
    DELETE FROM poolguard.policy WHERE name = 'everyone';
    SELECT poolguard.reload()});
my $victim = hold($node, 'user=t9998');
my $scans = $node->safe_psql('postgres', 'SELECT scans FROM poolguard.stats');
ok($node->poll_query_until('postgres', "SELECT scans >= $scans + 2 FROM poolguard.stats"),
    'the worker scanned the session (as tenant_9998, no idle timeout)');
ok(alive($node, $victim->[1]), 'which it left alone');
$node->safe_psql('postgres', 'GRANT grp2 TO t9998');
ok(gone($node, $victim->[1]), 'after GRANT grp2 the worker ends it under grp2_idle (idle_timeout 1s)');
finish_quietly($victim);
$node->safe_psql('postgres', q{
    DELETE FROM poolguard.policy WHERE name = 'grp2_idle';
    INSERT INTO poolguard.policy (name, priority) VALUES ('everyone', -1);
    SELECT poolguard.reload()});

# ---- a cap on one tenant's policy refuses at the cap ----
$node->safe_psql('postgres', q{
    UPDATE poolguard.policy SET max_connections = 2 WHERE name = 'tenant_5000';
    SELECT poolguard.reload()});
my @held = (hold($node, 'user=t5000'), hold($node, 'user=t5000'));
ok(policy_sessions($node, 'tenant_5000', 2), 'tenant_5000 counts its 2 sessions');
($ret, $err) = login($node, 'user=t5000');
isnt($ret, 0, 'the third login of tenant_5000 is refused');
like($err, qr/too many connections for poolguard policy "tenant_5000"/, 'naming its policy');
($ret, $err) = login($node, 'user=t9998');
is($ret, 0, 'another tenant still logs in');

# ---- many policies with no role or database: every login looks at them (more than a login's
# first buffer of 16 candidates; it copies them all) and the first match still wins ----
$node->safe_psql('postgres', q{
    DELETE FROM poolguard.policy WHERE name IN (SELECT 'tenant_' || i FROM generate_series(9000, 9030) AS i);
    INSERT INTO poolguard.policy (name, client_addr, priority)
        SELECT 'elsewhere_' || i, ('10.9.9.' || i || '/32')::cidr, 10 FROM generate_series(1, 30) AS i;
    INSERT INTO poolguard.policy (name, client_addr, priority) VALUES ('local', '127.0.0.1/32', 9);
    SELECT poolguard.reload()});
my $tcp = hold($node, 'host=127.0.0.1 user=t9998');
is(policy_of($tcp), 'local', 'a TCP login matches the client_addr policy after 30 that do not match');
my $unix = hold($node, 'user=t9998');
is(policy_of($unix), 'tenant_9998', 'a Unix-socket login (no client address) matches its tenant policy');
release($node, $tcp, $unix);
$node->safe_psql('postgres', q{
    DELETE FROM poolguard.policy WHERE client_addr IS NOT NULL;
    INSERT INTO poolguard.policy (name, role_name, priority)
        SELECT 'tenant_' || i, 't' || i, 0 FROM generate_series(9000, 9030) AS i;
    SELECT poolguard.reload()});

# ---- an update of one policy applies by itself (the worker reloads; polled, never timed) ----
$node->safe_psql('postgres', q{UPDATE poolguard.policy SET max_connections = 3 WHERE name = 'tenant_5000'});
ok($node->poll_query_until('postgres',
        q{SELECT max_connections = 3 FROM poolguard.policy_status WHERE policy = 'tenant_5000'}),
    'the raised cap is in force without a reload call');
($ret, $err) = login($node, 'user=t5000');
is($ret, 0, 'and the third login of tenant_5000 is admitted') or diag($err);
release($node, @held);

# ---- one policy more than max_policies: the WARNING again, the last (lowest priority) dropped ----
$node->safe_psql('postgres', q{INSERT INTO poolguard.policy (name, priority) VALUES ('zz_last', -2)});
($ret, $out, $err) = $node->psql('postgres', 'SELECT poolguard.reload()');
is($out, '10000', 'still 10,000 in force');
like($err, qr/WARNING:  pg_poolguard uses only the first 10000 of 10001 enabled policies/,
    'the WARNING at 10,001 policies');
my $sz = hold($node, 'user=stranger');
is(policy_of($sz), 'everyone', 'the policies in force still match');
release($node, $sz);

# ---- the per-policy tables full: their entries are reused, and found again by name ----
# With max_policies = 1, caps, the policy event counters and the refill windows hold 2 names each;
# a third and a fourth policy name reuse entries (the name index drops the old name).
$node->append_conf('postgresql.conf', "poolguard.max_policies = 1\n");
my $offset = -s $node->logfile;
$node->restart;
# The worker caches the table's oid at its first load; the extension dropped and created again,
# the table has a new oid, and a change must be loaded from it (by the worker: no reload()).
ok(eval { $node->wait_for_log(qr/pg_poolguard loaded 1 policies/, $offset); 1 }, 'the worker loaded after the restart');
$node->safe_psql('postgres', 'DROP EXTENSION pg_poolguard; CREATE EXTENSION pg_poolguard');
$node->safe_psql('postgres', q{INSERT INTO poolguard.policy (name, role_name, max_connections) VALUES ('recreated', 't1', 1)});
ok($node->poll_query_until('postgres',
        q{SELECT max_connections = 1 FROM poolguard.policy_status WHERE policy = 'recreated'}),
    'after DROP and CREATE EXTENSION the worker loads from the new table (its cached oid was invalidated)');
for my $name (qw(first second third first fourth))
{
    set_policy($node, qq{(name, role_name, max_connections) VALUES ('$name', 't1', 1)});
    my $h = hold($node, 'user=t1');
    ok(policy_sessions($node, $name, 1), "policy $name counts its session");
    ($ret, $err) = login($node, 'user=t1');
    like($err, qr/too many connections for poolguard policy "$name"/, "and refuses the second, naming $name");
    is($node->safe_psql('postgres', "SELECT logins > 0 AND rejected > 0 FROM poolguard.policy_status WHERE policy = '$name'"),
        't', "its login and refusal are counted under $name");
    release($node, $h);
}

$node->stop;
done_testing();
