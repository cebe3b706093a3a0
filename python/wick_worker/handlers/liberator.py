"""The `liberator` built-in: serves a torch_liberator deployment. The deployment is a
folder (the zip's one top-level folder, or the archive root of a .mar that `wick pack
--liberator-zip` wrote) holding deploy_snapshot.pt (the weights), the liberated model .py
(defining get_model_cls() and get_initkw(), or, from exports before 0.2, make()) and an
optional train_info.json. The model is get_model_cls()(**get_initkw()) with the snapshot's
state_dict loaded strictly (a netharn-style snapshot's model_state_dict/state_dict/weights
entry is unwrapped, a DataParallel "module." prefix dropped). The snapshot is read with
weights_only=True where torch has it; the .py is the deployment's own code and runs.
Requests and answers are the tensor handler's (JSON tensors in, nested lists out); an
input the model cannot run on (wrong shape or dtype) is answered 400, not 503.
"""

import importlib.util
import json
import logging
import os
import sys

import torch

from ..util import PredictionException
from ..device import select_device
from .base_handler import _gpu_id, load_state_dict
from .tensor_handler import TensorHandler

logger = logging.getLogger("wick_worker")

SNAPSHOT = "deploy_snapshot.pt"
TRAIN_INFO = "train_info.json"


def find_deployment(model_dir, manifest):
    """(snapshot path, model .py path, train_info path or None) of the deployment in
    model_dir: the manifest's serializedFile/modelFile when it names them, else the folder
    (model_dir or its one subfolder) that holds deploy_snapshot.pt."""
    section = (manifest or {}).get("model") or {}
    ser, mod = section.get("serializedFile"), section.get("modelFile")
    if ser and mod:
        folder = os.path.dirname(os.path.join(model_dir, ser))
        snap, py = os.path.join(model_dir, ser), os.path.join(model_dir, mod)
    else:
        candidates = [model_dir] + sorted(
            os.path.join(model_dir, d) for d in os.listdir(model_dir)
            if d != "MAR-INF" and os.path.isdir(os.path.join(model_dir, d)))
        folder = next((c for c in candidates if os.path.isfile(os.path.join(c, SNAPSHOT))), None)
        if folder is None:
            raise RuntimeError("no %s in %s or its subfolders: not a torch_liberator deployment"
                               % (SNAPSHOT, model_dir))
        snap = os.path.join(folder, SNAPSHOT)
        pys = [n for n in sorted(os.listdir(folder)) if n.endswith(".py") and n != "__init__.py"]
        defining = [p for p in pys if _defines(os.path.join(folder, p), "get_model_cls")]
        pys = defining or pys
        if len(pys) != 1:
            raise RuntimeError("%s: expected one liberated model .py beside %s, found %s"
                               % (folder, SNAPSHOT, pys or "none"))
        py = os.path.join(folder, pys[0])
    if not os.path.isfile(snap):
        raise RuntimeError("the deployment's weights %s are missing" % snap)
    if not os.path.isfile(py):
        raise RuntimeError("the deployment's model file %s is missing" % py)
    info = os.path.join(folder, TRAIN_INFO)
    return snap, py, (info if os.path.isfile(info) else None)


def _defines(path, name):
    with open(path, encoding="utf-8", errors="replace") as f:
        return ("def %s(" % name) in f.read()


def import_path(path):
    """Imports a .py by path under its own name (its folder goes on sys.path too)."""
    name = os.path.splitext(os.path.basename(path))[0]
    folder = os.path.dirname(os.path.abspath(path))
    if folder not in sys.path:
        sys.path.insert(0, folder)
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def snapshot_state(path, device):
    """The state_dict inside a deploy snapshot (plain, or netharn-style nested)."""
    state = load_state_dict(path, device)
    for key in ("model_state_dict", "state_dict", "weights"):
        if key in state and isinstance(state[key], dict):
            return state[key]
    if any(not torch.is_tensor(v) for v in state.values()):
        raise RuntimeError("%s is nested but has none of model_state_dict, state_dict, weights; "
                           "its keys are %s" % (os.path.basename(path), sorted(state)))
    return state


def build_model(py_path, snap_path, device):
    module = import_path(py_path)
    if callable(getattr(module, "get_model_cls", None)):
        cls = module.get_model_cls()
        initkw = module.get_initkw() if callable(getattr(module, "get_initkw", None)) else {}
        model = cls(**(initkw or {}))
    elif callable(getattr(module, "make", None)):
        model = module.make()
    else:
        raise RuntimeError("%s defines neither get_model_cls() nor make(): not a liberated model file"
                           % os.path.basename(py_path))
    state = snapshot_state(snap_path, device)
    own = model.state_dict()
    if state and own and all(k.startswith("module.") for k in state) and not all(
            k.startswith("module.") for k in own):
        state = {k[len("module."):]: v for k, v in state.items()}
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise RuntimeError("the weights in %s do not fit %s(**get_initkw()): %s"
                           % (os.path.basename(snap_path), type(model).__name__, e)) from e
    return model


class LiberatorHandler(TensorHandler):
    """TensorHandler over a torch_liberator deployment."""

    def initialize(self, context):
        self.context = context
        properties = context.system_properties
        self.device = select_device(_gpu_id(properties), getattr(context, "model_name", ""))
        self.map_location = self.device
        self.manifest = context.manifest
        model_dir = properties.get("model_dir")
        snap, py, info = find_deployment(model_dir, self.manifest)
        self.model = build_model(py, snap, self.device)
        self.model.to(self.device)
        self.model.eval()
        self.train_info = None
        if info:
            with open(info, encoding="utf-8") as f:
                try:
                    self.train_info = json.load(f)
                except ValueError as e:
                    logger.warning("%s is not valid JSON (%s); ignored", info, e)
        self.initialized = True
        logger.info("liberator: %s from %s, weights %s", type(self.model).__name__,
                    os.path.basename(py), os.path.relpath(snap, model_dir))

    def _forward(self, args, kwargs):
        try:
            return super()._forward(args, kwargs)
        except (RuntimeError, ValueError, TypeError, IndexError) as e:
            logger.warning("the model rejected an input", exc_info=True)
            shapes = ", ".join("[%s]" % ",".join(str(d) for d in a.shape) for a in args)
            shapes += "".join(", %s=[%s]" % (k, ",".join(str(d) for d in v.shape)) for k, v in kwargs.items())
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise PredictionException("the model cannot run on this input (%s): %s" % (shapes, first), 400) from None

    def handle(self, data, context):
        """The tensor handler's flow; when a batch fails on a client's request, each
        request is run on its own so that only the bad ones get their 400."""
        try:
            return super().handle(data, context)
        except PredictionException as e:
            if len(data) == 1 or not 400 <= e.error_code < 500:
                raise
        out = []
        for idx, row in enumerate(data):
            try:
                out.append(super().handle([row], context)[0])
            except PredictionException as e:
                if not 400 <= e.error_code < 500:
                    raise
                context.set_response_status(e.error_code, "Bad Request", idx)
                out.append({"code": e.error_code, "type": "BadRequestException", "message": e.message})
        return out
