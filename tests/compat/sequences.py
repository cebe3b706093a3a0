"""The request sequences the differential harness runs against TorchServe and wick, in
order, on servers started with no model (tests/compat/harness.py). A step: method, path,
port (inference by default; management, metrics), body, headers. Models: mlp.mar and
mlp2.mar (a TorchScript MLP with bench/handlers/mlp_handler.py), in the model store."""

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
    {"name": "cleanup", "steps": [mgmt("DELETE", "/models/mlp")]},
]
