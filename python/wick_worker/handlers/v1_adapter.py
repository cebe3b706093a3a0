"""The V1 adapter built-ins (`v1_adapter`, `v1_noload`): the conventions of the Waylay ML
adapter for torch, served by wick. The model is MODEL_PATH + MODEL_CLASS (the manifest's
serializedFile and modelClass; the environment variables MODEL_PATH and MODEL_CLASS
override them, as the adapter's generated main.py does):
  - MODEL_PATH ending in weights.pt / weights.pth: a state_dict loaded into MODEL_CLASS();
  - any other .pt / .pth: a whole pickled model (torch.load with weights_only=False: the
    archive's own code runs, so serve only archives you trust), or TorchScript;
  - `v1_noload`: MODEL_CLASS is a callable wrapper that loads its own model; it is built
    with MODEL_PATH when its signature takes one.
Requests are V1 payloads, one model call per request under torch.no_grad:
  {"instances": [row, ...]}                rows, stacked into one tensor
  {"instances": [{"a": .., "b": ..}, ...]} rows of named columns -> keyword arguments
  {"inputs": X}                            one tensor
  {"inputs": {"a": X, "b": Y}}             named tensors -> keyword arguments
  (a lone "main" name is the positional input; "parameters": {"datatype": "INT64"} or
  {"dtype": "int64"} picks the dtype, float32 by default).
Answers are {"predictions": ...} for instances, {"outputs": ...} for inputs, shaped as the
adapter's V1 marshaller shapes them. A request the model cannot take is answered 400 with
a message that says what was expected; the other requests of the batch are unaffected.
This module does not batch requests together and does not decode base64 binary values.
"""

import inspect
import json
import logging
import os
import zipfile

import torch

from ..device import select_device
from .base_handler import BaseHandler, _gpu_id, is_torchscript, load_state_dict

logger = logging.getLogger("wick_worker")

_HAS_WEIGHTS_ONLY = "weights_only" in inspect.signature(torch.load).parameters

# V1 datatypes (the adapter's names) and numpy-style dtype names
DATATYPES = {
    "BOOL": torch.bool, "INT8": torch.int8, "INT16": torch.int16, "INT32": torch.int32,
    "INT64": torch.int64, "UINT8": torch.uint8, "FP16": torch.float16, "FP32": torch.float32,
    "FP64": torch.float64,
}
DTYPES = {
    "bool": torch.bool, "int8": torch.int8, "int16": torch.int16, "int32": torch.int32,
    "int64": torch.int64, "uint8": torch.uint8, "float16": torch.float16,
    "float32": torch.float32, "float64": torch.float64, "float": torch.float32,
    "double": torch.float64, "long": torch.int64, "int": torch.int32,
}
MAIN = "main"


class BadRequest(Exception):
    """The client's request cannot be run; the message says what was expected."""


def is_weights_path(path):
    """The adapter's rule: a name ending in weights.pt or weights.pth holds a state_dict."""
    return os.path.basename(path).lower().endswith(("weights.pt", "weights.pth"))


def resolve_class(spec, what="MODEL_CLASS"):
    """'package.module.Class' (or 'module:Class') -> the class, imported from the model
    directory (first on sys.path) or any installed module."""
    import importlib

    mod_name, sep, attr = spec.replace(":", ".").rpartition(".")
    if not sep or not mod_name or not attr:
        raise RuntimeError("%s %r: expected module.Class (e.g. autoencoder.AutoEncoder)" % (what, spec))
    try:
        module = importlib.import_module(mod_name)
    except ImportError as e:
        raise RuntimeError(
            "%s %r: module %s cannot be imported (%s); pack the script that defines it with "
            "--extra-files or --model-file" % (what, spec, mod_name, e)
        ) from e
    target = getattr(module, attr, None)
    if target is None:
        raise RuntimeError("%s %r: module %s has no attribute %r" % (what, spec, mod_name, attr))
    return target


def construct_with_path(cls, model_path):
    """The no-load form: cls(model_path) when the signature takes a path (a parameter
    named model_path, else its first positional parameter, else **kwargs), else cls()."""
    if model_path is None:
        return cls()
    try:
        params = list(inspect.signature(cls).parameters.values())
    except (TypeError, ValueError):
        return cls()
    if any(p.name == "model_path" and p.kind != p.VAR_POSITIONAL for p in params):
        return cls(model_path=model_path)
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if positional or any(p.kind == p.VAR_POSITIONAL for p in params):
        return cls(model_path)
    if any(p.kind == p.VAR_KEYWORD for p in params):
        return cls(model_path=model_path)
    return cls()


