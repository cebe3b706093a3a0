"""TorchServe's ImageClassifier as it is (resize 256, centre crop 224, ImageNet mean and
std, top 5), as a file: the same handler code on TorchServe and in wick's Python workers."""
from ts.torch_handler.image_classifier import ImageClassifier


class ResNetHandler(ImageClassifier):
    pass
