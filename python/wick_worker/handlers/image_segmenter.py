"""The built-in `image_segmenter`: ImageNet preprocessing (as image_classifier), and for
each image the most likely class of every pixel with its probability, as a nested list
[H][W][class, probability]. A model returning a dict (torchvision segmentation models)
is read from its "out" entry."""

import torch
from torchvision import transforms

from .image_classifier import IMAGENET_MEAN, IMAGENET_STD
from .vision_handler import VisionHandler


class ImageSegmenter(VisionHandler):
    image_processing = transforms.Compose([
        transforms.Resize(256),
        transforms.CenterCrop(224),
        transforms.ToTensor(),
        transforms.Normalize(mean=IMAGENET_MEAN, std=IMAGENET_STD),
    ])

    def convert_image(self, image):
        return image if image.mode == "RGB" else image.convert("RGB")

    def postprocess(self, data):
        if isinstance(data, dict):
            if "out" not in data:
                raise ValueError("the segmentation model returned a dict without an 'out' entry: %s" % list(data))
            data = data["out"]
        if data.dim() != 4:
            raise ValueError("expected the model output [N, classes, H, W], got shape %s" % list(data.shape))
        best = torch.max(torch.softmax(data, dim=1), dim=1)
        return torch.stack([best.indices.to(best.values.dtype), best.values], dim=3).tolist()
