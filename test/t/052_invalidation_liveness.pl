# Invalidation liveness: a database whose publisher cannot start delays only its own items (other
# databases keep receiving items, not resyncs, through a small queue); under pressure its items
# become ONE resync for it alone; the worker starts its publisher when a worker slot frees up,
# with no further commit in it; a publisher that cannot connect to a database that still exists
# keeps its items; only a database that no longer exists has its items forgotten.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../perl";
use PoolguardTest;
use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

# Two background worker slots: the pg_poolguard worker and ONE publisher.
my $node = poolguard_node('liveness',
    q{max_worker_processes = 2},
    q{max_logical_replication_workers = 0},
    q{max_parallel_workers = 0},
    q{max_parallel_workers_per_gather = 0},
    q{poolguard.invalidation_queue_size = 64},
    q{poolguard.publisher_idle_timeout = '1h'},
    q{poolguard.naptime = '1s'});
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION pg_poolguard'); # for the view
for my $db (qw(a b c d))
{
    $node->safe_psql('postgres', "CREATE DATABASE $db");
    $node->safe_psql($db, 'CREATE EXTENSION pg_poolguard');
}
my %oid = map { $_ => $node->safe_psql('postgres', "SELECT oid FROM pg_database WHERE datname = '$_'") } qw(a b c d);

# Polls a listening session until `want` items or a resync arrived, or the harness's deadline passed;
# returns [items].
sub collect
{
    my ($listener, $want) = @_;
    my @items;
    my $deadline = time + $PostgreSQL::Test::Utils::timeout_default;
    while (@items < $want && !(grep { $_->{resync} } @items) && time < $deadline)
    {
        my $out = $listener->query_safe('SELECT pg_sleep(0.05)');
        while ($out =~ /^Asynchronous notification "poolguard_invalidate" with payload "(.*)" received from server process with PID \d+\.$/mg)
        {
            push @items, @{ decode_json($1) };
        }
    }
    return \@items;
}

sub publisher_row
{
    my ($db, $columns) = @_;
    return $node->safe_psql('postgres',
        "SELECT $columns FROM poolguard.invalidation_publishers WHERE datid = $oid{$db}");
}

my $running_publishers = q{SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'pg_poolguard publisher'};

# A session in db that LISTENs; its psql timeout applies per query, not to the whole test.
sub listener
{
    my $session = $node->background_psql($_[0]);
    $session->set_query_timer_restart();
    $session->query_safe('LISTEN poolguard_invalidate');
    return $session;
}

my $listen_a = listener('a');
my $listen_b = listener('b');

# b's publisher takes the last worker slot.
$node->safe_psql('b', "SELECT poolguard.invalidate('warm', '0')");
my $items = collect($listen_b, 1);
is(scalar @$items, 1, 'b publishes while it has the last worker slot');

# a commits 40 items (of a queue of 64); its publisher cannot start.
my $offset = -s $node->logfile;
$node->safe_psql('a', "SELECT count(poolguard.invalidate('a', i::text)) FROM generate_series(1, 40) i");
$node->wait_for_log(qr/could not start a publisher for database $oid{a}: no free background worker slot/, $offset);
is(publisher_row('a', 'pid IS NULL, pending'), 't|40', "a's 40 items wait in the queue, no publisher");

