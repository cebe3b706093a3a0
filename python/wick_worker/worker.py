"""The worker process: gets its socket (listens on a unix or TCP address and accepts one
connection, as TorchServe's backend does, or uses an inherited connected socket), then
answers one load frame and any number of inference frames until the peer closes the
connection. Logs go to stderr; so do metrics lines (wick_worker.metrics).

Exit status: 0 when the peer closed the connection, 1 when the model failed to load
(after sending the failed load response) or the socket failed, 2 for a malformed frame
(after which the stream cannot be trusted), 3 for bad command-line arguments.
"""

import argparse
import logging
import os
import platform
import socket
import sys
import traceback

from . import __version__, protocol, shim
from .loader import LoadError, load_model
from .metrics import format_record

logger = logging.getLogger("wick_worker")

MAX_MESSAGE = 16 * 1024  # longest load failure message (the tail of the traceback is kept)


def parse_args(argv):
    p = argparse.ArgumentParser(
        prog="python3 -m wick_worker",
        description="wick's Python handler worker (TorchServe backend protocol)",
    )
    p.add_argument("--sock-type", choices=["unix", "tcp"], default="unix",
                   help="listen on a unix socket (--sock-name) or a TCP port (--host/--port)")
    p.add_argument("--sock-name", help="path of the unix socket to listen on")
    p.add_argument("--host", default="127.0.0.1", help="TCP address to listen on")
    p.add_argument("--port", type=int, help="TCP port to listen on")
    p.add_argument("--sock-fd", type=int,
                   help="use this inherited, already connected stream socket instead of listening")
    p.add_argument("--accept-timeout", type=float, default=60.0,
                   help="seconds to wait for the frontend to connect (default 60)")
    p.add_argument("--max-request-bytes", type=int, default=protocol.Limits().max_frame,
                   help="largest inference frame accepted, in bytes")
    p.add_argument("--metrics-config", help="accepted for TorchServe compatibility; ignored")
    p.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    args = p.parse_args(argv)
    if args.sock_fd is None:
        if args.sock_type == "unix" and not args.sock_name:
            p.error("--sock-type unix needs --sock-name PATH")
        if args.sock_type == "tcp" and args.port is None:
            p.error("--sock-type tcp needs --port N")
    if args.max_request_bytes < 1024:
        p.error("--max-request-bytes must be at least 1024")
    return args


def open_connection(args):
    """The connected socket to serve on."""
    if args.sock_fd is not None:
        conn = socket.socket(fileno=args.sock_fd)
        if conn.type != socket.SOCK_STREAM:
            raise OSError("--sock-fd %d is not a stream socket" % args.sock_fd)
        logger.info("wick worker ready on inherited socket fd %d (pid %d)", args.sock_fd, os.getpid())
        return conn
    if args.sock_type == "unix":
        try:
            os.unlink(args.sock_name)
        except FileNotFoundError:
            pass
        srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        srv.bind(args.sock_name)
        where = args.sock_name
    else:
        srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind((args.host, args.port))
        where = "%s:%d" % (args.host, args.port)
    srv.listen(1)
    srv.settimeout(args.accept_timeout)
    logger.info("wick worker listening on %s (pid %d, Python %s)", where, os.getpid(), platform.python_version())
    try:
        conn, _ = srv.accept()
    except socket.timeout:
        raise OSError("no connection on %s within %.0f s (--accept-timeout)" % (where, args.accept_timeout)) from None
    finally:
        srv.close()
        if args.sock_type == "unix":
            try:
                os.unlink(args.sock_name)  # one peer only: nobody else may connect
            except FileNotFoundError:
                pass
    conn.setblocking(True)
    logger.info("connection accepted")
    return conn


def emit_metrics(service):
    metrics = service.context.metrics if service is not None else None
    if metrics is None:
        return
    records = metrics.drain()
    if records:
        sys.stderr.write("".join(format_record(r) + "\n" for r in records))
        sys.stderr.flush()


def _load_failure(exc):
    summary = "%s: %s" % (type(exc).__name__, exc) if not isinstance(exc, LoadError) else str(exc)
    if isinstance(exc, LoadError):
        return summary
    tb = traceback.format_exc()
    msg = summary + "\n" + tb
    if len(msg) > MAX_MESSAGE:
        msg = summary + "\n...\n" + tb[-(MAX_MESSAGE - len(summary) - 5):]
    return msg


def serve(conn, limits):
    """Serves frames on conn until the peer closes it. Returns the exit status."""
    reader = protocol.SocketReader(conn)
    service = None
    while True:
        try:
            cmd, msg = protocol.read_request(reader, limits)
        except protocol.ConnectionClosed:
            logger.info("frontend closed the connection; exiting")
            return 0
        except protocol.ProtocolError as e:
            logger.error("malformed frame from the frontend: %s; exiting", e)
            return 2
        if cmd == protocol.CMD_LOAD:
            if service is not None:
                conn.sendall(protocol.encode_load_response(
                    409, "this worker already serves model %s; start another worker to load %s"
                    % (service.context.model_name, msg.model_name)))
                continue
            logger.info("loading model %s from %s (handler %r, batch size %d, gpu %d)",
                        msg.model_name, msg.model_path, msg.handler, msg.batch_size, msg.gpu_id)
            try:
                service = load_model(msg, __version__)
            except MemoryError:
                logger.error("out of memory while loading\n%s", traceback.format_exc())
                conn.sendall(protocol.encode_load_response(507, "System out of memory"))
                return 1
            except BaseException as e:  # user code: report everything, even SystemExit
                message = _load_failure(e)
                logger.error("loading model %s failed: %s", msg.model_name, message)
                conn.sendall(protocol.encode_load_response(500, message))
                return 1
            service.context.cl_socket = conn
            emit_metrics(service)
            conn.sendall(protocol.encode_load_response(200, "loaded model %s" % msg.model_name))
            logger.info("model %s loaded", msg.model_name)
        else:
            if service is None:
                from .service import error_response

                ids = {i: r.request_id for i, r in enumerate(msg)}
                conn.sendall(error_response(ids, "no model is loaded: the worker needs a load frame ('L') first", 503))
                continue
            frame = service.predict(msg)
            emit_metrics(service)
            conn.sendall(frame)


def main(argv=None):
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(levelname)s %(message)s")
    try:
        args = parse_args(argv)
    except SystemExit as e:
        return 3 if e.code else 0
    logging.getLogger().setLevel(args.log_level)
    shim.install()
    limits = protocol.Limits(max_frame=args.max_request_bytes, max_value=args.max_request_bytes)
    try:
        conn = open_connection(args)
    except OSError as e:
        logger.error("cannot open the worker socket: %s", e)
        return 1
    try:
        return serve(conn, limits)
    except OSError as e:
        logger.error("socket error: %s; exiting", e)
        return 1
    finally:
        conn.close()
