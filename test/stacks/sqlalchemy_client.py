"""SQLAlchemy QueuePool (psycopg2).  Guide: pool_pre_ping=True (and pool_recycle below
max_connection_age when that rule is used)."""
import psycopg2
from sqlalchemy import create_engine, text

import harness

engine = create_engine("postgresql+psycopg2://", creator=lambda: psycopg2.connect(harness.CONNINFO),
                       pool_size=harness.WORKERS, max_overflow=0, pool_pre_ping=harness.GUIDE)


def request():
    with engine.connect() as conn:
        conn.execute(text("SELECT 1")).scalar()


harness.serve(request, engine.dispose)
