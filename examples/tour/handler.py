"""A TorchServe-style handler for the tour's model, written as TorchServe's MNIST example
writes its own: an ImageClassifier subclass with its own transform (the one-channel
normalization the model was trained with) and an argmax postprocess. It runs unchanged on
TorchServe and on wick (whose `ts` package provides ImageClassifier)."""
from torchvision import transforms

from ts.torch_handler.image_classifier import ImageClassifier


class FashionClassifier(ImageClassifier):
    image_processing = transforms.Compose([
        transforms.ToTensor(),
        transforms.Normalize((0.1307,), (0.3081,)),
    ])

    def postprocess(self, data):
        return data.argmax(1).tolist()
