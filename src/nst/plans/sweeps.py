"""Sweeps: one run per combination of parameter values, laid out as a grid.

A `Sweep` is a base `Config`, its input images and a list of `Axis` objects;
each axis varies one parameter of `nst transfer` (or the content or style
image). The named sweeps of the study (layers, windows, weights, ...) are
presets: functions that return such sweeps with a task and default axes, and
any axis a user gives with `--param` replaces the preset's axis of that name or
adds a new one. This module only describes runs; studies.py executes them.
"""

from __future__ import annotations

import difflib
import itertools
import re
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from nst.config import Config
from nst.errors import NstError
from nst.layers import parse_layers
from nst.tasks import task_config

# Pseudo-parameters that choose input images rather than Config fields.
INPUT_PARAMS = ("content", "style")
ALIASES = {"lr": "learning_rate", "styles": "style"}
ALL_LAYERS = tuple(f"conv_{i}" for i in range(1, 17))
DEFAULT_WINDOW = 5
DEFAULT_CONTENT_WEIGHTS = (1.0, 10.0, 100.0, 1e3, 1e4, 1e5)
DEFAULT_SEEDS = (1, 2)
DEFAULT_INITS = ("noise", "content")
DEFAULT_ALPHAS = tuple(i / 10 for i in range(11))
# Runs of a sweep share one seed unless one is given or swept, so that they
# differ only in what the sweep varies (and a rerun can resume them).
SWEEP_SEED = 0


def _sweepable() -> dict[str, Any]:
    """Config field name -> its type, for every field a sweep may vary."""
    hints = typing.get_type_hints(Config)
    return {f.name: hints[f.name] for f in fields(Config) if f.name != "task"}


SWEEPABLE = _sweepable()


def _kind(name: str) -> str:
    """How to read a value of a Config field from text: bool, float, int,
    layers, floats (a list of numbers), texts (a list) or text."""
    annotation = SWEEPABLE.get(name)
    options = [a for a in typing.get_args(annotation) if a is not type(None)]
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        annotation = options[0] if len(options) == 1 else annotation
    if annotation in (bool, float, int):
        return str(annotation.__name__)
    if typing.get_origin(annotation) is tuple:
        if name.endswith("_layers"):
            return "layers"
        return "floats" if typing.get_args(annotation)[0] in (float, int) else "texts"
    return "text"


def canonical_param(name: str) -> str:
    """'content-weight' -> 'content_weight'; an unknown name is an NstError with a hint."""
    key = name.strip().lower().replace("-", "_")
    key = ALIASES.get(key, key)
    if key in SWEEPABLE or key in INPUT_PARAMS:
        return key
    valid = sorted([*SWEEPABLE, *INPUT_PARAMS])
    close = difflib.get_close_matches(key, valid, n=1)
    hint = f" (did you mean {close[0]}?)" if close else ""
    raise NstError(f"cannot sweep {name!r}{hint}; parameters are: {', '.join(valid)}")


def _number(name: str, value: Any, cast: type) -> Any:
    if isinstance(value, bool):
        raise NstError(f"{name}: expected a number, got {value!r}")
    try:
        number = cast(value)
    except (TypeError, ValueError):
        raise NstError(f"{name}: expected {'an integer' if cast is int else 'a number'}, "
                       f"got {value!r}") from None
    if cast is int and isinstance(value, float) and value != number:
        raise NstError(f"{name}: expected an integer, got {value!r}")
    return number


def convert_value(name: str, value: Any) -> Any:
    """One value of parameter `name` (canonical) from a CLI string or a TOML value."""
    if name == "content":
        return Path(value)
    if name == "style":
        return (Path(value),)
    kind = _kind(name)
    if kind == "bool":
        return _boolean(name, value)
    if kind in ("float", "int"):
        return _number(name, value, float if kind == "float" else int)
    if kind == "layers":
        return parse_layers(value)
    parts = value.split(",") if isinstance(value, str) else list(value)
    if kind == "floats":
        return tuple(_number(name, part, float) for part in parts if str(part).strip())
    if kind == "texts":
        return tuple(str(part).strip() for part in parts if str(part).strip())
    return str(value)


def _boolean(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "yes", "on", "1"):
        return True
    if text in ("false", "no", "off", "0"):
        return False
    raise NstError(f"{name}: expected true or false, got {value!r}")


def split_values(name: str, text: str) -> list[str]:
    """Values of one `--param`: separated by ';' when any is present, else by ','.
    List-valued parameters (layer weights, style blend) always use ';'."""
    multi = ";" in text or _kind(name) in ("floats", "texts")
    values = [v.strip() for v in text.split(";" if multi else ",")]
    return [v for v in values if v]


