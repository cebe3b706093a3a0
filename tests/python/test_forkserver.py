"""The worker template's choice of what to import before a fork (wick_worker.forkserver):
torchvision only for a model whose handler is a vision one or whose Python files import
it. Forking itself is tested with real workers in tests/unit/backend/test_pyworker.c and
tests/e2e/test_python_template.py."""

import json

from wick_worker import forkserver


def model(tmp_path, handler, files=None):
    (tmp_path / "MAR-INF").mkdir()
    (tmp_path / "MAR-INF" / "MANIFEST.json").write_text(json.dumps({"model": {"handler": handler}}))
    for name, text in (files or {}).items():
        (tmp_path / name).write_text(text)
    return str(tmp_path)


def test_torchserve_vision_handlers_by_name(tmp_path):
    assert forkserver._uses_vision(model(tmp_path, "image_classifier"))


def test_a_dotted_vision_handler_name(tmp_path):
    assert forkserver._uses_vision(model(tmp_path, "ts.torch_handler.object_detector"))


def test_a_handler_file_that_imports_torchvision(tmp_path):
    d = model(tmp_path, "handler.py", {"handler.py": "import os\nfrom torchvision import transforms\n"})
    assert forkserver._uses_vision(d)


def test_a_handler_that_subclasses_torchserves_image_classifier(tmp_path):
    d = model(tmp_path, "h.py", {"h.py": "from ts.torch_handler.image_classifier import ImageClassifier\n"})
    assert forkserver._uses_vision(d)


def test_a_mention_that_is_no_import(tmp_path):
    d = model(tmp_path, "h.py", {"h.py": 'NAME = "torchvision"\n# import torchvision later\n'})
    assert not forkserver._uses_vision(d)


def test_no_manifest_and_no_python_files(tmp_path):
    assert not forkserver._uses_vision(str(tmp_path))
    assert not forkserver._uses_vision(str(tmp_path / "missing"))