def call_signature(model):
    """The signature requests bind to: forward() of an nn.Module (unless its class
    overrides __call__), else the callable's own."""
    target = model
    if isinstance(model, torch.nn.Module) and type(model).__call__ is torch.nn.Module.__call__:
        target = model.forward
    try:
        return inspect.signature(target)
    except (TypeError, ValueError):
        return None


def _describe(sig):
    return "(%s)" % ", ".join(str(p) for p in sig.parameters.values()) if sig else "(...)"


def bind_named(sig, named):
    """(args, kwargs) for a call with named tensors, as the adapter binds them: names go
    to the parameters of the same name; a required positional parameter with no tensor
    of its name takes "main"; **kwargs takes the rest. Raises BadRequest for a missing
    or unknown name."""
    if sig is None:
        main = named.pop(MAIN, None)
        return ([main] if main is not None else []), named
    params = sig.parameters.values()
    if not any(p.kind == p.VAR_KEYWORD for p in params):
        known = {p.name for p in params if p.kind != p.VAR_POSITIONAL} | {MAIN}
        unknown = sorted(k for k in named if k not in known)
        if unknown:
            raise BadRequest("unknown input%s %s: the model takes %s"
                             % ("s" if len(unknown) > 1 else "", ", ".join(repr(k) for k in unknown),
                                _describe(sig)))
    rest = dict(named)
    args, kwargs = [], {}
    for p in sig.parameters.values():
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
            if p.name in rest:
                args.append(rest.pop(p.name))
            elif p.default is p.empty and MAIN in rest:
                args.append(rest.pop(MAIN))
            elif p.default is not p.empty:
                # a later named input may still follow: pass this one by keyword only
                break
            else:
                raise BadRequest(
                    "input %r is missing: the model takes %s; name the inputs after its "
                    "arguments (a lone \"main\" is the first one)" % (p.name, _describe(sig)))
        elif p.kind == p.VAR_POSITIONAL:
            if MAIN in rest:
                args.append(rest.pop(MAIN))
        elif p.kind == p.KEYWORD_ONLY:
            if p.name in rest:
                kwargs[p.name] = rest.pop(p.name)
            elif p.default is p.empty:
                raise BadRequest("input %r is missing: the model takes %s" % (p.name, _describe(sig)))
    # parameters after a defaulted positional one are passed by keyword
    names = {p.name for p in sig.parameters.values() if p.kind != p.VAR_POSITIONAL}
    for k in [k for k in rest if k in names]:
        kwargs[k] = rest.pop(k)
    if rest:
        if any(p.kind == p.VAR_KEYWORD for p in sig.parameters.values()):
            kwargs.update(rest)
        else:
            raise BadRequest("unknown input%s %s: the model takes %s"
                             % ("s" if len(rest) > 1 else "", ", ".join(repr(k) for k in sorted(rest)),
                                _describe(sig)))
    return args, kwargs


def _is_named(value):
    """A V1 named value: a dict that is not a base64 binary value."""
    return isinstance(value, dict) and "b64" not in value


def _dtype_of(request):
    params = request.get("parameters")
    if params is None:
        return torch.float32
    if not isinstance(params, dict):
        raise BadRequest("\"parameters\" must be an object, got %s" % type(params).__name__)
    if "datatype" in params:
        dt = params["datatype"]
        if dt not in DATATYPES:
            raise BadRequest("parameters.datatype %r is not one of %s" % (dt, ", ".join(DATATYPES)))
        return DATATYPES[dt]
    if "dtype" in params:
        dt = params["dtype"]
        if dt not in DTYPES:
            raise BadRequest("parameters.dtype %r is not one of %s" % (dt, ", ".join(sorted(DTYPES))))
        return DTYPES[dt]
    return torch.float32


def decode_tensor(value, dtype, what):
    if isinstance(value, dict):
        raise BadRequest("%s: base64 binary values are not supported; send numbers" % what)
    try:
        return torch.tensor(value, dtype=dtype)
    except (TypeError, ValueError, RuntimeError, OverflowError) as e:
        raise BadRequest("%s is not a numeric tensor (numbers, or nested lists of equal length): %s"
                         % (what, e)) from None


