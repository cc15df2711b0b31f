# Issue 19, findings 6 and 10: what a client chooses is no identity, and SQL walsenders are
# sessions.
#   - Every rule judges a session by its login identity: a session that SETs application_name
#     to the listener's name and then sits idle in transaction is reaped by its own policy.
#   - The README's listener recipe binds the name to the app's role: another role that logs in
#     as "pg_poolguard listener" is capped by its own policy.
#   - A REPLICATION role connecting with replication=database is counted against caps at login
#     (cap 0 refuses it), shown in poolguard.sessions, and never signalled unless
#     poolguard.signal_walsenders is on.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../perl";
use PoolguardTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = poolguard_node('tenant_identity', "poolguard.naptime = '200ms'", "poolguard.idle_grace = '0'",
    'wal_level = logical', 'max_wal_senders = 10');
$node->start;
$node->safe_psql('postgres', q{
    CREATE EXTENSION pg_poolguard;
    CREATE ROLE app LOGIN;
    CREATE ROLE intruder LOGIN;
    CREATE ROLE repl LOGIN REPLICATION;
});

# The listener recipe, exactly as the documentation gives it (README, the Node client's, docs/).
my $recipe;
for my $file (grep { -f } ('README.md', 'clients/node/README.md', glob('docs/*.md')))
{
    open(my $fh, '<', $file) or die "$file: $!";
    local $/;
    my $text = <$fh>;
    close($fh);
    for my $block ($text =~ /```sql\n(.*?)```/gs)
    {
        $recipe = $block if $block =~ /INSERT INTO poolguard\.policy/ && $block =~ /'pg_poolguard listener'/;
    }
}
ok(defined $recipe, 'the documentation has the listener recipe');
$recipe =~ s/^\s+//mg;

set_policy($node, q{(name, role_name, max_connections, idle_in_transaction_timeout)
                    VALUES ('app', 'app', 1, '2s'), ('intruder', 'intruder', 1, '2s')}, 0);
$node->safe_psql('postgres', "$recipe; SELECT poolguard.reload()");

# ---- finding 6a: the listener's name is no pass for another role ----
my $first = hold($node, 'user=intruder');
my ($ret, $err) = login($node, "user=intruder application_name='pg_poolguard listener'");
isnt($ret, 0, 'another role calling itself the listener is capped by its own policy');
like($err, qr/too many connections for poolguard policy "intruder"/, 'refused by policy intruder');
$first->[0]->quit;
ok(gone($node, $first->[1]), 'intruder session closed');

# ---- finding 6b: SET application_name after login escapes nothing ----
my $s = hold($node, 'user=app application_name=web-1');
$s->[0]->query_safe(q{SET application_name = 'pg_poolguard listener'});
is($node->safe_psql('postgres', "SELECT application_name || '|' || policy FROM poolguard.sessions WHERE pid = $s->[1]"),
    'web-1|app', 'the sessions view shows the login application_name and the policy it gives');
$s->[0]->query_safe('BEGIN');
$s->[0]->query_safe('SELECT 1');
ok(gone($node, $s->[1]), 'idle in transaction under a borrowed name: reaped by its own policy');
is($node->safe_psql('postgres', "SELECT reason || '|' || policy FROM poolguard.terminations WHERE pid = $s->[1]"),
    'idle_in_transaction_timeout|app', 'recorded against policy app');

# ---- finding 10: SQL walsenders ----
set_policy($node, q{(name, role_name, max_connections, idle_timeout) VALUES ('repl', 'repl', 0, '1s')});
($ret, $err) = login($node, 'user=repl replication=database');
isnt($ret, 0, 'cap 0 refuses a replication=database login');
like($err, qr/too many connections for poolguard policy "repl"/, 'refused by policy repl');
($ret, $err) = login($node, 'user=repl replication=true', 'IDENTIFY_SYSTEM');
is($ret, 0, 'a physical replication connection runs no SQL and is not capped');

set_policy($node, q{(name, role_name, max_connections, idle_timeout) VALUES ('repl', 'repl', 1, '1s')});
my $w = hold($node, 'user=repl replication=database application_name=cdc');
is($node->safe_psql('postgres',
        "SELECT application_name || '|' || policy || '|' || verdict || '|' || exempt_reason FROM poolguard.sessions WHERE pid = $w->[1]"),
    'cdc|repl|exempt|walsender', 'shown in poolguard.sessions, matched, and exempt as a walsender');
is($node->safe_psql('postgres', q{SELECT sessions FROM poolguard.policy_status WHERE policy = 'repl'}), '1',
    'counted against its policy');
($ret, $err) = login($node, 'user=repl replication=database');
like($err, qr/too many connections for poolguard policy "repl"/, 'a second one is over the cap');
# Idle past its 1 s idle_timeout for several scans: not signalled by default.
my $scans = $node->safe_psql('postgres', 'SELECT scans FROM poolguard.stats');
ok($node->poll_query_until('postgres',
        "SELECT scans >= $scans + 10 AND (SELECT idle_for > interval '2s' FROM poolguard.sessions WHERE pid = $w->[1]) FROM poolguard.stats"),
    'the worker scanned many times while the walsender idled past its limit');
ok(alive($node, $w->[1]), 'a SQL walsender is never signalled by default');

$node->safe_psql('postgres', 'ALTER SYSTEM SET poolguard.signal_walsenders = on; SELECT pg_reload_conf()');
ok(gone($node, $w->[1]), 'with poolguard.signal_walsenders = on it is reaped');

$node->stop;
done_testing();
