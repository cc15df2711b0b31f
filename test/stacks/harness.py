"""harness.py — the driver loop shared by the Python stacks (test/t/123_stacks.pl runs them).

The test writes one command a line on stdin and reads one answer a line on stdout:
  burst  -> BURST requests on WORKERS long-lived threads; answers "done requests=N failed=K"
  probe  -> one request (a health check in a quiet period); answers "done requests=1 failed=K"
  quit   -> closes the pool and exits
A request borrows a connection the way the stack does, runs one statement and gives it back;
a failed request is one whose statement raised.  The first error message is printed once
("error: ...") so the test can show what the app saw.
"""
import concurrent.futures
import os
import sys

WORKERS = int(os.environ.get("WORKERS", "8"))
BURST = int(os.environ.get("BURST", "24"))
GUIDE = os.environ.get("GUIDE", "1") == "1"
CONNINFO = os.environ["STACK_CONNINFO"]


def serve(request, close=lambda: None):
    """request() raises on failure.  Threads live for the whole run (as gunicorn's do)."""
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=WORKERS)
    shown = set()

    def one():
        try:
            request()
            return None
        except Exception as e:  # what the app would turn into an HTTP 500
            return "%s: %s" % (type(e).__name__, str(e).strip().splitlines()[0] if str(e).strip() else "")

    for line in sys.stdin:
        cmd = line.strip()
        if cmd == "quit":
            break
        n = BURST if cmd == "burst" else 1
        errors = [e for e in pool.map(lambda _: one(), range(n)) if e is not None]
        for e in errors:
            if e not in shown:
                shown.add(e)
                print("error: " + e, flush=True)
        print("done requests=%d failed=%d" % (n, len(errors)), flush=True)
    pool.shutdown(wait=True)
    close()