def parse_request(body):
    """A V1 request -> (request dict, model input: a tensor or a dict of named tensors)."""
    if isinstance(body, (bytes, bytearray)):
        try:
            body = json.loads(body)
        except (ValueError, UnicodeDecodeError) as e:
            raise BadRequest("the body is not JSON: %s; expected {\"instances\": [...]} or "
                             "{\"inputs\": ...}" % e) from None
    if not isinstance(body, dict):
        raise BadRequest("expected a JSON object with \"instances\" (a list of rows) or \"inputs\" "
                         "(a tensor or named tensors), got a JSON %s" % _json_type(body))
    dtype = _dtype_of(body)
    if "instances" in body:
        inst = body["instances"]
        if isinstance(inst, list) and inst and _is_named(inst[0]):
            cols = {}
            for i, row in enumerate(inst):
                if not _is_named(row):
                    raise BadRequest("instances[%d] is not an object like instances[0]: a list of "
                                     "named rows needs an object in every row" % i)
                for k, v in row.items():
                    cols.setdefault(k, []).append(v)
            for k, col in cols.items():
                if len(col) != len(inst):
                    raise BadRequest("column %r is missing from some instances: every row needs the "
                                     "same names" % k)
            return body, _named(cols, dtype, "instances")
        return body, decode_tensor(inst, dtype, "instances")
    if "inputs" in body:
        inputs = body["inputs"]
        if _is_named(inputs):
            if not inputs:
                raise BadRequest("\"inputs\" is an empty object; expected a tensor or named tensors")
            return body, _named(inputs, dtype, "inputs")
        return body, decode_tensor(inputs, dtype, "inputs")
    raise BadRequest("expected \"instances\" (a list of rows) or \"inputs\" (a tensor or named "
                     "tensors) in the request; got keys %s" % (sorted(body) or "none"))


def _named(cols, dtype, where):
    if len(cols) == 1 and MAIN in cols:
        return decode_tensor(cols[MAIN], dtype, "%s.main" % where)
    return {k: decode_tensor(v, dtype, "%s.%s" % (where, k)) for k, v in cols.items()}


def _json_type(v):
    return {list: "array", str: "string", int: "number", float: "number", bool: "boolean",
            type(None): "null"}.get(type(v), type(v).__name__)


def encode_value(x):
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().tolist()
    if isinstance(x, (list, tuple)):
        return [encode_value(v) for v in x]
    if isinstance(x, dict):
        return {k: encode_value(v) for k, v in x.items()}
    tolist = getattr(x, "tolist", None)
    return tolist() if callable(tolist) else x


def _same_0th(values):
    lens = [len(v) if isinstance(v, list) else 0 for v in values]
    return all(n == lens[0] for n in lens)


def encode_response(request, output):
    """The V1 response for a model output, as the adapter's marshaller shapes it."""
    if _is_named(output):
        named = {str(k): encode_value(v) for k, v in output.items()}
    else:
        named = {MAIN: encode_value(output)}
    resp = {}
    params = request.get("parameters")
    if isinstance(params, dict) and params:
        resp["parameters"] = params
    if not named:
        return resp
    columnar = "inputs" in request or not _same_0th(named.values())
    key = "outputs" if columnar else "predictions"
    if len(named) == 1 and MAIN in named:
        resp[key] = named[MAIN]
    elif columnar:
        resp[key] = named
    else:
        first = next(iter(named.values()))
        if not isinstance(first, list):
            resp[key] = [named]
        else:
            resp[key] = [{k: v[i] for k, v in named.items()} for i in range(len(first))]
    return resp


def _shape(x):
    if isinstance(x, torch.Tensor):
        return "[%s] %s" % (",".join(str(d) for d in x.shape), str(x.dtype).replace("torch.", ""))
    return {k: _shape(v) for k, v in x.items()}


