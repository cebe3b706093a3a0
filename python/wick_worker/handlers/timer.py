"""`timed`: TorchServe's decorator that records how long a handler method took as a
metric named ts_handler_<method> (ms). Does nothing when there is no context/metrics."""

import functools
import time


def timed(func):
    @functools.wraps(func)
    def wrapper(self, *args, **kwargs):
        start = time.time()
        result = func(self, *args, **kwargs)
        ctx = getattr(self, "context", None)
        metrics = getattr(ctx, "metrics", None)
        if metrics is not None:
            metrics.add_time("ts_handler_" + func.__name__, round((time.time() - start) * 1000, 2), None, "ms")
        return result

    return wrapper
