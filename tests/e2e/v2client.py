"""A small Open Inference Protocol (KServe v2) client written from the spec, for the tests
and the bench: JSON requests, and the binary tensor data extension both ways."""
import json
import struct

import torch

DTYPES = {
    "BOOL": torch.bool, "UINT8": torch.uint8, "INT8": torch.int8, "INT16": torch.int16,
    "INT32": torch.int32, "INT64": torch.int64, "FP16": torch.float16, "FP32": torch.float32,
    "FP64": torch.float64, "BF16": torch.bfloat16,
}
NAMES = {v: k for k, v in DTYPES.items()}


def tensor_bytes(t):
    """Row-major little-endian bytes of t (the host is little-endian)."""
    t = t.contiguous()
    if t.dtype == torch.bfloat16:
        return t.view(torch.int16).numpy().tobytes()
    return t.numpy().tobytes()


def bytes_elems(elems):
    return b"".join(struct.pack("<I", len(e)) + e for e in elems)


def request(inputs, outputs=None, binary_inputs=False, binary_output=None, id=None, parameters=None):
    """inputs: [(name, tensor or list of bytes)]. Returns (body, headers)."""
    desc, blobs = [], []
    for name, value in inputs:
        if isinstance(value, torch.Tensor):
            d = {"name": name, "shape": list(value.shape), "datatype": NAMES[value.dtype]}
            if binary_inputs:
                blob = tensor_bytes(value)
                d["parameters"] = {"binary_data_size": len(blob)}
                blobs.append(blob)
            else:
                d["data"] = value.flatten().tolist()
        else:
            d = {"name": name, "shape": [len(value)], "datatype": "BYTES"}
            if binary_inputs:
                blob = bytes_elems(value)
                d["parameters"] = {"binary_data_size": len(blob)}
                blobs.append(blob)
            else:
                d["data"] = [v.decode() if isinstance(v, bytes) else v for v in value]
        desc.append(d)
    doc = {"inputs": desc}
    if id is not None:
        doc["id"] = id
    params = dict(parameters or {})
    if binary_output is not None:
        params["binary_data_output"] = binary_output
    if params:
        doc["parameters"] = params
    if outputs is not None:
        doc["outputs"] = [o if isinstance(o, dict) else {"name": o} for o in outputs]
    head = json.dumps(doc).encode()
    headers = {"Content-Type": "application/json"}
    if blobs:
        headers = {"Content-Type": "application/octet-stream", "Inference-Header-Content-Length": str(len(head))}
    return head + b"".join(blobs), headers


def parse_response(body, headers):
    """(json document, {output name: tensor or [bytes]}) from a v2 response."""
    n = int(headers.get("Inference-Header-Content-Length", len(body)))
    doc = json.loads(body[:n])
    rest = body[n:]
    out = {}
    for o in doc["outputs"]:
        size = (o.get("parameters") or {}).get("binary_data_size")
        if o["datatype"] == "BYTES":
            if size is None:
                out[o["name"]] = [d.encode() if isinstance(d, str) else d for d in o["data"]]
            else:
                blob, rest = rest[:size], rest[size:]
                elems = []
                while blob:
                    (l,) = struct.unpack("<I", blob[:4])
                    elems.append(blob[4:4 + l])
                    blob = blob[4 + l:]
                out[o["name"]] = elems
            continue
        dt = DTYPES[o["datatype"]]
        if size is None:
            t = torch.tensor(o["data"], dtype=dt).reshape(o["shape"])
        else:
            blob, rest = rest[:size], rest[size:]
            if dt == torch.bfloat16:
                t = torch.frombuffer(bytearray(blob), dtype=torch.int16).view(torch.bfloat16)
            else:
                t = torch.frombuffer(bytearray(blob), dtype=dt) if blob else torch.empty(0, dtype=dt)
            t = t.reshape(o["shape"])
        out[o["name"]] = t
    assert not rest, "binary data left over after the outputs"
    return doc, out
