"""What a task means: the one function every door calls to turn a task and the
user's options into a Config.

reconstruct: one content layer, no style term; its one term weighs
RECONSTRUCT_WEIGHT. texture: style terms only, no content image. transfer:
both. The CLI, a study's TOML, the sweep commands and the studio all call
`task_config`, so the same options give the same Config through every door.

Two kinds of settings come in. `base` holds shared settings (Config's
defaults, a preset, a study's [defaults] and part tables, a sweep's transfer
options) that may be meant for other tasks too: what this task fixes replaces
them silently. `given` holds explicit choices for this run: each is honoured,
or refused in one line when the task would ignore it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, cast

from nst.config import RECONSTRUCT_WEIGHT, TASKS, Config, Task
from nst.errors import NstError

DEFAULTS = Config()

# What each task sets, whatever a shared base says: the terms it has no input for.
# The fast path paints a content with a style: only a transfer has one.
_GATYS_ONLY = {"method": "gatys", "strength": 1.0, "decoder": None}
FIXED: dict[str, dict[str, Any]] = {
    "reconstruct": {"style_layers": (), "style_layer_weights": None, "style_weight": 0.0,
                    "style_blend": None, **_GATYS_ONLY},
    "texture": {"content_layers": (), "content_layer_weights": None, "content_weight": 0.0, **_GATYS_ONLY},
    "transfer": {},
}
# The weight of a single-term task's one term, unless given: a shared base's
# weights balance a transfer's two terms and mean nothing here. 1e3 keeps
# L-BFGS's curvature updates alive at every layer (see config.RECONSTRUCT_WEIGHT).
OWN_DEFAULTS: dict[str, dict[str, Any]] = {
    "reconstruct": {"content_weight": RECONSTRUCT_WEIGHT},
    "texture": {"style_weight": DEFAULTS.style_weight},
    "transfer": {},
}
# Options a task would ignore (beyond FIXED), and why: refused when given.
IGNORED: dict[str, dict[str, str]] = {
    "reconstruct": {
        name: "reconstruct has no style term" for name in
        ("style_loss", "normalize_gradients", "style_size", "preserve_color")
    } | {name: "width and height set a texture's size" for name in ("width", "height")},
    "texture": {
        "alpha": "texture has no content image to blend with noise",
        "preserve_color": "texture has no content image whose colours it could keep",
    },
    "transfer": {name: "width and height set a texture's size" for name in ("width", "height")},
}
# What --method fast refuses (it makes the picture in one pass, without an
# optimization or its losses): every option of the optimization, and the seed
# (fast draws no random numbers). Refused wherever it comes from (an option, a
# study's defaults, a sweep's base) when it differs from Config's default: a value
# that asks for what fast does anyway (--optimizer lbfgs) is no request to ignore.
# --precision, --device, --weights, --pooling, --size, --style-size, --preserve-color,
# --style-blend and masks act on the fast path as on gatys.
FAST_REFUSED: tuple[str, ...] = (
    "optimizer", "steps", "learning_rate", "history_size", "ema_decay", "tv_weight", "init", "alpha",
    "scales", "start_size", "normalize_gradients", "style_loss", "content_weight", "style_weight",
    "content_layers", "style_layers", "content_layer_weights", "style_layer_weights", "seed",
)
# Options only the fast path has: refused with gatys when they differ from the default.
FAST_ONLY: tuple[str, ...] = ("strength", "decoder")
_WHY_FIXED = {"reconstruct": "reconstruct has no style term", "texture": "texture has no content term"}
_FIELDS = frozenset(f.name for f in dataclasses.fields(Config))


def option_name(field: str) -> str:
    """A Config field as users spell it: 'style_weight' -> 'style-weight'."""
    return field.replace("_", "-")


def task_config(task: object, given: Mapping[str, Any] | None = None, base: Config | None = None) -> Config:
    """The Config of a `task` run: `base` (default: Config's defaults) with the
    task's own settings, then the explicit options `given` (Config field ->
    value; refused in one line where the task would ignore them)."""
    if task not in TASKS:
        raise NstError(f"unknown task {task!r}; expected one of {', '.join(TASKS)}")
    given = dict(given or {})
    unknown = sorted(set(given) - _FIELDS)
    if unknown:
        raise NstError(f"unknown option {unknown[0]!r}")
    if given.pop("task", task) != task:
        raise NstError(f"the option task differs from the run's task {task!r}")
    base = (base or DEFAULTS).replace(task=cast(Task, task), **FIXED[str(task)], **OWN_DEFAULTS[str(task)])
    if task == "texture" and base.init in ("content", "blend"):  # a shared start that needs a content image
        base = base.replace(init=None)
    _refuse_ignored(str(task), given)
    config = base.replace(**given)
    _check_given(config, given)
    # One layer, as asked: a shared base's layers (a study's, varied run by run) are the sweep's to vary.
    if config.task == "reconstruct" and "content_layers" in given and len(config.content_layers) != 1:
        raise NstError(f"reconstruct takes one layer, got {','.join(config.content_layers)!r}")
    return config


def _refuse_ignored(task: str, given: Mapping[str, Any]) -> None:
    for name, value in given.items():
        if name in FIXED[task] and _differs(value, FIXED[task][name]):
            raise NstError(f"{_WHY_FIXED[task]}: {option_name(name)} does not apply")
        if name in IGNORED[task] and _differs(value, getattr(DEFAULTS, name)):
            raise NstError(f"{IGNORED[task][name]}: {option_name(name)} does not apply")


def _differs(value: Any, meant: Any) -> bool:
    """Whether a given value changes what the task would do anyway (style-weight 0
    for a reconstruction asks for what it does)."""
    if isinstance(value, list | tuple) and isinstance(meant, tuple):
        return tuple(value) != meant
    return bool(value != meant)


def check_method(config: Config) -> None:
    """Refuse, in one line naming it, an option the config's method has no use for."""
    if config.method == "fast":
        for name in FAST_REFUSED:
            if _differs(getattr(config, name), getattr(DEFAULTS, name)):
                why = "draws no random numbers" if name == "seed" else "runs no optimization"
                raise NstError(f"--method fast {why}: {option_name(name)} does not apply")
        return
    if config.init == "fast":  # the optimization starts from the fast result: its decoder and strength
        return
    for name in FAST_ONLY:
        if _differs(getattr(config, name), getattr(DEFAULTS, name)):
            raise NstError(f"{option_name(name)} is for --method fast (or --init fast); "
                           f"this run is --method {config.method}")


def _check_given(config: Config, given: Mapping[str, Any]) -> None:
    """Options whose meaning depends on another one."""
    check_method(config)
    if given.get("alpha") is not None and config.init != "blend":
        start = config.init or ("content" if config.task == "transfer" else "noise")
        raise NstError(f"alpha is the noise share of --init blend; this run starts from {start}: "
                       "add --init blend or leave alpha out")
    if given.get("ema_decay") is not None and config.optimizer != "adam":
        raise NstError(f"ema-decay averages Adam's iterates; this run uses {config.optimizer}: "
                       "add --optimizer adam or leave ema-decay out")
    if given.get("history_size") is not None and config.optimizer != "lbfgs":
        raise NstError("history-size is L-BFGS's memory; this run uses adam: leave history-size out")
