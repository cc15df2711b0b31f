# Memory figures that mean what ending a session frees (issue 27): a session that only read
# shared buffers holds almost nothing of its own, one that filled temp buffers holds a lot; each
# is shown as the kernel's anonymous figure for it; max_idle_memory ends the second and never
# the first; ending a session lowers the server's private memory by about what was shown.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../perl";
use PoolguardTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

# A table of ~110 MB, under a quarter of shared_buffers, so that a sequential scan keeps every
# page it reads in shared buffers (larger tables are read through a small ring of buffers).
# (the worker re-reads each session's memory for the views every second: poolguard.memory below)
my $node = poolguard_node('memory', "shared_buffers = '512MB'", "poolguard.idle_grace = '1s'",
    "poolguard.memory_sample_interval = '1s'");
# PostgreSQL 18 reads through I/O worker processes by default: they map the buffers too, so the
# kernel would no longer count them as the reader's own ("Private") pages. Reading in the backend
# itself keeps the precondition of the old defect.
$node->append_conf('postgresql.conf', "io_method = 'sync'") if $node->pg_version >= 18;
$node->start;
$node->safe_psql('postgres', q{
    CREATE EXTENSION pg_poolguard;
    CREATE ROLE app LOGIN;
    CREATE TABLE shared_read AS SELECT g, repeat('x', 150) AS pad FROM generate_series(1, 600000) g;
    GRANT SELECT ON shared_read TO app;
    CHECKPOINT;
});
my $table_bytes = $node->safe_psql('postgres', "SELECT pg_relation_size('shared_read')");
cmp_ok($table_bytes, '>', 100_000_000, 'the table is over 100 MB');
cmp_ok($table_bytes, '<', 128 * 1024 * 1024, 'and under a quarter of shared_buffers');
# Empty shared buffers: the reader below is the only process that maps the table's pages.
$node->restart;

# What the kernel says of a process, in bytes (smaps_rollup, read here independently of the
# extension, which reads /proc/<pid>/status).
sub rollup
{
    my ($pid, @fields) = @_;
    my $text = slurp_file("/proc/$pid/smaps_rollup");
    my $sum = 0;
    for my $f (@fields)
    {
        $text =~ /^$f:\s+(\d+) kB/m or die "no $f in /proc/$pid/smaps_rollup";
        $sum += $1 * 1024;
    }
    return $sum;
}
my $postmaster = (split /\n/, slurp_file($node->data_dir . '/postmaster.pid'))[0];
# The kernel's anonymous figure of a backend: its anonymous memory (resident and swapped) less
# the postmaster's, which every backend starts with copy-on-write and does not free by ending.
sub kernel_anonymous
{
    my ($pid) = @_;
    return rollup($pid, 'Anonymous', 'Swap') - rollup($postmaster, 'Anonymous', 'Swap');
}
# Anonymous memory of every server process (the postmaster and its children), bytes.
sub server_anonymous
{
    my $sum = rollup($postmaster, 'Anonymous', 'Swap');
    for my $stat (glob '/proc/[0-9]*/stat')
    {
        my $line = eval { slurp_file($stat) } or next;
        my ($pid, $ppid) = $line =~ /^(\d+) \(.*\) \S+ (\d+)/ or next;
        next unless $ppid == $postmaster;
        $sum += eval { rollup($pid, 'Anonymous', 'Swap') } // 0;
    }
    return $sum;
}
# The figure read now (poolguard.sessions serves the worker's sample of it, issue 22).
sub shown
{
    my ($pid) = @_;
    return $node->safe_psql('postgres', "SELECT poolguard.session_memory($pid)");
}
sub within
{
    my ($value, $expected, $fraction, $name) = @_;
    my $ok = abs($value - $expected) <= $fraction * $expected;
    ok($ok, $name) or diag("shown $value, kernel $expected");
}

# A plain role's session that reads the whole table once into shared buffers and sits idle.
my $reader = hold($node, 'user=app application_name=mem-reader');
# (no parallel workers: they would map part of the pages instead of the reader)
$reader->[0]->query_safe('SET max_parallel_workers_per_gather = 0; SELECT count(*) FROM shared_read');
# One that fills ~40 MB of temp buffers: memory of its own.
my $holder = hold($node, 'user=app application_name=mem-holder');
$holder->[0]->query_safe(q{SET temp_buffers = '64MB';
    CREATE TEMP TABLE t AS SELECT g, repeat('x', 500) AS pad FROM generate_series(1, 80000) g;
    SELECT count(*) FROM t});

# The precondition of the old defect: the kernel counts the buffers only the reader maps as its
# "Private" pages (the figure pg_poolguard used to show).
my $reader_private_pages = rollup($reader->[1], 'Private_Clean', 'Private_Dirty');
cmp_ok($reader_private_pages, '>', 80_000_000,
    'the kernel counts the shared buffers the reader alone maps as its Private pages');

my $reader_shown = shown($reader->[1]);
my $holder_shown = shown($holder->[1]);
note("reader: shown $reader_shown, kernel Anonymous+Swap " . rollup($reader->[1], 'Anonymous', 'Swap')
    . ", less the postmaster's " . kernel_anonymous($reader->[1]) . ", Private pages $reader_private_pages");
note("holder: shown $holder_shown, kernel Anonymous+Swap " . rollup($holder->[1], 'Anonymous', 'Swap')
    . ", less the postmaster's " . kernel_anonymous($holder->[1]));
