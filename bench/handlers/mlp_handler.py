"""A TorchServe handler for the bench MLP: each request's body is {"data": [[16 floats], ...]}
(or a bare list); the rows of every request in the batch run in one forward."""
import json

import torch
from ts.torch_handler.base_handler import BaseHandler


class MLPHandler(BaseHandler):
    def preprocess(self, data):
        rows, counts = [], []
        for req in data:
            body = req.get("body") if req.get("body") is not None else req.get("data")
            if isinstance(body, (bytes, bytearray)):
                body = json.loads(body)
            if isinstance(body, dict):
                body = body["data"]
            counts.append(len(body))
            rows.extend(body)
        self._counts = counts
        return torch.tensor(rows, dtype=torch.float32)

    def postprocess(self, out):
        res, i = [], 0
        for n in self._counts:
            res.append(out[i:i + n].tolist())
            i += n
        return res
