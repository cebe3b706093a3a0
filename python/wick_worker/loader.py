"""Loads a model for the worker: reads the manifest and model-config.yaml, resolves the
handler as TorchServe does, builds the Context and runs the handler's initialization.

Handler resolution, for a handler string "module[:function]" (a ".py" suffix and any
directory part are dropped):
  1. a module of that name in the model directory (module.py or a package), else a
     built-in name (BUILTINS), else an importable module of that name;
  2. with ":function": that attribute (a function, a class to instantiate, or an object
     with a `handle` method, such as the one handler_factory returns);
     without: the module's function `handle` if it has one, else the one class defined
     in the module that has a `handle` method, else the one module-level object that
     has `handle` and `initialize` methods (more than one, or none, is an error).
A function handler is initialized by calling it with (None, context), a class handler or
an object by calling its `initialize(context)` (when it has one). With
system.maxGPUMemory in model-config.yaml and a GPU assigned, the CUDA memory fraction is
set before the handler initializes. Nothing here catches exceptions
from user code: the worker reports them as the load's failure.
"""

import importlib
import importlib.util
import inspect
import json
import logging
import os
import sys

from . import envelopes
from .context import Context
from .device import apply_gpu_memory_limit, max_gpu_memory_mb
from .metrics import Metrics
from .service import Service
from .util import list_classes_from_module

logger = logging.getLogger("wick_worker")

BUILTINS = {
    "image_classifier": ("wick_worker.handlers.image_classifier", "ImageClassifier"),
    "image_segmenter": ("wick_worker.handlers.image_segmenter", "ImageSegmenter"),
    "object_detector": ("wick_worker.handlers.object_detector", "ObjectDetector"),
    "text_classifier": ("wick_worker.handlers.text_classifier", "TextClassifier"),
    "tensor": ("wick_worker.handlers.tensor_handler", "TensorHandler"),
    "base_handler": ("wick_worker.handlers.tensor_handler", "TensorHandler"),
    "v1_adapter": ("wick_worker.handlers.v1_adapter", "V1Adapter"),
    "v1_noload": ("wick_worker.handlers.v1_adapter", "V1NoLoadAdapter"),
    "liberator": ("wick_worker.handlers.liberator", "LiberatorHandler"),
}


class LoadError(Exception):
    """The model cannot be loaded for a reason the message explains (no traceback needed)."""


def read_manifest(model_dir):
    """MAR-INF/MANIFEST.json as a dict, or None when the directory has none."""
    path = os.path.join(model_dir, "MAR-INF", "MANIFEST.json")
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as f:
        try:
            manifest = json.load(f)
        except ValueError as e:
            raise LoadError("%s is not valid JSON: %s" % (path, e)) from None
    if not isinstance(manifest, dict):
        raise LoadError("%s: expected a JSON object, got %s" % (path, type(manifest).__name__))
    return manifest


def read_model_config(model_dir, manifest):
    """The model's configFile (YAML) as a dict; {} when the manifest names none."""
    model = (manifest or {}).get("model") or {}
    name = model.get("configFile")
    if not name:
        return {}
    path = os.path.join(model_dir, name)
    if not os.path.isfile(path):
        raise LoadError("the manifest names configFile %r, but %s does not exist" % (name, path))
    import yaml  # Debian's python3-yaml; only needed when there is a config file

    with open(path, encoding="utf-8") as f:
        try:
            config = yaml.safe_load(f)
        except yaml.YAMLError as e:
            raise LoadError("%s is not valid YAML: %s" % (path, e)) from None
    if config is None:
        return {}
    if not isinstance(config, dict):
        raise LoadError("%s: expected a mapping at the top level, got %s" % (path, type(config).__name__))
    return config


def _module_in_dir(model_dir, module_name):
    top = module_name.split(".")[0]
    return os.path.isfile(os.path.join(model_dir, top + ".py")) or os.path.isfile(
        os.path.join(model_dir, top, "__init__.py")
    )


def _importable(module_name):
    try:
        return importlib.util.find_spec(module_name) is not None
    except (ImportError, ValueError):
        return False


