"""[11] part 14: schemathesis against each port's own OpenAPI description.

For every operation of the inference, management and metrics ports, schemathesis (PyPI)
generates requests from the description the running server hands out (OPTIONS /), ones the
schema allows and ones it does not (wrong types, missing parameters), and checks
the replies: no 5xx that the description does not list, status codes, content types,
headers and bodies as described. Hypothesis runs derandomized with a bounded number of
examples per operation, so a run is repeatable and takes a minute or so.

On the inference port the path parameters are drawn from the models that exist (a tensor
model and a Python handler) and names that do not, so predictions, explanations, metadata
and readiness are exercised past the 404. On the management port (and in Triton's
repository routes on the inference port) they stay random: a random name never unregisters
or rescales the models the other ports are being tested on.

Two checks are left out. negative_data_rejection on the management port: wick reads
TorchServe's management parameters as leniently as TorchServe does (limit=abc is the default
limit, logged), so requests the schema calls invalid are accepted there on purpose. And
positive_data_acceptance, which expects every request that the
schema allows to succeed. wick answers some of those 400 on purpose, for rules an OpenAPI
schema cannot state (max_worker below min_worker, a url that leaves the model store or that
names nothing, a url given in a JSON body instead of the query, a body the model's handler
cannot read)."""
import copy
import json

import pytest

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402
from hypothesis.errors import Unsatisfiable  # noqa: E402
from schemathesis import GenerationMode  # noqa: E402
from schemathesis import checks as st_checks  # noqa: E402

from conftest import SANITIZED, pack, request, run_wick  # noqa: E402
from models import MLP, save_script  # noqa: E402

EXAMPLES = 10 if SANITIZED else 25

ECHO = '''
def handle(data, context):
    if data is None:
        return None
    # any body at all: a handler that raised would be answered 503, as in TorchServe, and
    # that is the handler's fault, not the server's
    return [{"got": len(repr(row.get("body")))} for row in data]
'''


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from conftest import Server

    tmp = tmp_path_factory.mktemp("schemathesis")
    store = tmp / "store"
    store.mkdir()
    save_script(MLP, tmp / "mlp.pt")
    pack(store, "mlp", tmp / "mlp.pt")
    (tmp / "echo.py").write_text(ECHO)
    (tmp / "dummy.txt").write_text("x")
    run_wick("pack", "--model-name", "echo", "--version", "1.0", "--serialized-file",
             tmp / "dummy.txt", "--handler", f"{tmp / 'echo.py'}:handle", "--export-path", store,
             "-f")
    s = Server(["--model-store", store, "--models", "mlp=mlp.mar", "echo=echo.mar",
                "--enable_model_api", "true", "--quiet"], tmp / "wick.log")
    yield s
    rc = s.stop()
    assert rc == 0, s.logs()[-3000:]


def description(port):
    r = request(port, "OPTIONS", "/")
    assert r.status == 200, r
    return r.json()


def pin_path_params(doc, names, versions):
    """A copy of doc whose {model_name} and {model_version} take one of the given values,
    except in Triton's repository routes (load and unload stay on random names)."""
    doc = copy.deepcopy(doc)
    for path, ops in doc["paths"].items():
        if path.startswith("/v2/repository/"):
            continue
        for op in ops.values():
            for p in op.get("parameters", []):
                if p["in"] == "path" and p["name"] == "model_name":
                    p["schema"] = {"type": "string", "enum": names}
                elif p["in"] == "path" and p["name"] == "model_version":
                    p["schema"] = {"type": "string", "enum": versions}
    return doc


def run_schema(doc, port, excluded):
    schema = schemathesis.openapi.from_dict(doc)
    base = f"http://127.0.0.1:{port}"
    failures = {}
    ran = calls = 0
    for result, mode in ((r, m) for r in schema.get_all_operations() for m in GenerationMode):
        op = result.ok()
        label = f"{op.method.upper()} {op.path} ({mode.value})"

        @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
                  suppress_health_check=list(HealthCheck), phases=[Phase.explicit, Phase.generate],
                  print_blob=False)
        @given(op.as_strategy(generation_mode=mode))
        def one(case):
            nonlocal calls
            calls += 1
            try:
                case.call_and_validate(base_url=base, timeout=30, excluded_checks=excluded)
            except (Exception, BaseExceptionGroup) as e:  # noqa: BLE001 - collected, reported
                for sub in getattr(e, "exceptions", [e]):
                    title = str(sub).splitlines()[0] if str(sub) else type(sub).__name__
                    detail = getattr(sub, "message", "") or str(sub)
                    status = getattr(sub, "status_code", "")
                    failures.setdefault((label, title),
                                        f"{detail[:1200]}\nstatus {status}\n{case.as_curl_command()[:600]}")

        try:
            one()
        except Unsatisfiable:
            # nothing of this operation can be made invalid (no parameters, no body)
            assert mode == GenerationMode.NEGATIVE, label
            continue
        ran += 1
    return ran, calls, failures


@pytest.mark.badinput
@pytest.mark.parametrize("which", ["inference", "management", "metrics"])
def test_each_port_answers_as_it_describes_itself(server, which):
    port = server.ports[which]
    doc = description(port)
    if which == "inference":
        doc = pin_path_params(doc, ["mlp", "echo", "nosuch"], ["1.0", "9.9"])
    excluded = [st_checks.positive_data_acceptance]
    if which == "management":
        excluded.append(st_checks.negative_data_rejection)
    ran, calls, failures = run_schema(doc, port, excluded)
    assert ran >= {"inference": 50, "management": 14, "metrics": 3}[which], ran
    assert calls >= ran * 2, (ran, calls)
    assert not failures, "\n\n".join(f"{k[0]}: {k[1]}\n{v}" for k, v in failures.items())
    # and the server is still whole
    assert request(server.ports["inference"], "GET", "/ping").status == 200
    assert json.loads(request(server.ports["management"], "GET", "/models").body)["models"]
