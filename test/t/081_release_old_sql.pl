# A server restarted with the new library while the SQL objects are still at 1.0 (the state
# between a package upgrade and ALTER EXTENSION UPDATE): the library keeps serving 1.0's
# functions through their old entry points, the worker says once that an update is due, a row
# of the wrong shape is refused with the ALTER EXTENSION hint; then the update completes it.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../perl";
use PoolguardTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = poolguard_node('old_sql',
    q{poolguard.naptime = '200ms'},
    q{poolguard.idle_grace = '0'});
$node->start;

$node->safe_psql('postgres', q{
    CREATE ROLE regress_capped LOGIN;
    CREATE ROLE regress_idler LOGIN;
    CREATE EXTENSION pg_poolguard VERSION '1.0';
    INSERT INTO poolguard.policy (name, role_name, max_connections) VALUES ('capped', 'regress_capped', 0);
    INSERT INTO poolguard.policy (name, role_name, idle_timeout) VALUES ('idlers', 'regress_idler', '1s');
});

# ---- restart: new library, 1.0 SQL ----
my $offset = -s $node->logfile;
$node->restart;
ok($node->wait_for_log(
        qr/WARNING:  (?:[0-9A-Z]{5}: )?pg_poolguard SQL objects in database "postgres" are at version 1\.0 but the library is at version \d+\.\d+\n.*DETAIL:  The library keeps serving the installed SQL objects.*\n.*HINT:  Run ALTER EXTENSION pg_poolguard UPDATE in database "postgres"\./,
        $offset),
    'worker warns that the SQL is at 1.0, with the ALTER EXTENSION hint');

is($node->safe_psql('postgres', q{SELECT extversion FROM pg_extension WHERE extname = 'pg_poolguard'}),
    '1.0', 'SQL still at 1.0 after the restart');
is($node->safe_psql('postgres', q{SELECT count(*) > 0 FROM poolguard.sessions WHERE database_name = 'postgres'}),
    't', '1.0 sessions view works through the old entry point');
is($node->safe_psql('postgres', q{SELECT count(*) FROM pg_attribute
                                  WHERE attrelid = 'poolguard.sessions'::regclass AND attnum > 0}),
    '13', 'with its 13 columns');
is($node->safe_psql('postgres', q{SELECT policy FROM poolguard.policy_status ORDER BY 1}),
    "capped\nidlers", '1.0 policy_status works');
like($node->safe_psql('postgres', q{SELECT poolguard.metrics()}), qr/poolguard_/, '1.0 metrics() works');
is($node->safe_psql('postgres', q{SELECT scans >= 0 FROM poolguard.stats}), 't', '1.0 stats view works');

# The policies of the 1.0 table are enforced by the new library.
$node->connect_fails($node->connstr('postgres') . ' user=regress_capped',
    'cap enforced with 1.0 SQL',
    expected_stderr => qr/too many connections for poolguard policy "capped"/);
my $idler = $node->background_psql('postgres', on_error_stop => 0,
    extra_params => [ '-d', $node->connstr('postgres') . ' user=regress_idler' ]);
my $pid = $idler->query_safe('SELECT pg_backend_pid()');
ok($node->poll_query_until('postgres',
        "SELECT count(*) = 1 FROM poolguard.terminations WHERE pid = $pid AND policy = 'idlers'"),
    'idle timeout enforced with 1.0 SQL, recorded in the 1.0 terminations view');
$idler->quit;

# An entry point called with a row type it was not released with refuses clearly.
$node->safe_psql('postgres', q{
    CREATE FUNCTION public.sessions_wrong_shape(OUT pid integer, OUT role_name name)
        RETURNS SETOF record LANGUAGE c AS '$libdir/pg_poolguard', 'poolguard_sessions'});
my ($ret, $out, $err) = $node->psql('postgres', 'SELECT * FROM public.sessions_wrong_shape()');
isnt($ret, 0, 'wrong row shape refused');
like($err, qr/ERROR:  expected 13 output columns, not 2/, 'error names the column counts');
like($err, qr/HINT:  Run ALTER EXTENSION pg_poolguard UPDATE so that the SQL objects match the library\./,
    'hint says ALTER EXTENSION pg_poolguard UPDATE');
$node->safe_psql('postgres', 'DROP FUNCTION public.sessions_wrong_shape()');

# ---- the update, then another restart: current, no warning ----
$node->safe_psql('postgres', 'ALTER EXTENSION pg_poolguard UPDATE');
is($node->safe_psql('postgres', q{SELECT count(*) FROM pg_attribute
                                  WHERE attrelid = 'poolguard.sessions'::regclass AND attnum > 0}),
    '15', 'after the update sessions has 15 columns (1.2: memory_sampled_at)');
is($node->safe_psql('postgres', q{SELECT count(*) >= 0 FROM poolguard.publisher_pids()}), 't',
    'publisher_pids() exists after the update');

$offset = -s $node->logfile;
$node->restart;
# Two worker cycles after the restart (scans counts them): the version check ran in the first.
ok($node->poll_query_until('postgres', 'SELECT scans >= 2 FROM poolguard.stats'), 'worker cycles after restart');
my $log = slurp_file($node->logfile, $offset);
unlike($log, qr/pg_poolguard SQL objects in database/, 'no version warning once updated');
$node->connect_fails($node->connstr('postgres') . ' user=regress_capped',
    'cap still enforced after update and restart',
    expected_stderr => qr/too many connections for poolguard policy "capped"/);

$node->stop;
done_testing();
