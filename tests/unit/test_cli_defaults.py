"""No default exists twice: the parser states Config's defaults and never stands in for them.

Walks every option of every command: a help text's "default" may only name
numbers that are defaults somewhere nst keeps them (Config, the device
defaults, the memory plan, the video options, ...); an option of a Config
field that states its default states Config's; and parsing no options gives
Config's own values. Also: a mistyped option names the nearest one, and
every door that computes takes --threads (else NST_THREADS). No torch.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
from collections.abc import Iterator

import pytest

from nst.cli import main
from nst.cli.cluster import add_cluster_options
from nst.cli.options import CONFIG_FIELDS, build_parser, config_from_args, parse_arguments, threads_from
from nst.cli.serve import DEFAULT_PORT
from nst.cluster.chunks import Chunking
from nst.cluster.connect import ClusterOptions
from nst.config import (
    DEFAULT_LEARNING_RATE,
    DEFAULT_START_SIZE,
    Config,
    default_size,
    default_steps,
)
from nst.core.memory import BUDGET_SHARE, HISTORY_CAP
from nst.errors import NstError
from nst.files.frames import FOLDER_DEFAULT_FPS
from nst.jobs.train_options import TrainOptions
from nst.jobs.video_request import WARM_START_SHARE, VideoOptions
from nst.plans.sweeps import DEFAULT_WINDOW

DEFAULTS = Config()
NUMBER = re.compile(r"(?<![\w.])\d[\d,]*(?:\.\d+)?(?:e[+-]?\d+)?(?![\w.])", re.IGNORECASE)


def _known_defaults() -> set[float]:
    """Every number a help text may state as a default."""
    numbers: set[float] = set()
    for f in dataclasses.fields(Config):
        value = getattr(DEFAULTS, f.name)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            numbers.add(float(value))
    for device in ("cpu", "cuda"):
        numbers |= {float(default_size(device)), float(default_steps(device))}
    numbers |= {float(v) for v in DEFAULT_LEARNING_RATE.values()}
    numbers |= {float(DEFAULT_START_SIZE), float(HISTORY_CAP), BUDGET_SHARE * 100, float(DEFAULT_WINDOW)}
    video, chunks, cluster = VideoOptions(), Chunking(), ClusterOptions()
    numbers |= {video.temporal(), video.temporal("fast"), WARM_START_SHARE, float(FOLDER_DEFAULT_FPS),
                float(chunks.frames), float(chunks.overlap), cluster.cpus_per_worker,
                cluster.gpus_per_worker, float(cluster.batch_size)}
    numbers |= {float(v) for v in dataclasses.asdict(TrainOptions()).values()
                if isinstance(v, (int, float)) and not isinstance(v, bool)}  # nst train-decoder's
    numbers |= {float(DEFAULT_PORT), 1.0}  # 1: "1 each": a layer's weight (Config: None, one per layer)
    return numbers


def _commands() -> Iterator[tuple[str, argparse.ArgumentParser]]:
    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    yield from commands.choices.items()


def _default_text(help_text: str) -> str:
    """The part of a help text that states a default ('default: ...' up to its end)."""
    found = re.search(r"default[^:]*:(.*?)(?:\)|$)", help_text.replace("%%", "%"))
    return found.group(1) if found else ""


def test_no_help_text_states_a_default_nst_does_not_have() -> None:
    known = _known_defaults()
    wrong = []
    for name, command in _commands():
        for action in command._actions:
            text = _default_text(action.help or "")
            for number in NUMBER.findall(text):
                if float(number.replace(",", "")) not in known:
                    wrong.append(f"nst {name} {'/'.join(action.option_strings)}: {number} in {action.help!r}")
    assert not wrong, "\n".join(wrong)


def test_an_option_of_a_config_field_states_config_s_default() -> None:
    for name, command in _commands():
        for action in command._actions:
            if action.dest not in CONFIG_FIELDS or "default:" not in (action.help or ""):
                continue
            value = getattr(DEFAULTS, action.dest)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                shown = {f"{value:g}", f"{value:,}", str(value)}
                assert any(s in _default_text(action.help or "") for s in shown), (name, action.dest)


def test_no_option_has_an_argparse_default_that_stands_in_for_config() -> None:
    for name, command in _commands():
        for action in command._actions:
            if action.dest in CONFIG_FIELDS:
                assert action.default is None, f"nst {name} --{action.dest} has default {action.default!r}"


@pytest.mark.parametrize("argv", [
    ["transfer", "c.png", "s.png", "-o", "o.png"],
    ["batch", "in", "s.png", "-o", "out"],
    ["video", "clip.mp4", "s.png", "-o", "out.mp4"],
])
def test_no_options_give_config_s_own_values(argv: list[str]) -> None:
    assert config_from_args(parse_arguments(build_parser(), argv)) == Config()


def test_the_cluster_options_leave_their_defaults_to_the_cluster() -> None:
    parser = argparse.ArgumentParser()
    add_cluster_options(parser)
    assert all(action.default is None for action in parser._actions if action.dest != "help")


def test_a_mistyped_option_names_the_nearest_one(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["transfer", "a.png", "b.png", "-o", "x.png", "--stlye-weight", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "unrecognized argument --stlye-weight (did you mean --style-weight?)" in err
    assert err.startswith("nst transfer: error:")
    assert main(["batch", "in", "s.png", "-o", "out", "--recursve"]) == 2
    assert "(did you mean --recursive?)" in capsys.readouterr().err


def test_threads_come_from_the_flag_then_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    parse = build_parser()
    args = parse_arguments(parse, ["transfer", "a.png", "b.png", "-o", "x.png", "--threads", "3"])
    monkeypatch.setenv("NST_THREADS", "2")
    assert threads_from(args) == 3
    args.threads = None
    assert threads_from(args) == 2
    monkeypatch.setenv("NST_THREADS", "two")
    with pytest.raises(NstError, match="NST_THREADS must be a whole number of at least 1, got 'two'"):
        threads_from(args)
    monkeypatch.delenv("NST_THREADS")
    assert threads_from(args) is None


@pytest.mark.parametrize("command", ["transfer", "reconstruct", "texture", "batch", "video", "sweep",
                                     "study", "serve", "demo"])
def test_every_door_that_computes_takes_threads(command: str) -> None:
    (parser,) = [p for name, p in _commands() if name == command]
    assert "--threads" in {s for a in parser._actions for s in a.option_strings}


def test_an_option_with_nothing_near_keeps_argparse_s_words(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["texture", "s.png", "-o", "x.png", "--preserve-color", "luminance"]) == 2
    err = capsys.readouterr().err.strip()
    assert "unrecognized arguments: --preserve-color luminance" in err and len(err.splitlines()) == 1
