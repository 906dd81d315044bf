"""`python -m bench.convoy`: what one busy thread does to another thread's PostgreSQL round trips in
the same Python process, at several interpreter switch intervals (`sys.setswitchinterval`).

A thread that waits on PostgreSQL gives up the interpreter at every statement; when another thread
is running Python it gets it back only when that thread is made to yield, after the switch
interval (5 ms by default). So a request of a few statements is slowed by as many intervals as it
has statements, whatever its own cost: the "convoy effect". This measures it with `SELECT 1` round
trips (`DATABASE_URL`), alone and beside a thread that only computes, each figure the best of
`--repeat` runs.
"""

import argparse
import os
import sys
import threading
import time

import psycopg2


def _round_trips(cur: "psycopg2.extensions.cursor", n: int) -> float:
    started = time.perf_counter()
    for _ in range(n):
        cur.execute("SELECT 1")
        cur.fetchone()
    return time.perf_counter() - started


def _busy(stop: threading.Event) -> None:
    while not stop.is_set():
        sum(range(1000))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--round-trips", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--intervals-ms", type=float, nargs="*", default=[5.0, 2.0, 1.0, 0.5, 0.25])
    args = parser.parse_args()
    conn = psycopg2.connect(os.environ.get("DATABASE_URL", "postgresql://provisioner:provisioner@127.0.0.1:5433/provisioner"))
    cur = conn.cursor()
    alone = min(_round_trips(cur, args.round_trips) for _ in range(args.repeat))
    print(f"{args.round_trips} round trips alone: {alone * 1000:.1f} ms")
    for interval in args.intervals_ms:
        sys.setswitchinterval(interval / 1000)
        stop = threading.Event()
        thread = threading.Thread(target=_busy, args=(stop,), daemon=True)
        thread.start()
        time.sleep(0.05)
        beside = min(_round_trips(cur, args.round_trips) for _ in range(args.repeat))
        stop.set()
        thread.join()
        print(f"switch interval {interval:g} ms: {beside * 1000:.1f} ms beside a busy thread ({beside / alone:.1f}x alone)")
    conn.close()


if __name__ == "__main__":
    main()
