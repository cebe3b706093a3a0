"""The `context.metrics` object handlers record into (TorchServe's metrics API:
add_counter/add_time/add_size/add_percent/add_metric/add_error, add_metric_to_cache and
get_metric with add_or_update/update) and the line format that carries the values to
wick. It does not aggregate: every call becomes one record, and the worker writes the
records of a batch to stderr, one line each, before it sends the batch's response:

    [METRICS] {"name": "CallCount", "type": "counter", "unit": "count", "value": 1,
               "dimensions": {"ModelName": "m", "Level": "Model"}, "request_id": "r1"}

(on one line). wick adds counters, sets gauges and observes histograms; see
docs/otf-protocol.md.
"""

import enum
import json
import math
import numbers

METRICS_PREFIX = "[METRICS] "


class MetricTypes(enum.Enum):
    COUNTER = "counter"
    GAUGE = "gauge"
    HISTOGRAM = "histogram"


class Dimension:
    """A name/value pair attached to a metric."""

    def __init__(self, name, value):
        self.name = str(name)
        self.value = str(value)

    def __str__(self):
        return "%s:%s" % (self.name, self.value)

    def __repr__(self):
        return "Dimension(%r, %r)" % (self.name, self.value)


def _check_value(name, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(
            "metric %r: value must be an int or a float, got %s" % (name, type(value).__name__)
        )
    value = float(value) if not isinstance(value, int) else value
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("metric %r: value must be a finite number, got %r" % (name, value))
    return value


def _check_type(metric_type):
    if isinstance(metric_type, str):
        try:
            return MetricTypes(metric_type.lower())
        except ValueError:
            pass
    if not isinstance(metric_type, MetricTypes):
        raise TypeError(
            "metric_type must be MetricTypes.COUNTER, GAUGE or HISTOGRAM, got %r" % (metric_type,)
        )
    return metric_type


class CachingMetric:
    """A metric declared with add_metric_to_cache: fixed name, unit, type and dimension
    names; each update records one value."""

    def __init__(self, store, name, unit, dimension_names, metric_type):
        self._store = store
        self.metric_name = name
        self.unit = unit
        self.dimension_names = list(dimension_names)
        self.metric_type = metric_type

    def add_or_update(self, value, dimension_values=(), request_id=""):
        values = list(dimension_values)
        if len(values) != len(self.dimension_names):
            raise ValueError(
                "metric %r has dimensions %s, got %d values %s"
                % (self.metric_name, self.dimension_names, len(values), values)
            )
        dims = {n: str(v) for n, v in zip(self.dimension_names, values)}
        self._store._record(self.metric_name, value, self.unit, self.metric_type, dims, request_id)

    def update(self, value, request_id="", dimensions=()):
        dims = {d.name: d.value for d in dimensions}
        self._store._record(self.metric_name, value, self.unit, self.metric_type, dims, request_id)


class Metrics:
    """Per-model metrics store. request_ids maps batch index -> request id; the worker
    sets it for each batch."""

    def __init__(self, model_name):
        self.model_name = model_name
        self.request_ids = {}
        self._records = []
        self._cache = {}

    # -- records

    def _record(self, name, value, unit, metric_type, dims, request_id):
        if not isinstance(name, str) or not name:
            raise TypeError("metric name must be a non-empty string, got %r" % (name,))
        value = _check_value(name, value)
        metric_type = _check_type(metric_type)
        self._records.append(
            {
                "name": name,
                "type": metric_type.value,
                "unit": str(unit),
                "value": value,
                "dimensions": dims,
                "request_id": str(request_id or ""),
            }
        )

    def drain(self):
        """Returns the records made since the last drain and forgets them."""
        out, self._records = self._records, []
        return out

    def _request_id(self, idx):
        if idx is None:
            return ""
        if isinstance(idx, int) and idx in self.request_ids:
            return self.request_ids[idx]
        return str(idx)

    def _dims(self, dimensions, level="Model"):
        dims = {"ModelName": self.model_name, "Level": level}
        for d in dimensions or ():
            if isinstance(d, Dimension):
                dims[d.name] = d.value
            elif isinstance(d, (tuple, list)) and len(d) == 2:
                dims[str(d[0])] = str(d[1])
            else:
                raise TypeError("dimensions must be Dimension objects or (name, value) pairs, got %r" % (d,))
        return dims

    # -- TorchServe's API

    def add_metric(self, name, value, unit, idx=None, dimensions=None, metric_type=MetricTypes.COUNTER):
        self._record(name, value, unit, metric_type, self._dims(dimensions), self._request_id(idx))

    def add_counter(self, name, value, idx=None, dimensions=None):
        self.add_metric(name, value, "count", idx, dimensions, MetricTypes.COUNTER)

    def add_time(self, name, value, idx=None, unit="ms", dimensions=None, metric_type=MetricTypes.GAUGE):
        if unit not in ("ms", "s", "us", "ns"):
            raise ValueError("metric %r: time unit must be ms, s, us or ns, got %r" % (name, unit))
        self.add_metric(name, value, unit, idx, dimensions, metric_type)

    def add_size(self, name, value, idx=None, unit="MB", dimensions=None, metric_type=MetricTypes.GAUGE):
        if unit not in ("MB", "kB", "GB", "B"):
            raise ValueError("metric %r: size unit must be MB, kB, GB or B, got %r" % (name, unit))
        self.add_metric(name, value, unit, idx, dimensions, metric_type)

    def add_percent(self, name, value, idx=None, dimensions=None, metric_type=MetricTypes.GAUGE):
        self.add_metric(name, value, "percent", idx, dimensions, metric_type)

    def add_error(self, name, value, dimensions=None):
        self._record(name, value, "", MetricTypes.COUNTER, self._dims(dimensions, "Error"), "")

    def add_metric_to_cache(self, metric_name, unit, dimension_names=(), metric_type=MetricTypes.COUNTER):
        metric_type = _check_type(metric_type)
        m = CachingMetric(self, metric_name, unit, dimension_names, metric_type)
        self._cache[(metric_name, metric_type)] = m
        return m

    def get_metric(self, metric_name, metric_type=MetricTypes.COUNTER):
        metric_type = _check_type(metric_type)
        try:
            return self._cache[(metric_name, metric_type)]
        except KeyError:
            raise KeyError(
                "no %s metric named %r: declare it with add_metric_to_cache first"
                % (metric_type.value, metric_name)
            ) from None


def format_record(record):
    """One stderr line (without the newline) for a record from Metrics.drain()."""
    return METRICS_PREFIX + json.dumps(record, separators=(",", ":"), allow_nan=False)
