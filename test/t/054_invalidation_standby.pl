# Generations replicated in commit order (issue 14): a streaming standby replays pg_poolguard's
# WAL records after the commits they belong to, so on the standby "generation visible => data
# visible" holds as on the primary; with replay paused both stay old together; promotion keeps
# every generation; invalidations_since() long-polls on the standby; a standby without the
# library stops with PostgreSQL's clear message.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../perl";
use PoolguardTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;
use Time::HiRes qw(time);

my $primary = poolguard_node('primary', { allows_streaming => 1 },
    "poolguard.naptime = '100ms'",
    'poolguard.feed_size = 16384');
$primary->start;
$primary->safe_psql('postgres', q{
    CREATE EXTENSION pg_poolguard;
    CREATE TABLE t (id int PRIMARY KEY, v int NOT NULL);
    INSERT INTO t VALUES (1, 0);
    -- Reads as an application does: the generation first, then the data (a new snapshot per
    -- statement in a volatile function).
    CREATE FUNCTION reads(n int) RETURNS TABLE (g bigint, v int) LANGUAGE plpgsql AS $$
    BEGIN
        FOR i IN 1 .. n LOOP
            g := poolguard.cache_generation('t', '1');
            SELECT t.v INTO v FROM t WHERE t.id = 1;
            RETURN NEXT;
        END LOOP;
    END $$;
});
$primary->backup('base');
my $standby = PostgreSQL::Test::Cluster->new('standby');
$standby->init_from_backup($primary, 'base', has_streaming => 1);
# The reads below are long statements; without feedback the replay of cleanup records would wait
# for them (max_standby_streaming_delay) and the standby would stay behind.
$standby->append_conf('postgresql.conf', 'hot_standby_feedback = on');
$standby->start;

sub update_and_invalidate
{
    $primary->safe_psql('postgres', q{
        BEGIN;
        UPDATE t SET v = v + 1 WHERE id = 1;
        SELECT poolguard.invalidate('t', '1');
        COMMIT;
    });
}

# ---- the same generations on both ----
update_and_invalidate();
$primary->wait_for_catchup($standby, 'replay', $primary->lsn('insert'));
my $primary_gen = $primary->safe_psql('postgres', "SELECT poolguard.cache_generation('t', '1')");
ok($standby->poll_query_until('postgres', "SELECT poolguard.cache_generation('t', '1') = $primary_gen"),
    'replay raises the standby\'s slot to the primary\'s generation');

# ---- replay paused: data and generation stay old together; resumed: both move ----
$standby->safe_psql('postgres', 'SELECT pg_wal_replay_pause()');
ok($standby->poll_query_until('postgres', "SELECT pg_get_wal_replay_pause_state() = 'paused'"), 'replay paused');
my ($g0, $v0) = split /\|/, $standby->safe_psql('postgres', "SELECT poolguard.cache_generation('t', '1'), v FROM t");
update_and_invalidate();
# The standby has received everything (both records) but replays nothing.
my $lsn = $primary->safe_psql('postgres', 'SELECT pg_current_wal_insert_lsn()');
$primary->safe_psql('postgres', 'CHECKPOINT'); # flushes the WAL (the record does not wait for a flush)
ok($standby->poll_query_until('postgres', "SELECT pg_last_wal_receive_lsn() >= '$lsn'"), 'standby received the commit');
is($standby->safe_psql('postgres', "SELECT poolguard.cache_generation('t', '1') = $g0 AND v = $v0 FROM t"), 't',
    'while replay is paused the data and the generation are both old');
$standby->safe_psql('postgres', 'SELECT pg_wal_replay_resume()');
ok($standby->poll_query_until('postgres', "SELECT poolguard.cache_generation('t', '1') > $g0 AND v > $v0 FROM t"),
    'after resume both moved');

# ---- never the generation before the data: thousands of reads under write load ----
my $start = $standby->safe_psql('postgres', 'SELECT generation FROM poolguard.invalidations_since(0)');
my $vstart = $standby->safe_psql('postgres', 'SELECT v FROM t');
my $writes = 1500;
my ($wout, $werr) = ('', '');
my $writer = IPC::Run::start(
    [ 'psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', $primary->connstr('postgres'), '-c', qq{
        DO \$\$ BEGIN
            FOR i IN 1 .. $writes LOOP
                UPDATE t SET v = v + 1 WHERE id = 1;
                PERFORM poolguard.invalidate('t', '1');
                COMMIT;
            END LOOP;
        END \$\$} ], '>', \$wout, '2>', \$werr);
# One round before the writer starts and one after it finished (below): the generation
# certainly moves between them, whatever the relative speed of writer and reader.
my @reads = split /\n/, $standby->safe_psql('postgres', 'SELECT g, v FROM reads(500)');
my $rounds = 0;
# Read while the writer runs (at least 3000 reads in all), then a last round after it finished.
while ($rounds < 20 && (@reads < 3000 || $writer->pumpable))
{
    push @reads, split /\n/, $standby->safe_psql('postgres', 'SELECT g, v FROM reads(500)');
    $rounds++;
    last if @reads >= 3000 && !$writer->pumpable;
    $writer->pump_nb if $writer->pumpable;
}
$writer->finish;
is($?, 0, 'the writer finished') or diag($werr);
# Up to the insert position: the last record does not wait for a flush (the WAL writer does it).
$primary->wait_for_catchup($standby, 'replay', $primary->lsn('insert'));
push @reads, split /\n/, $standby->safe_psql('postgres', 'SELECT g, v FROM reads(500)');
# The standby's own feed maps each generation to the update that produced it.
my @items = split /\n/, $standby->safe_psql('postgres',
    "SELECT generation FROM poolguard.invalidations_since($start) WHERE kind = 'item' ORDER BY generation");
