# poolguard.app_summary and the poolguard_app_* metrics (issue 25, point 6): for an app identity
# (database, role, application_name), what pg_poolguard did — sessions ended and why, logins
# refused, invalidations its commits published, its database's deliveries and resyncs — readable
# by the app's own role for its own rows and by pg_monitor for all; an identity connected with
# nothing done to it shows zeros (what a team whose pool closes idle connections first sees).
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../perl";
use PoolguardTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $port = PostgreSQL::Test::Cluster::get_free_port();
my $node = poolguard_node('app_summary', 'poolguard.idle_grace = 1s',
    "poolguard.metrics_listen = '127.0.0.1:$port'");
$node->start;
$node->safe_psql('postgres', q{
    CREATE EXTENSION pg_poolguard;
    CREATE ROLE app LOGIN;
    CREATE ROLE other_app LOGIN;
    CREATE ROLE watcher LOGIN IN ROLE pg_monitor;
    CREATE DATABASE shop;
    GRANT EXECUTE ON FUNCTION poolguard.invalidate(text, text) TO app;
});
$node->safe_psql('shop', 'CREATE EXTENSION pg_poolguard; GRANT EXECUTE ON FUNCTION poolguard.invalidate(text, text) TO app');
set_policy($node, q{(name, application_name, idle_timeout, max_connections)
                    VALUES ('web', 'web%', '1s', NULL), ('capped', 'capped%', '0', 2), ('quiet', 'quiet%', '0', NULL)});

# 1. An identity connected with nothing done to it: a row of zeros, with its policy.
my $quiet = hold($node, 'user=app application_name=quiet-app', 'shop');
my $row = $node->safe_psql('shop', q{
    SELECT sessions_now, policies, sessions_ended, logins_refused, invalidations_published
      FROM poolguard.app_summary WHERE application_name = 'quiet-app'}, extra_params => [ '-U', 'app' ]);
is($row, '1|{quiet}|0|0|0', 'a connected identity with nothing done to it: zeros, and the policy it matches');

# 2. Sessions ended (idle_timeout), by reason.
my $idle = hold($node, 'user=app application_name=web-1', 'shop');
ok(gone($node, $idle->[1]), 'the idle session was ended');
# 3. Logins refused at the cap (2): two held, a third refused.
my @held = map { hold($node, 'user=app application_name=capped-2', 'shop') } 1 .. 2;
my ($ret, $err) = login($node, 'user=app application_name=capped-2 dbname=shop');
isnt($ret, 0, 'a login over the cap is refused');
like($err, qr/too many connections for poolguard policy "capped"/, 'refused by the cap');
# 4. Invalidations published by the identity's commits, and delivered by its database's publisher.
$node->safe_psql('shop', q{SELECT poolguard.invalidate('mentor', '1'); SELECT poolguard.invalidate('mentor', '2')},
    extra_params => [ '-d', $node->connstr('shop') . ' user=app application_name=cache-writer' ]);
$node->poll_query_until('shop', q{SELECT database_invalidations_delivered >= 2 FROM poolguard.app_summary
                                  WHERE application_name = 'cache-writer'})
  or die 'the publisher did not deliver';

my $summary = $node->safe_psql('shop', q{
    SELECT application_name, sessions_ended, idle_timeout, logins_refused, invalidations_published
      FROM poolguard.app_summary
     WHERE role_name = 'app' AND application_name IN ('cache-writer', 'web-1', 'capped-2')
     ORDER BY 1}, extra_params => [ '-U', 'app' ]);
is($summary, join("\n", 'cache-writer|0|0|0|2', 'capped-2|0|0|1|0', 'web-1|1|1|0|0'),
    "the app's own role reads what pg_poolguard did to each of its identities");

# 5. Visibility: another role sees none of app's rows; pg_monitor sees them all.
is($node->safe_psql('shop', q{SELECT count(*) FROM poolguard.app_summary WHERE role_name = 'app'},
    extra_params => [ '-U', 'other_app' ]), '0', "another role sees none of app's rows");
is($node->safe_psql('postgres', q{SELECT count(*) >= 4 FROM poolguard.app_summary WHERE role_name = 'app'},
    extra_params => [ '-U', 'watcher' ]), 't', 'pg_monitor sees every row');

# 6. The same in /metrics (summed over roles; never a role label).
$node->wait_for_log(qr/pg_poolguard metrics listening on 127\.0\.0\.1:$port/);
my $text = http_get($port, '/metrics');
like($text, qr/^poolguard_app_sessions_ended_total\{database="shop",application_name="web-1",reason="idle_timeout"\} 1$/m,
    'metrics: sessions ended by app and reason');
like($text, qr/^poolguard_app_logins_refused_total\{database="shop",application_name="capped-2"\} 1$/m,
    'metrics: logins refused by app');
like($text, qr/^poolguard_app_invalidations_published_total\{database="shop",application_name="cache-writer"\} 2$/m,
    'metrics: invalidations published by app');
like($text, qr/^poolguard_database_invalidations_delivered_total\{database="shop"\} [2-9]/m,
    'metrics: invalidations delivered in the database');
like($text, qr/^poolguard_database_resyncs_total\{database="shop"\} 0$/m, 'metrics: resyncs of the database');
my @samples = grep { !/^#/ } split /\n/, $text;
my @with_role = grep { /role|other_app|="app"/ } @samples;
is(scalar(@with_role), 0, 'no role in any label') or diag(join("\n", @with_role));

# 7. Bounded per database: a database's 33rd identity counts in its overflow row, seen by pg_monitor only.
for my $i (1 .. 34)
{
    login($node, "user=app application_name=capped-many-$i dbname=shop", 'SELECT 1');
}
# Each login above was over the cap (two capped-2 sessions are held): each counted a refusal.
is($node->safe_psql('postgres', q{SELECT count(*) FROM poolguard.app_summary_info()
                                   WHERE database_name = 'shop' AND role_name IS NOT NULL},
    extra_params => [ '-U', 'watcher' ]), '32', 'at most 32 identities of one database');
is($node->safe_psql('postgres', q{SELECT logins_refused > 0 FROM poolguard.app_summary_info()
                                   WHERE database_name = 'shop' AND role_name IS NULL},
    extra_params => [ '-U', 'watcher' ]), 't', 'the rest in its overflow row');
is($node->safe_psql('shop', q{SELECT count(*) FROM poolguard.app_summary_info() WHERE role_name IS NULL},
    extra_params => [ '-U', 'app' ]), '0', 'the overflow row is for pg_monitor only');

# 8. reset_stats() zeroes it.
$node->safe_psql('postgres', 'SELECT poolguard.reset_stats()');
is($node->safe_psql('postgres', 'SELECT count(*) FROM poolguard.app_summary_info()'), '0', 'reset_stats() clears it');

$_->[0]->quit for ($quiet, @held);
$node->stop;
done_testing();