def format_value(value: Any) -> str:
    """A short, readable form of a parameter value for labels and file names."""
    if isinstance(value, Path):
        return value.stem
    if isinstance(value, tuple) and value and all(isinstance(v, Path) for v in value):
        return "+".join(v.stem for v in value)
    if isinstance(value, tuple) and all(isinstance(v, str) for v in value):
        return compact_layers(value)
    if isinstance(value, tuple):
        return ",".join(format_value(v) for v in value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def compact_layers(names: Sequence[str]) -> str:
    """('conv_1', ..., 'conv_5') -> 'conv_1-conv_5'; other lists are comma-joined."""
    match = [re.fullmatch(r"(conv|relu)_(\d+)", n) for n in names]
    if len(names) > 2 and all(match):
        kinds = {m.group(1) for m in match if m}
        indices = [int(m.group(2)) for m in match if m]
        if len(kinds) == 1 and indices == list(range(indices[0], indices[0] + len(indices))):
            return f"{names[0]}-{names[-1]}"
    return ",".join(names)


@dataclass(frozen=True)
class Axis:
    """One varied parameter: per value, the overrides it applies, its label and
    the part of a file name that stands for it."""

    name: str
    values: tuple[Mapping[str, Any], ...]
    labels: tuple[str, ...]
    slugs: tuple[str, ...]


def axis(name: str, values: Sequence[Any]) -> Axis:
    """An axis over one parameter; values may be CLI strings or TOML values.
    Labels stay ASCII so the grids' font can draw them."""
    name = canonical_param(name)
    if not values:
        raise NstError(f"no values to sweep for {name}")
    converted = [convert_value(name, v) for v in values]
    key = "styles" if name == "style" else name
    # Layers and images name themselves; other values need the parameter's name.
    plain = name in INPUT_PARAMS or name.endswith("_layers")
    prefix = "" if plain else name.replace("_", " ") + " "
    return Axis(name, tuple({key: v} for v in converted),
                tuple(prefix + format_value(v) for v in converted),
                tuple(format_value(v) if plain else f"{name}-{format_value(v)}" for v in converted))


def parse_param(text: str) -> Axis:
    """`--param NAME=V1,V2,...` -> Axis."""
    name, sep, raw = text.partition("=")
    if not sep or not name.strip():
        raise NstError(f"--param expects NAME=V1,V2,..., got {text!r}")
    key = canonical_param(name)
    values = split_values(key, raw)
    if not values:
        raise NstError(f"--param {name.strip()} has no values")
    return axis(key, values)


def pair_axis(pairs: Sequence[tuple[Path, Path]]) -> Axis:
    """Content/style pairs varied together (the columns of the weight sweep)."""
    return Axis("pair", tuple({"content": c, "styles": (s,)} for c, s in pairs),
                tuple(f"{c.stem} + {s.stem}" for c, s in pairs),
                tuple(f"{c.stem}-{s.stem}" for c, s in pairs))


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_.") or "run"


@dataclass(frozen=True)
class RunSpec:
    """One run of a sweep: the exact config and inputs, where it sits, its name."""

    config: Config
    content: Path | None
    styles: tuple[Path, ...]
    labels: tuple[str, ...]  # one per axis
    index: tuple[int, ...]  # value index per axis
    params: Mapping[str, Any]  # the overrides the axes applied
    slug: str

    @property
    def label(self) -> str:
        return " · ".join(self.labels)


@dataclass(frozen=True)
class Sweep:
    """A named set of runs shown as one grid in one section of the report."""

    name: str  # file-name slug, unique within a study
    title: str
    section: str  # one of SECTIONS
    base: Config
    content: Path | None
    styles: tuple[Path, ...]
    axes: tuple[Axis, ...]
    description: str = ""
    columns: int | None = None  # cells per row when there is one axis
    compare: str | None = None  # axis whose runs are compared (seed pairs)
    show_stats: bool = False  # time and losses under each grid cell
    slider: bool = False  # the report steps through the runs with a slider

    def runs(self) -> list[RunSpec]:
        specs: list[RunSpec] = []
        used: set[str] = set()
        for index in itertools.product(*(range(len(a.values)) for a in self.axes)):
            overrides: dict[str, Any] = {}
            for a, i in zip(self.axes, index, strict=True):
                overrides.update(a.values[i])
            labels = tuple(a.labels[i] for a, i in zip(self.axes, index, strict=True))
            changes = {k: v for k, v in overrides.items() if k not in ("content", "styles")}
            try:
                config = self.base.replace(**changes)
                if config.seed is None:
                    config = config.replace(seed=SWEEP_SEED)
            except NstError as error:
                raise NstError(f"sweep {self.name}, run {' · '.join(labels)}: {error}") from None
            slug = _slug("__".join(a.slugs[i] for a, i in zip(self.axes, index, strict=True)))
            while slug in used:
                slug += "_"
            used.add(slug)
            specs.append(RunSpec(config, overrides.get("content", self.content),
                                 tuple(overrides.get("styles", self.styles)), labels, index,
                                 overrides, slug))
        return specs

    def check_inputs(self) -> None:
        """Fail before any run if the task lacks an input image."""
        for spec in self.runs():
            if spec.config.task in ("reconstruct", "transfer") and spec.content is None:
                raise NstError(f"sweep {self.name} needs a content image (--content)")
            if spec.config.task in ("texture", "transfer") and not spec.styles:
                raise NstError(f"sweep {self.name} needs a style image (--style)")


@dataclass(frozen=True)
class Inputs:
    contents: tuple[Path, ...] = ()
    styles: tuple[Path, ...] = ()


# ---------------------------------------------------------------- presets

def reconstruct_base(base: Config) -> Config:
    """`base` (shared settings) as `nst reconstruct` runs it (see nst.tasks)."""
    return task_config("reconstruct", base=base)


def texture_base(base: Config) -> Config:
    """`base` (shared settings) as `nst texture` runs it (see nst.tasks)."""
    return task_config("texture", base=base)


def transfer_base(base: Config) -> Config:
    """`base` (shared settings) as `nst transfer` runs it (see nst.tasks)."""
    return task_config("transfer", base=base)


def sliding_windows(size: int = DEFAULT_WINDOW) -> tuple[str, ...]:
    """Layer specs of every window of `size` consecutive convolutions."""
    if not 1 <= size <= len(ALL_LAYERS):
        raise NstError(f"window must be between 1 and {len(ALL_LAYERS)} layers, got {size}")
    return tuple(f"conv_{i}-conv_{i + size - 1}" if size > 1 else f"conv_{i}"
                 for i in range(1, len(ALL_LAYERS) - size + 2))


def _axes(defaults: Sequence[Axis], given: Sequence[Axis]) -> tuple[Axis, ...]:
    """The preset's axes, each replaced by a given axis of the same name, then the other given axes."""
    by_name = {a.name: a for a in given}
    return (*(by_name.pop(a.name, a) for a in defaults), *by_name.values())


def _one(paths: Sequence[Path], what: str, preset: str) -> Path:
    if len(paths) != 1:
        got = "none" if not paths else f"{len(paths)}"
        raise NstError(f"sweep {preset} takes one {what} image, got {got}")
    return paths[0]


def _pairs(inputs: Inputs) -> list[tuple[Path, Path]]:
    """Content/style pairs: matched in order, or one image paired with each of the others."""
    contents, styles = inputs.contents, inputs.styles
    if not contents or not styles:
        raise NstError("sweep weights needs content and style images")
    if len(contents) == 1 or len(styles) == 1 or len(contents) == len(styles):
        count = max(len(contents), len(styles))
        return [(contents[i % len(contents)], styles[i % len(styles)]) for i in range(count)]
    raise NstError(f"sweep weights pairs content and style images in order: got {len(contents)} "
                   f"content and {len(styles)} style images (give equal counts, or one of either)")


def layers_preset(inputs: Inputs, base: Config, given: Sequence[Axis] = ()) -> list[Sweep]:
    content = _one(inputs.contents, "content", "layers")
    axes = _axes([axis("content_layers", ALL_LAYERS)], given)
    return [Sweep("layers", f"Reconstructing {content.stem} from one layer", "reconstruction",
                  reconstruct_base(base), content, (), axes, columns=4, description=(
                      "Each image starts from noise and is optimized until its features at one "
                      "VGG19 layer match the photo's, with no style term. Left to right, top to "
                      "bottom: shallow to deep layers."))]


def windows_preset(inputs: Inputs, base: Config, given: Sequence[Axis] = ()) -> list[Sweep]:
    style = _one(inputs.styles, "style", "windows")
    windows = axis("style_layers", sliding_windows())
    axes = _axes([windows], given)
    return [Sweep("windows", f"Textures of {style.stem} from sliding layer windows", "texture",
                  texture_base(base), None, (style,), axes, columns=4, description=(
                      "Each texture starts from noise and matches the painting's Gram matrices at "
                      "the layers named under it; by default a window of five consecutive "
                      "convolutions sliding one layer at a time towards the deep end of the network."))]


def weights_preset(inputs: Inputs, base: Config, given: Sequence[Axis] = ()) -> list[Sweep]:
    weights = axis("content_weight", DEFAULT_CONTENT_WEIGHTS)
    axes = _axes([weights, pair_axis(_pairs(inputs))], given)
    base = transfer_base(base)
    return [Sweep("weights", "Content weight against style weight", "transfer", base, None, (), axes,
                  description=(
                      f"The style weight stays at {base.style_weight:g} while the content weight "
                      "changes from row to row: low content weights give style-dominated pictures, "
                      "high ones a near-copy of the photo. Columns are content/style pairs."))]


def grid_preset(inputs: Inputs, base: Config, given: Sequence[Axis] = ()) -> list[Sweep]:
    if not inputs.contents or not inputs.styles:
        raise NstError("sweep grid needs content and style images")
    axes = _axes([axis("content", inputs.contents), axis("style", inputs.styles)], given)
    return [Sweep("grid", "Every content image with every style", "transfer",
                  transfer_base(base), None, (), axes, description=(
                      "Rows are content images, columns are paintings, all at the same weights."))]


def seeds_preset(inputs: Inputs, base: Config, given: Sequence[Axis] = ()) -> list[Sweep]:
    content = _one(inputs.contents, "content", "seeds")
    style = _one(inputs.styles, "style", "seeds")
    seeds = axis("seed", DEFAULT_SEEDS)
    rec, tex = reconstruct_base(base), texture_base(base)
    note = ("The same run from two noise seeds: the pictures differ pixel by pixel, yet the "
            "{what} the loss measures match; the table gives both differences.")
    return [
        Sweep("seeds-reconstruct", f"Seed pair: reconstruction from {compact_layers(rec.content_layers)}",
              "reconstruction", rec, content, (), _axes([seeds], given), compare="seed",
              show_stats=True, description=note.format(what="layer features")),
        Sweep("seeds-texture", f"Seed pair: texture from {compact_layers(tex.style_layers)}",
              "texture", tex, None, (style,), _axes([seeds], given), compare="seed",
              show_stats=True, description=note.format(what="Gram statistics")),
    ]


def init_preset(inputs: Inputs, base: Config, given: Sequence[Axis] = ()) -> list[Sweep]:
    content = _one(inputs.contents, "content", "init")
    style = _one(inputs.styles, "style", "init")
    axes = _axes([axis("init", DEFAULT_INITS)], given)
    return [Sweep("init", "Starting from noise or from the photo", "init",
                  transfer_base(base), content, (style,), axes, show_stats=True,
                  description=("The same transfer started from noise and from the content photo; "
                               "under each image its wall time and final weighted losses."))]


def alpha_preset(inputs: Inputs, base: Config, given: Sequence[Axis] = ()) -> list[Sweep]:
    content = _one(inputs.contents, "content", "alpha")
    style = _one(inputs.styles, "style", "alpha")
    axes = _axes([axis("alpha", DEFAULT_ALPHAS)], given)
    return [Sweep("alpha", "Blending noise into the start image", "weighting",
                  transfer_base(base.replace(init="blend")), content, (style,), axes, slider=True,
                  description=("The start image is noise·α + content·(1−α): α = 0 starts from the "
                               "photo, α = 1 from pure noise. Move the slider to step through α."))]


def params_preset(inputs: Inputs, base: Config, given: Sequence[Axis] = (),
                  name: str = "params", title: str = "Parameter sweep") -> list[Sweep]:
    """The generic sweep: several content or style images become axes of their own."""
    defaults = [axis(kind, paths) for kind, paths in
                (("content", inputs.contents), ("style", inputs.styles)) if len(paths) > 1]
    axes = _axes(defaults, given)
    if not axes:
        raise NstError("nothing to sweep: give --param NAME=V1,V2,... or several content or style images")
    if any(a.name == "alpha" for a in axes):
        if base.init not in (None, "blend"):
            raise NstError(f"sweeping alpha needs --init blend, not {base.init!r}")
        base = base.replace(init="blend")
    content = inputs.contents[0] if len(inputs.contents) == 1 else None
    styles = inputs.styles if len(inputs.styles) == 1 else ()
    base = task_config(base.task, base=base)
    if base.task == "reconstruct":
        styles = ()
    elif base.task == "texture":
        content = None
    return [Sweep(_slug(name), title, "other", base, content, styles, axes,
                  description="Runs over " + ", ".join(a.name.replace("_", " ") for a in axes) + ".")]


Preset = Callable[[Inputs, Config, Sequence[Axis]], list[Sweep]]
PRESETS: dict[str, Preset] = {
    "layers": layers_preset,
    "windows": windows_preset,
    "weights": weights_preset,
    "grid": grid_preset,
    "seeds": seeds_preset,
    "init": init_preset,
    "alpha": alpha_preset,
    "params": params_preset,
}
