# Publication of cache invalidations: a listener receives JSON payloads in commit order, exactly
# the committed ones, batched under NOTIFY's 8000-byte limit; the publisher is started on demand
# and exits when idle; a ring overflow becomes one resync item; the channel is configurable.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../perl";
use PoolguardTest;
use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = poolguard_node('publish',
    q{poolguard.publisher_idle_timeout = '1s'},
    q{poolguard.invalidation_queue_size = 256});
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION pg_poolguard');

my $listener = $node->background_psql('postgres');
$listener->query_safe('LISTEN poolguard_invalidate');

# Polls the listener until `want` items arrived (or the harness's deadline, or `timeout` seconds,
# passed); returns [items], [payloads], [sender pids].
sub collect
{
    my ($want, $channel, $timeout) = @_;
    $channel //= 'poolguard_invalidate';
    my (@items, @payloads, @senders);
    my $deadline = time + ($timeout // $PostgreSQL::Test::Utils::timeout_default);
    while (@items < $want && time < $deadline)
    {
        my $out = $listener->query_safe('SELECT pg_sleep(0.05)');
        while ($out =~ /^Asynchronous notification "([^"]+)" with payload "(.*)" received from server process with PID (\d+)\.$/mg)
        {
            next unless $1 eq $channel;
            push @payloads, $2;
            push @senders, $3;
            push @items, @{ decode_json($2) };
        }
    }
    return (\@items, \@payloads, \@senders);
}

sub generation { $node->safe_psql('postgres', "SELECT poolguard.cache_generation($_[0])") }

# Commit order, one payload item per (scope, key), key NULL for a scope.
$node->safe_psql('postgres', q{
    BEGIN;
    SELECT poolguard.invalidate('mentor', '1');
    SELECT poolguard.invalidate('mentor', '1');
    SELECT poolguard.invalidate('school');
    COMMIT;
    SELECT poolguard.invalidate('mentor', 'quote " and \ backslash');
});
my ($items) = collect(3);
is(scalar @$items, 3, 'three items for three distinct invalidations');
is_deeply([ map { [ $_->{scope}, $_->{key} ] } @$items ],
    [ [ 'mentor', '1' ], [ 'school', undef ], [ 'mentor', 'quote " and \ backslash' ] ],
    'scope and key of each item, in commit order, JSON-escaped');
ok($items->[0]{generation} < $items->[1]{generation} && $items->[1]{generation} < $items->[2]{generation},
    'generations increase in commit order');
is($items->[0]{generation}, generation(q{'mentor', '1'}), 'item generation = cache_generation of the key');
is($items->[1]{generation}, generation(q{'school'}), 'scope item generation = cache_generation of the scope');

# Rolled back, and rolled back to a savepoint: not published.
$node->safe_psql('postgres', q{
    BEGIN; SELECT poolguard.invalidate('rolled', 'back'); ROLLBACK;
    BEGIN; SAVEPOINT s; SELECT poolguard.invalidate('rolled', 'back'); ROLLBACK TO s;
           SELECT poolguard.invalidate('marker', 'm'); COMMIT;
});
($items) = collect(1);
is_deeply([ map { $_->{scope} } @$items ], ['marker'], 'only the committed invalidation is published');

# More than 8000 bytes of items: several payloads, each under the limit, nothing lost.
my $key = 'k' x 500;
$node->safe_psql('postgres',
    "SELECT count(poolguard.invalidate('big', i || '$key')) FROM generate_series(1, 40) i");
my $payloads;
($items, $payloads) = collect(40);
is(scalar @$items, 40, 'all 40 large items arrive');
cmp_ok(scalar @$payloads, '>=', 3, 'split over several notifications');
ok(!(grep { length($_) >= 8000 } @$payloads), 'every payload is under 8000 bytes');
is_deeply([ sort { $a <=> $b } map { $_->{key} =~ /^(\d+)/ ? $1 : 0 } @$items ], [ 1 .. 40 ],
    'each item exactly once');

