"""A handler whose initialisation always fails: the compat harness registers it to see
what each server does with a model that cannot start a worker."""
from ts.torch_handler.base_handler import BaseHandler


class FailingHandler(BaseHandler):
    def initialize(self, context):
        raise RuntimeError("this handler fails to initialise on purpose")
