"""One request type, and the one place that checks and prepares it.

Every door (transfer, batch, each video frame's clip, every sweep run) turns
what the user asked for into a `Request` with `prepare`, which refuses bad input
in one line before anything large is decoded or allocated: the combination of
task and inputs, every input file (header only), the output (never one of the
inputs), every size the run will allocate, the device. Checks that need no
torch run before torch is imported, so a refusal is quick.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from PIL import Image

from nst.config import INIT_KINDS, Config, decoder_path, default_size
from nst.core.decoder_spec import DEFAULT_WIDTH, DecoderSpec
from nst.core.device import device_kind_without_torch, memory_budget, plan_on, select_device
from nst.core.geometry import SizePlan, check_pixels, plan_sizes, size_to_fit
from nst.core.memory import check_fast, default_budget
from nst.errors import NstError
from nst.files.images import check_writable, probe_image
from nst.record import InputRecord, request_key
from nst.tasks import check_method

if TYPE_CHECKING:
    import torch

    from nst.core.memory import ScalePlan

ImageInput = str | Path | Image.Image
# A new seed per request when none is given: below 2**31, to stay readable.
SEED_RANGE = 2**31


@dataclass(frozen=True)
class InputFile:
    """An input image: its role, how the user named it, where it is, its content
    hash and its size as the picture will be seen (EXIF orientation applied)."""

    role: str  # content | style | mask | init
    label: str
    path: Path | None  # resolved; None for an in-memory image (Python API)
    sha256: str
    size: tuple[int, int]
    image: Image.Image | None = field(default=None, compare=False, repr=False)

    def record(self) -> InputRecord:
        return InputRecord(self.role, self.label, self.sha256)


@dataclass(frozen=True)
class Request:
    """A checked run: the resolved config (every default and the seed filled in),
    its inputs, its plan (the sizes it will allocate and, per scale, the steps,
    L-BFGS history and tiles its device's memory allows), the device, and the
    output (if any). `scale_plans` is empty for a request that other machines run
    (prepare's run_on): they plan it on their own device (`scale_plans_on`)."""

    config: Config
    seed_given: bool
    device: str  # torch device string: cpu, cuda, cuda:1, mps
    content: InputFile | None
    styles: tuple[InputFile, ...]
    masks: tuple[InputFile, ...] = ()
    init: InputFile | None = None
    sizes: SizePlan | None = None
    output: Path | None = None
    scale_plans: tuple[ScalePlan, ...] = ()
    # The decoder file of a fast run (or a fast start), by content hash like an image:
    # its record names it, the resume rule compares it, a cluster ships it as a blob.
    decoder: InputFile | None = None

    @property
    def inputs(self) -> tuple[InputFile, ...]:
        first = (self.content,) if self.content is not None else ()
        last = (self.init,) if self.init is not None else ()
        decoder = (self.decoder,) if self.decoder is not None else ()
        return (*first, *self.styles, *self.masks, *last, *decoder)

    def input_records(self) -> tuple[InputRecord, ...]:
        return tuple(i.record() for i in self.inputs)

    def key(self) -> dict[str, object]:
        """What decides the picture (see record.request_key): the resume rule."""
        return request_key(self.config, self.input_records(), self.seed_given)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


_hash_cache: dict[tuple[str, int, int], str] = {}


def _cached_sha256(path: Path) -> str:
    """A batch or study hashes the same style files over and over: remember
    each file's hash while its size and modification time stay the same."""
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    if key not in _hash_cache:
        _hash_cache[key] = sha256_file(path)
    return _hash_cache[key]


def input_file(role: str, source: ImageInput, max_pixels: int,
               memory_budget: float | None = None) -> InputFile:
    """Check an input (header only: nothing is decoded) and describe it; with
    `memory_budget`, a file whose decoding would not fit it is refused."""
    if isinstance(source, Image.Image):
        pixels = source.tobytes()
        return InputFile(role, "<in-memory image>", None, hashlib.sha256(pixels).hexdigest(),
                         source.size, source)
    path = Path(source)
    size = probe_image(path, max_pixels, memory_budget)
    try:
        digest = _cached_sha256(path)
    except OSError as error:
        raise NstError(f"cannot read {path}: {error.strerror or error}") from None
    return InputFile(role, str(source), path.resolve(), digest, size)


def check_combination(config: Config, content: bool, styles: int, masks: int) -> None:
    """Refuse combinations of task and inputs that cannot work."""
    if config.task in ("reconstruct", "transfer") and not content:
        raise NstError(f"{config.task} needs a content image")
    if config.task in ("texture", "transfer") and not styles:
        raise NstError(f"{config.task} needs at least one style image")
    if config.style_blend is not None and len(config.style_blend) != styles:
        raise NstError(f"style-blend has {len(config.style_blend)} weights for {styles} style images")
    if config.style_blend is not None and styles == 1:
        raise NstError("style-blend weighs several style images against each other; with one style "
                       "it would change nothing: leave it out")
    if config.task == "texture" and config.init in ("content", "blend", "fast"):
        raise NstError("texture synthesis has no content image: use --init noise or an image path")
    if config.preserve_color is not None and config.task != "transfer":
        raise NstError(f"preserve-color needs a content image and a style; {config.task} does not have both")
    if masks and config.task != "transfer":
        raise NstError("masks place styles on a content image: use them with transfer")
    if masks and config.style_blend is not None:
        raise NstError("style-blend mixes styles everywhere, masks place them apart: use one or the other")


def same_file(a: Path, b: Path) -> bool:
    """Whether two paths name one file: the same resolved path (symlinks, '..'
    and '.' followed) or, for existing files, the same inode (hard links)."""
    if a.resolve() == b.resolve():
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def check_not_an_input(output: Path, inputs: Sequence[InputFile | Path]) -> None:
    """An output never replaces one of its inputs."""
    for item in inputs:
        path = item if isinstance(item, Path) else item.path
        if path is not None and same_file(output, path):
            role = "" if isinstance(item, Path) else f" ({item.role} image)"
            raise NstError(f"the output {output} is an input{role}; nst never replaces its inputs: "
                           "choose another output name")


def prepare(
    config: Config,
    content: ImageInput | None = None,
    styles: Sequence[ImageInput] = (),
    masks: Sequence[ImageInput] = (),
    output: str | Path | None = None,
    seed_given: bool | None = None,
    run_on: str | None = None,
) -> Request:
    """Check everything about a run and fill in its defaults; see the module doc.

    reconstruct needs `content`; texture needs `styles`; transfer needs both.
    masks (transfer only): one colour-labelled image, or one greyscale image per
    style. output: where the caller will write the image (checked here: format,
    writable folder, not an input). seed_given: whether the user chose the seed,
    for doors that draw one seed for many requests (default: config.seed is set).
    run_on: the device kind of the machines that will run it, when that is not this
    one (a cluster's workers: 'cpu' or 'cuda'); defaults are filled in for it, and
    the workers check it.
    """
    content_file, style_files, mask_files, init_file = describe_inputs(config, content, styles, masks)
    return prepare_files(config, content_file, style_files, mask_files, init_file, output, seed_given, run_on)


def precheck(
    config: Config,
    content: ImageInput | None = None,
    styles: Sequence[ImageInput] = (),
    masks: Sequence[ImageInput] = (),
    output: str | Path | None = None,
) -> None:
    """Every check of `prepare` that needs no torch (for doors that prepare many
    requests: all of them are checked before the first loads torch)."""
    content_file, style_files, _, _ = describe_inputs(config, content, styles, masks)
    _early_checks(config, content_file, style_files, _files(content_file, style_files), output)


Described = tuple[InputFile | None, tuple[InputFile, ...], tuple[InputFile, ...], InputFile | None]


def describe_inputs(
    config: Config, content: ImageInput | None, styles: Sequence[ImageInput], masks: Sequence[ImageInput]
) -> Described:
    """The task's inputs, checked and described (headers and hashes only)."""
    content = content if config.task in ("reconstruct", "transfer") else None
    styles = styles if config.task != "reconstruct" else ()
    check_combination(config, content is not None, len(styles), len(masks))
    limit = config.max_pixels
    # Inputs are decoded in this machine's RAM: within --max-memory, or the RAM's default share.
    budget = config.max_memory or default_budget("cpu")
    content_file = input_file("content", content, limit, budget) if content is not None else None
    style_files = tuple(input_file("style", s, limit, budget) for s in styles)
    mask_files = tuple(input_file("mask", m, limit, budget) for m in masks)
    init_file = None
    if config.init is not None and config.init not in INIT_KINDS:
        init_file = input_file("init", config.init, limit, budget)
    return content_file, style_files, mask_files, init_file


def _files(*groups: InputFile | None | tuple[InputFile, ...]) -> tuple[InputFile, ...]:
    files: list[InputFile] = []
    for group in groups:
        if isinstance(group, InputFile):
            files.append(group)
        elif group is not None:
            files.extend(group)
    return tuple(files)


def _early_checks(config: Config, content: InputFile | None, styles: tuple[InputFile, ...],
                  inputs: tuple[InputFile, ...], output: str | Path | None) -> Path | None:
    """The output (format, folder, never an input) and, where they are known
    without torch, every size."""
    # A door's own seed (a batch draws one for all its images) is no --seed given.
    check_method(config.replace(seed=None) if config.method == "fast" else config)
    if config.method == "fast" or config.init == "fast":
        decoder_spec(config)  # a missing or foreign decoder file: one line, before torch
    out = None
    if output is not None:
        out = check_writable(output)
        check_not_an_input(out, inputs)
    early_size = _size_without_torch(config)
    if early_size is not None and config.method != "fast":  # fast's one pass: planned on its device
        _plan(config.replace(size=early_size, steps=config.steps or 1), content, styles)
    return out


def decoder_spec(config: Config) -> DecoderSpec:
    """The architecture of the decoder a fast run (or a fast start) uses, from its
    file's header alone (torch-free; the Executor loads the weights); one line when
    there is no such file or it is no nst decoder."""
    path = decoder_path(config)
    try:
        with open(path, "rb") as handle:
            length = int.from_bytes(handle.read(8), "little")
            header = json.loads(handle.read(length)) if 0 < length < 1 << 26 else None
    except FileNotFoundError:
        raise NstError(f"decoder file not found: {path}") from None
    except OSError as error:
        raise NstError(f"cannot read decoder file {path}: {error.strerror or error}") from None
    except ValueError:
        header = None
    metadata = header.get("__metadata__") if isinstance(header, dict) else None
    if not isinstance(metadata, dict):
        raise NstError(f"cannot read decoder file {path}: not a .safetensors file with nst's metadata")
    try:
        return DecoderSpec(str(metadata.get("level")), int(metadata.get("width", DEFAULT_WIDTH)))
    except (ValueError, NstError) as error:
        raise NstError(f"{path}: not an nst decoder ({error})") from None


def prepare_files(
    config: Config,
    content: InputFile | None,
    styles: tuple[InputFile, ...],
    masks: tuple[InputFile, ...] = (),
    init: InputFile | None = None,
    output: str | Path | None = None,
    seed_given: bool | None = None,
    run_on: str | None = None,
) -> Request:
    """`prepare` for inputs already described (a video's clip is one content
    input): output, sizes, device, defaults and seed (run_on: see `prepare`)."""
    out = _early_checks(config, content, styles, _files(content, styles, masks, init), output)
    decoder = decoder_file(config) if config.method == "fast" or config.init == "fast" else None
    device = _remote_device(config.device, run_on) if run_on is not None \
        else select_device(config.device)  # the first moment torch is needed
    seed_given = config.seed is not None if seed_given is None else seed_given
    config = config.resolved(device.type)
    if config.method == "fast" and not seed_given:  # fast draws no random numbers (a door's drawn seed)
        config = config.replace(seed=None)
    elif config.seed is None:
        config = config.replace(seed=secrets.randbelow(SEED_RANGE))
    if config.method == "fast":  # one pass at the output size: no scales to plan
        sizes = _plan_fast(config, content, styles, device)
        return Request(config, seed_given, str(device), content, styles, masks, init, sizes, out, (), decoder)
    sizes = _plan(config, content, styles)
    # The plan of every scale, once: the engine runs it as it is (workers plan their own).
    scale_plans = plan_on(device, config, sizes.scales) if run_on is None else ()
    return Request(config, seed_given, str(device), content, styles, masks, init, sizes, out, scale_plans,
                   decoder)


def decoder_file(config: Config) -> InputFile:
    """The decoder file of `config` as an input of role 'decoder' (no picture: size 0 x 0)."""
    path = decoder_path(config)
    try:
        digest = _cached_sha256(path)
    except OSError as error:
        raise NstError(f"cannot read decoder file {path}: {error.strerror or error}") from None
    return InputFile("decoder", str(path), path.resolve(), digest, (0, 0))


def scale_plans_on(request: Request, batch: int = 1) -> tuple[ScalePlan, ...]:
    """The plan of every scale of `request` for `batch` images at once on its device:
    the one `prepare` made (one image, this machine), else made here, on the machine
    that runs it (a cluster's worker, or a batch of images optimized together)."""
    if request.scale_plans and batch == 1:
        return request.scale_plans
    import torch  # noqa: PLC0415

    assert request.sizes is not None
    return plan_on(torch.device(request.device), request.config, request.sizes.scales, batch)


def _remote_device(name: str, run_on: str) -> torch.device:
    """The device a request runs on when other machines (of kind `run_on`) run it:
    --device as given when it names that kind, else that kind itself."""
    import torch  # noqa: PLC0415

    if name == "auto":
        return torch.device(run_on)
    kind = device_kind_without_torch(name)
    if kind is None:
        raise NstError(f"unknown device {name!r}; expected auto, cpu, cuda, cuda:N or mps")
    if kind != run_on:
        hint = "give --gpus-per-worker" if kind == "cuda" else "leave out --gpus-per-worker"
        raise NstError(f"--device {name} on workers that compute on {run_on}: {hint}, or leave out --device")
    return torch.device(name)


def _size_without_torch(config: Config) -> int | None:
    """The output size, where it does not depend on what torch finds: given, or
    the default of a device named explicitly. None for --device auto without --size."""
    if config.size is not None:
        return config.size
    kind = device_kind_without_torch(config.device)
    if kind is None:
        return None
    return default_size(kind)


def _plan_fast(config: Config, content: InputFile | None, styles: Sequence[InputFile],
               device: torch.device) -> SizePlan:
    """A fast request's sizes (the canvas and each style; no scales), its one pass
    checked against the memory budget of `device`."""
    assert content is not None and config.size is not None
    canvas = size_to_fit(*content.size, config.size)
    check_pixels("output", *canvas, config.max_pixels)
    style_side = config.style_size or config.size
    style_sizes = tuple(size_to_fit(*style.size, style_side) for style in styles)
    for index, size in enumerate(style_sizes, 1):
        check_pixels(f"style {index} at {style_side} px", *size, config.max_pixels)
    spec = decoder_spec(config)
    budget = memory_budget(config.max_memory, device)
    check_fast((canvas, *style_sizes), config.precision or "fp32", spec.width, budget, spec.factor)
    return SizePlan(canvas, (), style_sizes)


def _plan(config: Config, content: InputFile | None, styles: Sequence[InputFile]) -> SizePlan:
    return plan_sizes(config, content.size if content is not None else None, [s.size for s in styles])
