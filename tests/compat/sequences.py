"""The request sequences the differential harness runs against TorchServe and wick, in
order, on servers started with no model (tests/compat/harness.py). A step: method, path,
port (inference by default; management, metrics), body, headers. Models in the store:
mlp.mar and mlp2.mar (a TorchScript MLP with bench/handlers/mlp_handler.py, version 1.0),
mlp-v2.mar (the same MLP named mlp, version 2.0), failing.mar (a handler whose
initialisation raises: tests/compat/handlers/failing_handler.py).

The sequences with "needs" use TorchServe's own test archives (the .mar files of its
frontend tests, read from a snapshot of its repository at run time by `make compat`, never
committed: they hold TorchServe's code); they run only when those archives are in the
store, so `make test`, which has no snapshot, skips them and their recorded answers."""

ROW = {"data": [[0.5] * 16]}
REGISTER = "/models?url=mlp.mar&initial_workers=1&synchronous=true"


def step(method, path, port="inference", body=None, headers=None, sleep=None):
    s = {"method": method, "path": path, "port": port}
    if body is not None:
        s["body"] = body
    if headers is not None:
        s["headers"] = headers
    if sleep is not None:
        s["sleep"] = sleep
    return s


def mgmt(method, path, body=None):
    return step(method, path, "management", body)


def post_json(path, body):
    return step("POST", path, body=body, headers={"Content-Type": "application/json"})


V2_BODY = {"inputs": [{"name": "INPUT__0", "shape": [1, 16], "datatype": "FP32",
                       "data": [0.5] * 16}]}
MULTIPART = (b"--XyZ\r\nContent-Disposition: form-data; name=\"data\"\r\n\r\n"
             b'{"data": [[' + b", ".join([b"0.5"] * 16) + b"]]}\r\n--XyZ--\r\n")