# The publisher is a background worker of this database; it exits when idle and comes back.
my $publishers = q{SELECT count(*) FROM pg_stat_activity
                   WHERE backend_type = 'pg_poolguard publisher' AND datname = 'postgres'};
ok($node->poll_query_until('postgres', "SELECT ($publishers) = 0"), 'publisher exits after publisher_idle_timeout');
$node->safe_psql('postgres', "SELECT poolguard.invalidate('again', '1')");
($items) = collect(1);
is($items->[0]{scope}, 'again', 'a new publisher starts on the next invalidation');
is($node->safe_psql('postgres',
        'SELECT publisher_starts >= 2 AND items_published >= 45 FROM poolguard.invalidation_publishers'),
    't', 'invalidation_publishers counts starts and items');

# From here on a publisher stays while the test looks at it (an idle timeout of an hour); the
# publishers started before the change are ended first (they may have kept the old value).
$node->safe_psql('postgres', q{
    ALTER SYSTEM SET poolguard.publisher_idle_timeout = '1h';
    SELECT pg_reload_conf();
    CREATE ROLE nobody_special LOGIN;
});
my $idle_changed = $node->safe_psql('postgres', 'SELECT now()');
ok($node->poll_query_until('postgres', "SELECT current_setting('poolguard.publisher_idle_timeout') = '1h'"),
    'publisher_idle_timeout raised');
