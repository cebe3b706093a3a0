"""What torch 2.x users export as TorchScript, served natively: a transformer encoder
(scaled_dot_product_attention, which libtorch 1.13 did not have), and models this libtorch
cannot run, refused with a message that names what is missing while other models serve."""
import concurrent.futures as cf
import zipfile

import pytest
import torch

from conftest import pack
from models import MLP, save_script
from test_serve import metric_values

TORCH_BASE = torch.__version__.split("+")[0]


def make_encoder():
    torch.manual_seed(0)
    layer = torch.nn.TransformerEncoderLayer(d_model=32, nhead=4, dim_feedforward=64,
                                             dropout=0.0, batch_first=True)
    return torch.nn.TransformerEncoder(layer, num_layers=2, enable_nested_tensor=False).eval()


def test_transformer_encoder_matches_torch_and_batches_equal_lengths(serve, tmp_path):
    enc = make_encoder()
    scripted = torch.jit.script(enc)
    # the scripted graph calls the operators torch 2.x added
    assert "scaled_dot_product_attention" in str(scripted.inlined_graph) or \
        "_transformer_encoder_layer_fwd" in str(scripted.inlined_graph)
    scripted.save(str(tmp_path / "enc.pt"))
    (tmp_path / "enc.yaml").write_text("minWorkers: 1\nmaxWorkers: 1\nbatchSize: 8\nmaxBatchDelay: 300\n")
    store = tmp_path / "store"
    store.mkdir()
    pack(store, "enc", tmp_path / "enc.pt", config=tmp_path / "enc.yaml")
    s = serve("--model-store", store, "--models", "enc=enc.mar")
    torch.manual_seed(5)
    # 12 requests of sequence length 5 and 12 of length 9: a batch holds one length only
    xs = [torch.randn(1, 5 if i % 2 == 0 else 9, 32) for i in range(24)]

    def one(i):
        return i, s.infer("POST", "/predictions/enc", {"data": xs[i].tolist()})

    with cf.ThreadPoolExecutor(24) as pool:
        replies = list(pool.map(one, range(24)))
    with torch.no_grad():
        for i, r in replies:
            assert r.status == 200, r
            got = torch.tensor(r.json())
            want = enc(xs[i])
            assert got.shape == want.shape, (got.shape, want.shape)
            assert (got - want).abs().max().item() <= 1e-5, (i, (got - want).abs().max().item())
    vals = metric_values(s.metrics().body.decode())
    labels = 'model_name="enc",model_version="1.0"'
    batches = vals[f"wick_batch_size_count{{{labels}}}"]
    assert vals[f"wick_batch_size_sum{{{labels}}}"] == 24
    assert batches < 24, vals  # equal lengths went through together
    assert batches >= 2  # and the two lengths never shared a batch (it would have failed)


def save_custom_op_model(path):
    """A scripted model that calls an operator defined in this Python process only."""
    lib = torch.library.Library("wicktest", "DEF")
    lib.define("twice(Tensor x) -> Tensor")
    lib.impl("twice", lambda x: x * 2, "CompositeExplicitAutograd")

    class UsesOp(torch.nn.Module):
        def forward(self, x):
            return torch.ops.wicktest.twice(x)

    torch.jit.script(UsesOp()).save(str(path))
    return lib  # keep the library alive while the model is saved


@pytest.mark.badinput
def test_missing_operator_is_a_load_error_naming_it_and_others_keep_serving(serve, tmp_path):
    keep = save_custom_op_model(tmp_path / "custom.pt")
    del keep
    save_script(MLP, tmp_path / "mlp.pt")
    store = tmp_path / "store"
    store.mkdir()
    pack(store, "custom", tmp_path / "custom.pt")
    pack(store, "mlp", tmp_path / "mlp.pt")
    s = serve("--model-store", store, "--models", "mlp=mlp.mar", "custom=custom.mar",
              "--enable_model_api", "true")
    assert s.infer("POST", "/predictions/custom", [[1.0]]).status == 404
    log = s.logs()
    assert "wicktest::twice" in log and f"libtorch {TORCH_BASE} does not have" in log, log[-3000:]
    r = s.mgmt("POST", "/models?url=custom.mar")
    assert r.status in (400, 500), r
    msg = r.json()["message"]
    assert "wicktest::twice" in msg and f"libtorch {TORCH_BASE}" in msg, msg
    assert s.infer("POST", "/predictions/mlp", [[0.5] * 16]).status == 200


@pytest.mark.badinput
def test_file_from_a_newer_torch_is_refused_naming_versions(serve, tmp_path):
    # A TorchScript archive records the file format version that wrote it; a newer torch
    # writes a higher one. Raise it past what this libtorch reads.
    save_script(MLP, tmp_path / "mlp.pt")
    with zipfile.ZipFile(tmp_path / "mlp.pt") as zin, \
            zipfile.ZipFile(tmp_path / "future.pt", "w", zipfile.ZIP_STORED) as zout:
        for info in zin.infolist():
            data = zin.read(info.filename)
            if info.filename.endswith("/version") or info.filename.endswith("/.data/version"):
                data = b"99\n"
            zout.writestr(info, data)
    save_script(MLP, tmp_path / "mlp.pt")
    store = tmp_path / "store"
    store.mkdir()
    pack(store, "future", tmp_path / "future.pt")
    pack(store, "mlp", tmp_path / "mlp.pt")
    s = serve("--model-store", store, "--models", "mlp=mlp.mar", "--enable_model_api", "true")
    r = s.mgmt("POST", "/models?url=future.mar")
    assert r.status in (400, 500), r
    msg = r.json()["message"]
    assert "newer torch" in msg and f"libtorch {TORCH_BASE}" in msg and "99" in msg, msg
    assert s.infer("POST", "/predictions/mlp", [[0.5] * 16]).status == 200