SEQUENCES = [
    {"name": "ping", "steps": [step("GET", "/ping")]},
    {"name": "empty", "steps": [
        mgmt("GET", "/models"),
        mgmt("GET", "/models/mlp"),
        step("POST", "/predictions/mlp", body=ROW, headers={"Content-Type": "application/json"}),
    ]},
    {"name": "lifecycle", "steps": [
        mgmt("POST", REGISTER),
        mgmt("GET", "/models"),
        mgmt("GET", "/models/mlp"),
        mgmt("GET", "/models/mlp/1.0"),
        step("POST", "/predictions/mlp", body=ROW, headers={"Content-Type": "application/json"}),
        step("POST", "/predictions/mlp/1.0", body=ROW,
             headers={"Content-Type": "application/json"}),
        mgmt("PUT", "/models/mlp?min_worker=2&synchronous=true"),
        mgmt("GET", "/models/mlp"),
        mgmt("PUT", "/models/mlp/1.0/set-default"),
        mgmt("DELETE", "/models/mlp"),
        mgmt("GET", "/models/mlp"),
        step("POST", "/predictions/mlp", body=ROW, headers={"Content-Type": "application/json"}),
    ]},
    {"name": "register_errors", "steps": [
        mgmt("POST", "/models"),
        mgmt("POST", "/models?url=nothere.mar"),
        mgmt("POST", REGISTER),
        mgmt("POST", REGISTER),
        mgmt("DELETE", "/models/nothere"),
        mgmt("PUT", "/models/nothere?min_worker=1"),
        mgmt("PUT", "/models/mlp/9.9/set-default"),
        mgmt("DELETE", "/models/mlp"),
    ]},
    {"name": "paging", "steps": [
        mgmt("POST", "/models?url=mlp.mar&initial_workers=1&synchronous=true"),
        mgmt("POST", "/models?url=mlp2.mar&initial_workers=1&synchronous=true"),
        mgmt("GET", "/models?limit=1"),
        mgmt("GET", "/models?limit=1&next_page_token=1"),
        mgmt("DELETE", "/models/mlp2"),
    ]},
    {"name": "predict_errors", "steps": [
        step("POST", "/predictions/nothere", body=ROW,
             headers={"Content-Type": "application/json"}),
        step("POST", "/predictions/mlp/9.9", body=ROW,
             headers={"Content-Type": "application/json"}),
        step("POST", "/predictions/mlp", body=b"{not json",
             headers={"Content-Type": "application/json"}),
        step("GET", "/nothere"),
    ]},
    {"name": "describe_api", "steps": [
        step("OPTIONS", "/"),
        step("OPTIONS", "/", port="management"),
        mgmt("GET", "/api-description"),
    ]},
    {"name": "metrics", "steps": [
        step("POST", "/predictions/mlp", body=ROW, headers={"Content-Type": "application/json"}),
        step("GET", "/metrics", port="metrics", sleep=None),
    ]},
    {"name": "body_forms", "steps": [
        step("POST", "/predictions/mlp", body=b'{"data": [[' + b", ".join([b"0.5"] * 16) + b"]]}"),
        step("POST", "/predictions/mlp", body=b'{"data": [[' + b", ".join([b"0.5"] * 16) + b"]]}",
             headers={"Content-Type": "application/octet-stream"}),
        step("POST", "/predictions/mlp", body=b'{"data": [[' + b", ".join([b"0.5"] * 16) + b"]]}",
             headers={"Content-Type": "text/plain"}),
        step("POST", "/predictions/mlp", body=MULTIPART,
             headers={"Content-Type": "multipart/form-data; boundary=XyZ"}),
        step("POST", "/predictions/mlp", body=b"data=" + b'{"data": [[' +
             b"%2C".join([b"0.5"] * 16) + b"]]}",
             headers={"Content-Type": "application/x-www-form-urlencoded"}),
        step("POST", "/predictions/mlp", body=b"", headers={"Content-Type": "application/json"}),
        post_json("/predictions/mlp", {"data": [[0.5] * 3]}),
        post_json("/predictions/mlp", {"nodata": 1}),
    ]},
    {"name": "explanations", "steps": [
        post_json("/explanations/mlp", ROW),
        post_json("/explanations/nothere", ROW),
        post_json("/explanations/mlp/9.9", ROW),
    ]},
    {"name": "kserve", "steps": [
        post_json("/v1/models/mlp:predict", {"instances": [[0.5] * 16]}),
        post_json("/v1/models/mlp:explain", {"instances": [[0.5] * 16]}),
        post_json("/v1/models/nothere:predict", {"instances": [[0.5] * 16]}),
        post_json("/v2/models/mlp/infer", V2_BODY),
        post_json("/v2/models/mlp/explain", V2_BODY),
        post_json("/v2/models/nothere/infer", V2_BODY),
        step("GET", "/v2/health/live"),
        step("GET", "/v2/health/ready"),
        step("GET", "/v2"),
        step("GET", "/v2/models/mlp"),
        step("GET", "/v2/models/mlp/ready"),
        step("GET", "/v2/models/nothere"),
    ]},
    {"name": "legacy_routes", "steps": [
        post_json("/mlp/predict", ROW),
        post_json("/invocations?model_name=mlp", ROW),
        post_json("/models/mlp/invoke", ROW),
        post_json("/invocations", ROW),
        post_json("/nothere/predict", ROW),
        step("GET", "/api-description"),
        step("OPTIONS", "/predictions/mlp"),
        step("OPTIONS", "/models", port="management"),
    ]},
    {"name": "wrong_methods", "steps": [
        step("GET", "/predictions/mlp"),
        step("GET", "/predictions/nothere"),
        step("PUT", "/predictions/mlp", body=ROW),
        step("DELETE", "/ping"),
        mgmt("POST", "/models/mlp"),
        mgmt("POST", "/models/nothere"),
        mgmt("PATCH", "/models/mlp"),
        mgmt("GET", "/nothere"),
        step("GET", "/models", port="inference"),
    ]},
    {"name": "lenient_params", "steps": [
        mgmt("POST", "/models?url=mlp2.mar&batch_size=dd&initial_workers=1&synchronous=true"),
        mgmt("DELETE", "/models/mlp2"),
        mgmt("POST", "/models?url=mlp2.mar&initial_workers=-1&synchronous=true"),
        mgmt("DELETE", "/models/mlp2"),
        mgmt("POST", "/models?url=mlp2.mar&initial_workers=1&synchronous=-1"),
        mgmt("DELETE", "/models/mlp2"),
        mgmt("POST", "/models?url=mlp2.mar&initial_workers=1&synchronous=true&max_batch_delay=x"
                     "&response_timeout=abc&startup_timeout=0"),
        mgmt("GET", "/models/mlp2"),
        mgmt("PUT", "/models/mlp2?min_worker=-1&synchronous=true"),
        mgmt("PUT", "/models/mlp2?min_worker=2&max_worker=1&synchronous=true"),
        mgmt("PUT", "/models/mlp2?min_worker=1&timeout=-5&synchronous=true"),
        mgmt("GET", "/models?limit="),
        mgmt("GET", "/models?limit=abc"),
        mgmt("GET", "/models?limit=-1"),
        mgmt("GET", "/models?next_page_token=9"),
        mgmt("DELETE", "/models/mlp2"),
    ]},
    {"name": "more_management", "steps": [
        mgmt("GET", "/models/mlp?customized=true"),
        mgmt("PUT", "/models/mlp"),
        mgmt("PUT", "/models/mlp?synchronous=true&number_gpu=0"),
        mgmt("GET", "/token?type=inference"),
        mgmt("GET", "/models/mlp/all"),
        mgmt("GET", "/models/nothere/all"),
        step("POST", "/predictions/mlp", body=b"[" + b"0.5," * 2_000_000 + b"0.5]",
             headers={"Content-Type": "application/json"}),
        step("GET", "/metrics", port="inference"),
    ]},
    {"name": "versions", "steps": [
        mgmt("POST", "/models?url=mlp-v2.mar&initial_workers=1&synchronous=true"),
        mgmt("GET", "/models/mlp/all"),
        mgmt("GET", "/models/mlp/2.0"),
        post_json("/predictions/mlp/2.0", ROW),
        mgmt("PUT", "/models/mlp/2.0/set-default"),
        mgmt("GET", "/models/mlp"),
        mgmt("DELETE", "/models/mlp/2.0"),
        mgmt("PUT", "/models/mlp/1.0/set-default"),
        mgmt("DELETE", "/models/mlp/1.0"),
        mgmt("DELETE", "/models/mlp/2.0"),
        mgmt("GET", "/models/mlp/all"),
    ]},
    {"name": "failing_handler", "steps": [
        mgmt("POST", "/models?url=failing.mar&initial_workers=0&synchronous=true"),
        mgmt("GET", "/models/failing"),
        step("GET", "/ping"),
        post_json("/predictions/failing", ROW),
        mgmt("DELETE", "/models/failing"),
        mgmt("POST", "/models?url=failing.mar&initial_workers=1&synchronous=true"),
        mgmt("DELETE", "/models/failing"),
    ]},
    {"name": "metrics_filter", "steps": [
        step("GET", "/metrics?name[]=ts_inference_requests_total", port="metrics"),
        step("GET", "/metrics?name[]=nothere", port="metrics"),
    ]},
    {"name": "cleanup", "steps": [mgmt("DELETE", "/models/mlp")]},
    # TorchServe's own test archives (its frontend's ModelServerTest uses them)
    {"name": "ts_echo", "needs": ["echo.mar"], "steps": [
        mgmt("POST", "/models?url=echo.mar&initial_workers=1&synchronous=true"),
        # the handler reads entry["data"]: a raw body is named "body", so it raises
        step("POST", "/predictions/echo", body=b"hello", headers={"Content-Type": "text/plain"}),
        step("POST", "/predictions/echo", body=b"data=hello",
             headers={"Content-Type": "application/x-www-form-urlencoded"}),
        step("POST", "/predictions/echo",
             body=b"--B\r\nContent-Disposition: form-data; name=\"data\"\r\n\r\nhello\r\n--B--\r\n",
             headers={"Content-Type": "multipart/form-data; boundary=B"}),
        mgmt("GET", "/models/echo"),
        mgmt("DELETE", "/models/echo"),
    ]},
    {"name": "ts_noop_versions", "needs": ["noop.mar", "noop_v2.mar"], "steps": [
        mgmt("POST", "/models?url=noop.mar&initial_workers=1&synchronous=true"),
        step("POST", "/predictions/noop", body=b"hello", headers={"Content-Type": "text/plain"}),
        post_json("/predictions/noop/1.11", {"a": 1}),
        mgmt("POST", "/models?url=noop_v2.mar&initial_workers=1&synchronous=true"),
        mgmt("GET", "/models/noop/all"),
        mgmt("PUT", "/models/noop/1.2.1/set-default"),
        mgmt("GET", "/models/noop"),
        step("POST", "/predictions/noop", body=b"hello", headers={"Content-Type": "text/plain"}),
        mgmt("PUT", "/models/noop/1.11?min_worker=2&synchronous=true"),
        mgmt("GET", "/models/noop/1.11"),
        mgmt("DELETE", "/models/noop/1.11"),
        mgmt("DELETE", "/models/noop/1.2.1"),
        mgmt("GET", "/models/noop"),
    ]},
    {"name": "ts_customized", "needs": ["noop-customized.mar"], "steps": [
        mgmt("POST", "/models?url=noop-customized.mar&initial_workers=1&synchronous=true"),
        mgmt("GET", "/models/noop-customized?customized=true"),
        mgmt("DELETE", "/models/noop-customized"),
    ]},
    {"name": "ts_handler_errors", "needs": ["pred-custom-return-code.mar", "prediction-memory-error.mar",
                                            "error_batch.mar"], "steps": [
        mgmt("POST", "/models?url=pred-custom-return-code.mar&initial_workers=1&synchronous=true"),
        step("POST", "/predictions/pred-custom-return-code", body=b"x", headers={"Content-Type": "text/plain"}),
        mgmt("POST", "/models?url=prediction-memory-error.mar&initial_workers=1&synchronous=true"),
        step("POST", "/predictions/prediction-memory-error", body=b"x", headers={"Content-Type": "text/plain"}),
        mgmt("POST", "/models?url=error_batch.mar&initial_workers=1&synchronous=true"),
        step("POST", "/predictions/error_batch", body=b"x", headers={"Content-Type": "text/plain"}),
        mgmt("DELETE", "/models/pred-custom-return-code"),
        mgmt("DELETE", "/models/prediction-memory-error"),
        mgmt("DELETE", "/models/error_batch"),
    ]},
    {"name": "ts_load_errors", "needs": ["init-error.mar", "loading-memory-error.mar",
                                         "custom_python_dep.mar"], "steps": [
        mgmt("POST", "/models?url=init-error.mar&initial_workers=1&synchronous=true"),
        mgmt("POST", "/models?url=loading-memory-error.mar&initial_workers=1&synchronous=true"),
        # install_py_dep_per_model=false: its requirement is not installed, its import fails
        mgmt("POST", "/models?url=custom_python_dep.mar&initial_workers=1&synchronous=true"),
        step("GET", "/ping"),
    ]},
    {"name": "ts_entry_points", "needs": ["noop_entrypntfunc.mar", "noop_handlername.mar",
                                          "respheader-test.mar", "noop-no-manifest.mar"], "steps": [
        mgmt("POST", "/models?url=noop_entrypntfunc.mar&initial_workers=1&synchronous=true"),
        step("POST", "/predictions/noop_entrypntfunc", body=b"x", headers={"Content-Type": "text/plain"}),
        mgmt("POST", "/models?url=noop_handlername.mar&initial_workers=1&synchronous=true"),
        step("POST", "/predictions/noop_handlername", body=b"x", headers={"Content-Type": "text/plain"}),
        mgmt("POST", "/models?url=respheader-test.mar&initial_workers=1&synchronous=true"),
        post_json("/predictions/respheader-test", {"a": 1}),
        mgmt("POST", "/models?url=noop-no-manifest.mar&initial_workers=1&synchronous=true"),
        step("POST", "/predictions/noop-no-manifest", body=b"x", headers={"Content-Type": "text/plain"}),
        mgmt("GET", "/models"),
    ]},
]