def resolve_handler(handler, model_dir):
    """Returns (entry_point, initialize) for a handler string; see the module docstring."""
    if not handler:
        raise LoadError("no handler: neither the load request nor the manifest names one")
    module_part, _, function_name = handler.partition(":")
    module_name = module_part.replace("\\", "/").split("/")[-1]
    if module_name.endswith(".py"):
        module_name = module_name[:-3]
    if not module_name:
        raise LoadError("handler %r has no module name; expected module[:function]" % handler)

    if _module_in_dir(model_dir, module_name):
        module = importlib.import_module(module_name)
    elif module_name in BUILTINS and not function_name:
        mod_name, cls_name = BUILTINS[module_name]
        instance = getattr(importlib.import_module(mod_name), cls_name)()
        return instance.handle, instance.initialize
    elif _importable(module_name):
        module = importlib.import_module(module_name)
    else:
        raise LoadError(
            "handler %r: there is no %s.py in the model directory %s, and %r is not a built-in "
            "handler (built-ins: %s)" % (handler, module_name, model_dir, module_name, ", ".join(sorted(BUILTINS)))
        )

    if function_name:
        target = getattr(module, function_name, None)
        if target is None:
            raise LoadError("handler %r: module %s has no attribute %r" % (handler, module_name, function_name))
        if inspect.isclass(target):
            return _class_entry(target)
        if _is_handler_object(target):
            return _object_entry(target)
        if not callable(target):
            raise LoadError("handler %r: %s.%s is not callable" % (handler, module_name, function_name))
        return target, lambda ctx: target(None, ctx)

    handle = getattr(module, "handle", None)
    if callable(handle) and not inspect.isclass(handle):
        return handle, lambda ctx: handle(None, ctx)
    classes = [c for c in list_classes_from_module(module) if callable(getattr(c, "handle", None))]
    if len(classes) == 1:
        return _class_entry(classes[0])
    objects = {}
    if not classes:
        for name, value in vars(module).items():
            if _is_handler_object(value) and callable(getattr(value, "initialize", None)):
                objects.setdefault(id(value), name)
        if len(objects) == 1:
            return _object_entry(getattr(module, next(iter(objects.values()))))
    defined = [c.__name__ for c in list_classes_from_module(module)]
    raise LoadError(
        "handler %r: expected a function `handle`, exactly one class with a `handle` method, or "
        "exactly one object with `initialize` and `handle` methods (such as handler_factory's) in "
        "module %s, found %s (classes defined there: %s)"
        % (handler, module_name,
           classes and "classes %s" % [c.__name__ for c in classes]
           or objects and "objects %s" % sorted(objects.values()) or "none", defined or "none")
    )


def _is_handler_object(value):
    """An instance (not a class, module or function) with a callable `handle`."""
    return (not inspect.isclass(value) and not inspect.ismodule(value) and not inspect.isroutine(value)
            and callable(getattr(value, "handle", None)))


def _object_entry(obj):
    init = getattr(obj, "initialize", None)
    return obj.handle, (init if callable(init) else (lambda ctx: None))


def _class_entry(cls):
    instance = cls()
    init = getattr(instance, "initialize", None)
    return instance.handle, (init if callable(init) else (lambda ctx: None))


def load_model(req, server_version):
    """Loads the model a LoadRequest names and returns its Service. Changes the process:
    the model directory goes first on sys.path and becomes the working directory."""
    model_dir = os.path.abspath(req.model_path)
    if not os.path.isdir(model_dir):
        raise LoadError("model path %r is not a directory" % req.model_path)
    if req.envelope and req.envelope not in envelopes.ENVELOPES:
        raise LoadError(
            "service_envelope %r is not one wick knows (%s)"
            % (req.envelope, ", ".join(sorted(envelopes.ENVELOPES)))
        )
    manifest = read_manifest(model_dir)
    config = read_model_config(model_dir, manifest)
    if model_dir not in sys.path:
        sys.path.insert(0, model_dir)
    os.chdir(model_dir)
    handler = req.handler or ((manifest or {}).get("model") or {}).get("handler", "")
    gpu = req.gpu_id if req.gpu_id >= 0 else None
    metrics = Metrics(req.model_name)
    context = Context(
        req.model_name, model_dir, manifest, req.batch_size, gpu, server_version,
        req.limit_max_image_pixels, metrics, config,
    )
    try:
        max_gpu_memory_mb(config)
    except ValueError as e:
        raise LoadError(str(e)) from None
    entry_point, initialize = resolve_handler(handler, model_dir)
    if req.envelope:
        entry_point = envelopes.wrap(req.envelope, entry_point)
        logger.info("model %s: requests go through the %s envelope", req.model_name, req.envelope)
    logger.info("model %s: handler %r resolved, initializing (gpu %s)", req.model_name, handler, gpu)
    apply_gpu_memory_limit(config, gpu, req.model_name)
    initialize(context)
    return Service(context, entry_point)
