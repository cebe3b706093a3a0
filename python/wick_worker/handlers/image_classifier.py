"""The built-in `image_classifier`: TorchServe's ImageNet preprocessing (Resize(256),
CenterCrop(224), ToTensor, Normalize with ImageNet mean/std) on the image converted to
RGB (as the native handler does; a subclass with its own image_processing gets the image
as PIL opened it, as in TorchServe, so a one-channel MNIST handler sees one channel), softmax, and the top 5 classes as {label: probability} per image, labels from
index_to_name.json (the class index as a string when a label is missing). The same
output as wick's native image_classifier, including its model-config keys:
wick.topk and wick.image.{resize, crop, mean, std, channels}.
"""

import torch
import torch.nn.functional as F
from torchvision import transforms

from .vision_handler import VisionHandler

IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]


def _int_opt(cfg, key, default):
    v = cfg.get(key, default)
    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        raise ValueError("wick.image.%s: expected a non-negative integer, got %r" % (key, v))
    return v


def _triple(cfg, key, default):
    v = cfg.get(key, default)
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        v = [v]
    if not isinstance(v, list) or len(v) not in (1, 3) or not all(isinstance(x, (int, float)) for x in v):
        raise ValueError("wick.image.%s: expected a number or a list of 1 or 3 numbers, got %r" % (key, v))
    return [float(x) for x in v]


def image_processing_from_config(wick_cfg):
    """(transform, channels) from the model config's wick.image section."""
    img = (wick_cfg or {}).get("image") or {}
    resize = _int_opt(img, "resize", 256)
    crop = _int_opt(img, "crop", 224)
    channels = _int_opt(img, "channels", 3)
    if channels not in (1, 3):
        raise ValueError("wick.image.channels: expected 1 (gray) or 3 (RGB), got %d" % channels)
    mean = _triple(img, "mean", IMAGENET_MEAN)
    std = _triple(img, "std", IMAGENET_STD)
    if any(s == 0 for s in std):
        raise ValueError("wick.image.std: must not be 0")
    if len(mean) == 1:
        mean = mean * channels
    if len(std) == 1:
        std = std * channels
    steps = []
    if resize:
        steps.append(transforms.Resize(resize))
    if crop:
        steps.append(transforms.CenterCrop(crop))
    steps += [transforms.ToTensor(), transforms.Normalize(mean=mean[:channels], std=std[:channels])]
    return transforms.Compose(steps), channels


class ImageClassifier(VisionHandler):
    topk = 5
    channels = 3
    image_processing = transforms.Compose([
        transforms.Resize(256),
        transforms.CenterCrop(224),
        transforms.ToTensor(),
        transforms.Normalize(mean=IMAGENET_MEAN, std=IMAGENET_STD),
    ])

    def initialize(self, context):
        super().initialize(context)
        wick_cfg = (self.model_yaml_config or {}).get("wick") or {}
        if type(self).image_processing is ImageClassifier.image_processing and wick_cfg.get("image"):
            self.image_processing, self.channels = image_processing_from_config(wick_cfg)
        if "topk" in wick_cfg:
            k = wick_cfg["topk"]
            if isinstance(k, bool) or not isinstance(k, int):
                raise ValueError("wick.topk: expected an integer, got %r" % (k,))
            self.topk = max(1, k)

    def convert_image(self, image):
        if type(self).image_processing is not ImageClassifier.image_processing:
            return image  # the subclass's own transform: TorchServe converts nothing
        mode = "RGB" if self.channels == 3 else "L"
        return image if image.mode == mode else image.convert(mode)

    def set_max_result_classes(self, topk):
        self.topk = topk

    def get_max_result_classes(self):
        return self.topk

    def postprocess(self, data):
        ps = F.softmax(data, dim=1)
        probs, classes = torch.topk(ps, min(self.topk, ps.shape[1]), dim=1)
        mapping = self.mapping or {}
        return [
            {mapping.get(str(c), str(c)): p for c, p in zip(row_c, row_p)}
            for row_c, row_p in zip(classes.tolist(), probs.tolist())
        ]
