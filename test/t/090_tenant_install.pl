# Issue 19, finding 1: schema adoption.  A role with CREATE on a database (its owner) creates
# schema "poolguard" before the DBA's CREATE EXTENSION; the extension would install into the
# schema that role owns, and the role could later rename it, create a schema "poolguard" of its
# own and plant poolguard.metrics(), which a superuser then runs.  CREATE EXTENSION (and the
# 1.1 -> 1.2 update) now refuse a schema not owned by a superuser, or one others may create in,
# naming the owner and what to do; a schema the extension created is the superuser's, so the
# database owner can neither rename nor fill it.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../perl";
use PoolguardTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = poolguard_node('tenant_install');
$node->start;
$node->safe_psql('postgres', q{
    CREATE ROLE owner LOGIN;
    CREATE DATABASE adopted OWNER owner;
    CREATE DATABASE fresh OWNER owner;
    CREATE DATABASE upgraded OWNER owner;
    CREATE DATABASE shared_create OWNER owner;
});
sub as_owner { return $node->psql($_[0], $_[1], extra_params => [ '-U', 'owner' ]); }

# The attack: the owner's schema first, the DBA's CREATE EXTENSION, then rename and plant.
my ($ret, $out, $err) = as_owner('adopted', 'CREATE SCHEMA poolguard');
is($ret, 0, 'the database owner creates schema poolguard first');
($ret, $out, $err) = $node->psql('adopted', 'CREATE EXTENSION pg_poolguard');
isnt($ret, 0, 'CREATE EXTENSION refuses the schema the database owner made');
like($err, qr/ERROR:\s+schema "poolguard" is owned by role "owner", not by a superuser/, 'the error names the owner');
like($err, qr/HINT:\s+Check what schema poolguard contains, then drop it or make a superuser its owner/,
    'the hint says what to do');
# Had it installed, the owner would now do this; nothing of the extension is there to take.
as_owner('adopted', q{
    ALTER SCHEMA poolguard RENAME TO taken;
    CREATE SCHEMA poolguard;
    CREATE FUNCTION poolguard.metrics() RETURNS text LANGUAGE sql
        AS $$ SELECT 'pwned as ' || current_user || ' super=' || (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) $$;
});
my $installed = $node->safe_psql('adopted', q{SELECT count(*) FROM pg_extension WHERE extname = 'pg_poolguard'});
is($installed, '0', 'the extension is not installed into the adopted schema');
# (Before the fix it was, and a superuser's poolguard.metrics() ran the owner's function.)
my $answer = $installed ? $node->safe_psql('adopted', 'SELECT poolguard.metrics()') : 'not installed';
unlike($answer, qr/pwned/, 'no superuser runs a function the database owner planted');
is($node->safe_psql('adopted', q{SELECT count(*) FROM pg_depend d JOIN pg_extension e ON d.refobjid = e.oid
                                 WHERE e.extname = 'pg_poolguard'}), '0', 'no extension object landed anywhere');

# What the DBA does after the hint: give the schema to a superuser (after looking at it).
$node->safe_psql('adopted', 'DROP SCHEMA poolguard CASCADE; DROP SCHEMA taken CASCADE');
$node->safe_psql('adopted', 'CREATE EXTENSION pg_poolguard');
pass('after the schema is gone, CREATE EXTENSION creates its own');

# A schema the extension created belongs to the superuser: the owner can neither rename nor fill it.
$node->safe_psql('fresh', 'CREATE EXTENSION pg_poolguard');
is($node->safe_psql('fresh', q{SELECT r.rolsuper FROM pg_namespace n JOIN pg_roles r ON r.oid = n.nspowner
                               WHERE n.nspname = 'poolguard'}), 't', 'the schema is owned by a superuser');
($ret, $out, $err) = as_owner('fresh', 'ALTER SCHEMA poolguard RENAME TO taken');
isnt($ret, 0, 'the database owner cannot rename the schema');
like($err, qr/must be owner of schema poolguard/, 'permission denied');
($ret, $out, $err) = as_owner('fresh', q{CREATE FUNCTION poolguard.metrics2() RETURNS text LANGUAGE sql AS 'SELECT 1'});
isnt($ret, 0, 'the database owner cannot create objects in it');
is($node->safe_psql('fresh', q{SELECT poolguard.metrics() LIKE '# HELP%'}), 't',
    'a superuser\'s poolguard.metrics() is the extension\'s');

# CREATE granted on a superuser's schema to others: refused as well.
$node->safe_psql('shared_create', 'CREATE SCHEMA poolguard; GRANT CREATE ON SCHEMA poolguard TO owner');
($ret, $out, $err) = $node->psql('shared_create', 'CREATE EXTENSION pg_poolguard');
isnt($ret, 0, 'CREATE EXTENSION refuses a schema others may create in');
like($err, qr/ERROR:\s+roles other than superusers may create objects in schema "poolguard"\n.*DETAIL:\s+CREATE on schema poolguard is granted to owner\./,
    'the error names who may create');

# ---- the 1.1 -> 1.2 update: an installation made into an adopted schema is refused ----
as_owner('upgraded', 'CREATE SCHEMA poolguard');
$node->safe_psql('upgraded', q{CREATE EXTENSION pg_poolguard VERSION '1.1'});   # 1.1 did not check
($ret, $out, $err) = $node->psql('upgraded', 'ALTER EXTENSION pg_poolguard UPDATE');
isnt($ret, 0, 'the update refuses the adopted schema');
like($err, qr/ERROR:\s+schema "poolguard" is owned by role "owner", not by a superuser/, 'naming its owner');
like($err, qr/then run ALTER EXTENSION pg_poolguard UPDATE again/, 'and saying what to do');
is($node->safe_psql('upgraded', q{SELECT extversion FROM pg_extension WHERE extname = 'pg_poolguard'}), '1.1',
    'still at 1.1');
$node->safe_psql('upgraded', 'ALTER SCHEMA poolguard OWNER TO postgres; ALTER EXTENSION pg_poolguard UPDATE');
is($node->safe_psql('upgraded', q{SELECT extversion FROM pg_extension WHERE extname = 'pg_poolguard'}), '1.2',
    'updated once a superuser owns the schema');

$node->stop;
done_testing();
