"""handler_factory: a whole handler made from plain functions (the convention of the
model-servers project). The model file defines init_function (returns an nn.Module),
optional per-sample preprocess/postprocess functions and optional setup functions, and
ends with `handler = handler_factory(init_function=..., ..., some_kwarg=1)`; wick's
loader finds that module-level object. Importable as `base_handler` too (the shim), so
`from base_handler import handler_factory` works when the archive ships no
base_handler.py of its own.

initialize(context): install_packages() then unpack_dependencies() run once per model
directory and server (a lock and a marker file in the model directory), then
init_function(**kwargs) with the factory's keyword arguments updated by model-config.yaml
`handler: {init_kwargs: {...}}`, the manifest's serializedFile loaded as its state_dict
(weights_only where torch has it), eval(), moved to the worker's device.

handle(data, context): one sample per request (its `data` or `body` value, decoded as
the worker decodes bodies), preprocess_function per sample (a failure answers that
request 400, the others go on), one forward under torch.inference_mode for samples that
are tensors of one shape (stacked on a new first dimension), else one forward per
sample, the output split back per sample, postprocess_function per sample, and one
JSON-able result per request (tensors and tuples become lists).
"""

import fcntl
import json
import logging
import os
import traceback

import torch

from .device import select_device
from .handlers.base_handler import load_state_dict

logger = logging.getLogger("wick_worker")

SETUP_LOCK = ".wick-factory-setup.lock"
SETUP_DONE = ".wick-factory-setup.done"
CONFIG_SECTION = "handler"
CONFIG_KWARGS = "init_kwargs"


def _to_jsonable(value):
    """Tensors, numpy arrays and scalars as lists/numbers, tuples as lists, recursively."""
    if isinstance(value, dict):
        return {k: _to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_jsonable(v) for v in value]
    tolist = getattr(value, "tolist", None)
    if callable(tolist) and not isinstance(value, (str, bytes, bytearray)):
        return tolist()
    return value


