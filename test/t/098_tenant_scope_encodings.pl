# Scope names are valid UTF-8 wherever they are shown, and the per-scope stats rows are bounded
# per database (issue 19, finding 7).  Before, a 0xff scope from a LATIN1 or SQL_ASCII database
# went into /metrics (declared UTF-8) and poolguard.metrics() as a raw byte: the scrape was not
# UTF-8, and metrics() failed for a client in another encoding; and one database's scopes could
# take all 256 stats rows.
use strict;
use warnings;
use Encode ();
use FindBin;
use lib "$FindBin::RealBin/../perl";
use PoolguardTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $port = PostgreSQL::Test::Cluster::get_free_port();
my $node = poolguard_node('encodings', "poolguard.metrics_listen = '127.0.0.1:$port'", 'wal_level = logical',
    'max_replication_slots = 4', 'max_wal_senders = 4');
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION pg_poolguard');
$node->safe_psql('postgres', 'CREATE DATABASE latin1 ENCODING LATIN1 LOCALE "C" TEMPLATE template0');
$node->safe_psql('postgres', 'CREATE DATABASE sqlascii ENCODING SQL_ASCII LOCALE "C" TEMPLATE template0');
for my $db (qw(latin1 sqlascii))
{
    $node->safe_psql($db, 'CREATE EXTENSION pg_poolguard');
}
$node->safe_psql('sqlascii', q{SELECT pg_create_logical_replication_slot('cdc', 'test_decoding')});

# 0xff: the character U+00FF in LATIN1, a bare byte in SQL_ASCII.
$node->safe_psql('latin1', q{SELECT poolguard.invalidate('l' || chr(255), 'k')});
$node->safe_psql('sqlascii', q{SELECT poolguard.invalidate(E's\\xff', E'k\\xff')});

sub valid_utf8
{
    my $bytes = shift;
    return eval { Encode::decode('UTF-8', $bytes, Encode::FB_CROAK); 1 } ? 1 : 0;
}

# /metrics: valid UTF-8, the LATIN1 scope as its character, the SQL_ASCII byte as U+00FF too.
my $scrape = http_get($port, '/metrics');
like($scrape, qr{^HTTP/1\.1 200}, '/metrics answers');
ok(valid_utf8($scrape), 'the scrape is valid UTF-8');
like($scrape, qr/poolguard_invalidations_total\{scope="l\xc3\xbf"\} 1/, 'the LATIN1 scope is converted');
like($scrape, qr/poolguard_invalidations_total\{scope="s\xc3\xbf"\} 1/, 'the SQL_ASCII byte is shown as U+00FF');

# metrics() from a UTF8 database, for a client in LATIN1 (it converts, so it must be valid UTF-8).
my ($rc, $out, $err) = $node->psql('postgres', q{SET client_encoding = 'LATIN1'; SELECT poolguard.metrics()});
is($rc, 0, 'metrics() works for a LATIN1 client') or diag($err);
($rc, $out, $err) = $node->psql('postgres', q{SELECT strpos(poolguard.metrics(), 'scope="s' || chr(255) || '"') > 0});
is($out, 't', 'metrics() in a UTF8 database shows the scope as U+00FF') or diag($err);
# From the LATIN1 database itself: escaped (the label value is the text \u00ff), valid in any encoding.
($rc, $out, $err) = $node->psql('latin1', q{SELECT strpos(poolguard.metrics(), 'scope="l' || repeat(chr(92), 2) || 'u00ff"') > 0});
is($out, 't', 'metrics() in a LATIN1 database escapes non-ASCII characters') or diag($err);

# The logical message of the SQL_ASCII database: pure ASCII JSON with \u00ff.
my $changes = $node->safe_psql('sqlascii', q{SELECT data FROM pg_logical_slot_get_changes('cdc', NULL, NULL)});
my ($message) = $changes =~ /prefix: pg_poolguard, sz: \d+ content:(.*)/;
like($message, qr/"scope":"s\\u00ff","key":"k\\u00ff"/, 'the logical message escapes the byte');
unlike($message, qr/[\x80-\xff]/, 'the logical message is ASCII');

# Per-database bound of the stats rows: one database's 300 scopes leave rows for another.
$node->safe_psql('postgres', 'CREATE DATABASE filler');
$node->safe_psql('postgres', 'CREATE DATABASE later');
for my $db (qw(filler later))
{
    $node->safe_psql($db, 'CREATE EXTENSION pg_poolguard');
}
$node->safe_psql('filler', q{SELECT poolguard.invalidate('scope_' || g) FROM generate_series(1, 300) g});
cmp_ok($node->safe_psql('filler', 'SELECT count(*) FROM poolguard.invalidation_stats WHERE scope IS NOT NULL'),
    '<=', 64, 'one database gets at most 64 rows of its own');
$node->safe_psql('later', q{SELECT poolguard.invalidate('mine', '1')});
is($node->safe_psql('later', q{SELECT scope || ':' || invalidations FROM poolguard.invalidation_stats WHERE scope IS NOT NULL}),
    'mine:1', 'a later database still gets its own row');

$node->stop;
done_testing();
