"""Makes TorchServe's import paths (`ts.torch_handler.base_handler`, `ts.context`,
`ts.utils.util`, ...) resolve to wick's implementations when the real `ts` package is
not installed, and `base_handler` (model-servers' handler_factory) when no such module
is on sys.path. Installed by the worker's main only, never by importing wick_worker.

A `ts.X` module is a separate module object whose attributes are the objects of the
wick module it stands for (same classes and functions, so subclassing and isinstance
work); it is created lazily on first import. Real `ts` modules always win: the finder
is placed after the standard ones and is installed only when `import ts` fails.
"""

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys

from . import __version__

ALIASES = {
    "ts.context": "wick_worker.context",
    "ts.utils.util": "wick_worker.util",
    "ts.protocol.otf_message_handler": "wick_worker.service",
    "ts.metrics.dimension": "wick_worker.metrics",
    "ts.metrics.metric_type_enum": "wick_worker.metrics",
    "ts.handler_utils.timer": "wick_worker.handlers.timer",
    "ts.torch_handler.base_handler": "wick_worker.handlers.base_handler",
    "ts.torch_handler.vision_handler": "wick_worker.handlers.vision_handler",
    "ts.torch_handler.image_classifier": "wick_worker.handlers.image_classifier",
    "ts.torch_handler.image_segmenter": "wick_worker.handlers.image_segmenter",
    "ts.torch_handler.object_detector": "wick_worker.handlers.object_detector",
    "ts.torch_handler.text_handler": "wick_worker.handlers.text_classifier",
    "ts.torch_handler.text_classifier": "wick_worker.handlers.text_classifier",
}
PACKAGES = {"ts", "ts.torch_handler", "ts.utils", "ts.protocol", "ts.metrics", "ts.handler_utils"}
# Top-level names model code imports from files that TorchServe-era projects ship beside
# their handler (model-servers' `from base_handler import handler_factory`). A module of
# that name on sys.path (the model directory comes first) always wins.
TOP_LEVEL = {"base_handler": "wick_worker.handler_factory"}


class _PackageLoader(importlib.abc.Loader):
    def create_module(self, spec):
        return None

    def exec_module(self, module):
        module.__doc__ = "wick's stand-in for TorchServe's %s package" % module.__name__
        if module.__name__ == "ts":
            module.__version__ = __version__


class _AliasLoader(importlib.abc.Loader):
    def __init__(self, target):
        self.target = target

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        real = importlib.import_module(self.target)
        for k, v in vars(real).items():
            if not (k.startswith("__") and k.endswith("__")):
                setattr(module, k, v)
        module.__doc__ = real.__doc__
        module.__getattr__ = lambda name: getattr(real, name)


class TsFinder(importlib.abc.MetaPathFinder):
    """Finds the `ts` names listed in ALIASES and PACKAGES."""

    def find_spec(self, fullname, path, target=None):
        if fullname in PACKAGES:
            return importlib.machinery.ModuleSpec(fullname, _PackageLoader(), is_package=True)
        if fullname in ALIASES:
            return importlib.machinery.ModuleSpec(fullname, _AliasLoader(ALIASES[fullname]))
        return None


class TopLevelFinder(importlib.abc.MetaPathFinder):
    """Finds the names listed in TOP_LEVEL; placed after the standard finders."""

    def find_spec(self, fullname, path, target=None):
        if path is None and fullname in TOP_LEVEL:
            return importlib.machinery.ModuleSpec(fullname, _AliasLoader(TOP_LEVEL[fullname]))
        return None


def install():
    """Installs the TOP_LEVEL finder, and the ts finder unless a real `ts` package is
    importable. Returns True when the ts shim was installed (or already was)."""
    if not any(isinstance(f, TopLevelFinder) for f in sys.meta_path):
        sys.meta_path.append(TopLevelFinder())
    if any(isinstance(f, TsFinder) for f in sys.meta_path):
        return True
    if importlib.util.find_spec("ts") is not None:
        return False
    sys.meta_path.append(TsFinder())
    return True
