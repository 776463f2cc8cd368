"""Where the training loop computes, and in what number format: the device, the precision
policy (mixed precision where the hardware has it, with the loss scaled for float16), and
moving the loop's small CPU tensors there."""

from __future__ import annotations

import torch

from ..errors import ConfigError, LabkitError

__all__ = ["DEVICES", "PRECISIONS", "autocast", "loss_scaler", "pick_device", "resolve_precision"]

DEVICES = ("auto", "cpu", "cuda", "cuda:N", "mps")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
_DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def pick_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` gives CUDA when it is available, else the CPU."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise ConfigError(
            f"unknown device {str(device)!r}; use one of {', '.join(DEVICES)}"
        ) from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise LabkitError(
            "device='cuda' was asked for but torch sees no CUDA GPU; "
            "use device='auto' or 'cpu' (on Colab: Runtime > Change runtime type)"
        )
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise LabkitError(
            f"device={str(device)!r} was asked for but torch sees {torch.cuda.device_count()} "
            f"CUDA GPU(s), cuda:0 to cuda:{torch.cuda.device_count() - 1}; name one of them"
        )
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise LabkitError(
            "device='mps' was asked for but torch sees no Apple GPU (MPS is on Apple "
            "silicon Macs with a torch built for it); use device='auto' or 'cpu'"
        )
    if device.type not in ("cpu", "cuda", "mps"):
        raise ConfigError(f"unknown device {str(device)!r}; use one of {', '.join(DEVICES)}")
    return device


def _native_bf16_cpu() -> bool:
    """Whether this CPU computes bfloat16 in hardware (AVX512-BF16 or AMX), where bf16 is
    about 1.5x faster than fp32; elsewhere torch emulates it, slower than fp32."""
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    try:
        return any(getattr(torch.cpu, name)() for name in checks if hasattr(torch.cpu, name))
    except RuntimeError:
        return False


def resolve_precision(precision: str, device: torch.device) -> str:
    """What ``precision`` means on ``device``: ``"fp32"``, ``"bf16"`` or ``"fp16"``.

    ``"auto"``: bf16 where the hardware has it (a CPU with AVX512-BF16 or AMX, a CUDA GPU
    from Ampere on), fp16 on older CUDA GPUs (a Colab T4), fp32 elsewhere. Mixed precision:
    weights stay fp32; the forward pass and its gradients are computed in the lower one.
    """
    if precision not in PRECISIONS:
        raise ConfigError(f"unknown precision {precision!r}; use one of {', '.join(PRECISIONS)}")
    if precision != "auto":
        return precision
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if device.type == "cpu" and _native_bf16_cpu():
        return "bf16"
    return "fp32"


def autocast(device: torch.device, precision: str) -> torch.autocast:
    """The forward pass in ``precision`` (a resolved one); fp32 is autocast switched off."""
    dtype = _DTYPES[precision]
    return torch.autocast(device.type, dtype=dtype, enabled=dtype is not None)


def loss_scaler(device: torch.device, precision: str) -> torch.amp.GradScaler:
    """float16 needs its loss scaled, or small gradients underflow to zero; bfloat16 has
    fp32's range and does not (the scaler is then a pass-through)."""
    return torch.amp.GradScaler(device.type, enabled=precision == "fp16")


def to_device(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A small CPU tensor (an epoch's order, a batch's mirror flips) on ``device``.

    The draws stay on the CPU's generator, so a seed gives the same run on any device. On a
    GPU the copy goes through pinned memory without waiting: a copy from ordinary memory
    would hold the loop until every kernel queued before it had run, once a batch."""
    if device.type == "cuda":
        return t.pin_memory().to(device, non_blocking=True)
    return t.to(device)
