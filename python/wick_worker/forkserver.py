"""`python3 -m wick_worker.forkserver`: the template that wick forks Python workers from.

Importing torch costs a worker about two seconds and a few hundred megabytes that are
the same in every worker (relocated library data, Python objects). This process imports
them once (torchvision too, once a model that uses it asks for a worker) and forks a
worker for each request wick sends, so that workers start in
milliseconds and share those pages until they write to them. It never loads a model and
never touches CUDA: each worker loads its own model after the fork, exactly as a worker
started from scratch does.

The control socket is fd 3, a SOCK_SEQPACKET socket to wick. wick sends one message per
worker: the working directory (UTF-8) with two descriptors attached, the worker's socket
and its log pipe. The template forks twice (the middle process exits at once, so the
worker becomes a child of wick, which is a child subreaper while it waits for the answer) and answers the worker's pid
as a signed 32-bit integer in native order, or a negative number followed by an error
message (-2: the template has more than one thread, do not ask again). When wick closes
the socket the template exits.

At start it answers "ready <threads>" (or "failed <why>"), threads being how many
threads it has: a fork copies only the forking thread, so wick uses the template only
while that number is 1.
"""

import array
import gc
import json
import os
import re
import signal
import socket
import struct
import sys
import traceback

CONTROL_FD = 3
MAX_CWD = 8192


# Imported before the template reports ready: what nearly every worker imports.
FIRST = ("torch", "numpy", "PIL.Image", "wick_worker.worker", "wick_worker.handler_factory",
         "wick_worker.handlers.base_handler")
# Imported before the first fork for a model that uses them (its Python files import
# torchvision, or its handler is one of TorchServe's vision handlers), then kept for every
# later worker: a model that never uses them does not pay for them.
VISION = ("torchvision", "wick_worker.handlers.vision_handler")
VISION_HANDLERS = ("image_classifier", "image_segmenter", "object_detector")
MAX_SCAN = 1 << 20  # bytes of a model's Python file read to look for the import
IMPORTS_VISION = re.compile(rb"^[ \t]*(?:from|import)[ \t]+(?:torchvision\b|ts\.torch_handler\."
                            rb"(?:vision_handler|image_classifier|image_segmenter|object_detector)\b)",
                            re.M)


def _uses_vision(cwd):
    """Whether the model folder's handler is a vision one or its .py files import torchvision
    or one of TorchServe's vision handlers."""
    try:
        with open(os.path.join(cwd, "MAR-INF", "MANIFEST.json"), encoding="utf-8") as f:
            handler = str(json.load(f).get("model", {}).get("handler", ""))
        if handler.split(":")[0].rsplit(".", 1)[-1] in VISION_HANDLERS:
            return True
    except (OSError, ValueError, AttributeError):
        pass
    try:
        names = [n for n in os.listdir(cwd) if n.endswith(".py")]
    except OSError:
        return False
    for n in names:
        try:
            with open(os.path.join(cwd, n), "rb") as f:
                if IMPORTS_VISION.search(f.read(MAX_SCAN)):
                    return True
        except OSError:
            continue
    return False


def _preload(names):
    """Imports names; what is missing is left to the worker."""
    for name in names:
        try:
            __import__(name)
        except Exception:  # absent or broken: the worker reports it when it needs it
            pass
    torch = sys.modules.get("torch")
    if torch is not None and hasattr(torch, "cuda") and torch.cuda.is_initialized():
        raise RuntimeError("CUDA was initialised while importing; a fork would break it")
    # objects the imports made stay out of the collector's lists, so that collections in
    # the workers do not write to (and so copy) the pages that hold them
    gc.collect()
    gc.freeze()


def _set_name(name):
    """The process name ps and top show (comm; the command line stays the template's)."""
    try:
        import ctypes

        ctypes.CDLL(None).prctl(15, name.encode()[:15], 0, 0, 0)  # PR_SET_NAME
    except Exception:
        pass


def _threads():
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return 1


def _become_worker(control, cwd, sock_fd, out_fd):
    """In the forked worker: fds 0-3 as a started worker has them, then its main."""
    try:
        control.close()
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.dup2(out_fd, 1)
        os.dup2(out_fd, 2)
        os.dup2(sock_fd, 3)
        for fd in {devnull, out_fd, sock_fd}:
            if fd > 3:
                os.close(fd)
        os.chdir(cwd)
        _set_name("wick_worker")
        # the template's default numpy stream would be every worker's: seed it afresh
        np = sys.modules.get("numpy")
        if np is not None:
            np.random.seed()
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        sys.argv = ["wick_worker", "--sock-fd", "3"]
        from wick_worker.worker import main

        rc = main(["--sock-fd", "3"])
    except SystemExit as e:
        rc = e.code if isinstance(e.code, int) else 1
    except BaseException:
        traceback.print_exc()
        rc = 1
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        os._exit(rc if isinstance(rc, int) else 1)


def _spawn(control, cwd, fds):
    """Forks a worker; returns its pid."""
    sock_fd, out_fd = fds
    r, w = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    mid = os.fork()
    if mid == 0:
        try:
            os.close(r)
            pid = os.fork()
            if pid == 0:
                os.close(w)
                _become_worker(control, cwd, sock_fd, out_fd)
            os.write(w, struct.pack("=i", pid))
        finally:
            os._exit(0)
    os.close(w)
    try:
        os.waitpid(mid, 0)
        data = os.read(r, 4)
    finally:
        os.close(r)
    if len(data) != 4:
        raise OSError("the forked process did not report its child")
    return struct.unpack("=i", data)[0]


def _receive(control):
    fds = array.array("i")
    msg, anc, _flags, _addr = control.recvmsg(MAX_CWD, socket.CMSG_SPACE(2 * fds.itemsize))
    for level, kind, data in anc:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(data[:len(data) - (len(data) % fds.itemsize)])
    return msg, list(fds)


def serve(control):
    unusable = None  # why this template may not fork any more
    while True:
        try:
            msg, fds = _receive(control)
        except OSError:
            return 1
        if not msg and not fds:
            return 0  # wick closed the socket
        try:
            if len(fds) != 2:
                raise ValueError("expected 2 descriptors, got %d" % len(fds))
            cwd = os.fsdecode(msg)
            if unusable is None and "torchvision" not in sys.modules and _uses_vision(cwd):
                try:
                    _preload(VISION)
                except Exception as e:
                    unusable = "%s: %s" % (type(e).__name__, e)
            threads = _threads()
            if unusable is None and threads != 1:
                unusable = "the template has %d threads" % threads
            if unusable is not None:
                reply = struct.pack("=i", -2) + unusable.encode()[:1000]
            else:
                reply = struct.pack("=i", _spawn(control, cwd, fds))
        except Exception as e:
            reply = struct.pack("=i", -1) + ("%s: %s" % (type(e).__name__, e)).encode()[:1000]
        finally:
            for fd in fds:
                os.close(fd)
        control.sendall(reply)


def main():
    control = socket.socket(fileno=CONTROL_FD)
    _set_name("wick-template")
    try:
        _preload(FIRST)
    except BaseException as e:
        control.sendall(("failed %s: %s" % (type(e).__name__, e)).encode()[:1000])
        return 1
    control.sendall(b"ready %d" % _threads())
    return serve(control)


if __name__ == "__main__":
    sys.exit(main())
