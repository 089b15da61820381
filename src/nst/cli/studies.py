"""The `nst sweep` and `nst study` commands: arguments in, studies.py does the work.

`nst sweep` takes every option of `nst transfer` (they set the base run the
sweep varies), so new transfer options are sweep options too.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nst.cli.cluster import add_cluster_options, check_cluster_args, cluster_options, computer_for
from nst.cli.stop import stopped_status
from nst.config import Config
from nst.errors import NstError
from nst.events import Event, StepEvent
from nst.jobs.study_plan import REPORT_NAME, StudyPlan, earlier_results, load_study
from nst.plans.sweeps import DEFAULT_WINDOW, PRESETS, Inputs, Sweep, axis, parse_param, sliding_windows

if TYPE_CHECKING:
    from nst.cli.progress import RunBar
    from nst.results import SweepResult

COMMANDS = ("sweep", "study")
# Options of `nst transfer` that `nst sweep` does not take over.
# --mask is left out too: sweep runs have no mask input.
NOT_FOR_SWEEPS = frozenset({"help", "output", "save_every", "mask", "dry_run"})  # sweep has its own --dry-run

SWEEP_HELP = """\
kinds (each writes images, a labelled grid, results.json and index.html):
  layers   reconstruct --content from noise at conv_1 ... conv_16 (4x4 grid)
  windows  textures of --style from sliding windows of --window layers
  weights  content weight 1 ... 1e5 (rows) for each content/style pair (columns)
  grid     every --content image with every --style image
  seeds    the same reconstruction and texture from two seeds, compared
  init     transfer from noise and from the content image, with times and losses
  alpha    init = noise*alpha + content*(1-alpha), alpha = 0, 0.1, ... 1
  params   only what --param and several --content/--style images vary

