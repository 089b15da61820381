"""The run configuration: one frozen dataclass holds every default and every check.

The CLI builds a `Config` from its arguments, the Python API takes one directly,
and the same object (as a dict) is written into every output's metadata.
"""

from __future__ import annotations

import dataclasses
import math
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from nst.errors import NstError
from nst.layers import parse_layers

Task = Literal["reconstruct", "texture", "transfer"]
TASKS: tuple[str, ...] = ("reconstruct", "texture", "transfer")
OPTIMIZERS: tuple[str, ...] = ("lbfgs", "adam")
POOLINGS: tuple[str, ...] = ("max", "avg")
INIT_KINDS: tuple[str, ...] = ("content", "noise", "blend", "fast")  # fast: the fast path's result
# How the picture is made: gatys optimizes it; fast encodes, transforms the features
# and decodes them in one pass each (core/fast.py, with a trained decoder).
METHODS: tuple[str, ...] = ("gatys", "fast")
STYLE_LOSSES: tuple[str, ...] = ("gram", "meancov")
COLOR_MODES: tuple[str, ...] = ("luminance", "histogram")
# Arithmetic of the network (losses are always float32): fp32; tf32 (CUDA only:
# convolutions on tensor cores with a 10-bit mantissa, the default there); bf16
# (autocast: the network runs in bfloat16, features go back to float32).
PRECISIONS: tuple[str, ...] = ("fp32", "tf32", "bf16")


def _cpu_supports(*checks: str) -> bool:
    import torch  # noqa: PLC0415  (config stays importable without loading torch)

    try:
        return any(getattr(torch.cpu, name, lambda: False)() for name in checks)
    except RuntimeError:
        return False


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bfloat16 in hardware (AVX512-BF16 or AMX), where
    bf16 convolutions ran 1.5-2x faster than fp32 per VGG19 forward+backward at
    256 px (Intel Xeon with AMX: 0.139 vs 0.273 s; AMD EPYC Zen 4: 0.109 vs
    0.174 s). Elsewhere bf16 is emulated and slower."""
    return _cpu_supports("_is_avx512_bf16_supported", "_is_amx_tile_supported")


def cpu_has_amx() -> bool:
    """Whether this CPU has Intel AMX tiles, whose bf16 kernels prefer NHWC."""
    return _cpu_supports("_is_amx_tile_supported")


# Defaults that depend on where the run happens: a 2-core CPU must finish the
# default transfer in under 3 minutes; a GPU can afford a larger, longer run.
CPU_DEFAULT_SIZE = 384
CPU_DEFAULT_STEPS = 300
GPU_DEFAULT_SIZE = 512
GPU_DEFAULT_STEPS = 500
# Adam's step is in RGB units per step: 0.1 ended 2% lower than 0.02 after 200
# steps (tubingen + starry_night, 128 px) and within 1% of L-BFGS.
DEFAULT_LEARNING_RATE = {"lbfgs": 1.0, "adam": 0.1}
DEFAULT_MAX_PIXELS = 40_000_000
# Bounds that keep every later computation an ordinary number: torch's random
# generators take seeds in 0..2**64-1; no image side gets near a million pixels
# (the pixel limit refuses far smaller ones) and no run near 100 scales, but a
# side of 10**400 would overflow float arithmetic before the pixel check.
MAX_SEED = 2**64 - 1
MAX_SIDE = 1_000_000
MAX_SCALES = 100
# Coarse-to-fine starts here (longest side, pixels): small enough that the first
# scale is cheap, large enough for VGG's deepest style layers to see structure.
DEFAULT_START_SIZE = 128


def shipped_decoder_path() -> Path:
    """Where the decoder nst ships lives: inside the package (src/nst/decoders/)."""
    return Path(__file__).resolve().parent / "decoders" / "decoder.safetensors"


def decoder_path(config: Config) -> Path:
    """The decoder file a fast run uses: --decoder, else the shipped one; NstError
    (one line) when no decoder is given and none is shipped."""
    if config.decoder is not None:
        return Path(config.decoder)
    shipped = shipped_decoder_path()
    if not shipped.is_file():
        raise NstError(f"the decoder nst ships is missing ({shipped}): reinstall nst, or give --decoder FILE "
                       "(nst train-decoder makes one)")
    return shipped


def default_size(device_type: str) -> int:
    """The output's longest side when none is given, for a device type ('cpu', 'cuda', 'mps')."""
    return CPU_DEFAULT_SIZE if device_type == "cpu" else GPU_DEFAULT_SIZE


