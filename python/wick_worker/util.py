"""Helpers that TorchServe exposes as ts.utils.util: PredictionException, class listing,
label maps. Behaviour follows TorchServe's for compatibility; no I/O besides reading
index_to_name.json."""

import inspect
import itertools
import json
import logging
import os

logger = logging.getLogger(__name__)


class PredictionException(Exception):
    """Raised by a handler to fail the whole batch with its own message and status code
    (the worker answers every request of the batch with error_code and message)."""

    def __init__(self, message, error_code=500):
        self.message = message
        self.error_code = error_code
        super().__init__(message)

    def __str__(self):
        return "%s : %s" % (self.message, self.error_code)


def list_classes_from_module(module, parent_class=None):
    """The classes defined in module itself (not imported into it), optionally only the
    subclasses of parent_class, in name order."""
    classes = [
        member
        for _, member in inspect.getmembers(module, inspect.isclass)
        if member.__module__ == module.__name__
    ]
    if parent_class is not None:
        classes = [c for c in classes if issubclass(c, parent_class)]
    return classes


def load_label_mapping(mapping_file_path):
    """Reads {"index": "label"} (or {"index": [..., "label"]}, or {"object_type_names":
    [...]}) from a JSON file. Returns None when the file does not exist; raises
    ValueError when it exists but is not such a mapping."""
    if not os.path.isfile(mapping_file_path):
        logger.info("%s is missing: outputs will carry class indices, not names", mapping_file_path)
        return None
    with open(mapping_file_path, encoding="utf-8") as f:
        try:
            mapping = json.load(f)
        except ValueError as e:
            raise ValueError("%s is not valid JSON: %s" % (mapping_file_path, e)) from e
    if not isinstance(mapping, dict):
        raise ValueError(
            '%s: expected a JSON object {"class index": "label"}, got %s'
            % (mapping_file_path, type(mapping).__name__)
        )
    names = mapping.get("object_type_names")
    if isinstance(names, list):
        return {str(i): v for i, v in enumerate(names)}
    out = {}
    for key, value in mapping.items():
        if isinstance(value, list) and value:
            value = value[-1]
        if not isinstance(value, str):
            raise ValueError(
                "%s: the label of %r must be a string or a list ending in a string"
                % (mapping_file_path, key)
            )
        out[key] = value
    return out


def map_class_to_label(probs, mapping=None, lbl_classes=None):
    """[[p, ...], ...] (and the class indices of each p) -> [{label: p, ...}, ...]. A class
    missing from mapping raises KeyError, as in TorchServe."""
    if not isinstance(probs, list):
        raise TypeError("map_class_to_label expects a list of lists; convert tensors with .tolist()")
    if mapping is not None and not isinstance(mapping, dict):
        raise TypeError("mapping must be a dict, got %s" % type(mapping).__name__)
    if lbl_classes is None:
        lbl_classes = itertools.repeat(range(len(probs[0])), len(probs))
    return [
        {(mapping[str(c)] if mapping is not None else str(c)): p for c, p in zip(*row)}
        for row in zip(lbl_classes, probs)
    ]
