"""TorchServe's frontend<->backend wire format ("OTF"), both directions.

The worker side reads load ('L') and inference ('I') frames and writes response frames;
the frontend side (wick's C server in production, these functions in tests) writes the
requests and reads the responses. Byte layout: docs/otf-protocol.md. Every length read
from the wire is checked against `Limits` before anything is allocated, so a bad or
hostile peer gets a `ProtocolError`, never a huge allocation. This module does no
socket setup and does not interpret parameter values (JSON/text decoding belongs to
the handler contract, see wick_worker.service).
"""

import struct
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple, Union

CMD_LOAD = b"L"
CMD_INFERENCE = b"I"
END_OF_LIST = -1
INT32_MAX = 2**31 - 1

_INT = struct.Struct("!i")

# Strings are UTF-8 on the wire. Bytes that are not valid UTF-8 are kept as surrogate
# escapes so that a request id always goes back to the frontend byte for byte.
_ENC = "utf-8"
_ERRS = "surrogateescape"


class ProtocolError(ValueError):
    """A frame that breaks the format or a limit. The stream cannot be resynchronised
    after one: the connection must be closed."""


class ConnectionClosed(EOFError):
    """The peer closed the connection cleanly, between two frames."""


@dataclass
class Limits:
    """Upper bounds for what a decoder accepts. The defaults are generous for a model
    server; wick passes its own with --max-request-bytes."""

    max_string: int = 1 << 20  # names, paths, ids, header names/values, content types
    max_value: int = 1 << 30  # one parameter value or one response body
    max_frame: int = 1 << 30  # all bytes of one frame together
    max_requests: int = 4096  # requests in one inference batch
    max_items: int = 4096  # headers or parameters of one request, response headers


@dataclass
class LoadRequest:
    """The 'L' frame: which model to load and how. gpu_id < 0 means no GPU."""

    model_name: str
    model_path: str
    batch_size: int = 1
    handler: str = ""
    gpu_id: int = -1
    envelope: str = ""
    limit_max_image_pixels: bool = True


@dataclass
class Parameter:
    """One input of a request: the raw body ("body") or one form field."""

    name: str
    content_type: str
    value: bytes


@dataclass
class InferenceRequest:
    """One request of an 'I' frame. headers keep the order and repetitions sent."""

    request_id: str
    headers: List[Tuple[str, str]] = field(default_factory=list)
    parameters: List[Parameter] = field(default_factory=list)


@dataclass
class Prediction:
    """The answer to one request inside a response frame."""

    request_id: str
    content_type: str = ""
    status: int = 200
    reason: str = ""
    headers: Dict[str, str] = field(default_factory=dict)
    body: bytes = b""


@dataclass
class Response:
    """A response frame: the overall code and message, then one entry per request
    (none for a load response)."""

    code: int
    message: str
    predictions: List[Prediction] = field(default_factory=list)


# ---------------------------------------------------------------- readers


class BytesReader:
    """Reads a frame from bytes already in memory (tests, fuzzing)."""

    def __init__(self, data: bytes):
        self._data = memoryview(bytes(data))
        self._pos = 0

    def read(self, n: int) -> bytes:
        if n == 0:
            return b""
        if self._pos == len(self._data):
            raise ConnectionClosed("end of input")
        end = self._pos + n
        if end > len(self._data):
            raise ProtocolError(
                "frame truncated: needed %d more bytes at offset %d, only %d left"
                % (n, self._pos, len(self._data) - self._pos)
            )
        out = self._data[self._pos : end].tobytes()
        self._pos = end
        return out

    def at_end(self) -> bool:
        return self._pos == len(self._data)


class SocketReader:
    """Buffered exact reads from a connected stream socket."""

    def __init__(self, sock, bufsize: int = 1 << 16):
        self._sock = sock
        self._buf = bytearray()
        self._bufsize = bufsize

    def _eof(self, have: int, n: int):
        if have:
            return ProtocolError(
                "connection closed in the middle of a frame (%d of %d bytes read)" % (have, n)
            )
        return ConnectionClosed("peer closed the connection")

    def read(self, n: int) -> bytes:
        if n == 0:
            return b""
        if n - len(self._buf) > self._bufsize:
            # A large value: receive it straight into its own buffer.
            out = bytearray(n)
            have = len(self._buf)
            out[:have] = self._buf
            self._buf.clear()
            view = memoryview(out)
            while have < n:
                k = self._sock.recv_into(view[have:])
                if k == 0:
                    raise self._eof(have, n)
                have += k
            return bytes(out)
        while len(self._buf) < n:
            chunk = self._sock.recv(self._bufsize)
            if not chunk:
                raise self._eof(len(self._buf), n)
            self._buf += chunk
        out = bytes(self._buf[:n])
        del self._buf[:n]
        return out