within($reader_shown, kernel_anonymous($reader->[1]), 0.2,
    'shared-buffer reader: shown within 20 % of the kernel\'s anonymous figure');
cmp_ok($reader_shown, '<', 10_000_000, 'shared-buffer reader: none of the buffers it read counts');
within($holder_shown, kernel_anonymous($holder->[1]), 0.2,
    'temp-buffer holder: shown within 20 % of the kernel\'s anonymous figure');
within($holder_shown, rollup($holder->[1], 'Anonymous', 'Swap'), 0.2,
    'temp-buffer holder: and within 20 % of its whole Anonymous + Swap');
cmp_ok($holder_shown, '>', 30_000_000, 'temp-buffer holder: its temp buffers count');

my $clients_sql = "SELECT sum(bytes) FROM poolguard.memory WHERE figure = 'client_backends'";
# poolguard.memory sums the worker's samples: wait until both sessions were sampled since they
# filled their memory, and the view shows about the figure read now.
my $filled_at = $node->safe_psql('postgres', 'SELECT now()');
ok($node->poll_query_until('postgres', "SELECT count(*) = 2 FROM poolguard.sessions
        WHERE application_name LIKE 'mem-%' AND memory_sampled_at > '$filled_at'"),
    'the worker sampled both sessions again');
within($node->safe_psql('postgres', "SELECT private_memory FROM poolguard.sessions WHERE pid = $holder->[1]"),
    $holder_shown, 0.2, 'poolguard.sessions serves about the figure read now');
# (psql, not safe_psql: without the view, as before issue 27, the max_idle_memory checks still run)
my (undef, $clients_before) = $node->psql('postgres', $clients_sql);
my $server_before = server_anonymous();
my $scans_sql = 'SELECT scans FROM poolguard.stats';

# max_idle_memory: ends the holder, never the reader.
set_policy($node, q{(name, application_name, max_idle_memory) VALUES ('mem', 'mem-%', 20000000)});
ok(gone($node, $holder->[1]), 'max_idle_memory ends the session holding private memory');
is($node->safe_psql('postgres', "SELECT reason FROM poolguard.terminations WHERE pid = $holder->[1]"),
    'max_idle_memory', 'recorded as max_idle_memory');
within($node->safe_psql('postgres', "SELECT private_memory FROM poolguard.terminations WHERE pid = $holder->[1]"),
    $holder_shown, 0.2, 'the termination records the memory shown');
# Several more scans of the worker with the policy in force: the reader is judged each time.
my $scans = $node->safe_psql('postgres', $scans_sql);
ok($node->poll_query_until('postgres', "SELECT scans >= $scans + 3 FROM poolguard.stats"),
    'the worker scanned three more times');
ok(alive($node, $reader->[1]), 'max_idle_memory never ends the session that only read shared buffers');
is($node->safe_psql('postgres', "SELECT count(*) FROM poolguard.terminations WHERE pid = $reader->[1]"),
    '0', 'nor records an action against it');

# Ending the holder lowered the server's private memory by about what was shown for it: in the
# view, and in the kernel's own count over all server processes.
my $clients_after = $node->safe_psql('postgres', $clients_sql);
within($clients_before - $clients_after, $holder_shown, 0.2,
    'the clients\' private memory in poolguard.memory dropped by about what was shown');
within($server_before - server_anonymous(), $holder_shown, 0.2,
    'the kernel\'s anonymous memory of the server dropped by about what was shown');

# The memory picture: the segment is shared, client memory is summed by policy and state; the
# reader is idle under policy "mem".
my $picture = $node->safe_psql('postgres', q{
    SELECT (SELECT bytes FROM poolguard.memory WHERE figure = 'shared_memory_size') >= 512 * 1024 * 1024,
           (SELECT processes FROM poolguard.memory WHERE figure = 'client_backends' AND state = 'idle'
               AND policy = 'mem') >= 1,
           (SELECT bytes FROM poolguard.memory WHERE figure = 'idle_sessions') >= } . $reader_shown . q{,
           (SELECT processes FROM poolguard.memory WHERE figure = 'pg_poolguard') >= 1,
           (SELECT count(*) FROM poolguard.memory WHERE age < '1 minute') = (SELECT count(*) FROM poolguard.memory)});
is($picture, 't|t|t|t|t',
    'memory view: segment size, idle sessions, what ending them frees, our worker, ages');
# The worker samples the segment's residency every 10 s: the table read shows up in a sample.
ok($node->poll_query_until('postgres', "SELECT bytes >= $table_bytes AND age < '1 minute'
        FROM poolguard.memory WHERE figure = 'shared_memory_resident'"),
    'memory view: the shared buffers read are resident in the segment, sampled with their age');
my $metrics = $node->safe_psql('postgres', 'SELECT poolguard.metrics()');
like($metrics, qr/^$_ \d+$/m, "/metrics: $_")
    for ('poolguard_session_private_memory_bytes\{policy="mem",state="idle"\}',
         'poolguard_idle_sessions_private_memory_bytes', 'poolguard_shared_memory_size_bytes',
         'poolguard_shared_memory_resident_bytes', 'poolguard_own_processes_private_memory_bytes',
         'poolguard_other_processes_private_memory_bytes');

$holder->[0]->quit;
$reader->[0]->quit;
$node->stop;
done_testing();
