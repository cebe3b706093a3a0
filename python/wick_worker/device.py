"""Which device a Python handler runs on, and the per-process GPU memory limit
(model-config.yaml `system.maxGPUMemory`, in MB). wick assigns each worker a GPU id
(deviceType/deviceIds, round-robin); CUDA is used only when this Python's torch has it,
else the CPU, with one warning. torch is imported only when needed."""

import logging

logger = logging.getLogger("wick_worker")

_warned_cpu = False


def select_device(gpu_id, model_name=""):
    """torch.device("cuda:<gpu_id>") when a GPU was assigned and CUDA is available,
    else torch.device("cpu") (with one warning line per process when a GPU was assigned)."""
    global _warned_cpu
    import torch

    if gpu_id is None or gpu_id < 0:
        return torch.device("cpu")
    if torch.cuda.is_available():
        return torch.device("cuda:%d" % gpu_id)
    if not _warned_cpu:
        _warned_cpu = True
        logger.warning(
            "model %s: gpu %d is assigned to this worker, but CUDA is not available to this "
            "Python (torch %s); running on the CPU", model_name, gpu_id, torch.__version__)
    return torch.device("cpu")


def max_gpu_memory_mb(config):
    """system.maxGPUMemory from a model config dict, as a float, or None when unset.
    Raises ValueError for anything but a positive number."""
    system = (config or {}).get("system")
    if not isinstance(system, dict) or system.get("maxGPUMemory") is None:
        return None
    value = system["maxGPUMemory"]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError("system.maxGPUMemory: expected a positive number of megabytes, got %r" % (value,))
    return float(value)


def apply_gpu_memory_limit(config, gpu_id, model_name=""):
    """Limits this process's CUDA allocations on gpu_id to system.maxGPUMemory MB with
    torch.cuda.set_per_process_memory_fraction(MB / the device's total MB). Returns the
    fraction set, or None when there is no limit, no GPU assigned, or no CUDA."""
    mb = max_gpu_memory_mb(config)
    if mb is None or gpu_id is None or gpu_id < 0:
        return None
    import torch

    if not torch.cuda.is_available():
        logger.info("model %s: system.maxGPUMemory (%g MB) is not applied: CUDA is not available", model_name, mb)
        return None
    total_mb = torch.cuda.get_device_properties(gpu_id).total_memory / (1024.0 * 1024.0)
    fraction = min(1.0, mb / total_mb)
    torch.cuda.set_per_process_memory_fraction(fraction, gpu_id)
    logger.info("model %s: GPU %d memory limited to %g MB of %.0f MB (fraction %.4f)",
                model_name, gpu_id, mb, total_mb, fraction)
    return fraction