def default_steps(device_type: str) -> int:
    """The steps of a run when none are given, for a device type."""
    return CPU_DEFAULT_STEPS if device_type == "cpu" else GPU_DEFAULT_STEPS


# Layers of the study write-up (conv_k = k-th convolution, before its ReLU).
DEFAULT_CONTENT_LAYERS = ("conv_4",)
DEFAULT_STYLE_LAYERS = ("conv_1", "conv_2", "conv_3", "conv_4", "conv_5")
# Reconstruction has one loss term, so its weight only sets the loss scale; 1e3
# keeps L-BFGS's curvature updates (skipped below 1e-10) alive at every layer.
RECONSTRUCT_WEIGHT = 1e3

# `--preset gatys`: the layers of Gatys et al. 2016 with weights that give a
# balanced transfer on our feature scale (see README, "Loss scale").
PRESETS: dict[str, dict[str, Any]] = {
    "gatys": {
        "content_layers": ("relu4_2",),
        "style_layers": ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"),
        "content_weight": 1.0,
        "style_weight": 1e5,
    },
}


def _check_number(name: str, value: float, *, positive: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise NstError(f"{name} must be a number, got {value!r}")
    if isinstance(value, int) and abs(value) > sys.float_info.max:
        raise NstError(f"{name} must be finite, got {_shown(value)}")
    if not math.isfinite(value):
        raise NstError(f"{name} must be finite, got {value!r}")
    if positive and value <= 0:
        raise NstError(f"{name} must be greater than 0, got {value!r}")
    if value < 0:
        raise NstError(f"{name} must not be negative, got {value!r}")


def _shown(value: int) -> str:
    """An integer for a message; Python refuses to print one of over 4300 digits."""
    if value.bit_length() <= 128:
        return f"{value:,}"
    return f"an integer of about {int(value.bit_length() * math.log10(2))} digits"


def _check_method(method: str, strength: float, task: str) -> None:
    if method not in METHODS:
        raise NstError(f"unknown method {method!r}; expected one of {', '.join(METHODS)}")
    _check_number("strength", strength)
    if strength > 1:
        raise NstError(f"strength must be between 0 and 1, got {strength}")
    if method == "fast" and task != "transfer":
        raise NstError(f"--method fast paints a content image with a style: {task} has no fast path")


def _check_int(
    name: str, value: int | None, *, minimum: int, maximum: int | None = None, why: str = ""
) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise NstError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise NstError(f"{name} must be at least {minimum}, got {_shown(value)}")
    if maximum is not None and value > maximum:
        raise NstError(f"{name} must be at most {maximum:,}{why}, got {_shown(value)}")


@dataclass(frozen=True)
class Config:
    """Everything that decides a run's result. `None` means "the default for
    this task and device"; `resolved()` fills those in."""

    task: Task = "transfer"
    method: str = "gatys"  # gatys | fast (see METHODS)
    strength: float = 1.0  # fast only: 0 = the content decoded, 1 = the full style
    decoder: str | None = None  # fast only: a .safetensors decoder; None: the one nst ships
    content_layers: tuple[str, ...] = DEFAULT_CONTENT_LAYERS
    style_layers: tuple[str, ...] = DEFAULT_STYLE_LAYERS
    content_layer_weights: tuple[float, ...] | None = None  # None: 1 for each layer
    style_layer_weights: tuple[float, ...] | None = None  # None: 1 for each layer
    content_weight: float = 10.0
    style_weight: float = 1e6
    tv_weight: float = 0.0
    style_loss: str = "gram"  # gram | meancov (see targets.py)
    normalize_gradients: bool = False  # balance the style layers' pull (engine.balance_style_layers)
    preserve_color: str | None = None  # None | luminance | histogram (see color.py)
    style_blend: tuple[float, ...] | None = None  # None: equal weights
    optimizer: str = "lbfgs"
    steps: int | None = None
    learning_rate: float | None = None
    history_size: int | None = None  # L-BFGS steps kept; None: as many as memory allows (core/memory.py)
    ema_decay: float = 0.9  # Adam only: the output is this moving average of the iterates (0: off)
    init: str | None = None  # content | noise | blend | path to an image
    alpha: float = 0.5  # noise share of the `blend` init
    seed: int | None = None
    size: int | None = None  # longest side of the output, pixels
    scales: int | None = None  # coarse-to-fine scales; None: about sqrt(2) apart from start_size; 1: off
    start_size: int = DEFAULT_START_SIZE  # longest side of the coarsest scale
    style_size: int | None = None  # longest side of each style image
    width: int | None = None  # texture output width (texture task only)
    height: int | None = None
    device: str = "auto"
    weights: str = "caffe"  # caffe | torchvision | path to a state dict
    pooling: str = "max"
    precision: str | None = None  # fp32 | tf32 | bf16; None: see default_precision()
    channels_last: bool | None = None  # NHWC memory layout for the network; None: with bf16 on a CPU
    max_pixels: int = DEFAULT_MAX_PIXELS
    max_memory: int | None = None  # bytes a run may use; None: a share of the RAM or GPU (core/memory.py)

    def __post_init__(self) -> None:
        # Layer specs may arrive as "conv_1-conv_5" strings or aliases; store
        # canonical names so equal runs compare (and resume) as equal.
        for name in ("content_layers", "style_layers"):
            object.__setattr__(self, name, parse_layers(getattr(self, name)))
        for name in ("content_layer_weights", "style_layer_weights", "style_blend"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, tuple(value))
        if self.task not in TASKS:
            raise NstError(f"unknown task {self.task!r}; expected one of {', '.join(TASKS)}")
        _check_method(self.method, self.strength, self.task)
        if self.optimizer not in OPTIMIZERS:
            raise NstError(
                f"unknown optimizer {self.optimizer!r}; expected one of {', '.join(OPTIMIZERS)}"
            )
        if self.style_loss not in STYLE_LOSSES:
            raise NstError(
                f"unknown style loss {self.style_loss!r}; expected one of {', '.join(STYLE_LOSSES)}"
            )
        if self.preserve_color is not None and self.preserve_color not in COLOR_MODES:
            raise NstError(
                f"unknown colour mode {self.preserve_color!r}; expected one of {', '.join(COLOR_MODES)}"
            )
        _check_number("ema-decay", self.ema_decay)
        if self.ema_decay >= 1:
            raise NstError(f"ema-decay must be below 1, got {self.ema_decay}")
        if self.pooling not in POOLINGS:
            raise NstError(f"unknown pooling {self.pooling!r}; expected one of {', '.join(POOLINGS)}")
        if self.precision is not None and self.precision not in PRECISIONS:
            raise NstError(
                f"unknown precision {self.precision!r}; expected one of {', '.join(PRECISIONS)}"
            )
        for name in ("content_weight", "style_weight", "tv_weight"):
            _check_number(name.replace("_", "-"), getattr(self, name))
        _check_number("alpha", self.alpha)
        if self.alpha > 1:
            raise NstError(f"alpha must be between 0 and 1, got {self.alpha}")
        if self.learning_rate is not None:
            _check_number("learning-rate", self.learning_rate, positive=True)
        for name in ("content_layer_weights", "style_layer_weights", "style_blend"):
            for value in getattr(self, name) or ():
                _check_number(name.replace("_", "-"), value)
        if self.style_blend is not None and sum(self.style_blend) <= 0:
            raise NstError("style-blend weights must not all be 0")
        self._check_layer_weights("content", self.content_layers, self.content_layer_weights)
        self._check_layer_weights("style", self.style_layers, self.style_layer_weights)
        _check_int("steps", self.steps, minimum=1)
        _check_int("history-size", self.history_size, minimum=1)
        for name in ("size", "style_size", "width", "height", "start_size"):
            _check_int(name.replace("_", "-"), getattr(self, name), minimum=1, maximum=MAX_SIDE)
        _check_int("scales", self.scales, minimum=1, maximum=MAX_SCALES)
        _check_int("max-pixels", self.max_pixels, minimum=1)
        _check_int("max-memory", self.max_memory, minimum=1)
        _check_int("seed", self.seed, minimum=0, maximum=MAX_SEED,
                   why=" (2**64-1: torch's random generators take no more)")
        if self.task == "reconstruct" and not self.content_layers:
            raise NstError("reconstruct needs a content layer")
        if self.task == "texture" and not self.style_layers:
            raise NstError("texture needs at least one style layer")
        if self.task == "transfer" and not (self.content_layers or self.style_layers):
            raise NstError("transfer needs content or style layers")

    @staticmethod
    def _check_layer_weights(
        kind: str, layers: tuple[str, ...], weights: tuple[float, ...] | None
    ) -> None:
        if weights is not None and len(weights) != len(layers):
            raise NstError(
                f"{kind}-layer-weights has {len(weights)} values "
                f"but there are {len(layers)} {kind} layers"
            )

    def replace(self, **changes: Any) -> Config:
        return dataclasses.replace(self, **changes)

    def resolved(self, device_type: str) -> Config:
        """Fill every `None` default for this task and device type ('cpu', 'cuda', 'mps')."""
        if self.precision == "tf32" and device_type != "cuda":
            raise NstError(f"precision tf32 needs a CUDA GPU; this run is on {device_type}: use fp32 or bf16")
        default_init = "content" if self.task == "transfer" else "noise"
        precision = self.precision or self.default_precision(device_type)
        if self.method == "fast":  # one pass, no optimization: no steps, rate or start to fill in
            return self.replace(size=self.size or default_size(device_type), precision=precision,
                                channels_last=self.channels_last if self.channels_last is not None
                                else device_type == "cpu" and precision == "bf16" and cpu_has_amx())
        return self.replace(
            steps=self.steps or default_steps(device_type),
            size=self.size or default_size(device_type),
            learning_rate=self.learning_rate or DEFAULT_LEARNING_RATE[self.optimizer],
            init=self.init or default_init,
            precision=precision,
            # NHWC sped bf16 up on an AMX Xeon (0.126 vs 0.139 s at 256 px) but slowed
            # it on an AVX512-BF16 EPYC (0.131 vs 0.109 s) and slowed fp32 on both.
            channels_last=self.channels_last if self.channels_last is not None
            else device_type == "cpu" and precision == "bf16" and cpu_has_amx(),
            content_layer_weights=self.content_layer_weights
            or tuple(1.0 for _ in self.content_layers),
            style_layer_weights=self.style_layer_weights or tuple(1.0 for _ in self.style_layers),
        )

    def default_precision(self, device_type: str) -> str:
        """tf32 on CUDA. On a CPU with native bf16, bf16 for transfers: the
        same final loss as fp32 (17.68 vs 17.67 scored in fp32, 384 px, default
        settings) in 39 s instead of 55 s. Reconstructions and textures stay fp32:
        their losses approach zero, where bf16's rounding would show."""
        if device_type == "cuda":
            return "tf32"
        if device_type == "cpu" and self.task == "transfer" and cpu_has_native_bf16():
            return "bf16"
        return "fp32"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Config:
        """The inverse of to_dict (lists become tuples); NstError for unknown keys or bad values."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise NstError(f"unknown config keys: {', '.join(unknown)}")
        values: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of every field (tuples become lists)."""
        out = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            out[f.name] = list(value) if isinstance(value, tuple) else value
        return out


def apply_preset(config: Config, name: str) -> Config:
    if name not in PRESETS:
        raise NstError(f"unknown preset {name!r}; expected one of {', '.join(PRESETS)}")
    return config.replace(**PRESETS[name])