$node->safe_psql('postgres', "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                               WHERE backend_type = 'pg_poolguard publisher' AND backend_start <= '$idle_changed'");
ok($node->poll_query_until('postgres', "SELECT count(*) = 0 FROM pg_stat_activity
                               WHERE backend_type = 'pg_poolguard publisher' AND backend_start <= '$idle_changed'"),
    'every publisher runs with the new setting');

# A terminated publisher is restarted by the postmaster (exit code 1), without a new commit.
$node->safe_psql('postgres', "SELECT poolguard.invalidate('kill', '1')");
($items) = collect(1);
my $starts = $node->safe_psql('postgres', 'SELECT publisher_starts FROM poolguard.invalidation_publishers');
is($node->safe_psql('postgres', q{SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
                                   WHERE backend_type = 'pg_poolguard publisher'}), '1', 'publisher terminated');
ok($node->poll_query_until('postgres',
        "SELECT publisher_starts > $starts FROM poolguard.invalidation_publishers"),
    'a terminated publisher comes back by itself');

# Ring overflow (queue of 256): generations stay correct and listeners get one resync.
my $before = generation(q{'flood', '299'});
$node->safe_psql('postgres', "SELECT count(poolguard.invalidate('flood', i::text)) FROM generate_series(1, 300) i");
cmp_ok(generation(q{'flood', '299'}), '>', $before, 'generation moved despite the overflow');
($items) = collect(1);
is(scalar(grep { $_->{resync} } @$items), 1, 'one resync item');
my ($resync) = grep { $_->{resync} } @$items;
ok(!defined $resync->{scope} && !defined $resync->{key}, 'resync has scope and key null');
cmp_ok($resync->{generation}, '>=', generation(q{'flood', '299'}), 'resync generation covers the dropped items');
is($node->safe_psql('postgres', 'SELECT ring_overflows, resyncs >= 1 FROM poolguard.invalidation_publishers'),
    '1|t', 'overflow and resync are counted');

# publisher_pids(): what a listener checks a notification's sender against.  PUBLIC may call it;
# it shows this database's publisher and nothing of other databases.
# (Publishers stay for the section, idle timeout of an hour: the pids are compared after the fact.)
$node->safe_psql('postgres', 'CREATE DATABASE other');
$node->safe_psql('other', 'CREATE EXTENSION pg_poolguard');
my $senders;
$node->safe_psql('postgres', "SELECT poolguard.invalidate('sender', '1')");
($items, $payloads, $senders) = collect(1);
my $running = $node->safe_psql('postgres', q{SELECT pid FROM pg_stat_activity
    WHERE backend_type = 'pg_poolguard publisher' AND datname = 'postgres'});
is($senders->[0], $running, 'the notification comes from the publisher process');
is($node->safe_psql('postgres', 'SELECT string_agg(p::text, \',\') FROM poolguard.publisher_pids() p',
        extra_params => [ '-U', 'nobody_special' ]),
    $running, 'publisher_pids() returns it, to any role');
is($node->safe_psql('other', 'SELECT count(*) FROM poolguard.publisher_pids()',
        extra_params => [ '-U', 'nobody_special' ]),
    '0', 'another database sees none of it');
$node->safe_psql('other', "SELECT poolguard.invalidate('elsewhere', '1')");
ok($node->poll_query_until('other', 'SELECT count(*) = 1 FROM poolguard.publisher_pids()'),
    "the other database's publisher starts");
is($node->safe_psql('other', 'SELECT p = pid FROM poolguard.publisher_pids() p, pg_stat_activity'
        . " WHERE backend_type = 'pg_poolguard publisher' AND datname = 'other'"),
    't', 'and it sees only its own publisher');
is($node->safe_psql('postgres', 'SELECT count(*) FROM poolguard.publisher_pids() p'
        . " WHERE p NOT IN (SELECT pid FROM pg_stat_activity WHERE datname = 'postgres')"),
    '0', "postgres still sees no other database's publisher");
$node->safe_psql('postgres', q{
    DROP DATABASE other WITH (FORCE);
    ALTER SYSTEM RESET poolguard.publisher_idle_timeout;
    SELECT pg_reload_conf();
});

# The channel is a reloadable setting.
$node->safe_psql('postgres', "ALTER SYSTEM SET poolguard.notify_channel = 'app_cache'");
$node->reload;
$listener->query_safe('LISTEN app_cache');
$node->poll_query_until('postgres', "SELECT current_setting('poolguard.notify_channel') = 'app_cache'");
# The publisher may still have the old value for a moment: retry until one arrives on the new
# channel (20 tries of 10 s each at most: a poll with a deadline).
my $got_new = 0;
for my $i (1 .. 20)
{
    $node->safe_psql('postgres', "SELECT poolguard.invalidate('channel', '$i')");
    my ($new) = collect(1, 'app_cache', 10);
    if (@$new) { $got_new = 1; last; }
}
ok($got_new, 'notifications move to poolguard.notify_channel after a reload');
my ($ret, $out, $err) = $node->psql('postgres', "ALTER SYSTEM SET poolguard.notify_channel = ''");
like($err, qr/invalid value for parameter "poolguard.notify_channel"/, 'empty channel rejected');

$listener->quit;
$node->stop;

# No free background worker slot for a publisher: said in the log and the stats, generations right.
my $tight = poolguard_node('no_worker_slot', q{max_worker_processes = 2});
$tight->start;
$tight->safe_psql('postgres', 'CREATE EXTENSION pg_poolguard');
my $g0 = $tight->safe_psql('postgres', "SELECT poolguard.cache_generation('s', 'k')");
my $offset = -s $tight->logfile;
$tight->safe_psql('postgres', "SELECT poolguard.invalidate('s', 'k')");
cmp_ok($tight->safe_psql('postgres', "SELECT poolguard.cache_generation('s', 'k')"), '>', $g0,
    'generation bumped without a publisher');
$tight->wait_for_log(qr/could not start a publisher for database \d+: no free background worker slot/, $offset);
ok(1, 'the missing worker slot is logged');
is($tight->safe_psql('postgres', 'SELECT start_failures > 0, pid IS NULL FROM poolguard.invalidation_publishers'),
    't|t', 'and counted in invalidation_publishers');
$tight->stop;

done_testing();
