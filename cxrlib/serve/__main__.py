"""``python -m cxrlib.serve``: the shared model on Ray Serve, until Ctrl-C.

    python -m cxrlib.serve [--port 8000] [--host 127.0.0.1] [--replicas 1] [--num-cpus N]
    CXR_MODEL_SERVER=http://127.0.0.1:8000 make run     # the app then uses it

Starts a local Ray (all CPUs; ``--ray-address`` / ``$RAY_ADDRESS`` joins a cluster),
deploys :mod:`cxrlib.serve.deployment` and blocks; Ctrl-C (or SIGTERM) shuts both down.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading

from cxrlib.serve.deployment import start, stop


def main(argv: list[str] | None = None) -> int:
    """Starts the server and blocks until interrupted."""
    p = argparse.ArgumentParser(
        prog="python -m cxrlib.serve",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--host", default="127.0.0.1", help="0.0.0.0 to accept other machines")
    p.add_argument("--replicas", type=int, default=1, help="model replicas (one CPU each)")
    p.add_argument("--num-cpus", type=int, default=None, help="CPUs of the local Ray")
    p.add_argument("--ray-address", default=os.environ.get("RAY_ADDRESS") or None)
    p.add_argument("--model", default=None, help="classifier (default: $CXR_MODEL)")
    p.add_argument("--max-batch-size", type=int, default=8, help="requests per batch")
    a = p.parse_args(argv)
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # stops as Ctrl-C does
    try:
        url = start(**vars(a))
        print(f"serving on {url} (health: {url}/health); Ctrl-C stops", file=sys.stderr)
        print(f"use it: CXR_MODEL_SERVER={url} make run", file=sys.stderr)
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
