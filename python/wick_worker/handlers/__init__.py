"""wick's handler classes: the BaseHandler-compatible base class and the built-in
handlers (image_classifier, image_segmenter, object_detector, text_classifier, tensor).
Importing this package imports nothing heavy; each module imports torch (and the vision
ones torchvision and PIL) itself."""
