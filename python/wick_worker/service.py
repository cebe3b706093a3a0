"""One loaded model inside the worker: turns an inference batch into the handler's
`data` list and `Context`, calls the handler, maps its failures to status codes as
TorchServe does, and encodes its results into a response frame. No socket I/O except
send_intermediate_predict_response, which writes on the connection the context holds.

Results: bytes/bytearray as they are, str as UTF-8, anything else as JSON (tensors and
numpy arrays as nested lists, also inside lists and dicts); a str or bytes result the
handler gave no content type is labelled JSON when it parses as JSON, else text/plain
(UTF-8) or application/octet-stream. Failures of the whole batch:
MemoryError or CUDA out-of-memory -> 507 "Out of resources"; PredictionException ->
its error_code and message; any other exception -> 503 "Prediction failed" (traceback
to the log only); a result that is not a list or not one per request -> 503.
"""

import json
import logging
import os
import time
import traceback

from . import protocol
from .context import RequestProcessor
from .util import PredictionException

logger = logging.getLogger("wick_worker")

PREDICTION_METRIC = "PredictionTime"


def _media_type(content_type):
    return (content_type or "").split(";", 1)[0].strip().lower()


def decode_value(content_type, value):
    """A parameter's value as the handler sees it, as TorchServe's worker gives it: JSON
    bodies decoded to objects, text/* as str, anything else (or anything that fails to
    decode) as a bytearray (TorchServe's type; tests/compat found wick gave bytes)."""
    if os.environ.get("TS_DECODE_INPUT_REQUEST", "true").lower() == "false":
        return bytearray(value)
    mt = _media_type(content_type)
    if mt == "application/json":
        try:
            return json.loads(value.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as e:
            logger.warning("a JSON body did not parse (%s); the handler gets the raw bytes", e)
            return bytearray(value)
    if mt.startswith("text"):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError as e:
            logger.warning("a text body is not UTF-8 (%s); the handler gets the raw bytes", e)
            return bytearray(value)
    return bytearray(value)


def build_inputs(batch):
    """[InferenceRequest] -> (request processors, data list, {index: request id})."""
    processors, data, ids = [], [], {}
    for idx, req in enumerate(batch):
        headers = {}
        row = {}
        for p in req.parameters:
            row[p.name] = decode_value(p.content_type, p.value)
            headers[p.name] = {"content-type": p.content_type}
        for k, v in req.headers:
            headers[k] = v
        processors.append(RequestProcessor(headers))
        data.append(row)
        ids[idx] = req.request_id
    return processors, data, ids


def _json_default(obj):
    tolist = getattr(obj, "tolist", None)  # torch.Tensor, numpy arrays and scalars
    if callable(tolist):
        return tolist()
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    raise TypeError("a %s is not JSON serializable" % type(obj).__name__)


_JSON_STARTS = b'{["-0123456789tfn'


def _media_type_of(raw, text):
    """What a str or bytes answer is when the handler named no content type: JSON when it
    parses as JSON (handlers often return json.dumps(...)), else text when it is a str or
    UTF-8, else bytes. TorchServe sends such answers with no Content-Type at all; a label
    that is true beats none, and "OK" is no JSON."""
    head = raw[:64].lstrip()[:1]
    if head and head in _JSON_STARTS:
        try:
            json.loads(raw)
            return "application/json"
        except ValueError:
            pass
    if text:
        return "text/plain; charset=utf-8"
    try:
        raw.decode("utf-8")
        return "text/plain; charset=utf-8"
    except UnicodeDecodeError:
        return "application/octet-stream"


def encode_result(val):
    """(body bytes, content type to use when the handler set none)."""
    if isinstance(val, (bytes, bytearray, memoryview)):
        raw = bytes(val)
        return raw, _media_type_of(raw, False)
    if isinstance(val, str):
        raw = val.encode("utf-8")
        return raw, _media_type_of(raw, True)
    tolist = getattr(val, "tolist", None)
    if callable(tolist) and not isinstance(val, (list, dict)):
        val = tolist()
    return json.dumps(val, default=_json_default).encode("utf-8"), "application/json"


def error_response(req_id_map, message, code):
    """A response that fails every request of the batch with code and message."""
    preds = [
        protocol.Prediction(rid, "", code, "", {}, message.encode("utf-8"))
        for _, rid in sorted(req_id_map.items())
    ]
    return protocol.encode_response(protocol.Response(code, message, preds))


def create_predict_response(ret, req_id_map, message, code, context=None, ts_stream_next=False):
    """The response frame for results ret (one per request, in batch order). With
    ts_stream_next the frame is an intermediate one (more frames follow for the same
    requests): each prediction carries the header ts_stream_next: true; the final frame
    of a stream carries ts_stream_next: false."""
    if ret is None:
        return error_response(req_id_map, message, code)
    preds = []
    for idx, rid in sorted(req_id_map.items()):
        try:
            body, default_ct = encode_result(ret[idx])
        except (TypeError, ValueError) as e:
            logger.warning("result %d of the batch cannot be sent: %s", idx, e)
            return error_response(
                req_id_map,
                "Unsupported model output data type: result %d is a %s (%s); expected bytes, str or "
                "something JSON can encode" % (idx, type(ret[idx]).__name__, e),
                503,
            )
        status, reason, headers, ctype = code, "", {}, default_ct
        if context is not None:
            if ts_stream_next:
                context.set_response_header(idx, "ts_stream_next", "true")
            elif context.get_response_headers(idx).get("ts_stream_next") == "true":
                context.set_response_header(idx, "ts_stream_next", "false")
            sc, phrase = context.get_response_status(idx)
            status = sc if sc is not None else 200
            reason = phrase or ""
            headers = dict(context.get_response_headers(idx))
            named = context.get_response_content_type(idx)
            if not named:  # a Content-Type the handler set as a header counts as named
                named = next((v for k, v in headers.items() if k.lower() == "content-type"), None)
            ctype = named or default_ct
        preds.append(protocol.Prediction(rid, ctype, status, reason, headers, body))
    try:
        return protocol.encode_response(protocol.Response(code, message, preds))
    except protocol.ProtocolError as e:
        return error_response(req_id_map, "Prediction failed: %s" % e, 503)


def send_intermediate_predict_response(ret, req_id_map, message, code, context=None):
    """Sends an intermediate (streamed) response for the current batch right away; the
    handler's final return value ends the stream. TorchServe's function of the same name."""
    if context is None or context.cl_socket is None:
        raise RuntimeError("send_intermediate_predict_response needs the context of a batch being handled")
    context.cl_socket.sendall(create_predict_response(ret, req_id_map, message, code, context, True))


def _is_cuda_oom(ex):
    text = str(ex)
    return "CUDA" in text and ("out of memory" in text or "CUBLAS_STATUS_ALLOC_FAILED" in text
                               or "CUBLAS_STATUS_NOT_INITIALIZED" in text)


class Service:
    """A loaded handler and its context."""

    def __init__(self, context, entry_point):
        self.context = context
        self.entry_point = entry_point

    def predict(self, batch):
        """Runs the handler on one batch and returns the response frame's bytes."""
        processors, data, req_id_map = build_inputs(batch)
        ctx = self.context
        ctx.request_ids = req_id_map
        ctx.request_processor = processors
        if ctx.metrics is not None:
            ctx.metrics.request_ids = req_id_map
        start = time.time()
        try:
            ret = self.entry_point(data, ctx)
        except MemoryError:
            logger.error("out of memory in the handler\n%s", traceback.format_exc())
            return error_response(req_id_map, "Out of resources", 507)
        except PredictionException as e:
            logger.error("the handler raised PredictionException\n%s", traceback.format_exc())
            code = e.error_code if isinstance(e.error_code, int) and 100 <= e.error_code <= 999 else 500
            return error_response(req_id_map, str(e.message), code)
        except Exception as ex:  # the handler is user code: any failure is a reply
            if _is_cuda_oom(ex):
                logger.error("CUDA out of memory\n%s", traceback.format_exc())
                return error_response(req_id_map, "Out of resources", 507)
            logger.error("the handler raised\n%s", traceback.format_exc())
            return error_response(req_id_map, "Prediction failed", 503)
        if not isinstance(ret, list):
            logger.warning("the handler returned a %s, expected a list with one result per request", type(ret).__name__)
            return error_response(
                req_id_map,
                "Invalid model predict output: the handler returned a %s, expected a list with one "
                "result per request" % type(ret).__name__,
                503,
            )
        if len(ret) != len(data):
            logger.warning("number of batch response mismatched, expected %d, got %d", len(data), len(ret))
            return error_response(
                req_id_map,
                "number of batch response mismatched: the handler returned %d results for %d requests"
                % (len(ret), len(data)),
                503,
            )
        if ctx.metrics is not None:
            ctx.metrics.add_time(PREDICTION_METRIC, round((time.time() - start) * 1000, 2), None, "ms")
        return create_predict_response(ret, req_id_map, "Prediction success", 200, context=ctx)
