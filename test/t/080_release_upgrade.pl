# Upgrade path: 1.0 installed and in use (policies, termination history, invalidations), then
# ALTER EXTENSION pg_poolguard UPDATE, equals a fresh install of the current version: the same
# objects, signatures, privileges and comments (pg_dump --binary-upgrade dumps every extension
# member; the privilege manifest of sql/*privileges.sql), the policy table's data unchanged,
# and the policies, history and generations still in force.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../perl";
use PoolguardTest;
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

# The one version number (scripts/check_release.py keeps the rest in line with it).
open(my $mk, '<', 'Makefile') or die "Makefile: $!";
my ($extversion) = map { /^EXTVERSION\s*=\s*(\S+)/ ? $1 : () } <$mk>;
close($mk);
ok(defined $extversion, "Makefile EXTVERSION is $extversion");

my $node = poolguard_node('upgrade',
    q{poolguard.naptime = '200ms'},
    q{poolguard.idle_grace = '0'});
$node->start;

# ---- 1.0, as released, in use ----
$node->safe_psql('postgres', q{
    CREATE ROLE regress_capped LOGIN;
    CREATE ROLE regress_idler LOGIN;
    CREATE EXTENSION pg_poolguard VERSION '1.0';
    INSERT INTO poolguard.policy (name, priority, role_name, max_connections, comment)
        VALUES ('capped', 10, 'regress_capped', 0, 'nobody logs in as regress_capped');
    INSERT INTO poolguard.policy (name, role_name, idle_timeout, application_name)
        VALUES ('idlers', 'regress_idler', '1s', 'idler%');
    INSERT INTO poolguard.policy (name, enabled, client_addr, max_idle_memory, on_limit, dry_run)
        VALUES ('disabled', false, '10.0.0.0/8', 100000000, 'evict_idle', true);
});
is($node->safe_psql('postgres', q{SELECT extversion FROM pg_extension WHERE extname = 'pg_poolguard'}),
    '1.0', 'created at 1.0');
is($node->safe_psql('postgres', q{SELECT count(*) FROM pg_attribute
                                  WHERE attrelid = 'poolguard.sessions'::regclass AND attnum > 0}),
    '13', '1.0 sessions view has 13 columns');

# History: an idle session of regress_idler is ended by the 1.0 policy.
sub reap_one_idler
{
    my ($tag) = @_;
    my $idler = $node->background_psql('postgres', on_error_stop => 0,
        extra_params => [ '-d', $node->connstr('postgres') . " user=regress_idler application_name=idler_$tag" ]);
    my $pid = $idler->query_safe('SELECT pg_backend_pid()');
    ok($node->poll_query_until('postgres',
            "SELECT count(*) = 1 FROM poolguard.terminations WHERE pid = $pid AND policy = 'idlers'"),
        "$tag: idle session $pid ended by policy idlers");
    $idler->quit;
    return $pid;
}
my $old_pid = reap_one_idler('before');
# Invalidations: a committed one raises the generation.
$node->safe_psql('postgres', q{SELECT poolguard.invalidate('regress_scope', 'k1')});
my $generation = $node->safe_psql('postgres', q{SELECT poolguard.cache_generation('regress_scope', 'k1')});
ok($generation > 0, "generation $generation after an invalidation");

my $policy_dump_before = dump_policy_data('postgres');
like($policy_dump_before, qr/nobody logs in as regress_capped/, 'pg_dump has the policy rows');

# ---- the update ----
$node->safe_psql('postgres', 'ALTER EXTENSION pg_poolguard UPDATE');
is($node->safe_psql('postgres', q{SELECT extversion FROM pg_extension WHERE extname = 'pg_poolguard'}),
    $extversion, "updated to $extversion");

# ---- a fresh install of the current version, in another database ----
$node->safe_psql('postgres', 'CREATE DATABASE fresh');
$node->safe_psql('fresh', 'CREATE EXTENSION pg_poolguard');
is($node->safe_psql('fresh', q{SELECT extversion FROM pg_extension WHERE extname = 'pg_poolguard'}),
    $extversion, "fresh install is $extversion");

# Every member object with its definition, owner, ACL and comment.
my $schema_upgraded = dump_extension_schema('postgres');
my $schema_fresh = dump_extension_schema('fresh');
like($schema_fresh, qr/ALTER EXTENSION pg_poolguard ADD FUNCTION poolguard\.session_info/,
    'the binary-upgrade dump lists the members');
same_text($schema_upgraded, $schema_fresh,
    'pg_dump --schema-only --binary-upgrade: 1.0 + UPDATE equals a fresh install');

# The privilege manifest (the queries of sql/*privileges.sql).
my $manifest = privilege_manifest();
my $manifest_upgraded = $node->safe_psql('postgres', $manifest);
is($manifest_upgraded, $node->safe_psql('fresh', $manifest), 'privilege manifest equal');
like($manifest_upgraded, qr/view\|poolguard\.policy_status\|pg_monitor SELECT/,
    'manifest has the 1.1 privileges');

# Members, identities and comments straight from the catalog.
my $members = q{
    SELECT pg_describe_object(d.classid, d.objid, 0) AS object,
           coalesce(obj_description(d.objid, c.relname), '') AS comment
      FROM pg_depend d
      JOIN pg_extension e ON e.oid = d.refobjid
      JOIN pg_class c ON c.oid = d.classid
     WHERE d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e' AND e.extname = 'pg_poolguard'
     ORDER BY 1};
