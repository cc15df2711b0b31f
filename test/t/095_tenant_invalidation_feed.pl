# Tenant isolation of the invalidation feed (issue 19, finding 3): one database's flood makes
# only the readers that lost items resync; a reader of another database that lost nothing goes on
# with no resync and gets its next items, and a resync row shows the reader's own database's
# newest generation, never the flood's.  (The feed is one ring: a flood can still push out
# another database's items that nobody read yet; those readers resync, to their own newest.)
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../perl";
use PoolguardTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = poolguard_node('tenant_feed', 'poolguard.feed_size = 1024');
$node->start;
for my $db (qw(tenant other))
{
    $node->safe_psql('postgres', "CREATE DATABASE $db");
    $node->safe_psql($db, 'CREATE EXTENSION pg_poolguard');
}

# Where each reader stands: the resync row of a first call.
my $other_start = $node->safe_psql('other', 'SELECT generation FROM poolguard.invalidations_since(0)');
my $tenant_start = $node->safe_psql('tenant', 'SELECT generation FROM poolguard.invalidations_since(0)');

# other commits one item, and its reader sees it.
$node->safe_psql('other', "SELECT poolguard.invalidate('mentor', '42')");
my $other_item = $node->safe_psql('other',
    "SELECT generation FROM poolguard.invalidations_since($other_start) WHERE kind = 'item'");
ok($other_item > $other_start, "other's item is in the feed");

# 1,100 invalidations in tenant (more than the feed holds), in commits of 100.
for my $batch (0 .. 10)
{
    $node->safe_psql('tenant', "SELECT poolguard.invalidate('flood', g::text)
        FROM generate_series($batch * 100, $batch * 100 + 99) g");
}
my $tenant_newest = $node->safe_psql('tenant',
    "SELECT max(generation) FROM poolguard.invalidations_since($tenant_start) WHERE kind = 'item'")
    || $node->safe_psql('tenant', 'SELECT generation FROM poolguard.invalidations_since(0)');

# tenant's own reader lost items: it resyncs.
is($node->safe_psql('tenant', "SELECT kind FROM poolguard.invalidations_since($tenant_start)"),
    'resync', "tenant's reader from before the flood resyncs (its items were dropped)");

# other's reader that saw its item lost nothing: no resync (before: 'resync', cache dropped).
is($node->safe_psql('other', "SELECT count(*) FROM poolguard.invalidations_since($other_item)"),
    '0', "other's reader that saw its item has nothing to do: no resync");

# A reader of other whose unread item the flood pushed out, and a new reader (after => 0),
# resync to other's own newest, which says nothing of tenant.
is($node->safe_psql('other', "SELECT kind || ':' || generation FROM poolguard.invalidations_since($other_start)"),
    "resync:$other_item", "a reader that lost other's item resyncs to other's own newest");
my $other_resync = $node->safe_psql('other', 'SELECT generation FROM poolguard.invalidations_since(0)');
is($other_resync, $other_item, "a new reader's resync row carries other's own newest generation");
cmp_ok($other_resync, '<', $tenant_newest, "the resync row does not reveal tenant's generations");

# And a scope-wide invalidation in other still arrives after the flood.
$node->safe_psql('other', "SELECT poolguard.invalidate('mentor')");
is($node->safe_psql('other', "SELECT string_agg(kind || ':' || scope || ':' || coalesce(key, '-'), ',')
    FROM poolguard.invalidations_since($other_item)"),
    'item:mentor:-', "other's next item arrives");

$node->stop;
done_testing();