Reader = Union[BytesReader, SocketReader]


class _Frame:
    """Tracks one frame being decoded: limits, byte count, and EOF handling. Only the
    very first byte of a frame may meet a clean end of stream."""

    def __init__(self, reader: Reader, limits: Limits):
        self.r = reader
        self.lim = limits
        self.total = 0

    def raw(self, n: int, what: str) -> bytes:
        self.total += n
        if self.total > self.lim.max_frame:
            raise ProtocolError(
                "frame is larger than the limit of %d bytes (while reading %s)"
                % (self.lim.max_frame, what)
            )
        try:
            return self.r.read(n)
        except ConnectionClosed:
            if self.total == n:  # nothing of this frame read yet
                raise
            raise ProtocolError("connection closed in the middle of a frame (reading %s)" % what)

    def int(self, what: str) -> int:
        return _INT.unpack(self.raw(4, what))[0]

    def length(self, what: str, limit: int, allow_end: bool = False) -> int:
        n = self.int(what + " length")
        if n == END_OF_LIST and allow_end:
            return n
        if n < 0:
            raise ProtocolError("%s length is %d, expected 0..%d" % (what, n, limit))
        if n > limit:
            raise ProtocolError("%s is %d bytes, over the limit of %d" % (what, n, limit))
        return n

    def string(self, what: str, allow_end: bool = False) -> Optional[str]:
        n = self.length(what, self.lim.max_string, allow_end)
        if n == END_OF_LIST:
            return None
        return self.raw(n, what).decode(_ENC, _ERRS)

    def blob(self, what: str) -> bytes:
        n = self.length(what, self.lim.max_value)
        return self.raw(n, what)


# ---------------------------------------------------------------- worker side


def read_request(reader: Reader, limits: Optional[Limits] = None):
    """Reads one frame sent by the frontend. Returns (CMD_LOAD, LoadRequest) or
    (CMD_INFERENCE, [InferenceRequest, ...]). Raises ConnectionClosed when the stream
    ends cleanly before a frame, ProtocolError for anything malformed."""
    f = _Frame(reader, limits or Limits())
    cmd = f.raw(1, "command byte")
    if cmd == CMD_LOAD:
        return cmd, _read_load(f)
    if cmd == CMD_INFERENCE:
        return cmd, _read_inference(f)
    raise ProtocolError("unknown command byte %r, expected b'L' (load) or b'I' (inference)" % cmd)


def _read_load(f: _Frame) -> LoadRequest:
    name = f.string("model name")
    path = f.string("model path")
    batch_size = f.int("batch size")
    handler = f.string("handler")
    gpu_id = f.int("gpu id")
    envelope = f.string("envelope")
    limit = f.raw(1, "limitMaxImagePixels")[0] != 0
    if batch_size < 1:
        raise ProtocolError("batch size is %d, expected 1 or more" % batch_size)
    return LoadRequest(name, path, batch_size, handler, gpu_id, envelope, limit)


def _read_inference(f: _Frame) -> List[InferenceRequest]:
    batch = []
    while True:
        rid = f.string("request id", allow_end=True)
        if rid is None:
            break
        if len(batch) == f.lim.max_requests:
            raise ProtocolError("more than %d requests in one batch" % f.lim.max_requests)
        req = InferenceRequest(rid)
        while True:
            name = f.string("header name", allow_end=True)
            if name is None:
                break
            if len(req.headers) == f.lim.max_items:
                raise ProtocolError("request %r has more than %d headers" % (rid, f.lim.max_items))
            req.headers.append((name, f.string("header value")))
        while True:
            name = f.string("parameter name", allow_end=True)
            if name is None:
                break
            if len(req.parameters) == f.lim.max_items:
                raise ProtocolError(
                    "request %r has more than %d parameters" % (rid, f.lim.max_items)
                )
            ctype = f.string("content type")
            value = f.blob("parameter value")
            req.parameters.append(Parameter(name, ctype, value))
        batch.append(req)
    if not batch:
        raise ProtocolError("inference frame with no requests")
    return batch


