# Change-data-capture messages a plain role cannot forge (issue 19, finding 4).  Any role may call
# pg_logical_emit_message() with the prefix pg_poolguard; before, such a message was
# indistinguishable from the extension's own, and one forged huge generation made consumers that
# deduplicate by generation ignore every genuine message after it.  Now every genuine message
# carries "mac": HMAC-SHA256 under the database's key (poolguard.cdc_key(), granted to the
# consumer's role only), over every byte before ,"mac":" — the documented consumer check below
# accepts the genuine messages and rejects the forged ones, and a key of another database
# verifies nothing here.
use strict;
use warnings;
use Digest::SHA qw(hmac_sha256_hex);
use FindBin;
use lib "$FindBin::RealBin/../perl";
use PoolguardTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = poolguard_node('cdc_auth', 'wal_level = logical', 'max_replication_slots = 4', 'max_wal_senders = 4');
$node->start;
$node->safe_psql('postgres', "CREATE DATABASE tenant");
for my $db (qw(postgres tenant))
{
    $node->safe_psql($db, q{
        CREATE EXTENSION pg_poolguard;
        CREATE ROLE plain_role_}.$db.q{ LOGIN;
        GRANT EXECUTE ON FUNCTION poolguard.invalidate(text, text) TO plain_role_}.$db.q{;
    });
}
$node->safe_psql('postgres', q{
    CREATE ROLE cdc_consumer LOGIN REPLICATION;
    GRANT EXECUTE ON FUNCTION poolguard.cdc_key() TO cdc_consumer;
    SELECT pg_create_logical_replication_slot('cdc', 'test_decoding');
});

# The key: only for whom it was granted.
my ($rc, $out, $err) = $node->psql('postgres', 'SELECT poolguard.cdc_key()', extra_params => [ '-U', 'plain_role_postgres' ]);
like($err, qr/permission denied for function cdc_key/, 'a plain role cannot read the key');
my $key_hex = $node->safe_psql('postgres', q{SET ROLE cdc_consumer; SELECT encode(poolguard.cdc_key(), 'hex')});
like($key_hex, qr/^[0-9a-f]{64}$/, 'the consumer reads a 32-byte key');
my $key = pack('H*', $key_hex);
my $other_key = pack('H*', $node->safe_psql('tenant', q{SELECT encode(poolguard.cdc_key(), 'hex')}));
isnt(unpack('H*', $other_key), $key_hex, 'each database has its own key');

# A genuine message, then the forgeries of the issue by a plain role.
$node->safe_psql('postgres', "SELECT poolguard.invalidate('mentor', '42')", extra_params => [ '-U', 'plain_role_postgres' ]);
my $forged = '{"format":1,"items":[{"scope":"mentor","key":"42","generation":9007199254740991}]}';
$node->safe_psql('postgres', "SELECT pg_logical_emit_message(false, 'pg_poolguard', '$forged')",
    extra_params => [ '-U', 'plain_role_postgres' ]);
# With a made-up tag, and with a tag made with another database's key.
my $body = '{"format":1,"items":[{"scope":"mentor","key":"42","generation":9007199254740991}]';
my $fake = $body . ',"mac":"' . ('0' x 64) . '"}';
my $cross = $body . ',"mac":"' . hmac_sha256_hex($body, $other_key) . '"}';
for my $m ($fake, $cross)
{
    $node->safe_psql('postgres', "SELECT pg_logical_emit_message(false, 'pg_poolguard', '$m')",
        extra_params => [ '-U', 'plain_role_postgres' ]);
}
$node->safe_psql('postgres', "SELECT poolguard.invalidate('mentor', '43')", extra_params => [ '-U', 'plain_role_postgres' ]);

# The documented consumer check: the message ends with ,"mac":"<64 hex>"} and the tag is the
# HMAC-SHA256 of every byte before ,"mac":" under the key.
sub verified
{
    my ($content, $k) = @_;
    return 0 unless $content =~ /\A(.*),"mac":"([0-9a-f]{64})"\}\z/s;
    return hmac_sha256_hex($1, $k) eq $2;
}

# The extension writes its messages after each commit record and the WAL writer flushes them
# (poolguard.wal_flush is off), so wait until all five are decodable before consuming them.
ok($node->poll_query_until('postgres', q{SELECT count(*) = 5 FROM pg_logical_slot_peek_changes('cdc', NULL, NULL,
        'include-xids', '0') WHERE data LIKE '%prefix: pg_poolguard%'}), 'all five messages are decodable');
my @messages = map { /content:(.*)$/ ? $1 : () } grep { /prefix: pg_poolguard/ }
    split /\n/, $node->safe_psql('postgres',
        "SELECT data FROM pg_logical_slot_get_changes('cdc', NULL, NULL, 'include-xids', '0')");
is(scalar(@messages), 5, 'the slot has the two genuine messages and the three forged ones');
my @accepted = grep { verified($_, $key) } @messages;
is(scalar(@accepted), 2, 'the consumer check accepts exactly the two genuine messages');
like($accepted[0], qr/"key":"42"/, 'the first genuine message');
like($accepted[1], qr/"key":"43"/, 'the second genuine message, after the forged huge generation');
ok(!verified($forged, $key) && !verified($fake, $key) && !verified($cross, $key), 'every forgery is rejected');
is(scalar(grep { verified($_, $other_key) } @accepted), 0, "this database's messages do not verify under another database's key");

$node->stop;
done_testing();