--param NAME=V1,V2,... varies any option of `nst transfer` (use _ or -, e.g.
content_weight, tv-weight, style_layers, seed, size) or the content/style image;
it replaces a kind's own axis of that name or adds one. Separate values with ;
when a value itself has commas: --param "style_layers=conv_1,conv_3;conv_2,conv_4".
Runs whose image already exists with the same parameters are skipped (--force reruns).
"""


def add_study_commands(commands: Any, transfer: argparse.ArgumentParser) -> None:
    """Register `sweep` and `study` on the CLI's subcommands; `transfer` is the
    transfer command's parser, whose options `sweep` shares."""
    sweep = commands.add_parser(
        "sweep", help="run a sweep of parameter values into a labelled grid and an HTML report",
        description="Run one of the study's sweeps, or any parameter sweep of nst transfer.",
        epilog=SWEEP_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    sweep.add_argument("kind", nargs="?", default="params", choices=sorted(PRESETS), metavar="KIND",
                       help=f"one of {', '.join(PRESETS)} (default: params)")
    sweep.add_argument("--content", nargs="+", type=Path, default=[], metavar="IMAGE",
                       help="content image(s)")
    sweep.add_argument("--style", nargs="+", type=Path, default=[], metavar="IMAGE", help="style image(s)")
    sweep.add_argument("--param", action="append", default=[], metavar="NAME=V1,V2,...",
                       help="a parameter and its values (repeatable)")
    sweep.add_argument("--window", type=int, metavar="K",
                       help=f"windows: layers per window (default: {DEFAULT_WINDOW})")
    sweep.add_argument("--columns", type=int, metavar="N", help="grid cells per row for one-axis sweeps")
    sweep.add_argument("--title", help="report title")
    sweep.add_argument("-o", "--output", type=Path, required=True, help="output folder")
    _add_run_control(sweep)
    add_cluster_options(sweep)
    shared = sweep.add_argument_group("run options (as for nst transfer)")
    for action in transfer._actions:  # the same Action objects argparse's parents= would share
        if action.option_strings and action.dest not in NOT_FOR_SWEEPS:
            shared._add_action(action)

    study = commands.add_parser(
        "study", help="run a whole study from a TOML file (see examples/study.toml)",
        description="Run every part of a study file, resuming an interrupted study.")
    study.add_argument("config", type=Path, metavar="CONFIG.toml", help="the study file")
    study.add_argument("-o", "--output", type=Path,
                       help="output folder (default: the file's `output`, else ./<file name>-out)")
    study.add_argument("--device", help="auto, cpu, cuda, cuda:N or mps; overrides the file "
                       f"(default: the file's, else {Config().device})")
    study.add_argument("-q", "--quiet", action="store_true", help="no progress or summary")
    _add_run_control(study)
    add_cluster_options(study)


def _add_run_control(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--force", action="store_true", help="rerun runs whose outputs already exist")
    parser.add_argument("--dry-run", action="store_true",
                        help="list the runs (and which are already done) without running any")


class StudyConsole:
    """Progress on stderr from the event stream: a bar per run and a line when
    each run ends."""

    def __init__(self) -> None:
        self.bar: RunBar | None = None

    def __call__(self, event: Event) -> None:
        if isinstance(event, StepEvent):
            if self.bar is not None:
                self.bar(event)
            return
        position = f"[{event.index + 1}/{event.total}]"
        if event.status == "queued":
            print(f"nst: {event.label}", file=sys.stderr)
        elif event.status == "started":
            from nst.cli.progress import RunBar  # noqa: PLC0415

            self.close()
            self.bar = RunBar(f"{position} {event.label}")
        elif event.status == "finished" and event.record is not None:
            self.close()
            total = event.record.losses.get("total")  # none for --method fast
            loss = f"; loss {total:.4g}" if total is not None else ""
            print(f"{position} {event.label} ({duration(event.elapsed_s)}{loss})", file=sys.stderr)
        elif event.status == "skipped":
            print(f"{position} {event.label} ({event.message}: already done)", file=sys.stderr)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def command_line() -> str:
    """The command as typed, for the lock file of an output folder."""
    return " ".join(["nst", *sys.argv[1:]]) if sys.argv and sys.argv[0].endswith("nst") else "nst"


def duration(seconds: float) -> str:
    from nst.files.report import duration as report_duration  # noqa: PLC0415

    return report_duration(seconds)


def _sweeps_from_args(args: argparse.Namespace,
                      config_from_args: Callable[[argparse.Namespace], Config]) -> list[Sweep]:
    transfer = argparse.Namespace(**vars(args))
    transfer.command = "transfer"
    base = config_from_args(transfer)
    given = [parse_param(text) for text in args.param]
    if args.window is not None:
        if args.kind != "windows":
            raise NstError("--window only applies to `nst sweep windows`")
        given.append(axis("style_layers", sliding_windows(args.window)))
    sweeps = PRESETS[args.kind](Inputs(tuple(args.content), tuple(args.style)), base, given)
    if args.columns is not None:
        if args.columns < 1:
            raise NstError(f"columns must be at least 1, got {args.columns}")
        sweeps = [dataclasses.replace(s, columns=args.columns) for s in sweeps]
    return sweeps


def _dry_run(plan: StudyPlan) -> int:
    total = plan.check()
    seen: set[str] = set()
    counts = {"done": 0, "shared": 0, "to run": 0}
    for sweep in plan.sweeps:
        for spec in sweep.runs():
            key = json.dumps(plan.request(sweep, spec).key(), sort_keys=True)
            state = "done" if plan.saved(sweep, spec) else "shared" if key in seen else "to run"
            seen.add(key)
            counts[state] += 1
            print(f"{state:6s}  {plan.image_path(sweep, spec)}  ({spec.label})")
    print(f"{total} runs, {counts['done']} already done, {counts['to run']} to run, "
          f"{counts['shared']} copied from an identical run")
    return 0


def _print_comparisons(sweeps: list[SweepResult]) -> None:
    """Seed pairs: how far apart the pictures are, and how close their statistics."""
    for sweep in sweeps:
        for c in sweep.comparisons:
            print(f"{sweep.title}: {c.labels[0]} vs {c.labels[1]}: pixel difference "
                  f"{c.pixel_difference:.1f}/255 (mean absolute); {c.term} loss {c.loss_a:.4g} vs "
                  f"{c.loss_b:.4g}, difference {c.loss_difference:.3g} "
                  f"({c.relative_loss_difference:.1%}); {c.term} loss of one against the "
                  f"other's targets {c.cross_loss:.4g}"
                  + (f" (at the first step: {c.start_loss:.4g})" if c.start_loss else ""))


def _run(plan: StudyPlan, args: argparse.Namespace) -> int:
    check_cluster_args(args)
    options = cluster_options(args)
    plan.run_on = options.device_kind if options is not None else None
    if args.dry_run:
        return _dry_run(plan)
    from nst.cli.progress import ItemBar  # noqa: PLC0415
    from nst.jobs.studies import run_study  # noqa: PLC0415  (loads torch)

    console: Callable[[Event], None] | None = None
    try:
        with computer_for(args) as computer:  # a cluster to join is reached before the bar shows
            if not args.quiet:
                # On a cluster runs finish side by side: one bar over them, not one per run.
                console = ItemBar(args.command, "run") if args.cluster else StudyConsole()
            results = run_study(plan, console, computer)
    except KeyboardInterrupt as stop:
        print(f"\nnst: interrupted; finished runs are kept in {plan.output}, run the same "
              "command again to resume", file=sys.stderr)
        return stopped_status(stop)
    finally:
        if isinstance(console, ItemBar | StudyConsole):
            console.close()
    names = {s.name for s in plan.sweeps}
    sweeps = [s for s in results.sweeps if s.name in names]  # not those of earlier commands
    _print_comparisons(sweeps)
    if not args.quiet:
        statuses = [r.status for s in sweeps for r in s.runs]
        print(f"wrote {plan.output / REPORT_NAME} ({statuses.count('ran')} runs in "
              f"{duration(results.elapsed_s)}; {statuses.count('resumed')} already done, "
              f"{statuses.count('copied')} shared between sweeps)", file=sys.stderr)
    return 0


AUTO_TITLE = "nst sweep "
AUTO_TITLES = "nst sweeps: "


def sweep_title(earlier: str | None, kind: str) -> str:
    """The report's title after a `nst sweep KIND` into a folder whose report had
    `earlier` (None: no report yet). A title someone chose (--title, a study's) is
    kept; one nst made up names every kind of sweep the report holds."""
    if earlier is None:
        return f"{AUTO_TITLE}{kind}"
    if earlier.startswith(AUTO_TITLES):
        kinds = earlier.removeprefix(AUTO_TITLES).split(", ")
    elif earlier.startswith(AUTO_TITLE) and " " not in earlier.removeprefix(AUTO_TITLE):
        kinds = [earlier.removeprefix(AUTO_TITLE)]
    else:
        return earlier
    if kind not in kinds:
        kinds.append(kind)
    return f"{AUTO_TITLE}{kinds[0]}" if len(kinds) == 1 else AUTO_TITLES + ", ".join(kinds)


def run_study_command(args: argparse.Namespace,
                      config_from_args: Callable[[argparse.Namespace], Config]) -> int:
    """`nst sweep` or `nst study`; `config_from_args` is the CLI's (it reads transfer options)."""
    command = command_line()
    if args.command == "sweep":
        sweeps = _sweeps_from_args(args, config_from_args)
        earlier = earlier_results(args.output)
        title = args.title or sweep_title(earlier.title if earlier is not None else None, args.kind)
        plan = StudyPlan(sweeps, args.output, title, args.force, keep_other_sweeps=True, owner="sweep",
                         command=command)
        return _run(plan, args)
    plan = load_study(args.config, args.output, args.force, args.device)
    plan.command = command
    return _run(plan, args)
