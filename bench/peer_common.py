"""What bench/peers.py and bench/zoo_peers.py share: the peers' checkouts on sys.path and the
timing (one warm-up call, then the median of REPEAT calls, in ms)."""
import os
import statistics
import sys
import time


def use_checkouts(script, variables):
    """Puts each checkout named by an environment variable (CAPTUM, PGC, ...) on sys.path, and
    the project's tests/python (cnnvis_random_weights, script_models); exits naming the first
    one missing."""
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path.insert(0, os.path.join(here, "..", "tests", "python"))
    for var in variables:
        if var not in os.environ:
            sys.exit(f"{script}: set {var} to a checkout (../shared/REFERENCES.md has the revisions)")
        sys.path.insert(0, os.environ[var])


def median_ms(f, repeat):
    f()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        f()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)
