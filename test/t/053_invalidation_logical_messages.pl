# Change-data-capture (issue 14): every published invalidation is also a non-transactional
# logical decoding message (prefix pg_poolguard, JSON format 1) after the commit it belongs to.
# A pg_recvlogical consumer (test_decoding) receives every item of 8 x 1,000 concurrent
# invalidating commits exactly once, in generation order, each after its own commit, across a
# consumer restart (it stops at an LSN in the middle of the load and resumes from its slot).
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../perl";
use PoolguardTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;

my $clients = 8;
my $per_client = 1000;
my $total = $clients * $per_client;

my $node = poolguard_node('cdc', { allows_streaming => 'logical' }, q{max_connections = 40});
$node->start;
$node->safe_psql('postgres', q{
    CREATE EXTENSION pg_poolguard;
    CREATE TABLE items (id bigserial PRIMARY KEY, note text);
    SELECT pg_create_logical_replication_slot('cdc', 'test_decoding');
});

my $script = $node->basedir . '/invalidate.sql';
PostgreSQL::Test::Utils::append_to_file($script, q{
BEGIN;
INSERT INTO items (note) VALUES ('x') RETURNING id \gset
SELECT poolguard.invalidate('items', CAST(:id AS text));
COMMIT;
});

sub recvlogical
{
    my ($file, $endpos) = @_;
    my ($out, $err) = ('', '');
    my $ok = IPC::Run::run(
        [ 'pg_recvlogical', '-d', $node->connstr('postgres'), '--slot', 'cdc', '--start', '--no-loop',
          '-o', 'include-xids=0', '-o', 'skip-empty-xacts=1', '--endpos', $endpos, '-f', $file ],
        '>', \$out, '2>', \$err, IPC::Run::timeout($PostgreSQL::Test::Utils::timeout_default));
    ok($ok, "pg_recvlogical stopped at $endpos") or diag($err);
}

my ($bout, $berr) = ('', '');
my $bench = IPC::Run::start(
    [ 'pgbench', '-n', '-c', $clients, '-j', 2, '-t', $per_client, '-f', $script, $node->connstr('postgres') ],
    '>', \$bout, '2>', \$berr);

# The first consumer stops in the middle of the load; the second resumes from the slot.
$node->poll_query_until('postgres', "SELECT count(*) >= $total / 2 FROM items") or die 'no progress';
my $mid = $node->safe_psql('postgres', 'SELECT pg_current_wal_lsn()');
my $first = $node->basedir . '/first.out';
recvlogical($first, $mid);
$bench->finish;
is($?, 0, 'pgbench ran 8 x 1000 invalidating commits') or diag($berr);
$node->safe_psql('postgres', 'CHECKPOINT');
my $end = $node->safe_psql('postgres', 'SELECT pg_current_wal_insert_lsn()');
my $second = $node->basedir . '/second.out';
recvlogical($second, $end);

my (%inserted, %seen, $duplicates, $misordered, $before_commit, $last, $messages, $bad_format);
($duplicates, $misordered, $before_commit, $last, $messages, $bad_format) = (0, 0, 0, 0, 0, 0);
my $first_lines = 0;
for my $file ($first, $second)
{
    for my $line (split /\n/, slurp_file($file))
    {
        $first_lines++ if $file eq $first;
        if ($line =~ /^table public\.items: INSERT: id\[bigint\]:(\d+)/)
        {
            $inserted{$1} = 1;
        }
        elsif ($line =~ /^message: transactional: 0 prefix: pg_poolguard, sz: \d+ content:(.*)$/)
        {
            my $content = $1;
            $messages++;
            $bad_format++ unless $content =~ /^\{"format":1,"items":\[.*\],"mac":"[0-9a-f]{64}"\}$/;
            while ($content =~ /\{"scope":"items","key":"(\d+)","generation":(\d+)\}/g)
            {
                my ($key, $generation) = ($1, $2);
                $duplicates++ if $seen{$key}++;
                $misordered++ if $generation <= $last;
                $last = $generation;
                # The message follows its commit: the row's INSERT was decoded before it.
                $before_commit++ unless $inserted{$key};
            }
        }
    }
}
cmp_ok($first_lines, '>', 0, 'the first consumer received part of the stream');
is(scalar keys %seen, $total, "every one of the $total items was received");
is($duplicates, 0, 'none twice across the consumer restart');
is($misordered, 0, 'in generation order');
is($before_commit, 0, 'each after the commit of its transaction');
is($bad_format, 0, 'every message is format 1');
note("$messages logical messages carried $total items");

# pgoutput (what Debezium and logical replication use) passes them on with messages 'true'.
$node->safe_psql('postgres', q{
    CREATE PUBLICATION cdc_pub FOR TABLE items;
    SELECT pg_create_logical_replication_slot('cdc_pgoutput', 'pgoutput');
});
$node->safe_psql('postgres', "SELECT poolguard.invalidate('items', 'pgoutput')");
my $pgoutput = $node->safe_psql('postgres', q{
    SELECT count(*) FROM pg_logical_slot_peek_binary_changes('cdc_pgoutput', NULL, NULL,
        'proto_version', '1', 'publication_names', 'cdc_pub', 'messages', 'true')
     WHERE get_byte(data, 0) = ascii('M')
       AND position(convert_to('pg_poolguard', 'UTF8') IN data) > 0
       AND position(convert_to('"key":"pgoutput"', 'UTF8') IN data) > 0});
is($pgoutput, 1, "pgoutput with messages 'true' delivers the message");

# poolguard.logical_messages = off turns them off.
$node->safe_psql('postgres', q{ALTER SYSTEM SET poolguard.logical_messages = off; SELECT pg_reload_conf();});
$node->poll_query_until('postgres', "SELECT current_setting('poolguard.logical_messages') = 'off'");
$node->safe_psql('postgres', "SELECT poolguard.invalidate('items', 'off')");
my $changes = $node->safe_psql('postgres',
    "SELECT count(*) FROM pg_logical_slot_get_changes('cdc', NULL, NULL, 'include-xids', '0') WHERE data LIKE 'message:%\"key\":\"off\"%'");
is($changes, 0, 'poolguard.logical_messages = off writes no message');

done_testing();
