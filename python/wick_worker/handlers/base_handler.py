"""BaseHandler: TorchServe's base handler contract for wick's worker. initialize() picks
the device (cuda:<gpu_id> when CUDA is present and a GPU was assigned, else CPU) and
loads the model: the manifest's modelFile (a .py defining exactly one nn.Module class)
plus serializedFile as its state_dict (torch.load with weights_only=True where torch has
it), or, without modelFile, serializedFile as TorchScript, as an AOTInductor package
(.pt2 from aoti_compile_and_package: torch._inductor.aoti_load_package), as a
torch.export.save'd ExportedProgram (torch.export.load(...).module()), or, as TorchServe
0.12 does with `pt2: {export: {aot_compile: true}}`, as a .so from torch._export.aot_compile.
The model config's `pt2` key compiles the model as TorchServe 0.12 does: `pt2: {compile:
{enable: true, backend: ..., mode: ...}}`, or the older `pt2: "inductor"` / `pt2: {backend:
...}`; a compile that fails is logged and the model runs uncompiled. handle() runs
preprocess -> inference (under torch.inference_mode) -> postprocess, or explain_handle
when the request header `explain` is "True". No ONNX, TensorRT or IPEX paths.
"""

import abc
import importlib
import inspect
import logging
import os
import time
import zipfile

import torch

from ..device import select_device
from ..util import list_classes_from_module, load_label_mapping
from .timer import timed

logger = logging.getLogger("wick_worker")

_HAS_WEIGHTS_ONLY = "weights_only" in inspect.signature(torch.load).parameters


def is_torchscript(path):
    """True when path is a TorchScript archive (a zip holding constants.pkl or code/)."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as z:
        for name in z.namelist():
            parts = name.split("/")
            if len(parts) >= 2 and (parts[1] == "code" or parts[-1] == "constants.pkl"):
                return True
    return False


def pt2_kind(path):
    """"aoti" for an AOTInductor package, "exported" for a torch.export.save'd
    ExportedProgram, None for anything else."""
    if not zipfile.is_zipfile(path):
        return None
    with zipfile.ZipFile(path) as z:
        names = z.namelist()
    parts = [n.split("/") for n in names]
    if any(len(p) > 3 and p[1:3] == ["data", "aotinductor"] for p in parts):
        return "aoti"
    if any(len(p) > 2 and p[1] == "models" and p[-1].endswith(".json") for p in parts):
        return "exported"
    return None


def compile_options(pt2_value):
    """torch.compile's keyword arguments from a model config's `pt2` value, as TorchServe
    0.12 reads it, or None when it asks for no compile."""
    if isinstance(pt2_value, dict) and "compile" in pt2_value:
        options = dict(pt2_value["compile"] or {})
        if options.pop("enable", False) is not True:
            return None
        return options
    if isinstance(pt2_value, dict) and "export" in pt2_value:
        return None
    if isinstance(pt2_value, str):
        logger.warning("pt2: \"%s\" is TorchServe's older form; use pt2: {compile: {enable: "
                       "true, backend: %s}}", pt2_value, pt2_value)
        return {"backend": pt2_value}
    if isinstance(pt2_value, dict):
        logger.warning("pt2: {backend: ...} is TorchServe's older form; use pt2: {compile: "
                       "{enable: true, ...}}")
        return dict(pt2_value)
    raise ValueError("pt2 should be a string or a mapping, got %r" % (pt2_value,))


def load_state_dict(path, map_location):
    """torch.load of a state_dict file, safely where this torch can (weights_only)."""
    try:
        if _HAS_WEIGHTS_ONLY:
            obj = torch.load(path, map_location=map_location, weights_only=True)
        else:
            obj = torch.load(path, map_location=map_location)
    except Exception as e:  # torch raises several types for a bad file
        raise RuntimeError(
            "serializedFile %s could not be read as a state_dict%s: %s"
            % (os.path.basename(path), " with weights_only=True (a whole pickled model is refused; "
               "save model.state_dict() instead)" if _HAS_WEIGHTS_ONLY else "", e)
        ) from e
    if not isinstance(obj, dict):
        raise RuntimeError(
            "serializedFile %s holds a %s, expected a state_dict (a dict of tensors)"
            % (os.path.basename(path), type(obj).__name__)
        )
    return obj



def _gpu_id(properties):
    """The worker's GPU from its system properties, or None."""
    gpu_id = properties.get("gpu_id")
    return None if gpu_id is None else int(gpu_id)