def _map_tensors(value, fn):
    if isinstance(value, torch.Tensor):
        return fn(value)
    if isinstance(value, dict):
        return {k: _map_tensors(v, fn) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        items = [_map_tensors(v, fn) for v in value]
        return type(value)(*items) if hasattr(value, "_fields") else type(value)(items)
    return value


def _split(out, i):
    """Sample i of a batched model output (tensors indexed on their first dimension,
    also inside tuples, lists and dicts)."""
    return _map_tensors(out, lambda t: t[i] if t.dim() > 0 else t)


class FactoryHandler:
    """The handler object handler_factory returns; see the module docstring."""

    def __init__(self, init_function, preprocess_function=None, postprocess_function=None,
                 install_packages=None, unpack_dependencies=None, **kwargs):
        if not callable(init_function):
            raise TypeError("handler_factory: init_function must be a function that returns a "
                            "torch.nn.Module, got %s" % type(init_function).__name__)
        for name, fn in (("preprocess_function", preprocess_function),
                         ("postprocess_function", postprocess_function),
                         ("install_packages", install_packages),
                         ("unpack_dependencies", unpack_dependencies)):
            if fn is not None and not callable(fn):
                raise TypeError("handler_factory: %s must be a function or None, got %s"
                                % (name, type(fn).__name__))
        self.init_function = init_function
        self.preprocess_function = preprocess_function
        self.postprocess_function = postprocess_function
        self.install_packages = install_packages
        self.unpack_dependencies = unpack_dependencies
        self.init_kwargs = kwargs
        self.model = None
        self.device = None
        self.context = None
        self.initialized = False

    # ---- initialize ----

    def initialize(self, context):
        self.context = context
        props = context.system_properties
        model_dir = props.get("model_dir") or os.getcwd()
        self._setup_once(model_dir)
        kwargs = self.model_kwargs(context)
        self.device = select_device(props.get("gpu_id"), context.model_name)
        model = self.init_function(**kwargs)
        if not isinstance(model, torch.nn.Module):
            raise TypeError("init_function returned a %s, expected a torch.nn.Module"
                            % type(model).__name__)
        serialized = ((context.manifest or {}).get("model") or {}).get("serializedFile")
        if serialized:
            path = os.path.join(model_dir, serialized)
            if not os.path.isfile(path):
                raise RuntimeError("serializedFile %r is not in the model directory %s" % (serialized, model_dir))
            state = load_state_dict(path, "cpu")
            try:
                model.load_state_dict(state)
            except RuntimeError as e:
                raise RuntimeError(
                    "serializedFile %s does not fit the model init_function(**%r) built: %s"
                    % (serialized, kwargs, e)) from None
        else:
            logger.warning("model %s: the manifest names no serializedFile; the model keeps the "
                           "weights init_function gave it", context.model_name)
        model.eval()
        self.model = model.to(self.device)
        self.initialized = True
        logger.info("model %s: init_function(**%r) built %s on %s", context.model_name, kwargs,
                    type(model).__name__, self.device)

    def model_kwargs(self, context):
        """The factory's keyword arguments updated by model-config.yaml handler.init_kwargs."""
        kwargs = dict(self.init_kwargs)
        config = getattr(context, "model_yaml_config", None) or {}
        section = config.get(CONFIG_SECTION)
        extra = section.get(CONFIG_KWARGS) if isinstance(section, dict) else None
        if extra is not None:
            if not isinstance(extra, dict):
                raise ValueError("model-config.yaml %s.%s: expected a mapping of keyword arguments for "
                                 "init_function, got %s" % (CONFIG_SECTION, CONFIG_KWARGS, type(extra).__name__))
            kwargs.update(extra)
        return kwargs

    def _setup_once(self, model_dir):
        """Runs install_packages and unpack_dependencies once per model directory and
        server process, however many workers start at the same time."""
        if self.install_packages is None and self.unpack_dependencies is None:
            return
        token = "server %d\n" % os.getppid()
        done_path = os.path.join(model_dir, SETUP_DONE)
        with open(os.path.join(model_dir, SETUP_LOCK), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                try:
                    with open(done_path, encoding="utf-8") as f:
                        if f.read() == token:
                            logger.info("install_packages/unpack_dependencies already ran for %s", model_dir)
                            return
                except FileNotFoundError:
                    pass
                if self.install_packages is not None:
                    logger.info("running install_packages()")
                    self.install_packages()
                if self.unpack_dependencies is not None:
                    logger.info("running unpack_dependencies()")
                    self.unpack_dependencies()
                with open(done_path, "w", encoding="utf-8") as f:
                    f.write(token)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    # ---- handle ----

    @staticmethod
    def sample_of(row):
        """The request's input: its `data` or `body` value (or its only value)."""
        if not isinstance(row, dict):
            return row
        for key in ("data", "body"):
            if key in row:
                return row[key]
        if len(row) == 1:
            return next(iter(row.values()))
        return row

    @staticmethod
    def default_input(sample):
        """Without preprocess_function: a tensor as it is; JSON numbers (or a nested list
        of them, also as a JSON text body) as a tensor of the default float dtype."""
        if isinstance(sample, torch.Tensor):
            return sample
        if isinstance(sample, (bytes, bytearray, str)):
            try:
                sample = json.loads(sample)
            except (ValueError, UnicodeDecodeError):
                raise ValueError("expected a JSON array of numbers (define a preprocess_function "
                                 "to accept other input)") from None
        if isinstance(sample, (list, int, float)) and not isinstance(sample, bool):
            try:
                return torch.tensor(sample, dtype=torch.get_default_dtype())
            except (TypeError, ValueError) as e:
                raise ValueError("expected a JSON array of numbers with a regular shape: %s" % e) from None
        raise ValueError("expected a JSON array of numbers, got a %s (define a preprocess_function "
                         "to accept other input)" % type(sample).__name__)

    def _forward(self, xs):
        """Model outputs, one per sample, on the CPU."""
        device = self.device
        with torch.inference_mode():
            if xs and all(isinstance(x, torch.Tensor) for x in xs) and \
                    all(x.shape == xs[0].shape for x in xs):
                out = self.model(torch.stack(xs).to(device))
                out = _map_tensors(out, lambda t: t.cpu())
                return [_split(out, i) for i in range(len(xs))]
            outs = []
            for x in xs:
                if isinstance(x, torch.Tensor):
                    out = self.model(x.unsqueeze(0).to(device))
                    outs.append(_split(_map_tensors(out, lambda t: t.cpu()), 0))
                else:
                    out = self.model(_map_tensors(x, lambda t: t.to(device)))
                    outs.append(_map_tensors(out, lambda t: t.cpu()))
            return outs

    def handle(self, data, context):
        if data is None:
            return None
        self.context = context
        results = [None] * len(data)
        ok = []
        for i, row in enumerate(data):
            sample = self.sample_of(row)
            try:
                x = self.preprocess_function(sample) if self.preprocess_function else self.default_input(sample)
            except Exception as e:  # user code or bad input: answer this request alone
                what = "preprocess_function failed" if self.preprocess_function else "bad input"
                logger.warning("request %d: %s\n%s", i, what, traceback.format_exc())
                context.set_response_status(400, "", i)
                results[i] = {"code": 400, "type": "BadRequestException",
                              "message": "%s for this request: %s: %s" % (what, type(e).__name__, e)}
                continue
            ok.append((i, x))
        outs = self._forward([x for _, x in ok]) if ok else []
        for (i, _), out in zip(ok, outs):
            if self.postprocess_function is not None:
                out = self.postprocess_function(out)
            results[i] = _to_jsonable(out)
        return results


def handler_factory(init_function, preprocess_function=None, postprocess_function=None,
                    install_packages=None, unpack_dependencies=None, **kwargs):
    """A handler object (initialize/handle) built from these functions; kwargs go to
    init_function (model-config.yaml handler.init_kwargs overrides them)."""
    return FactoryHandler(init_function, preprocess_function, postprocess_function,
                          install_packages, unpack_dependencies, **kwargs)