class V1Adapter(BaseHandler):
    """MODEL_PATH + MODEL_CLASS, V1 requests; see the module docstring."""

    no_load = False

    def initialize(self, context):
        self.context = context
        properties = context.system_properties
        self.device = select_device(_gpu_id(properties), getattr(context, "model_name", ""))
        self.map_location = self.device
        model_dir = properties.get("model_dir")
        self.manifest = context.manifest or {}
        section = self.manifest.get("model") or {}
        model_path = os.environ.get("MODEL_PATH") or section.get("serializedFile")
        model_class = os.environ.get("MODEL_CLASS") or section.get("modelClass")
        path = os.path.join(model_dir, model_path) if model_path else None
        if self.no_load:
            if not model_class:
                raise RuntimeError("the v1_noload handler needs MODEL_CLASS: the manifest's "
                                   "modelClass (wick pack --v1-model-class) or the environment")
            cls = resolve_class(model_class)
            self.model = construct_with_path(cls, path if path and os.path.exists(path) else model_path)
            if isinstance(self.model, torch.nn.Module):
                self.model.eval()
        else:
            self.model = self._load(path, model_path, model_class)
        if not callable(self.model):
            raise RuntimeError("the model (%s) is not callable" % type(self.model).__name__)
        self.signature = call_signature(self.model)
        self.initialized = True
        logger.info("V1 adapter: %s model %s, called as %s", "no-load" if self.no_load else "loaded",
                    type(self.model).__name__, _describe(self.signature))

    def _load(self, path, model_path, model_class):
        if not model_path:
            raise RuntimeError("the v1_adapter handler needs MODEL_PATH: the manifest's serializedFile "
                               "(wick pack --serialized-file) or the environment")
        if not os.path.isfile(path):
            raise RuntimeError("MODEL_PATH %r is not a file in the model directory" % model_path)
        if is_weights_path(model_path):
            if not model_class:
                raise RuntimeError(
                    "MODEL_PATH %r holds weights (it ends in weights.pt/.pth), so a MODEL_CLASS is "
                    "needed: wick pack --v1-model-class module.Class" % model_path)
            cls = resolve_class(model_class)
            model = cls()
            model.load_state_dict(load_state_dict(path, self.device))
        elif model_path.lower().endswith((".pt", ".pth")):
            if zipfile.is_zipfile(path) and is_torchscript(path):
                model = torch.jit.load(path, map_location=self.device)
            else:
                # A whole pickled model: unpickling runs code named by the archive's own
                # file, which is what this archive format is (the adapter does the same).
                if model_class:
                    resolve_class(model_class)  # import its module so that unpickling finds it
                kw = {"weights_only": False} if _HAS_WEIGHTS_ONLY else {}
                model = torch.load(path, map_location=self.device, **kw)
        else:
            raise RuntimeError("MODEL_PATH %r: expected a .pt or .pth file (ending in weights.pt/"
                               ".pth for a state_dict)" % model_path)
        if isinstance(model, torch.nn.Module) or hasattr(model, "eval"):
            model.to(self.device)
            model.eval()
        return model

    def _run(self, row):
        body = row.get("body", row.get("data")) if isinstance(row, dict) else row
        if body is None:
            raise BadRequest("the request has no body; expected {\"instances\": [...]} or {\"inputs\": ...}")
        request, model_input = parse_request(body)
        if isinstance(model_input, dict):
            args, kwargs = bind_named(self.signature, model_input)
        else:
            args, kwargs = [model_input], {}
        args = [a.to(self.device) for a in args]
        kwargs = {k: v.to(self.device) for k, v in kwargs.items()}
        try:
            with torch.no_grad():
                out = self.model(*args, **kwargs)
        except (RuntimeError, ValueError, TypeError, IndexError) as e:
            # Nearly always an input of the wrong shape or dtype for this model.
            logger.warning("the model rejected an input %s", _shape(model_input), exc_info=True)
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise BadRequest("the model cannot run on this input (%s): %s; the model takes %s"
                             % (_shape(model_input), first, _describe(self.signature))) from None
        return encode_response(request, out)

    def handle(self, data, context):
        self.context = context
        out = []
        for idx, row in enumerate(data):
            try:
                out.append(self._run(row))
            except BadRequest as e:
                context.set_response_status(400, "Bad Request", idx)
                out.append({"code": 400, "type": "BadRequestException", "message": str(e)})
        return out


class V1NoLoadAdapter(V1Adapter):
    """MODEL_CLASS is a wrapper that loads its own model (V1TorchNoLoadAdapter)."""

    no_load = True
