"""Reads a study file (TOML) into a StudyFile: the study write-up's parts as
presets of sweeps.py, with shared defaults and per-part overrides. (The job
layer's study_plan.load_study turns it into a StudyPlan that runs.)

See examples/study.toml for a commented example of every key.
"""

from __future__ import annotations

import dataclasses
import difflib
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from nst.config import Config
from nst.errors import NstError
from nst.plans.sweeps import PRESETS, Axis, Inputs, Sweep, axis, params_preset, sliding_windows
from nst.samples import CONTENT_SAMPLES, STYLE_SAMPLES, sample_path

# Each part of the study (a TOML table) runs these presets, in this order.
PARTS: dict[str, tuple[str, ...]] = {
    "content_reconstruction": ("layers",),
    "texture_synthesis": ("windows",),
    "style_transfer": ("weights",),
    "content_style_grid": ("grid",),
    "seed_pairs": ("seeds",),
    "init_comparison": ("init",),
    "input_weighting": ("alpha",),
}
# Parts that compare runs of one content/style pair use the first image of each.
SINGLE_PAIR = ("content_reconstruction", "texture_synthesis", "seed_pairs", "init_comparison",
               "input_weighting")
CONFIG_KEYS = frozenset(f.name for f in fields(Config)) - {"task"}
PART_KEYS = frozenset({"enabled", "params", "content", "styles"})
EXTRA_KEYS = {"texture_synthesis": {"window"}}
SAMPLE_PREFIX = "sample:"


def _fail(where: str, message: str) -> NstError:
    return NstError(f"{where}: {message}")