def _put_str(out: bytearray, s: str, what: str) -> None:
    _put_blob(out, s.encode(_ENC, _ERRS), what)


def _put_blob(out: bytearray, b, what: str) -> None:
    n = len(b)
    if n > INT32_MAX:
        raise ProtocolError("%s is %d bytes, more than a frame can carry (%d)" % (what, n, INT32_MAX))
    out += _INT.pack(n)
    out += b


def encode_response(resp: Response) -> bytes:
    """The bytes of a response frame (also used for load responses, which carry no
    predictions). Raises ProtocolError when a field is too long for an int32 length."""
    out = bytearray()
    out += _INT.pack(resp.code)
    _put_str(out, resp.message, "response message")
    for p in resp.predictions:
        _put_str(out, p.request_id, "request id")
        _put_str(out, p.content_type or "", "content type")
        out += _INT.pack(p.status)
        _put_str(out, p.reason or "", "reason phrase")
        out += _INT.pack(len(p.headers))
        for k, v in p.headers.items():
            _put_str(out, k, "response header name")
            _put_str(out, v, "response header value")
        _put_blob(out, p.body, "response body")
    out += _INT.pack(END_OF_LIST)
    return bytes(out)


def encode_load_response(code: int, message: str) -> bytes:
    """A load response: code, message, and an empty prediction list."""
    return encode_response(Response(code, message))


# ---------------------------------------------------------------- frontend side


def encode_load(req: LoadRequest) -> bytes:
    """The bytes of an 'L' frame, as the frontend sends it."""
    out = bytearray(CMD_LOAD)
    _put_str(out, req.model_name, "model name")
    _put_str(out, req.model_path, "model path")
    out += _INT.pack(req.batch_size)
    _put_str(out, req.handler or "", "handler")
    out += _INT.pack(req.gpu_id)
    _put_str(out, req.envelope or "", "envelope")
    out += b"\x01" if req.limit_max_image_pixels else b"\x00"
    return bytes(out)


def encode_inference(batch: List[InferenceRequest]) -> bytes:
    """The bytes of an 'I' frame carrying the requests of one batch."""
    if not batch:
        raise ValueError("an inference frame needs at least one request")
    out = bytearray(CMD_INFERENCE)
    for req in batch:
        _put_str(out, req.request_id, "request id")
        for k, v in req.headers:
            _put_str(out, k, "header name")
            _put_str(out, v, "header value")
        out += _INT.pack(END_OF_LIST)
        for p in req.parameters:
            _put_str(out, p.name, "parameter name")
            _put_str(out, p.content_type or "", "content type")
            _put_blob(out, p.value, "parameter value")
        out += _INT.pack(END_OF_LIST)
    out += _INT.pack(END_OF_LIST)
    return bytes(out)


def read_response(reader: Reader, limits: Optional[Limits] = None) -> Response:
    """Reads one response frame sent by the worker (what wick's C side does)."""
    f = _Frame(reader, limits or Limits())
    code = f.int("response code")
    message = f.string("response message")
    resp = Response(code, message)
    while True:
        rid = f.string("request id", allow_end=True)
        if rid is None:
            break
        if len(resp.predictions) == f.lim.max_requests:
            raise ProtocolError("more than %d predictions in one response" % f.lim.max_requests)
        p = Prediction(rid)
        p.content_type = f.string("content type")
        p.status = f.int("status code")
        p.reason = f.string("reason phrase")
        count = f.int("response header count")
        if count < 0 or count > f.lim.max_items:
            raise ProtocolError(
                "response header count is %d, expected 0..%d" % (count, f.lim.max_items)
            )
        for _ in range(count):
            k = f.string("response header name")
            p.headers[k] = f.string("response header value")
        p.body = f.blob("response body")
        resp.predictions.append(p)
    return resp


def decode_request(data: bytes, limits: Optional[Limits] = None):
    """read_request on bytes that must hold exactly one frame."""
    r = BytesReader(data)
    out = read_request(r, limits)
    if not r.at_end():
        raise ProtocolError("%d bytes left after the frame" % (len(data) - r._pos))
    return out


def decode_response(data: bytes, limits: Optional[Limits] = None) -> Response:
    """read_response on bytes that must hold exactly one frame."""
    r = BytesReader(data)
    out = read_response(r, limits)
    if not r.at_end():
        raise ProtocolError("%d bytes left after the frame" % (len(data) - r._pos))
    return out