class BaseHandler(abc.ABC):
    """Base class for handlers; subclasses override preprocess/inference/postprocess."""

    def __init__(self):
        self.model = None
        self.mapping = None
        self.device = None
        self.initialized = False
        self.context = None
        self.model_pt_path = None
        self.manifest = None
        self.map_location = None
        self.explain = False
        self.target = 0
        self.model_yaml_config = {}

    def initialize(self, context):
        """Loads the model described by the manifest; see the module docstring."""
        self.context = context
        self.model_yaml_config = getattr(context, "model_yaml_config", None) or {}
        properties = context.system_properties
        self.device = select_device(_gpu_id(properties), getattr(context, "model_name", ""))
        self.map_location = self.device.type

        self.manifest = context.manifest
        if not self.manifest or not isinstance(self.manifest.get("model"), dict):
            raise RuntimeError(
                "the model directory has no MAR-INF/MANIFEST.json with a \"model\" section; "
                "BaseHandler needs it to find serializedFile/modelFile"
            )
        model_dir = properties.get("model_dir")
        serialized = self.manifest["model"].get("serializedFile")
        self.model_pt_path = os.path.join(model_dir, serialized) if serialized else None
        if self.model_pt_path and not os.path.isfile(self.model_pt_path):
            raise RuntimeError("serializedFile %r is not in the model directory %s" % (serialized, model_dir))
        model_file = self.manifest["model"].get("modelFile", "")

        if model_file:
            self.model = self._load_pickled_model(model_dir, model_file, self.model_pt_path)
            self.model.to(self.device)
            self.model.eval()
        elif self.model_pt_path and is_torchscript(self.model_pt_path):
            self.model = self._load_torchscript_model(self.model_pt_path)
            self.model.eval()
        elif self.model_pt_path and pt2_kind(self.model_pt_path) == "aoti":
            self.model = torch._inductor.aoti_load_package(self.model_pt_path)
            logger.info("loaded the AOTInductor package %s", serialized)
        elif self.model_pt_path and pt2_kind(self.model_pt_path) == "exported":
            self.model = torch.export.load(self.model_pt_path).module()
            logger.info(
                "loaded the ExportedProgram %s into Python; wick serves it natively once "
                "compiled: wick pack --aot-compile", serialized)
        elif self.model_pt_path and self.model_pt_path.endswith(".so") and self._aot_compile():
            # TorchServe 0.12: a .so from torch._export.aot_compile
            if self.device.type == "cuda":
                torch.cuda.set_device(self.device)
            self.model = torch._export.aot_load(self.model_pt_path, self.device.type)
        elif self.model_pt_path:
            raise RuntimeError(
                "serializedFile %r is not TorchScript, and the manifest names no modelFile: an eager "
                "model needs modelFile (the .py with its nn.Module class) and a state_dict" % serialized
            )
        else:
            raise RuntimeError("no model to load: the manifest names neither serializedFile nor modelFile")

        self._compile()
        self.mapping = load_label_mapping(os.path.join(model_dir, "index_to_name.json"))
        self.initialized = True

    def _aot_compile(self):
        """Whether the model config says pt2: {export: {aot_compile: true}}."""
        pt2_value = self.model_yaml_config.get("pt2")
        export = pt2_value.get("export") if isinstance(pt2_value, dict) else None
        return isinstance(export, dict) and export.get("aot_compile") is True

    def _compile(self):
        """torch.compile as the model config's pt2 key asks; on failure the model runs as it is."""
        if "pt2" not in self.model_yaml_config:
            return
        options = compile_options(self.model_yaml_config["pt2"])
        if options is None:
            return
        backend = options.get("backend")
        if backend is not None and backend not in torch._dynamo.list_backends(exclude_tags=()):
            logger.warning("pt2: backend %r is not one of this torch's (%s): not compiled",
                           backend, ", ".join(torch._dynamo.list_backends()))
            return
        described = ", ".join("%s %s" % kv for kv in options.items()) or "torch's defaults"
        try:
            self.model = torch.compile(self.model, **options)
            logger.info("compiled the model with %s", described)
        except Exception as e:  # TorchServe goes on uncompiled, and so does wick
            logger.warning("compiling the model with %s failed, running it uncompiled: %s",
                           described, e)

    def _load_torchscript_model(self, model_pt_path):
        return torch.jit.load(model_pt_path, map_location=self.device)

    def _load_pickled_model(self, model_dir, model_file, model_pt_path):
        """Instantiates the one nn.Module class of model_file and loads the state_dict."""
        path = os.path.join(model_dir, model_file)
        if not os.path.isfile(path):
            raise RuntimeError("modelFile %r is not in the model directory %s" % (model_file, model_dir))
        module_name = os.path.basename(model_file)
        module_name = module_name[:-3] if module_name.endswith(".py") else module_name.split(".")[0]
        module = importlib.import_module(module_name)
        classes = list_classes_from_module(module, torch.nn.Module)
        if len(classes) != 1:
            raise ValueError(
                "modelFile %s must define exactly one nn.Module class, found %s"
                % (model_file, [c.__name__ for c in classes] or "none")
            )
        model = classes[0]()
        if model_pt_path:
            model.load_state_dict(load_state_dict(model_pt_path, self.device))
        return model

    @timed
    def preprocess(self, data):
        return torch.as_tensor(data, device=self.device)

    @timed
    def inference(self, data, *args, **kwargs):
        with torch.inference_mode():
            return self.model(data.to(self.device), *args, **kwargs)

    @timed
    def postprocess(self, data):
        return data.tolist()

    def handle(self, data, context):
        """preprocess -> inference -> postprocess (or explain_handle); records HandlerTime."""
        start = time.time()
        self.context = context
        if self._is_describe():
            output = [self.describe_handle()]
        else:
            pre = self.preprocess(data)
            if self._is_explain():
                output = self.explain_handle(pre, data)
            else:
                output = self.postprocess(self.inference(pre))
        if context.metrics is not None:
            context.metrics.add_time("HandlerTime", round((time.time() - start) * 1000, 2), None, "ms")
        return output

    def explain_handle(self, data_preprocess, raw_data):
        """Explanations: calls get_insights(preprocessed, inputs, target) with the first
        request's "data"/"body" and "target" (default 0), as TorchServe does."""
        row = raw_data[0]
        inputs, target = None, 0
        if isinstance(row, dict):
            inputs = row.get("data") or row.get("body")
            target = row.get("target") or 0
        get_insights = getattr(self, "get_insights", None)
        if get_insights is None:
            from ..util import PredictionException

            raise PredictionException("this handler does not implement explanations (get_insights)", 501)
        return get_insights(data_preprocess, inputs, target)

    def _header_is_true(self, name):
        return bool(self.context) and self.context.get_request_header(0, name) == "True"

    def _is_explain(self):
        if self._header_is_true("explain"):
            self.explain = True
            return True
        return False

    def _is_describe(self):
        return self._header_is_true("describe")

    def describe_handle(self):
        return None

    def get_device(self):
        return self.device