def _check_keys(where: str, table: Mapping[str, Any], allowed: set[str] | frozenset[str]) -> None:
    for key in table:
        if key not in allowed:
            close = difflib.get_close_matches(key, sorted(allowed), n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise _fail(where, f"unknown key {key!r}{hint}")


def _table(where: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _fail(where, f"expected a table, got {value!r}")
    return value


def _image(where: str, text: Any, folder: Path) -> Path:
    """A path relative to the study file, or `sample:NAME` for a shipped sample."""
    if not isinstance(text, str):
        raise _fail(where, f"expected an image path, got {text!r}")
    if text.startswith(SAMPLE_PREFIX):
        name = text[len(SAMPLE_PREFIX):]
        samples = (*CONTENT_SAMPLES, *STYLE_SAMPLES)
        if name not in samples:
            raise _fail(where, f"unknown sample {name!r}; samples are {', '.join(samples)}")
        return sample_path(name)
    path = (folder / Path(text).expanduser()).resolve()
    if not path.is_file():
        raise _fail(where, f"image not found: {path}")
    return path


def _images(where: str, value: Any, folder: Path) -> tuple[Path, ...]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list):
        raise _fail(where, f"expected an image path or a list of them, got {value!r}")
    return tuple(_image(where, item, folder) for item in items)


def _inputs(where: str, table: Mapping[str, Any], inputs: Inputs,
            folder: Path) -> tuple[tuple[Path, ...], tuple[Path, ...]]:
    """A part's own `content`/`styles` if it names any, else those of [inputs]."""
    contents, styles = inputs.contents, inputs.styles
    if "content" in table:
        contents = _images(f"{where}.content", table["content"], folder)
    if "styles" in table:
        styles = _images(f"{where}.styles", table["styles"], folder)
    return contents, styles


def _config(where: str, base: Config, table: Mapping[str, Any]) -> Config:
    changes = {key: value for key, value in table.items() if key in CONFIG_KEYS}
    try:
        return base.replace(**changes)
    except NstError as error:
        raise _fail(where, str(error)) from None


def _axes(where: str, table: Mapping[str, Any]) -> list[Axis]:
    """`params = { name = [v1, v2, ...] }`: one axis per parameter."""
    out = []
    for name, values in _table(f"{where}.params", table.get("params", {})).items():
        try:
            out.append(axis(name, values if isinstance(values, list) else [values]))
        except NstError as error:
            raise _fail(f"{where}.params", str(error)) from None
    return out


def _part_sweeps(where: str, part: str, table: dict[str, Any], base: Config, inputs: Inputs,
                 folder: Path) -> list[Sweep]:
    _check_keys(where, table, CONFIG_KEYS | PART_KEYS | EXTRA_KEYS.get(part, set()))
    if not table.get("enabled", True):
        return []
    contents, styles = _inputs(where, table, inputs, folder)
    if part in SINGLE_PAIR:
        contents, styles = contents[:1], styles[:1]
    given = _axes(where, table)
    if "window" in table:
        given.append(axis("style_layers", sliding_windows(_window(where, table["window"]))))
    base = _config(where, base, table)
    sweeps = []
    for name in PARTS[part]:
        try:
            sweeps += PRESETS[name](Inputs(contents, styles), base, given)
        except NstError as error:
            raise _fail(where, str(error)) from None
    return sweeps


def _window(where: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail(f"{where}.window", f"expected a number of layers, got {value!r}")
    try:
        sliding_windows(value)
    except NstError as error:
        raise _fail(f"{where}.window", str(error)) from None
    return value


def _extra_sweeps(where: str, tables: Any, base: Config, inputs: Inputs, folder: Path) -> list[Sweep]:
    """[[sweep]] tables: generic sweeps with a title, a task and params."""
    if not isinstance(tables, list):
        raise _fail(where, "write extra sweeps as [[sweep]] tables")
    sweeps = []
    for number, table in enumerate(tables, 1):
        here = f"{where}[{number}]"
        _check_keys(here, _table(here, table), CONFIG_KEYS | PART_KEYS | {"title", "task"})
        if not table.get("enabled", True):
            continue
        title = str(table.get("title", f"Sweep {number}"))
        contents, styles = _inputs(here, table, inputs, folder)
        config = _config(here, base, table)
        try:
            config = config.replace(task=table.get("task", "transfer"))
            sweeps += params_preset(Inputs(contents, styles), config, _axes(here, table),
                                    name=title.lower(), title=title)
        except NstError as error:
            raise _fail(here, str(error)) from None
    return sweeps


@dataclass(frozen=True)
class StudyFile:
    """What a study file asks for: its sweeps, where they go, its title, and
    whose folder that is (`owner`)."""

    sweeps: list[Sweep]
    output: Path
    title: str
    owner: str


def read_study(path: str | Path, output: str | Path | None = None, device: str | None = None) -> StudyFile:
    """Read a study file. `output` (else the file's `output` key, else
    `<file stem>-out`) is relative to the current folder; image paths in the
    file are relative to the file itself."""
    path = Path(path)
    where = str(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise NstError(f"study file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as error:
        raise NstError(f"cannot read study file {path}: {error}") from None
    except tomllib.TOMLDecodeError as error:
        raise _fail(where, f"not valid TOML: {error}") from None
    _check_keys(where, data, {"title", "output", "inputs", "defaults", "sweep", *PARTS})
    folder = path.resolve().parent
    table = _table(f"{where} [inputs]", data.get("inputs", {}))
    _check_keys(f"{where} [inputs]", table, {"content", "styles"})
    inputs = Inputs(_images(f"{where} [inputs].content", table.get("content", []), folder),
                    _images(f"{where} [inputs].styles", table.get("styles", []), folder))
    defaults = _table(f"{where} [defaults]", data.get("defaults", {}))
    _check_keys(f"{where} [defaults]", defaults, CONFIG_KEYS)
    base = _config(f"{where} [defaults]", Config(), defaults)
    sweeps: list[Sweep] = []
    for part in PARTS:
        if part in data:
            sweeps += _part_sweeps(f"{where} [{part}]", part, _table(f"{where} [{part}]", data[part]),
                                   base, inputs, folder)
    sweeps += _extra_sweeps(f"{where} [[sweep]]", data.get("sweep", []), base, inputs, folder)
    if not sweeps:
        raise _fail(where, "the study has no parts; add [content_reconstruction] or another part")
    if device:  # the command line's --device wins over the file
        sweeps = [dataclasses.replace(s, base=s.base.replace(device=device)) for s in sweeps]
    target = Path(output if output is not None else data.get("output", f"{path.stem}-out"))
    # The folder belongs to the study of this title (an edited copy of its file
    # resumes it); another study may not write into it without --force.
    title = str(data.get("title", "nst study"))
    return StudyFile(sweeps, target, title, owner=f"study:{title}")
