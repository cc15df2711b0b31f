# pg_dump / pg_restore of poolguard.database: the dump holds CREATE EXTENSION and the policy
# rows (pg_extension_config_dump), and the restored cluster enforces the same policies.  Tables
# tracked with poolguard.track_table() (plain and partitioned) are tracked after the restore.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../perl";
use IPC::Run;
use PoolguardTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my @conf = ("poolguard.naptime = '200ms'", "poolguard.idle_grace = '0'");
my $source = poolguard_node('dump_source', @conf);
$source->start;

my $roles = q{
    CREATE ROLE regress_capped LOGIN;
    CREATE ROLE regress_idler LOGIN;
};
$source->safe_psql('postgres', $roles . q{
    CREATE EXTENSION pg_poolguard;
    INSERT INTO poolguard.policy (name, priority, role_name, max_connections, comment)
        VALUES ('capped', 10, 'regress_capped', 0, 'nobody logs in as regress_capped');
    INSERT INTO poolguard.policy (name, role_name, idle_timeout)
        VALUES ('idlers', 'regress_idler', '1s');
    INSERT INTO poolguard.policy (name, enabled, application_name, max_connections, on_limit)
        VALUES ('off', false, 'batch%', 5, 'evict_idle');
    -- An application table with an invalidation trigger: restored as well.
    CREATE TABLE public.items (id int PRIMARY KEY, name text);
    CREATE TRIGGER items_invalidate AFTER INSERT OR UPDATE OR DELETE ON public.items
        FOR EACH ROW EXECUTE FUNCTION poolguard.invalidation_trigger('items', 'id');
    INSERT INTO public.items VALUES (1, 'one');
    -- Tracked tables: their triggers are dumped with them (partitions inherit the row trigger).
    CREATE TABLE public.schools (id int PRIMARY KEY, name text);
    SELECT poolguard.track_table('public.schools', scope => 'school');
    CREATE TABLE public.events (id int, day date, PRIMARY KEY (id, day)) PARTITION BY RANGE (day);
    CREATE TABLE public.events_2026 PARTITION OF public.events FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
    SELECT poolguard.track_table('public.events');
});
my $tracked = q{SELECT table_name, scope, table_scope, key_columns, partitioned
                FROM poolguard.tracked_tables ORDER BY table_name::text};
my $tracked_before = $source->safe_psql('postgres', $tracked);
my $policies = q{SELECT name, priority, enabled, role_name, idle_timeout, max_connections, on_limit, comment
                 FROM poolguard.policy ORDER BY name};
my $policies_before = $source->safe_psql('postgres', $policies);

my $dump = "$PostgreSQL::Test::Utils::tmp_check/poolguard.dump";
my $dump_err;
IPC::Run::run([ 'pg_dump', '-Fc', '-h', $source->host, '-p', $source->port, '-f', $dump, 'postgres' ],
    '2>', \$dump_err) or die "pg_dump failed: $dump_err";
ok(-s $dump, 'pg_dump -Fc of poolguard.database');
$source->stop;

# ---- a new cluster, the roles, pg_restore ----
my $target = poolguard_node('dump_target', @conf);
$target->start;
$target->safe_psql('postgres', $roles);
my ($stdout, $stderr);
my $ok = IPC::Run::run([ 'pg_restore', '--exit-on-error', '-h', $target->host, '-p', $target->port,
        '-d', 'postgres', $dump ], '>', \$stdout, '2>', \$stderr);
ok($ok, 'pg_restore succeeds') or diag($stderr);

is($target->safe_psql('postgres', $policies), $policies_before, 'policies restored');
is($target->safe_psql('postgres', q{SELECT installed_version = default_version FROM pg_available_extensions
                                     WHERE name = 'pg_poolguard'}),
    't', 'restored at the current version');
ok($target->poll_query_until('postgres', q{SELECT count(*) = 2 FROM poolguard.policy_status}),
    'the worker loaded the restored policies (enabled ones in policy_status)');

# Enforced.
$target->connect_fails($target->connstr('postgres') . ' user=regress_capped',
    'restored cap refuses',
    expected_stderr => qr/too many connections for poolguard policy "capped"/);
my $idler = $target->background_psql('postgres', on_error_stop => 0,
    extra_params => [ '-d', $target->connstr('postgres') . ' user=regress_idler' ]);
my $pid = $idler->query_safe('SELECT pg_backend_pid()');
ok($target->poll_query_until('postgres',
        "SELECT count(*) = 1 FROM poolguard.terminations WHERE pid = $pid AND policy = 'idlers'"),
    'restored idle timeout ends an idle session');
$idler->quit;

# The restored trigger invalidates.
my $before = $target->safe_psql('postgres', q{SELECT poolguard.cache_generation('items', '1')});
$target->safe_psql('postgres', q{UPDATE public.items SET name = 'uno' WHERE id = 1});
ok($target->safe_psql('postgres', q{SELECT poolguard.cache_generation('items', '1')}) > $before,
    'restored invalidation trigger raises the generation');

# Tracked tables are tracked: the same view, and writes (to a partition, too) publish.
is($target->safe_psql('postgres', $tracked), $tracked_before, 'tracked_tables restored');
my $gens = q{SELECT poolguard.cache_generation('school', '7') || ' ' || poolguard.cache_generation('table:school')
             || ' ' || poolguard.cache_generation('events', '["1","2026-05-01"]')
             || ' ' || poolguard.cache_generation('table:events')};
my @g_before = split / /, $target->safe_psql('postgres', $gens);
$target->safe_psql('postgres', q{
    INSERT INTO public.schools VALUES (7, 'North');
    INSERT INTO public.events_2026 VALUES (1, '2026-05-01');
});
my @g_after = split / /, $target->safe_psql('postgres', $gens);
ok($g_after[$_] > $g_before[$_], "restored tracking publishes (" . qw(row table partition_row partition_table)[$_] . ")")
    for 0 .. 3;

# The restored policy table keeps its validation: a bad row is refused.
my ($ret, $out, $err) = $target->psql('postgres',
    q{INSERT INTO poolguard.policy (name, max_connections) VALUES ('bad', -1)});
like($err, qr/max_connections of policy "bad" must not be negative/, 'validation trigger restored');

$target->stop;
done_testing();
