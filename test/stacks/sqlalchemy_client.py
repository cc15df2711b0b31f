"""SQLAlchemy QueuePool (psycopg2).  Guide: pool_pre_ping=True (and pool_recycle below
max_connection_age when that rule is used).

POOL_SIZE (default WORKERS) and OVERFLOW (default 0) size the pool; REQUEST_SECONDS (default 0)
is how long a request holds its connection (bench/cap_wait.pl: pool 10 + overflow 10, whose
overflow connections close as soon as they are given back)."""
import os

import psycopg2
from sqlalchemy import create_engine, text

import harness

engine = create_engine("postgresql+psycopg2://", creator=lambda: psycopg2.connect(harness.CONNINFO),
                       pool_size=int(os.environ.get("POOL_SIZE", harness.WORKERS)),
                       max_overflow=int(os.environ.get("OVERFLOW", "0")), pool_pre_ping=harness.GUIDE)
REQUEST_SECONDS = float(os.environ.get("REQUEST_SECONDS", "0"))


def request():
    with engine.connect() as conn:
        if REQUEST_SECONDS > 0:
            conn.execute(text("SELECT pg_sleep(:s)"), {"s": REQUEST_SECONDS}).scalar()
        else:
            conn.execute(text("SELECT 1")).scalar()


harness.serve(request, engine.dispose)
