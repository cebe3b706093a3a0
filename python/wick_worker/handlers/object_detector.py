"""The built-in `object_detector`: for torchvision detection models (list of images in,
[{"boxes", "labels", "scores"}] out). Each image goes in as ToTensor() of its RGB
pixels (images of a batch may differ in size); each answer is a list of
{label: [x1, y1, x2, y2], "score": s} for the detections scoring at least `threshold`
(0.5), labels from index_to_name.json (or {"object_type_names": [...]}) else the class
index as a string."""

import torch
from torchvision import transforms

from .timer import timed
from .vision_handler import VisionHandler


class ObjectDetector(VisionHandler):
    image_processing = transforms.Compose([transforms.ToTensor()])
    threshold = 0.5

    def convert_image(self, image):
        return image if image.mode == "RGB" else image.convert("RGB")

    @timed
    def preprocess(self, data):
        return [self.image_tensor(row, i).to(self.device) for i, row in enumerate(data)]

    @timed
    def inference(self, data, *args, **kwargs):
        with torch.inference_mode():
            return self.model(data, *args, **kwargs)

    @timed
    def postprocess(self, data):
        mapping = self.mapping or {}
        result = []
        for row in data:
            keep = row["scores"] >= self.threshold
            boxes = row["boxes"][keep].tolist()
            labels = row["labels"][keep].tolist()
            scores = row["scores"][keep].tolist()
            result.append([
                {mapping.get(str(c), str(c)): b, "score": s} for c, b, s in zip(labels, boxes, scores)
            ])
        return result
