"""TorchServe's request envelopes (`service_envelope` in config.properties): a wrapper around
a handler's entry point that unwraps what a protocol sends into the rows the handler reads
and wraps the handler's answers back into that protocol, as TorchServe's worker does.

    body      rows are each request's body; answers unchanged
    json      {"instances": [...]} of every request, one batch; {"predictions": [...]} each
    kserve    KServe v1: the first request's "instances" are the rows; one
              {"predictions"|"explanations": answers}
    kservev2  KServe v2: the first request's "inputs" (numbers shaped by "shape", a BYTES
              input its first element) are the rows; one v2 response whose outputs are the
              answers, named after the inputs

Like TorchServe's, the kserve and kservev2 envelopes read the first request of a batch
only: give such models batchSize 1 (or let wick's own KServe routes batch them, without an
envelope).
"""
import base64
import json


def _payload(row):
    """A request's body as an object: JSON bytes decoded."""
    body = row.get("data") or row.get("body") if isinstance(row, dict) else row
    if isinstance(body, (bytes, bytearray)):
        body = json.loads(bytes(body).decode("utf-8"))
    return body


def _b64_fields(value):
    """{"b64": "..."} anywhere in an instance becomes its bytes."""
    if isinstance(value, dict):
        if list(value) == ["b64"]:
            return base64.b64decode(value["b64"])
        return {k: _b64_fields(v) for k, v in value.items()}
    return value


def _shaped(flat, shape):
    """A flat list as nested lists of the given shape."""
    if not shape or len(shape) <= 1:
        return list(flat)
    step = 1
    for d in shape[1:]:
        step *= d
    return [_shaped(flat[i * step:(i + 1) * step], shape[1:]) for i in range(shape[0])]


def _flat(value):
    tolist = getattr(value, "tolist", None)
    if callable(tolist):
        value = tolist()
    if isinstance(value, (list, tuple)):
        out = []
        for v in value:
            out.extend(_flat(v))
        return out
    return [value]


def _datatype(values):
    if values and all(isinstance(v, bool) for v in values):
        return "BOOL"
    if values and all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return "INT64"
    if values and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return "FP32"
    return "BYTES"


def _explaining(context):
    return context.get_request_header(0, "explain") == "True"


def body_envelope(handle):
    def wrapped(data, context):
        if data is None:
            return handle(data, context)
        return handle([_payload(row) for row in data], context)
    return wrapped


def json_envelope(handle):
    def wrapped(data, context):
        if data is None:
            return handle(data, context)
        lengths, rows = [], []
        for row in data:
            instances = [_b64_fields(i) for i in (_payload(row) or {})["instances"]]
            lengths.append(len(instances))
            rows.extend(instances)
        answers = handle(rows, context) or []
        out, at = [], 0
        for n in lengths:
            out.append(json.dumps({"predictions": list(answers[at:at + n])}))
            at += n
        return out
    return wrapped


def kserve_envelope(handle):
    def wrapped(data, context):
        if data is None:
            return handle(data, context)
        rows = (_payload(data[0]) or {}).get("instances")
        answers = handle(rows, context)
        if not answers:
            return answers
        return [{"explanations" if _explaining(context) else "predictions": answers}]
    return wrapped


def kservev2_envelope(handle):
    def wrapped(data, context):
        if data is None:
            return handle(data, context)
        request = _payload(data[0]) or {}
        inputs = request.get("inputs") or []
        names = []
        for inp in inputs:
            names.append(inp.get("name"))
            if inp.get("datatype") == "BYTES":
                inp["data"] = inp["data"][0]
            else:
                inp["data"] = _shaped(list(inp.get("data") or []), inp.get("shape") or [])
        answers = handle(inputs, context)
        if not answers:
            return answers
        manifest_model = (getattr(context, "manifest", None) or {}).get("model") or {}
        outputs = []
        for i, answer in enumerate(answers):
            values = _flat(answer)
            outputs.append({"name": names[i] if i < len(names) else "output-%d" % i,
                            "datatype": _datatype(values), "shape": [len(values)], "data": values})
        response = {"id": request.get("id") or context.get_request_id(0),
                    "model_name": manifest_model.get("modelName", context.model_name),
                    "model_version": manifest_model.get("modelVersion"),
                    "outputs": outputs}
        return [response]
    return wrapped


ENVELOPES = {"body": body_envelope, "json": json_envelope, "kserve": kserve_envelope,
             "kservev2": kservev2_envelope}


def wrap(name, handle):
    """handle wrapped in the envelope name; KeyError for one wick does not know."""
    return ENVELOPES[name](handle)
