"""`python3 -m wick_worker ...`: runs the worker (see wick_worker.worker)."""

import sys

from .worker import main

if __name__ == "__main__":
    sys.exit(main())