# b keeps publishing items through the rest of the queue: 96 items in batches of 16, more than the
# queue holds in all (on a ring, a's oldest item pinned the tail and b's commits became resyncs).
my @b_items;
for my $batch (1 .. 6)
{
    $node->safe_psql('b',
        "SELECT count(poolguard.invalidate('b', ($batch * 100 + i)::text)) FROM generate_series(1, 16) i");
    push @b_items, @{ collect($listen_b, 16) };
    last if grep { $_->{resync} } @b_items;
}
is(scalar(grep { $_->{resync} } @b_items), 0, 'b gets no resync while a is stuck');
is(scalar(grep { ($_->{scope} // '') eq 'b' } @b_items), 96, 'b gets all of its 96 items');
is(publisher_row('a', 'pending, resyncs, ring_overflows'), '40|0|0', "a's items are still queued, untouched");

# A commit of b that does not fit next to a's items: a gives them up as one resync for a alone.
my $a_last = $node->safe_psql('a', "SELECT poolguard.cache_generation('a', '40')");
$offset = -s $node->logfile;
$node->safe_psql('b', "SELECT count(poolguard.invalidate('big', i::text)) FROM generate_series(1, 30) i");
$items = collect($listen_b, 30);
is(scalar(grep { ($_->{scope} // '') eq 'big' } @$items), 30, 'b gets its 30 items although the queue was short');
is(scalar(grep { $_->{resync} } @$items), 0, 'and no resync');
$node->wait_for_log(qr/replaced 40 queued invalidations of database $oid{a} by one resync/, $offset);
is(publisher_row('a', 'pending, ring_overflows'), '0|1', "a's items became one pending resync");
# More commits in a while it is stuck: covered by its resync, queued nowhere.
$node->safe_psql('a', "SELECT poolguard.invalidate('a', 'late')");
is(publisher_row('a', 'pending'), '0', 'a later commit of a is covered by the pending resync');

# A worker slot frees up (b's publisher goes idle and exits): the pg_poolguard worker starts a's
# publisher by itself, with no further commit in a, and a's listener gets ONE resync covering all.
my $a_late = $node->safe_psql('a', "SELECT poolguard.cache_generation('a', 'late')");
$node->safe_psql('postgres', "ALTER SYSTEM SET poolguard.publisher_idle_timeout = '1s'");
$node->reload;
$items = collect($listen_a, 1);
is(scalar @$items, 1, 'a gets one notification item without a new commit in a');
ok($items->[0]{resync}, 'it is a resync');
cmp_ok($items->[0]{generation} // 0, '>=', $a_late, 'its generation covers every item of a');
cmp_ok($a_late, '>', $a_last, 'generations of a kept increasing while it was stuck');
ok($node->poll_query_until('postgres',
        "SELECT publisher_starts = 1 AND pending = 0 AND resyncs = 1 FROM poolguard.invalidation_publishers
          WHERE datid = $oid{a}"),
    "a's publisher started once and sent one resync");

# A publisher that cannot connect to a database that still exists keeps its items.
ok($node->poll_query_until('postgres', "SELECT ($running_publishers) = 0"), 'publishers went idle');
my $session_c = listener('c');
$node->safe_psql('postgres', 'ALTER DATABASE c ALLOW_CONNECTIONS false');
$offset = -s $node->logfile;
$session_c->query_safe("SELECT poolguard.invalidate('c', 'kept')");
$node->wait_for_log(qr/publisher could not connect to database $oid{c}/, $offset);
is(publisher_row('c', 'pid IS NULL, pending'), 't|1', "c's item is kept after its publisher could not connect");
$node->safe_psql('postgres', 'ALTER DATABASE c ALLOW_CONNECTIONS true');
$items = collect($session_c, 1);
is_deeply([ map { [ $_->{scope}, $_->{key} ] } @$items ], [ [ 'c', 'kept' ] ],
    "the worker retries: c's listener gets the kept item once c accepts connections");

# Only a database that no longer exists has its items forgotten.
ok($node->poll_query_until('postgres', "SELECT ($running_publishers) = 0"), 'publishers went idle again');
my $session_d = listener('d');
$node->safe_psql('postgres', 'ALTER DATABASE d ALLOW_CONNECTIONS false');
$offset = -s $node->logfile;
$session_d->query_safe("SELECT poolguard.invalidate('d', 'gone')");
$node->wait_for_log(qr/publisher could not connect to database $oid{d}/, $offset);
$session_d->quit;
$node->safe_psql('postgres', 'DROP DATABASE d');
ok($node->poll_query_until('postgres',
        "SELECT count(*) = 0 FROM poolguard.invalidation_publishers WHERE datid = $oid{d}"),
    'the slot of a dropped database is forgotten');
$node->wait_for_log(qr/dropped 1 queued invalidations of database $oid{d}: the database no longer exists/, $offset);
ok(1, 'and that is logged');
is($node->safe_psql('postgres', 'SELECT max(ring_used) FROM poolguard.invalidation_publishers'), '0',
    'no entry is left in the queue');

$_->quit for ($listen_a, $listen_b, $session_c);
$node->stop;
done_testing();
