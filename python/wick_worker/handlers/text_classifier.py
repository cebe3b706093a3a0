"""The built-in `text_classifier` (and TorchServe's TextHandler helpers), for
EmbeddingBag-style models called as model(token_ids, offsets). Text is cleaned as
TorchServe does (HTML tags removed, lower case, common English contractions expanded,
accents and punctuation removed), split on whitespace, extended with bigrams
(`ngrams` = 2) and mapped to ids with the model's vocabulary; the answer per request is
{label: probability} over all classes (softmax).

The vocabulary is `source_vocab.json` ({"token": id}, unknown tokens map to "<unk>"'s
id, else 0) when the model directory has one; TorchServe's `source_vocab.pt` (a
pickled torchtext Vocab) is read only when torchtext is installed, otherwise the load
fails saying so. Unlike TorchServe's, batches of several requests are supported.
"""

import json
import os
import re
import string
import unicodedata
from abc import ABC

import torch
import torch.nn.functional as F

from .base_handler import BaseHandler
from .timer import timed

CLEANUP_REGEX = re.compile(r"<.*?>|&([a-z0-9]+|#[0-9]{1,6}|#x[0-9a-f]{1,6});")

# A short list of our own; TorchServe ships a much longer one.
CONTRACTIONS = {
    "can't": "cannot", "won't": "will not", "n't": " not", "'re": " are", "'s": " is",
    "'d": " would", "'ll": " will", "'ve": " have", "'m": " am",
}
_CONTRACTION_RE = re.compile("|".join(re.escape(k) for k in sorted(CONTRACTIONS, key=len, reverse=True)),
                             flags=re.IGNORECASE)


def ngrams_iterator(tokens, n):
    """The tokens, then every run of 2..n consecutive tokens joined by a space."""
    for t in tokens:
        yield t
    for k in range(2, n + 1):
        for i in range(len(tokens) - k + 1):
            yield " ".join(tokens[i:i + k])


class JsonVocab:
    """{"token": id} with a default id for unknown tokens."""

    def __init__(self, mapping):
        if not isinstance(mapping, dict) or not all(isinstance(v, int) for v in mapping.values()):
            raise ValueError('source_vocab.json: expected an object {"token": integer id}')
        self.stoi = mapping
        self.default = mapping.get("<unk>", 0)

    def __getitem__(self, token):
        return self.stoi.get(token, self.default)

    def __len__(self):
        return len(self.stoi)


class TextHandler(BaseHandler, ABC):
    def __init__(self):
        super().__init__()
        self.source_vocab = None

    def initialize(self, context):
        super().initialize(context)
        self.initialized = False
        self.source_vocab = self._load_vocab(context)
        self.initialized = True

    def _load_vocab(self, context):
        model_dir = context.system_properties.get("model_dir")
        json_path = os.path.join(model_dir, "source_vocab.json")
        if os.path.isfile(json_path):
            with open(json_path, encoding="utf-8") as f:
                return JsonVocab(json.load(f))
        name = (self.manifest.get("model") or {}).get("sourceVocab") or "source_vocab.pt"
        pt_path = os.path.join(model_dir, name)
        if not os.path.isfile(pt_path):
            raise RuntimeError(
                "text_classifier needs a vocabulary: source_vocab.json ({\"token\": id}) or "
                "source_vocab.pt (torchtext) in the model directory %s" % model_dir
            )
        try:
            import torchtext  # noqa: F401  (needed to unpickle the Vocab)
        except ImportError:
            raise RuntimeError(
                "%s is a torchtext Vocab, and torchtext is not installed (Debian: python3-torchtext); "
                "install it or ship the vocabulary as source_vocab.json ({\"token\": id})" % name
            ) from None
        return torch.load(pt_path)

    def _remove_html_tags(self, text):
        return CLEANUP_REGEX.sub("", text)

    def _expand_contractions(self, text):
        text = _CONTRACTION_RE.sub(lambda m: CONTRACTIONS[m.group(0).lower()], text)
        return text.replace("'", "")

    def _remove_accented_characters(self, text):
        return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")

    def _remove_punctuation(self, text):
        return text.translate(str.maketrans("", "", string.punctuation))

    _remove_puncutation = _remove_punctuation  # TorchServe's old spelling

    def _tokenize(self, text):
        return text.split()

    def clean_text(self, text):
        text = self._remove_html_tags(text).lower()
        text = self._expand_contractions(text)
        text = self._remove_accented_characters(text)
        return self._tokenize(self._remove_punctuation(text))


class TextClassifier(TextHandler):
    ngrams = 2

    @timed
    def preprocess(self, data):
        """(token ids of all requests, concatenated; offsets where each request starts)."""
        ids, offsets = [], []
        for i, row in enumerate(data):
            text = row.get("data") or row.get("body") if isinstance(row, dict) else row
            if isinstance(text, (bytes, bytearray)):
                text = text.decode("utf-8", "replace")
            if isinstance(text, dict):
                text = text.get("text") or text.get("data")
            if not isinstance(text, str):
                from ..util import PredictionException

                raise PredictionException("request %d: expected text, got %s" % (i, type(text).__name__), 400)
            offsets.append(len(ids))
            ids.extend(self.source_vocab[t] for t in ngrams_iterator(self.clean_text(text), self.ngrams))
        return (torch.as_tensor(ids, dtype=torch.int64, device=self.device),
                torch.as_tensor(offsets, dtype=torch.int64, device=self.device))

    @timed
    def inference(self, data, *args, **kwargs):
        text, offsets = data
        with torch.inference_mode():
            return self.model(text, offsets, *args, **kwargs)

    @timed
    def postprocess(self, data):
        probs = F.softmax(data, dim=1).tolist()
        mapping = self.mapping or {}
        return [{mapping.get(str(c), str(c)): p for c, p in enumerate(row)} for row in probs]