is(scalar @items, $writes, 'the standby\'s feed holds every replayed item');
my ($violations, %distinct) = (0);
for my $r (@reads)
{
    my ($g, $v) = split /\|/, $r;
    $distinct{$g} = 1;
    # Updates whose generation is <= g must all be visible in v.
    my ($lo, $hi) = (0, scalar @items);
    while ($lo < $hi) { my $m = int(($lo + $hi) / 2); if ($items[$m] <= $g) { $lo = $m + 1 } else { $hi = $m } }
    if ($v < $vstart + $lo) { $violations++; diag("generation $g visible with v = $v < " . ($vstart + $lo)) if $violations < 5; }
}
cmp_ok(scalar @reads, '>=', 3000, 'thousands of reads on the standby');
cmp_ok(scalar keys %distinct, '>', 1, 'the standby\'s generation moved between the reads');
is($violations, 0, 'no read saw a generation before its data');

# ---- invalidations_since() long-polls on the standby and wakes after replay ----
my $after = $standby->safe_psql('postgres', "SELECT max(generation) FROM poolguard.invalidations_since($start)");
my ($pout, $perr) = ('', '');
# Its own deadline (10 minutes, the longest allowed) is far beyond the harness's: it returns in
# time only if replay wakes it.
my $poll = IPC::Run::start(
    [ 'psql', '-X', '-At', '-d', $standby->connstr('postgres'), '-c',
      "SELECT kind, scope, key FROM poolguard.invalidations_since($after, '10 min')" ],
    '>', \$pout, '2>', \$perr, IPC::Run::timeout($PostgreSQL::Test::Utils::timeout_default));
# Let it reach its wait (it shows up in pg_stat_activity) before the primary invalidates.
ok($standby->poll_query_until('postgres',
        "SELECT count(*) = 1 FROM pg_stat_activity WHERE query LIKE '%invalidations_since($after%' AND wait_event_type = 'Extension'"),
    'the long poll waits');
my $t0 = time;
$primary->safe_psql('postgres', "SELECT poolguard.invalidate('wake', 'up')");
my $woke = eval { $poll->finish; 1 };
$poll->kill_kill unless $woke;
my $waited = time - $t0;
ok($woke, 'the long poll on the standby woke on replay, long before its own 10-minute deadline');
is($pout, "item|wake|up\n", 'the long poll on the standby returns the replayed item');
note(sprintf('long-poll wake-up on the standby: %.0f ms after the primary\'s commit', $waited * 1000));

# ---- a restarted standby replays older WAL: its items still read as newer than its floor ----
# The standby restarts with its floor at its clock, above the generation of a commit it has not
# replayed yet; readers see that floor with the old data; when the commit is replayed, the key
# must read as newer (core::replayed_generation), or they would keep the old data.
$standby->stop;
update_and_invalidate();
my $v_new = $primary->safe_psql('postgres', 'SELECT v FROM t');
# The commit waits for replay (an apply delay of an hour) until the test has read the old state.
$standby->append_conf('postgresql.conf', "recovery_min_apply_delay = '1h'");
$standby->start;
my ($g_old, $v_old) = split /\|/, $standby->safe_psql('postgres', "SELECT poolguard.cache_generation('t', '1'), v FROM t");
isnt($v_old, $v_new, 'before replay the restarted standby still reads the old data');
$standby->append_conf('postgresql.conf', "recovery_min_apply_delay = 0");
$standby->reload;
ok($standby->poll_query_until('postgres', "SELECT v = $v_new FROM t"), 'the delayed commit is replayed');
cmp_ok($standby->safe_psql('postgres', "SELECT poolguard.cache_generation('t', '1')"), '>', $g_old,
    'after replay the key reads newer than what readers saw before it');
$primary->wait_for_catchup($standby, 'replay', $primary->lsn('insert'));
$after = $standby->safe_psql('postgres', 'SELECT generation FROM poolguard.invalidations_since(0)');

# ---- promotion keeps every generation ----
my $before = $standby->safe_psql('postgres',
    "SELECT poolguard.cache_generation('t', '1') || ',' || poolguard.cache_generation('wake', 'up')");
my ($t_before, $w_before) = split /,/, $before;
$primary->stop;
$standby->promote;
$standby->poll_query_until('postgres', 'SELECT NOT pg_is_in_recovery()') or die 'promotion failed';
is($standby->safe_psql('postgres',
        "SELECT poolguard.cache_generation('t', '1') >= $t_before AND poolguard.cache_generation('wake', 'up') >= $w_before"),
    't', 'promotion keeps every generation');
is($standby->safe_psql('postgres', "SELECT kind FROM poolguard.invalidations_since($after)"), 'resync',
    'a feed reader from before the promotion gets a resync');
$standby->safe_psql('postgres', "SELECT poolguard.invalidate('t', '1')");
cmp_ok($standby->safe_psql('postgres', "SELECT poolguard.cache_generation('t', '1')"), '>', $t_before,
    'the promoted server hands out newer generations');

# ---- a standby without the library cannot replay, and says why ----
$standby->backup('base2');
my $bare = PostgreSQL::Test::Cluster->new('bare');
$bare->init_from_backup($standby, 'base2', has_streaming => 1);
$bare->append_conf('postgresql.conf', "shared_preload_libraries = ''");
$bare->start(fail_ok => 1);
$standby->safe_psql('postgres', "SELECT poolguard.invalidate('t', '1')");
ok($bare->wait_for_log(qr/resource manager with ID 128 not registered/),
    'a standby without the library stops recovery with PostgreSQL\'s message');
like(slurp_file($bare->logfile), qr/shared_preload_libraries/, 'and the hint to preload it');
$bare->stop('immediate', fail_ok => 1);

done_testing();
