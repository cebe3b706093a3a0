"""A TorchServe image handler for the fashion demo CNN (28x28 gray, FashionMNIST's mean and
std, no resize or crop): TorchServe's ImageClassifier with its preprocessing swapped.
The same file runs on TorchServe and in wick's Python workers."""
from torchvision import transforms
from ts.torch_handler.image_classifier import ImageClassifier


class FashionHandler(ImageClassifier):
    image_processing = transforms.Compose([
        transforms.Grayscale(num_output_channels=1),
        transforms.ToTensor(),
        transforms.Normalize((0.2860,), (0.3530,)),
    ])
