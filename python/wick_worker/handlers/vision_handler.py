"""VisionHandler: base for image handlers. preprocess() takes each request's "data" or
"body" (image bytes, base64 text, a JSON {"data": base64}, or a nested list of pixels),
opens images with PIL, applies convert_image() and the class's image_processing, and
stacks the batch. An image PIL cannot read fails the batch with 400. Explanations need
captum (not shipped by Debian): without it get_insights answers 501.
"""

import base64
import binascii
import io
from abc import ABC

import torch
from PIL import Image
from torchvision import transforms

from ..util import PredictionException
from .base_handler import BaseHandler
from .timer import timed


class VisionHandler(BaseHandler, ABC):
    image_processing = transforms.ToTensor()

    def initialize(self, context):
        super().initialize(context)
        if not context.system_properties.get("limit_max_image_pixels", True):
            Image.MAX_IMAGE_PIXELS = None
        self.ig = None
        self.initialized = True

    def convert_image(self, image):
        """Hook for subclasses: the PIL image before image_processing (as is here)."""
        return image

    def open_image(self, payload, idx=0):
        """PIL image from bytes; PredictionException(400) when PIL cannot read them."""
        try:
            image = Image.open(io.BytesIO(payload))
            image.load()
        except Image.DecompressionBombError as e:
            raise PredictionException("request %d: image too large: %s" % (idx, e), 413) from e
        except (OSError, ValueError, SyntaxError) as e:
            raise PredictionException(
                "request %d: the body is not an image PIL can read (PNG, JPEG, ...): %s" % (idx, e), 400
            ) from e
        return image

    def image_tensor(self, row, idx):
        image = row.get("data") or row.get("body") if isinstance(row, dict) else row
        if isinstance(image, dict):  # a JSON body {"data": "<base64>"}
            image = image.get("data") or image.get("body")
        if isinstance(image, str):
            try:
                image = base64.b64decode(image, validate=False)
            except (binascii.Error, ValueError) as e:
                raise PredictionException("request %d: a text body must be base64 image data: %s" % (idx, e), 400) from e
        if isinstance(image, (bytes, bytearray)):
            return self.image_processing(self.convert_image(self.open_image(bytes(image), idx)))
        if image is None:
            raise PredictionException("request %d has no image (expected a body or a 'data' field)" % idx, 400)
        return torch.FloatTensor(image)

    @timed
    def preprocess(self, data):
        images = [self.image_tensor(row, i) for i, row in enumerate(data)]
        return torch.stack(images).to(self.device)

    def get_insights(self, tensor_data, _, target=0):
        if self.ig is None:
            try:
                from captum.attr import IntegratedGradients
            except ImportError:
                raise PredictionException(
                    "explanations for this handler need captum, which is not installed", 501
                ) from None
            self.ig = IntegratedGradients(self.model)
        return self.ig.attribute(tensor_data, target=target, n_steps=15).tolist()
