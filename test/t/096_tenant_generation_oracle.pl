# The generation table is no cross-database oracle (issue 19, finding 8).  Before, the slot of
# (database, scope, key) was a public function of public values: a role in database B computed
# offline keys of its own that share the slot of a guessed key of database A, then saw in
# cache_generation() exactly when A's key changed.  This test does that search with the old
# hash (FNV-1a + splitmix64, reimplemented below) and shows that the keys it finds no longer
# move with A's: the slot hash is keyed by a per-server secret.
use strict;
use warnings;
no warnings 'portable';
use FindBin;
use lib "$FindBin::RealBin/../perl";
use PoolguardTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $slots = 1024;    # the smallest table: the offline search is quick
my $node = poolguard_node('oracle', "poolguard.invalidation_slots = $slots");
$node->start;
for my $db (qw(victim attacker))
{
    $node->safe_psql('postgres', "CREATE DATABASE $db");
    $node->safe_psql($db, 'CREATE EXTENSION pg_poolguard');
}
# Public: any role can read pg_database.
my %oid = map { $_ => $node->safe_psql('attacker', "SELECT oid FROM pg_database WHERE datname = '$_'") }
    qw(victim attacker);

# The old, unkeyed hash of src/core/invalidation/invalidation_key.cpp, in 64-bit arithmetic.
sub mul64 { use integer; return $_[0] * $_[1]; }
sub mix_bytes
{
    my ($h, $bytes) = @_;
    $h = mul64($h ^ $_, 1099511628211) for unpack('C*', $bytes);
    return $h;
}
sub mix_u64 { return mix_bytes($_[0], pack('Q<', $_[1])); }
sub avalanche
{
    my $z = shift;
    $z = mul64($z ^ ($z >> 30), 0xbf58476d1ce4e5b9);
    $z = mul64($z ^ ($z >> 27), 0x94d049bb133111eb);
    return $z ^ ($z >> 31);
}
sub old_slot
{
    my ($db, $scope, $key) = @_;
    my $h = mix_u64(14695981039346656037, $db);
    $h = mix_bytes(mix_u64($h, length $scope), $scope);
    $h = defined $key ? mix_bytes(mix_u64($h, length $key), $key) : mix_u64($h, 0xFFFFFFFFFFFFFFFF);
    return avalanche($h) & ($slots - 1);
}

# The offline search: for five guessed keys of the victim, a key of the attacker's own in the
# same slot (and not in the slot of the attacker's scope-wide entry, which it also reads).
my @pairs;
my $attacker_scope_slot = old_slot($oid{attacker}, 'account', undef);
for my $t (1 .. 5)
{
    my $want = old_slot($oid{victim}, 'account', "secret-$t");
    next if $want == $attacker_scope_slot;
    for my $i (0 .. 100 * $slots)
    {
        if (old_slot($oid{attacker}, 'account', "probe-$t-$i") == $want)
        {
            push @pairs, [ "secret-$t", "probe-$t-$i" ];
            last;
        }
    }
}
cmp_ok(scalar(@pairs), '>=', 4, 'the offline search finds colliding keys under the old hash');

# The attacker reads its keys' generations, the victim changes its keys, the attacker reads again.
my $probes = join(', ', map { "'$_->[1]'" } @pairs);
my $gen_sql = "SELECT string_agg(poolguard.cache_generation('account', k)::text, ',' ORDER BY k)
    FROM unnest(ARRAY[$probes]) k";
my @before = split /,/, $node->safe_psql('attacker', $gen_sql);
$node->safe_psql('victim', "SELECT poolguard.invalidate('account', '$_->[0]')") for @pairs;
my @after = split /,/, $node->safe_psql('attacker', $gen_sql);
my $moved = grep { $after[$_] != $before[$_] } 0 .. $#before;
# By chance a key shares the victim's slot with probability 1/1024: allow one.
cmp_ok($moved, '<=', 1, "the attacker's keys do not move with the victim's ($moved of " . scalar(@pairs) . ' moved)');

# The victim's own reads are unaffected.
ok($node->safe_psql('victim', "SELECT poolguard.cache_generation('account', 'secret-1')
    > poolguard.cache_generation('account', 'never-invalidated')"), "the victim's key moved");

$node->stop;
done_testing();
