# Concurrency and restarts: many sessions invalidating at once lose no increment and no item; a
# reader following the client rule never sees a new generation with old data; generations after
# a restart exceed every generation before it.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../perl";
use PoolguardTest;
use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = poolguard_node('concurrency', q{max_connections = 40});
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION pg_poolguard');

my $listener = $node->background_psql('postgres');
$listener->query_safe('LISTEN poolguard_invalidate');

# 8 sessions x 250 transactions, each invalidating its own key and a shared key.
my $g0 = $node->safe_psql('postgres', "SELECT poolguard.cache_generation('conc', 'shared')");
$node->pgbench('--no-vacuum --client=8 --transactions=250', 0, [qr/processed: 2000\/2000/], [qr/^$/],
    'pgbench: 8 concurrent invalidating sessions',
    { 'invalidate' => q{
BEGIN;
SELECT poolguard.invalidate('conc', :client_id::text);
SELECT poolguard.invalidate('conc', 'shared');
COMMIT;
} });

is($node->safe_psql('postgres', "SELECT invalidations FROM poolguard.invalidation_stats WHERE scope = 'conc'"),
    '4000', 'stats count every one of the 4000 invalidations');

my (@items, %generations);
my $deadline = time + $PostgreSQL::Test::Utils::timeout_default;
while (@items < 4000 && time < $deadline)
{
    my $out = $listener->query_safe('SELECT pg_sleep(0.05)');
    while ($out =~ /^Asynchronous notification "poolguard_invalidate" with payload "(.*)" received from server process with PID \d+\.$/mg)
    {
        push @items, @{ decode_json($1) };
    }
}
is(scalar @items, 4000, 'the listener receives all 4000 items');
$generations{ $_->{generation} }++ for @items;
is(scalar keys %generations, 4000, 'every item has its own generation');
my @sorted = sort { $a <=> $b } keys %generations;
# (Generations follow the clock — max(counter + 1, clock µs) — so they are unique and
# increasing, not consecutive: see 070_standby.pl for why.)
is_deeply([ map { $_->{generation} } @items ], \@sorted, 'items arrive in generation order');
is($node->safe_psql('postgres', "SELECT poolguard.cache_generation('conc', 'shared')"),
    (grep { $_->{key} eq 'shared' } @items)[-1]{generation}, 'shared key holds the last generation published for it');
cmp_ok($sorted[0], '>', $g0, 'all newer than before the run');
$listener->quit;

# Client rule under a race: writer commits v = i and invalidates; the reader reads the generation,
# then the data (separate statements, READ COMMITTED).  Whenever the reader saw the generation
# published by commit i, it must see v >= i.
$node->safe_psql('postgres', q{
    CREATE TABLE race (id int PRIMARY KEY, v int NOT NULL);
    INSERT INTO race VALUES (1, 0);
    CREATE TABLE writer_log (i int, generation bigint);
    CREATE TABLE reader_log (generation bigint, v int);
});
my $bindir = $node->config_data('--bindir');
my @psql = ("$bindir/psql", '-XAtq', '-v', 'ON_ERROR_STOP=1', '-d', $node->connstr('postgres'));
# One read before the writer starts; the reader then reads until it has seen the writer's last
# commit: it observes the writer progressing whatever the relative speed of the two.
$node->safe_psql('postgres',
    "INSERT INTO reader_log SELECT poolguard.cache_generation('race', '1'), v FROM race WHERE id = 1");
my $writer = IPC::Run::start([ @psql, '-c', q{
    DO $$ BEGIN
      FOR i IN 1..1500 LOOP
        UPDATE race SET v = i WHERE id = 1;
        PERFORM poolguard.invalidate('race', '1');
        COMMIT;
        -- Only this session invalidates 'race', so this is the generation commit i published.
        INSERT INTO writer_log VALUES (i, poolguard.cache_generation('race', '1'));
        COMMIT;
      END LOOP;
    END $$;
} ], '>', \my $wout, '2>', \my $werr, IPC::Run::timeout($PostgreSQL::Test::Utils::timeout_default));
my $reader = IPC::Run::start([ @psql, '-c', q{
    DO $$ DECLARE g bigint; val int; BEGIN
      FOR n IN 1..2147483647 LOOP
        g := poolguard.cache_generation('race', '1');
        SELECT v INTO val FROM race WHERE id = 1;
        INSERT INTO reader_log VALUES (g, val);
        EXIT WHEN n >= 6000 AND val = 1500;
      END LOOP;
    END $$;
} ], '>', \my $rout, '2>', \my $rerr, IPC::Run::timeout($PostgreSQL::Test::Utils::timeout_default));
$writer->finish;
$reader->finish;
is($werr . $rerr, '', 'writer and reader ran without errors');
is($node->safe_psql('postgres', q{
    SELECT count(*) FROM reader_log r JOIN writer_log w ON r.generation >= w.generation WHERE r.v < w.i}),
    '0', 'no read saw a generation before the data it stands for');
cmp_ok($node->safe_psql('postgres', q{
    SELECT count(DISTINCT r.v) FROM reader_log r}), '>', 1, 'the reader observed the writer progressing');

# Restart: every generation afterwards is greater than every one handed out before.
my $before_key = $node->safe_psql('postgres', "SELECT poolguard.cache_generation('conc', 'shared')");
my $before_untouched = $node->safe_psql('postgres', "SELECT poolguard.cache_generation('never', 'touched')");
$node->restart;
cmp_ok($node->safe_psql('postgres', "SELECT poolguard.cache_generation('never', 'touched')"), '>', $before_key,
    'after restart an untouched key is newer than any generation before');
cmp_ok($node->safe_psql('postgres', "SELECT poolguard.cache_generation('conc', 'shared')"), '>', $before_key,
    'after restart a key is newer than its last generation before');
$node->safe_psql('postgres', "SELECT poolguard.invalidate('conc', 'shared')");
cmp_ok($node->safe_psql('postgres', "SELECT poolguard.cache_generation('conc', 'shared')"), '>',
    $node->safe_psql('postgres', "SELECT poolguard.cache_generation('never', 'touched')"),
    'and invalidations after the restart keep increasing');
cmp_ok($before_untouched, '<', $before_key, '(before the restart, untouched keys were at the seed)');

$node->stop;
done_testing();
