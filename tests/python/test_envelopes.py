"""TorchServe's request envelopes (service_envelope) in wick's worker: what a handler
sees, and what comes back, for body, json, kserve and kservev2."""
import base64
import json

import pytest

from wick_worker import envelopes


class Ctx:
    model_name = "m"
    manifest = {"model": {"modelName": "m", "modelVersion": "2.0"}}

    def __init__(self, explain=False):
        self.explain = explain

    def get_request_header(self, idx, key):
        return "True" if key == "explain" and self.explain else None

    def get_request_id(self, idx=0):
        return "req-%d" % idx


def echo(data, context):
    echo.seen = data
    return None if data is None else [{"got": row} for row in data]


def test_body_hands_over_each_body():
    h = envelopes.wrap("body", echo)
    out = h([{"body": bytearray(b'{"a": 1}')}, {"data": [1, 2]}], Ctx())
    assert echo.seen == [{"a": 1}, [1, 2]] and out == [{"got": {"a": 1}}, {"got": [1, 2]}]
    assert h(None, Ctx()) is None  # the load-time call passes through


def test_json_joins_instances_and_splits_answers():
    def kinds(data, context):
        kinds.seen = data
        return [type(row).__name__ for row in data]
    h = envelopes.wrap("json", kinds)
    b64 = base64.b64encode(b"\x00\x01").decode()
    out = h([{"body": {"instances": [1, 2]}}, {"body": {"instances": [{"b64": b64}]}}], Ctx())
    assert kinds.seen == [1, 2, b"\x00\x01"]  # one batch of every request's instances
    assert [json.loads(o) for o in out] == [{"predictions": ["int", "int"]}, {"predictions": ["bytes"]}]


def test_kserve_unwraps_instances_and_wraps_predictions():
    h = envelopes.wrap("kserve", echo)
    out = h([{"body": bytearray(b'{"instances": [[1, 2], [3, 4]]}')}], Ctx())
    assert echo.seen == [[1, 2], [3, 4]]
    assert out == [{"predictions": [{"got": [1, 2]}, {"got": [3, 4]}]}]
    out = h([{"body": {"instances": [5]}}], Ctx(explain=True))
    assert out == [{"explanations": [{"got": 5}]}]


def test_kservev2_shapes_inputs_and_names_outputs():
    def double(data, context):
        return [[2 * v for row in inp["data"] for v in row] for inp in data]
    h = envelopes.wrap("kservev2", double)
    req = {"id": "r9", "inputs": [{"name": "x", "shape": [2, 2], "datatype": "FP32",
                                   "data": [1, 2, 3, 4]}]}
    out = h([{"body": json.dumps(req).encode()}], Ctx())
    assert out == [{"id": "r9", "model_name": "m", "model_version": "2.0",
                    "outputs": [{"name": "x", "datatype": "INT64", "shape": [4], "data": [2, 4, 6, 8]}]}]


def test_an_unknown_envelope_is_refused():
    with pytest.raises(KeyError):
        envelopes.wrap("soap", echo)
