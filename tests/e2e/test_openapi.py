"""End-to-end: the API description (OPTIONS / and GET /api-description, OpenAPI 3.0) of each
port. The document and the routers come from one route table (api/routes.c; that every
route is reached by its own path is tests/unit/api/test_routes.c's job), so this checks
what a client sees: a fixed list of real requests is described and answered, paths outside
the document get 404, and the description needs no token, as in TorchServe."""
import json
import re

import pytest

import test_auth as auth_tests
from conftest import pack, request
from models import MLP, save_script

PORTS = ("inference", "management", "metrics")
METHODS = ("get", "post", "put", "delete", "options")

# Requests a client really sends, per port: each must be described by the document.
REAL_ROUTES = {
    "inference": [
        ("GET", "/ping"), ("POST", "/ping"),
        ("POST", "/predictions/mlp"), ("PUT", "/predictions/mlp"),
        ("POST", "/predictions/mlp/1.0"), ("POST", "/explanations/mlp"),
        ("POST", "/explanations/mlp/1.0"),
        ("GET", "/v1/models"), ("GET", "/v1/models/mlp"),
        ("POST", "/v1/models/mlp:predict"), ("POST", "/v1/models/mlp:explain"),
        ("GET", "/v2"), ("GET", "/v2/health/live"), ("GET", "/v2/health/ready"),
        ("GET", "/v2/models/mlp"), ("GET", "/v2/models/mlp/ready"),
        ("POST", "/v2/models/mlp/infer"), ("GET", "/v2/models/mlp/versions/1.0"),
        ("GET", "/v2/models/mlp/versions/1.0/ready"),
        ("POST", "/v2/models/mlp/versions/1.0/infer"),
        ("OPTIONS", "/"), ("GET", "/api-description"),
    ],
    "management": [
        ("GET", "/models"), ("POST", "/models"), ("GET", "/models/mlp"),
        ("PUT", "/models/mlp"), ("DELETE", "/models/mlp"), ("GET", "/models/mlp/1.0"),
        ("GET", "/models/mlp/all"), ("PUT", "/models/mlp/1.0"), ("DELETE", "/models/mlp/1.0"),
        ("PUT", "/models/mlp/1.0/set-default"), ("OPTIONS", "/"), ("GET", "/api-description"),
        ("GET", "/"), ("GET", "/status"), ("GET", "/status.json"),
    ],
    "metrics": [("GET", "/metrics"), ("OPTIONS", "/"), ("GET", "/api-description")],
}

# Paths that no route answers: 404 whatever the method.
NOT_ROUTES = {
    "inference": ["/nothing", "/predictions", "/explanations", "/predictions/mlp/1.0/x",
                  "/v1", "/v2/models", "/v2/health", "/models", "/metrics", "/api-description/x"],
    "management": ["/nothing", "/ping", "/predictions/mlp", "/models/mlp/1.0/x",
                   "/metrics", "/v2/health/live", "/api-description/x"],
    "metrics": ["/nothing", "/ping", "/models", "/metrics/x", "/api-description/x"],
}


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """mlp.mar (mlp 1.0) and mlp_v2.mar (mlp 2.0)."""
    d = tmp_path_factory.mktemp("store")
    src = tmp_path_factory.mktemp("src")
    save_script(MLP, src / "mlp.pt")
    pack(d, "mlp", src / "mlp.pt")
    pack(d, "mlp", src / "mlp.pt", version="2.0")
    (d / "mlp.mar").rename(d / "mlp_v2.mar")
    pack(d, "mlp", src / "mlp.pt")
    return d


def describe(port, method="OPTIONS", path="/", headers=None):
    r = request(port, method, path, headers=headers)
    assert r.status == 200, r
    assert r.headers.get("Content-Type", "").startswith("application/json"), r.headers
    return r.json()


def template_regex(template):
    """'/v1/models/{model_name}:predict' -> a regex matching concrete paths."""
    parts = re.split(r"(\{[^}]+\})", template)
    return re.compile("^" + "".join("[^/:]+" if p.startswith("{") else re.escape(p)
                                    for p in parts) + "$")


def described(doc, method, path):
    return any(method.lower() in ops and template_regex(t).match(path)
               for t, ops in doc["paths"].items())


def check_document(doc, title):
    assert doc["openapi"].startswith("3.0."), doc["openapi"]
    assert doc["info"]["title"] == title and doc["info"]["version"], doc["info"]
    assert isinstance(doc["paths"], dict) and doc["paths"]
    for template, ops in doc["paths"].items():
        assert template.startswith("/"), template
        assert ops and set(ops) <= set(METHODS), (template, ops)
        for op in ops.values():
            assert op["operationId"] and op["responses"], (template, op)
            names = {p["name"] for p in op["parameters"] if p["in"] == "path"}
            assert names == set(re.findall(r"\{([^}]+)\}", template)), (template, names)
    ids = [op["operationId"] for ops in doc["paths"].values() for op in ops.values()]
    assert len(ids) == len(set(ids)), ids


