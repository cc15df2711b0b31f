# The custom WAL resource manager, as PostgreSQL shows it (as src/test/modules/test_custom_rmgrs
# checks its own): pg_get_wal_resource_managers() lists it under its id (RM_EXPERIMENTAL_ID, 128,
# see docs/cache-invalidation.md), and pg_walinspect shows its records with the names rm_identify
# gives them (INVALIDATIONS, FLOOR) and the text rm_desc writes.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../perl";
use PoolguardTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = poolguard_node('wal_rmgr', "poolguard.enabled = off");
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION pg_poolguard; CREATE EXTENSION pg_walinspect;');

is($node->safe_psql('postgres',
        "SELECT rm_id || '|' || rm_name || '|' || rm_builtin FROM pg_get_wal_resource_managers()
          WHERE rm_name = 'pg_poolguard'"),
    '128|pg_poolguard|false',
    'pg_get_wal_resource_managers() lists pg_poolguard as the custom resource manager 128');

# Waits until everything written so far is flushed (the record does not wait for its own flush:
# the WAL writer flushes it), so that pg_walinspect may read up to it; returns that LSN.
sub flushed_lsn
{
    my $lsn = $node->safe_psql('postgres', 'SELECT pg_current_wal_insert_lsn()');
    $node->poll_query_until('postgres', "SELECT pg_current_wal_flush_lsn() >= '$lsn'")
      or die "WAL up to $lsn was not flushed";
    return $lsn;
}

# pg_poolguard's records between two LSNs, as pg_walinspect shows them.
sub records
{
    my ($from, $to) = @_;
    return $node->safe_psql('postgres',
        "SELECT record_type || ' ' || description FROM pg_get_wal_records_info('$from', '$to')
          WHERE resource_manager = 'pg_poolguard' ORDER BY start_lsn");
}

my $oid = $node->safe_psql('postgres', "SELECT oid FROM pg_database WHERE datname = 'postgres'");

# A commit with two invalidations: one INVALIDATIONS record with both items.  (The first
# cache_generation() of this start also writes a FLOOR record, checked after the restart below.)
my $start = $node->safe_psql('postgres', 'SELECT pg_current_wal_insert_lsn()');
$node->safe_psql('postgres', "SELECT poolguard.cache_generation('mentor', '42')");
my $first = $node->safe_psql('postgres', "SELECT poolguard.cache_generation('mentor', '42')");
$node->safe_psql('postgres',
    "BEGIN; SELECT poolguard.invalidate('mentor', '42'); SELECT poolguard.invalidate('school'); COMMIT;");
my $end = flushed_lsn();
my $generation = $node->safe_psql('postgres', "SELECT poolguard.cache_generation('mentor', '42')");
my $school = $node->safe_psql('postgres', "SELECT poolguard.cache_generation('school')");
ok($generation > $first && $school == $generation + 1, 'the commit handed out two new generations');

my @records = split /\n/, records($start, $end);
my @items = grep { /^INVALIDATIONS / } @records;
is(scalar(@items), 1, 'one INVALIDATIONS record for the commit') or diag(join("\n", @records));
like($items[0] // '', qr/^INVALIDATIONS database $oid; 2 items from generation \d+$/,
    'rm_identify names it INVALIDATIONS, rm_desc gives database, count and first generation');
my ($from) = ($items[0] // '') =~ /from generation (\d+)$/;
ok(defined $from && $from == $generation, 'the record starts at the generation of its first item')
  or diag("record from $from, mentor/42 at $generation");

# A restart: the server's first reader raises the floor and writes the FLOOR record.
$node->restart;
my $after = $node->safe_psql('postgres', "SELECT poolguard.cache_generation('mentor', '42')");
$end = flushed_lsn();
# The worker may have raised it first, right after the start: look from the checkpoint before.
my $redo = $node->safe_psql('postgres', 'SELECT redo_lsn FROM pg_control_checkpoint()');
@records = split /\n/, records($redo, $end);
my @floors = grep { /^FLOOR / } @records;
is(scalar(@floors), 1, 'one FLOOR record after the restart') or diag(join("\n", @records));
like($floors[0] // '', qr/^FLOOR floor \d+$/, 'rm_identify names it FLOOR, rm_desc gives the floor');
my ($floor) = ($floors[0] // '') =~ /(\d+)$/;
ok(defined $floor && $after >= $floor && $floor > $school,
    'the floor is above every generation before the restart, and cache_generation() reads it');

# ---- the WAL writer is woken at most once per wal_writer_delay for these records ----
# Each invalidating commit writes its record after its own flush.  Waking the WAL writer for
# every one only made it write() the page again (it flushes at most once per wal_writer_delay):
# about one more WAL write per commit.  With a long wal_writer_delay, N invalidating commits
# must cost about N WAL writes (each commit's own flush), not 2N.
$node->append_conf('postgresql.conf', "wal_writer_delay = '10s'");
$node->reload;
$node->safe_psql('postgres', 'CREATE TABLE wake_t (id int PRIMARY KEY, v int NOT NULL DEFAULT 0);
    INSERT INTO wake_t VALUES (1)');
# PostgreSQL 18 moved the WAL write counts from pg_stat_wal to pg_stat_io.
my $wal_writes = $node->pg_version >= 18
  ? "SELECT sum(writes)::bigint FROM pg_stat_io WHERE object = 'wal'"
  : 'SELECT wal_write FROM pg_stat_wal';
my $commits = 200;
my $writes_before = $node->safe_psql('postgres', $wal_writes);
# One session (its WAL statistics are reported when it ends), one client round trip per
# statement as an application's (the WAL writer, woken, has the time to write the page before
# the next commit flushes it).
$node->safe_psql('postgres',
    join('', map { "BEGIN; UPDATE wake_t SET v = v + 1 WHERE id = 1; SELECT poolguard.invalidate('wake', '$_'); COMMIT;\n" }
          1 .. $commits));
my $writes = $node->safe_psql('postgres', $wal_writes) - $writes_before;
ok($writes <= $commits * 1.25 + 10,
    "$commits invalidating commits took $writes WAL writes: about one each, the WAL writer not woken for every record");

$node->stop;
done_testing();
