"""psycopg_pool.ConnectionPool (psycopg 3).  Guide: 3.2+ check=ConnectionPool.check_connection;
3.1 (Debian 12) has no check on borrow, so the app checks what it borrows (checked_connection
below: an empty statement, and a broken connection is given back, which the pool discards),
with min_size at or below the policy's floor (0 here)."""
import contextlib
import psycopg
import psycopg_pool

import harness

kwargs = {}
if harness.GUIDE and hasattr(psycopg_pool.ConnectionPool, "check_connection"):
    kwargs["check"] = psycopg_pool.ConnectionPool.check_connection
pool = psycopg_pool.ConnectionPool(harness.CONNINFO, min_size=0 if harness.GUIDE else harness.WORKERS,
                                   max_size=harness.WORKERS, **kwargs)
pool.wait()
self_check = harness.GUIDE and "check" not in kwargs


@contextlib.contextmanager
def checked_connection():
    """psycopg_pool 3.1's missing check on borrow: at most max_size + 1 tries."""
    for _ in range(harness.WORKERS + 1):
        conn = pool.getconn()
        try:
            conn.execute("")
            break
        except psycopg.OperationalError:
            pool.putconn(conn)  # broken: the pool discards it
    else:
        raise psycopg.OperationalError("no working connection")
    try:
        yield conn
    finally:
        pool.putconn(conn)


def request():
    with (checked_connection() if self_check else pool.connection()) as conn:
        conn.execute("SELECT 1").fetchone()


harness.serve(request, pool.close)
