# Hostile database owner: the worker and reload()/reap() read the policies as a superuser in a
# database an ordinary role may own.  Nothing that role creates may run with those rights:
#   - a look-alike poolguard.policy (schema and view of its own, before the extension exists);
#   - operators shadowing the ones a query might use (public.*(numeric, integer) and friends),
#     reached through the default search_path or ALTER DATABASE ... SET search_path.
# Each trap records who ran it and tries ALTER ROLE app SUPERUSER; the test asserts both never
# happened, while the policies still load and apply.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../perl";
use PoolguardTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = poolguard_node('escalation',
    q{poolguard.database = 'appdb'},
    q{poolguard.naptime = '100ms'});
$node->start;
$node->safe_psql('postgres', q{
    CREATE ROLE app LOGIN;
    CREATE DATABASE appdb OWNER app;
    CREATE EXTENSION pg_poolguard;
});

# The trap: a function of app's that tries to make app a superuser and notes its caller.
$node->safe_psql('appdb', q{
    CREATE TABLE public.trap_log (ran_as name, at timestamptz DEFAULT now());
    GRANT INSERT ON public.trap_log TO PUBLIC;
    CREATE FUNCTION public.trap() RETURNS void LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO public.trap_log (ran_as) VALUES (current_user);
        BEGIN
            ALTER ROLE app SUPERUSER;
        EXCEPTION WHEN insufficient_privilege THEN NULL;
        END;
    END $$;
}, extra_params => [ '-U', 'app' ]);

sub app_is_superuser
{
    return $node->safe_psql('postgres', "SELECT rolsuper FROM pg_roles WHERE rolname = 'app'");
}

sub traps_run
{
    return $node->safe_psql('appdb', 'SELECT count(*) FROM public.trap_log');
}

# Waits until the worker has completed n more cycles (poolguard.stats in database postgres).
sub worker_cycles
{
    my ($n) = @_;
    my $scans = $node->safe_psql('postgres', 'SELECT scans FROM poolguard.stats');
    $node->poll_query_until('postgres', "SELECT scans >= $scans + $n FROM poolguard.stats")
      or die 'the worker did not cycle';
}

# ---- a look-alike poolguard.policy before the extension exists in appdb ----
$node->safe_psql('appdb', q{
    CREATE SCHEMA poolguard;
    CREATE FUNCTION public.trap_text() RETURNS text LANGUAGE plpgsql AS $$
    BEGIN PERFORM public.trap(); RETURN 'lookalike'; END $$;
    CREATE VIEW poolguard.policy AS
        SELECT public.trap_text() AS name, 0 AS priority, true AS enabled,
               NULL::name AS role_name, NULL::name AS database_name, NULL::text AS application_name,
               NULL::cidr AS client_addr, NULL::interval AS idle_timeout,
               NULL::interval AS idle_in_transaction_timeout, NULL::interval AS max_connection_age,
               NULL::interval AS max_query_duration, NULL::integer AS max_idle,
               NULL::bigint AS max_idle_memory, NULL::integer AS max_connections,
               'reject'::text AS on_limit, false AS dry_run;
}, extra_params => [ '-U', 'app' ]);
worker_cycles(5);
is(traps_run(), '0', 'the worker never reads a poolguard.policy that is not the extension\'s');
is(app_is_superuser(), 'f', 'the look-alike table gave app nothing');
is($node->safe_psql('postgres', 'SELECT count(*) FROM poolguard.policy_status'), '0',
    'no policy was loaded from the look-alike');
$node->safe_psql('appdb', 'DROP SCHEMA poolguard CASCADE', extra_params => [ '-U', 'app' ]);
$node->safe_psql('appdb', 'CREATE EXTENSION pg_poolguard');

# ---- operators and functions that shadow pg_catalog's, for every route ----
$node->safe_psql('appdb', q{
    CREATE FUNCTION public.trap_mul(numeric, integer) RETURNS numeric LANGUAGE plpgsql AS $$
    BEGIN PERFORM public.trap(); RETURN $1 OPERATOR(pg_catalog.*) $2; END $$;
    CREATE OPERATOR public.* (LEFTARG = numeric, RIGHTARG = integer, FUNCTION = public.trap_mul);
    CREATE FUNCTION public.trap_eq(text, text) RETURNS boolean LANGUAGE plpgsql AS $$
    BEGIN PERFORM public.trap(); RETURN $1 OPERATOR(pg_catalog.=) $2; END $$;
    CREATE OPERATOR public.= (LEFTARG = text, RIGHTARG = text, FUNCTION = public.trap_eq);
    CREATE FUNCTION public.extract(text, interval) RETURNS numeric LANGUAGE plpgsql AS $$
    BEGIN PERFORM public.trap(); RETURN 0; END $$;
    CREATE FUNCTION public.current_database() RETURNS name LANGUAGE plpgsql AS $$
    BEGIN PERFORM public.trap(); RETURN 'appdb'; END $$;
}, extra_params => [ '-U', 'app' ]);

for my $route ('default search_path', 'ALTER DATABASE SET search_path')
{
    if ($route ne 'default search_path')
    {
        $node->safe_psql('appdb', 'ALTER DATABASE appdb SET search_path = public, pg_catalog',
            extra_params => [ '-U', 'app' ]);
        # The worker picks up the database setting when it (re)connects.
        my $pid = $node->safe_psql('postgres', 'SELECT poolguard.worker_pid()');
        $node->safe_psql('postgres', "SELECT pg_terminate_backend($pid)");
        $node->poll_query_until('postgres',
            "SELECT poolguard.worker_pid() IS NOT NULL AND poolguard.worker_pid() <> $pid")
          or die 'worker did not come back';
    }
    # A superuser changes the policies: the commit wakes the worker, which loads them.
    $node->safe_psql('appdb', qq{
        DELETE FROM poolguard.policy;
        INSERT INTO poolguard.policy (name, application_name, idle_timeout, max_connection_age)
        VALUES ('route', 'victim%', '1 hour', '1 day');
    });
    worker_cycles(3);
    # A superuser's own session runs the loader too.
    $node->safe_psql('appdb', 'SELECT poolguard.reload(); SELECT * FROM poolguard.reap(true);');
    is(traps_run(), '0', "$route: no trap ran in the worker, reload() or reap()");
    is(app_is_superuser(), 'f', "$route: app is still not a superuser");
}

# The policies loaded through all this are right: the interval arithmetic moved into C.
my $victim = $node->background_psql('appdb', extra_params => [ '-d', $node->connstr('appdb') . ' user=app application_name=victim1' ]);
my $vpid = $victim->query_safe('SELECT pg_backend_pid()');
is($node->safe_psql('appdb', qq{
    SELECT policy, verdict IS NULL, deadline - state_change BETWEEN interval '59 min' AND interval '61 min'
      FROM poolguard.sessions WHERE pid = $vpid}),
    'route|t|t', 'the loaded idle_timeout of 1 hour is in force');
$victim->quit;

done_testing();
