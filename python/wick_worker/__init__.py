"""wick's Python worker runtime: runs TorchServe-style handlers in a process that wick
starts, speaking TorchServe's frontend/backend wire format over a socket.

Run it as `python3 -m wick_worker --sock-type unix --sock-name PATH`. Importing this
package has no side effects: the `ts` import shim is installed only by the worker's
main (wick_worker.shim.install).
"""

__version__ = "0.1.0"