def routing_miss(reply):
    """True when the reply says that no route matched (404) or the method is wrong (405).
    A 404 that names a missing model comes from a route and does not count."""
    if reply.status == 405:
        return True
    if reply.status != 404:
        return False
    text = reply.body.decode(errors="replace")
    return "ResourceNotFoundException" in text or "is not a route of this server" in text


def test_each_port_describes_exactly_its_routes(serve, store):
    s = serve("--model-store", store, "--models", "mlp=mlp.mar", "--enable_model_api", "true")
    titles = {"inference": "wick inference API", "management": "wick management API",
              "metrics": "wick metrics API"}
    docs = {}
    for name in PORTS:
        port = s.ports[name]
        docs[name] = describe(port)
        assert describe(port, "GET", "/api-description") == docs[name]
        check_document(docs[name], titles[name])

    # Every real request is described, on its own port only, and the server answers it
    # (DELETEs are sent at the end, from the document).
    for name in PORTS:
        for method, path in REAL_ROUTES[name]:
            assert described(docs[name], method, path), (name, method, path)
            if method != "DELETE":
                r = request(s.ports[name], method, path)
                assert not routing_miss(r), (name, method, path, r)
    assert not described(docs["inference"], "GET", "/models")
    assert not described(docs["management"], "GET", "/ping")
    assert not described(docs["metrics"], "POST", "/predictions/mlp")
    assert "/token" not in docs["management"]["paths"]  # token authorization is off
    assert "security" not in docs["management"]

    # Unknown paths: 404 from every port, and none of them is described.
    for name in PORTS:
        for path in NOT_ROUTES[name]:
            assert not any(described(docs[name], m, path) for m in METHODS), (name, path)
            for method in ("GET", "POST"):
                r = request(s.ports[name], method, path)
                assert r.status == 404, (name, method, path, r)

    # Methods a path does not list: 405 with the ones it has.
    r = request(s.ports["inference"], "DELETE", "/v2/models/mlp/infer")
    assert r.status == 405 and r.headers.get("Allow") == "POST", r
    r = request(s.ports["inference"], "POST", "/v2/models/mlp")
    assert r.status == 405 and r.headers.get("Allow") == "GET", r


def test_model_api_off_leaves_out_register_and_unregister(serve, store):
    s = serve("--model-store", store, "--models", "mlp=mlp.mar")
    doc = describe(s.ports["management"], "GET", "/api-description")
    assert "post" not in doc["paths"]["/models"], doc["paths"]["/models"]
    assert "delete" not in doc["paths"]["/models/{model_name}"]
    assert "delete" not in doc["paths"]["/models/{model_name}/{model_version}"]
    assert set(doc["paths"]["/models/{model_name}"]) == {"get", "put"}
    # ... and the server indeed turns them away.
    assert s.mgmt("POST", "/models?url=mlp.mar").status == 405
    assert s.mgmt("DELETE", "/models/mlp").status == 405


def test_description_needs_no_token(tmp_path, store):
    w = auth_tests.Wick(tmp_path, "--model-store", store, "--models", "mlp=mlp.mar",
                        "--disable_token_authorization", "false")
    try:
        keys = json.loads((tmp_path / "key_file.json").read_text())
        assert w.mgmt("GET", "/models")[0] == 401  # the API itself needs the key
        assert w.infer("POST", "/predictions/mlp", {"data": [[0.0] * 16]})[0] == 401
        for port, title in ((w.ports["inference"], "wick inference API"),
                            (w.ports["management"], "wick management API")):
            for method, path in (("OPTIONS", "/"), ("GET", "/api-description")):
                doc = describe(port, method, path)
                check_document(doc, title)
                assert doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
                assert doc["security"] == [{"bearer": []}]
        mdoc = describe(w.ports["management"])
        assert "get" in mdoc["paths"]["/token"]
        assert "security" not in mdoc["paths"]["/models"]["get"]  # needs the key
        status, _, body = w.mgmt("GET", "/token?type=inference",
                                 {"Authorization": f"Bearer {keys['API']['key']}"})
        assert status == 200, body
        idoc = describe(w.ports["inference"])
        # The health probes and the description say that they need no token, and need none.
        for path in ("/ping", "/v2/health/live", "/v2/health/ready", "/api-description"):
            op = next(iter(idoc["paths"][path].values()))
            assert op["security"] == [], path
            method = next(iter(idoc["paths"][path])).upper()
            assert w.infer(method, path)[0] == 200, path
        assert "security" not in idoc["paths"]["/predictions/{model_name}"]["post"]
        # GET / on the management port (the status page for a browser, else the description)
        # needs no key; other methods on / need nothing either but are refused.
        status, _, body = w.mgmt("GET", "/")
        assert status == 200 and json.loads(body) == mdoc, body[:200]
        assert w.mgmt("POST", "/")[0] == 405
        assert w.infer("GET", "/")[0] == 405
    finally:
        assert w.stop() == 0, w.logs()[-4000:]