is($node->safe_psql('postgres', $members), $node->safe_psql('fresh', $members),
    'member objects and comments equal');
is($node->safe_psql('postgres', q{SELECT pg_get_function_result('poolguard.session_info()'::regprocedure)}),
    $node->safe_psql('fresh', q{SELECT pg_get_function_result('poolguard.session_info()'::regprocedure)}),
    'session_info() signature equal');

# The policies as pg_dump sees them: unchanged by the update, but for 1.2's new last columns
# idle_memory_budget, min_idle and login_wait, NULL in every row that existed before.
(my $policy_dump_expected = $policy_dump_before) =~ s/, comment\) FROM stdin;/, comment, idle_memory_budget, min_idle, login_wait) FROM stdin;/;
$policy_dump_expected =~ s/^(?!COPY |\\\.)(\S[^\n]*\t[^\n]*)$/$1\t\\N\t\\N\t\\N/mg;
is(dump_policy_data('postgres'), $policy_dump_expected, 'pg_dump of the policy table unchanged (1.2 adds NULL columns)');
# The catalog as pg_dump sees them: the config-table registration (extconfig/extcondition) too.
is($node->safe_psql('postgres', q{SELECT array_length(extconfig, 1), extcondition FROM pg_extension WHERE extname = 'pg_poolguard'}),
    $node->safe_psql('fresh', q{SELECT array_length(extconfig, 1), extcondition FROM pg_extension WHERE extname = 'pg_poolguard'}),
    'policy table registered for pg_dump in both');

# ---- still in force after the update ----
is($node->safe_psql('postgres', q{SELECT count(*) FROM poolguard.terminations WHERE pid = } . $old_pid),
    '1', 'termination history survives the update');
is($node->safe_psql('postgres', q{SELECT poolguard.cache_generation('regress_scope', 'k1')}),
    $generation, 'generation survives the update');
$node->connect_fails($node->connstr('postgres') . ' user=regress_capped',
    'cap of 1.0 policy still refuses after the update',
    expected_stderr => qr/too many connections for poolguard policy "capped"/);
reap_one_idler('after');
is($node->safe_psql('postgres', q{SELECT count(*) FROM poolguard.sessions WHERE exempt_reason = 'superuser'}) > 0,
    1, 'sessions has the 1.1 column exempt_reason');

$node->stop;
done_testing();

# ---------------------------------------------------------------------------------------------

# is() for long texts: on a difference, diag shows a unified diff (the dumps are kept in tmp_check).
sub same_text
{
    my ($got, $expected, $name) = @_;
    return pass($name) if $got eq $expected;
    (my $base = $name) =~ s/\W+/_/g;
    my $got_file = "$PostgreSQL::Test::Utils::tmp_check/${base}_upgraded.txt";
    my $expected_file = "$PostgreSQL::Test::Utils::tmp_check/${base}_fresh.txt";
    PostgreSQL::Test::Utils::append_to_file($got_file, "$got\n");
    PostgreSQL::Test::Utils::append_to_file($expected_file, "$expected\n");
    my $diff;
    IPC::Run::run([ 'diff', '-u', $expected_file, $got_file ], '>', \$diff);
    fail($name);
    diag($diff);
}

sub pg_dump_out
{
    my @args = @_;
    my ($stdout, $stderr);
    my $ok = IPC::Run::run([ 'pg_dump', '-h', $node->host, '-p', $node->port, @args ],
        '>', \$stdout, '2>', \$stderr);
    die "pg_dump @args failed: $stderr" unless $ok;
    return $stdout;
}

# The extension's objects as pg_upgrade would recreate them, minus what legitimately differs
# between two databases: OIDs (binary_upgrade_* calls, the TOAST table), frozen xids and pg_dump's per-run
# \restrict key.
sub dump_extension_schema
{
    my ($db) = @_;
    my $out = pg_dump_out('--schema-only', '--binary-upgrade', $db);
    return join "\n", grep {
        !/^\s*$/ && !/^--/ && !/binary_upgrade_/ && !/relfrozenxid/ && !/^WHERE oid = '\d+';$/ && !/^\\(un)?restrict\b/
    } split /\n/, $out;
}

sub dump_policy_data
{
    my ($db) = @_;
    my $out = pg_dump_out('--data-only', '--table=poolguard.policy', $db);
    return join "\n", grep { !/^--/ && !/^\\(un)?restrict\b/ } split /\n/, $out;
}

# The two manifest queries of the privileges regression test, run as one.
sub privilege_manifest
{
    my ($file) = glob('test/sql/*privileges.sql');
    open(my $fh, '<', $file) or die "$file: $!";
    local $/;
    my $sql = <$fh>;
    close($fh);
    my ($view) = $sql =~ /(CREATE TEMP VIEW poolguard_objects AS.*?;)/s
        or die "$file: no poolguard_objects view";
    my ($granted) = $sql =~ /(SELECT o\.kind, o\.object,.*?;)/s
        or die "$file: no manifest query";
    return "$view\nSELECT kind, object FROM poolguard_objects WHERE acl IS NULL ORDER BY 1, 2;\n$granted";
}
