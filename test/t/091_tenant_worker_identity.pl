# Issue 19, finding 2: the owner of poolguard.database (or of any database a publisher serves)
# cannot give the extension's background processes another identity or settings.  ALTER DATABASE
# ... SET role / session_authorization / search_path / default_transaction_read_only and ALTER
# ROLE ... IN DATABASE ... SET are ignored (with a WARNING naming each); after a restart the
# worker still loads the policies, reaps and caps.  And a policy load that fails keeps the last
# good policies in force, saying so every cycle; after a server restart with a broken table it
# says loudly that no policy is in force.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../perl";
use PoolguardTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $port = PostgreSQL::Test::Cluster::get_free_port();
my $node = poolguard_node('worker_identity', "poolguard.naptime = '200ms'", "poolguard.idle_grace = '1s'",
    "poolguard.metrics_listen = '127.0.0.1:$port'");
$node->start;
$node->safe_psql('postgres', q{
    CREATE EXTENSION pg_poolguard;
    CREATE ROLE owner LOGIN;
    CREATE ROLE app LOGIN;
    ALTER DATABASE postgres OWNER TO owner;
    CREATE DATABASE tenant OWNER owner;
});
$node->safe_psql('tenant', 'CREATE EXTENSION pg_poolguard');
set_policy($node, q{(name, application_name, max_connections) VALUES ('capped', 'capped', 0),
                                                                       ('idle', 'idle%', NULL)});
$node->safe_psql('postgres', "UPDATE poolguard.policy SET idle_timeout = '1s' WHERE name = 'idle'");

# ALTER ROLE ... IN DATABASE for the workers' own role takes a superuser; it is ignored too.
$node->safe_psql('postgres', q{
    ALTER ROLE postgres IN DATABASE postgres SET lock_timeout = '1ms';
    ALTER ROLE postgres IN DATABASE tenant SET session_authorization = 'owner';
});
# The attack, as the database owner: the worker would run as "owner" (permission denied for
# table policy), read-only, with the owner's schema first.
$node->safe_psql('postgres', q{
    SET ROLE owner;
    CREATE SCHEMA evil;
    ALTER DATABASE postgres SET role = 'owner';
    ALTER DATABASE postgres SET search_path = evil, public;
    ALTER DATABASE postgres SET default_transaction_read_only = on;
    ALTER DATABASE tenant SET role = 'owner';
    ALTER DATABASE tenant SET default_transaction_read_only = on;
});
$node->restart;

# The test's own sessions override the settings from the client side.
$ENV{PGOPTIONS} = '-c role=none -c default_transaction_read_only=off -c search_path=public -c lock_timeout=0';
my $superuser_options = "$ENV{PGOPTIONS} -c session_authorization=postgres";
sub sql
{
    local $ENV{PGOPTIONS} = $superuser_options;
    return $node->safe_psql($_[1] // 'postgres', $_[0]);
}

$node->wait_for_log(qr/WARNING:\s+(?:\w{5}:\s+)?pg_poolguard worker ignores the in-database setting of "role"/);
for my $setting (qw(search_path default_transaction_read_only lock_timeout))
{
    ok($node->log_contains(qr/LOG:\s+(?:\w{5}:\s+)?pg_poolguard worker ignores the in-database setting of "$setting"/),
        "the worker says it ignores $setting");
}
$node->wait_for_log(qr/WARNING:\s+(?:\w{5}:\s+)?pg_poolguard metrics ignores the in-database setting of "role"/);
pass('the metrics worker ignores the database owner\'s role too');

# After the restart the worker loaded the policies (as itself): the cap of 0 refuses.
ok($node->poll_query_until('postgres', "SELECT count(*) = 2 FROM poolguard.policy_status"),
    'the worker loaded the policies after the restart');
my ($ret, $err) = login($node, 'user=app application_name=capped');
isnt($ret, 0, 'the cap applies after the restart');
like($err, qr/too many connections for poolguard policy "capped"/, 'refused by the policy');
ok(!$node->log_contains(qr/permission denied for table policy/), 'the worker never ran as the owner');

# And it reaps.
my $idle = hold($node, 'user=app application_name=idle-1');
ok(gone($node, $idle->[1]), 'the worker reaps an idle session');
my $row = sql("SELECT reason || '|' || policy FROM poolguard.terminations WHERE pid = $idle->[1]");
is($row, 'idle_timeout|idle', 'recorded as idle_timeout by policy idle');

# A publisher connects to "tenant" with the same guard: it publishes.
sql("SELECT poolguard.invalidate('user', '42')", 'tenant');
$node->wait_for_log(qr/WARNING:\s+(?:\w{5}:\s+)?pg_poolguard publisher ignores the in-database setting of "session_authorization"/);
pass('the publisher ignores the tenant owner\'s settings');
{
    local $ENV{PGOPTIONS} = $superuser_options;
    ok($node->poll_query_until('tenant',
            "SELECT items_published >= 1 FROM poolguard.invalidation_publishers WHERE datname = 'tenant'"),
        'the publisher of database tenant publishes');
}
ok(!$node->log_contains(qr/read-only transaction/), 'no process of the extension ran read-only');

# ---- a failed load keeps the last good policies, loudly ----
my $offset = -s $node->logfile;
sql('ALTER TABLE poolguard.policy RENAME COLUMN on_limit TO on_limit_broken');
# The rename changes no row, so ask for a load; it fails in this backend, and the worker retries.
{
    local $ENV{PGOPTIONS} = $superuser_options;
    my ($r, $o, $e) = $node->psql('postgres', 'SELECT poolguard.reload()');
    like($e, qr/column "on_limit" does not exist/, 'reload() reports the broken table');
}
$node->wait_for_log(
    qr/WARNING:\s+(?:\w{5}:\s+)?pg_poolguard worker could not load the policies: column "on_limit" does not exist\n(?:.*\n)*?.*DETAIL:\s+The 2 policies loaded last stay in force until a load succeeds/,
    $offset);
pass('a failed load warns that the last good policies stay in force');
($ret, $err) = login($node, 'user=app application_name=capped');
like($err, qr/too many connections for poolguard policy "capped"/, 'the last good cap still applies');
$idle = hold($node, 'user=app application_name=idle-2');
ok(gone($node, $idle->[1]), 'the worker still reaps with the last good policies');
$offset = -s $node->logfile;
$node->wait_for_log(qr/WARNING:\s+(?:\w{5}:\s+)?pg_poolguard worker could not load the policies/, $offset);
pass('the warning comes again on a later cycle');

# After a server restart nothing was loaded: the warning says no policy is in force.
$offset = -s $node->logfile;
$node->restart;
$node->wait_for_log(
    qr/WARNING:\s+(?:\w{5}:\s+)?pg_poolguard worker could not load the policies: column "on_limit" does not exist\n(?:.*\n)*?.*DETAIL:\s+No policy is in force/,
    $offset);
pass('after a restart with a broken table the worker says no policy is in force');
sql('ALTER TABLE poolguard.policy RENAME COLUMN on_limit_broken TO on_limit');
sql('SELECT poolguard.reload()');
($ret, $err) = login($node, 'user=app application_name=capped');
like($err, qr/too many connections for poolguard policy "capped"/, 'a repaired table is loaded again');

$node->stop;
done_testing();
