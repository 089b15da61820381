"""nst against pastiche, side by side, on the same images, layers, weights and steps.

    python benchmarks/compare.py                      # 256 px, 30 L-BFGS steps, 3 rounds
    python benchmarks/compare.py --size 384 --steps 30 --quality   # + time to pastiche's loss

Both tools optimize the same objective: pastiche's defaults (content relu4_2, style
relu1_1..relu5_1, its layer weights) from the content image, with the same Caffe VGG19
weights (pastiche's data file). nst expresses that objective in its own units (see
PASTICHE_STYLE_WEIGHT); every output is then scored by one common loss function, reported in
pastiche's units. Each run is a fresh subprocess (so peak memory is its own), and the order of
the tools alternates between rounds. The bare row is a VGG19 forward+backward w.r.t. the input
through the same layers: the floor any Gatys-style tool can reach per iteration.
The nst row computes in float32 like pastiche; where bf16 is fast (a CPU with native
bf16, or CUDA) an nst-bf16 row adds nst's bf16 network (--precision bf16, with
nst's default memory layout for this machine).
--quality runs nst with its defaults, whatever precision they pick on this machine.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from nst import Config
from nst.config import cpu_has_native_bf16
from nst.core.engine import build_objective
from nst.core.features import build_extractor
from nst.files.images import load_image, resize_longest, save_image, to_tensor

HERE = Path(__file__).resolve()
SHARED = HERE.parents[2] / "shared" / "data" / "images"
CONTENT_LAYERS = ("relu4_2",)
STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
# pastiche's loss = 0.01 * MSE(Caffe features) + sum 10/C^2 * MSE(Gram / (h*w)). nst's
# features are Caffe's / 255 and its Gram is divided by C*h*w, so pastiche's loss equals
# PASTICHE_UNIT * (content + PASTICHE_STYLE_WEIGHT * style) in nst's terms.
PASTICHE_UNIT = 0.01 * 255**2
PASTICHE_STYLE_WEIGHT = 10 * 255**4 / PASTICHE_UNIT


def default_images() -> tuple[Path, Path]:
    from nst.samples import sample_path

    content, style = SHARED / "content" / "tubingen.jpg", SHARED / "style" / "starry_night.jpg"
    if content.exists() and style.exists():
        return content, style
    return sample_path("tubingen"), sample_path("starry_night")


def nst_config(steps: int, device: str, precision: str | None = "fp32") -> Config:
    """pastiche's objective in nst's units, at one scale: the per-iteration
    comparison runs the same L-BFGS steps on the same image."""
    return Config(
        content_layers=CONTENT_LAYERS, style_layers=STYLE_LAYERS, content_weight=1.0,
        style_weight=PASTICHE_STYLE_WEIGHT, steps=steps, init="content", device=device, seed=0,
        scales=1, precision=precision,
    )


def bf16_is_fast(device: str) -> bool:
    return device.startswith("cuda") or cpu_has_native_bf16()


class TargetReached(Exception):
    """Raised from the step callback to stop a --quality run once it is done."""


def peak_memory_mb(device: str) -> float:
    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


# ------------------------------------------------------------------ workers (subprocesses)


def work_nst(args: argparse.Namespace, precision: str | None = "fp32") -> dict:
    from nst import run
    from nst.core.geometry import scale_schedule

    config = nst_config(args.steps, args.device, precision).replace(size=args.size)
    if args.target is not None:  # --quality: nst's defaults, coarse-to-fine
        config = config.replace(precision=None, scales=None, start_size=args.start_size)
    # The number of scales depends on the longest side only.
    last_scale = len(scale_schedule(args.size, args.size, config.start_size, args.steps, config.scales)) - 1
    times: list[float] = []
    reached: dict[str, float] = {}
    start = last = time.perf_counter()

    def on_step(event) -> None:
        nonlocal last
        now = time.perf_counter()
        times.append(now - last)
        last = now
        # Only the last scale's loss is pastiche's objective at full size.
        if args.target is not None and event.scale == last_scale and \
                event.losses["total"] * PASTICHE_UNIT <= args.target:
            reached.update(reached_s=now - start, reached_step=len(times))
            save_image(event.image.cpu(), args.output)
            raise TargetReached

    try:
        done = run(config, args.content, [args.style], on_step)
        save_image(done.result.image, args.output)
    except TargetReached:
        pass
    used = config.resolved(args.device.split(":")[0]).precision
    return {"step_s": times, "wall_s": time.perf_counter() - start, "precision": used, **reached}


def work_pastiche(args: argparse.Namespace) -> dict:
    from pastiche.pastiche import VGG_MEAN, PasticheArtist

    start = time.perf_counter()
    artist = PasticheArtist(str(args.content), [str(args.style)], device=args.device,
                            size=args.size, style_size=args.size)
    times = []
    for _ in range(args.steps):
        tick = time.perf_counter()
        artist.draw()  # reads the loss back (.item()), so each step is synchronized
        times.append(time.perf_counter() - tick)
    sync(args.device)
    wall = time.perf_counter() - start
    bgr = artist.pastiche.detach().cpu()[0] + torch.tensor(VGG_MEAN).view(3, 1, 1)
    save_image((bgr.flip(0) / 255).clamp(0, 1)[None], args.output)
    return {"step_s": times, "wall_s": wall}


def work_bare(args: argparse.Namespace) -> dict:
    extractor = build_extractor(CONTENT_LAYERS + STYLE_LAYERS).to(args.device)
    content = to_tensor(load_image(args.content)).to(args.device)
    image = content.clone().requires_grad_(True)
    times = []
    start = time.perf_counter()
    for _ in range(args.steps):
        tick = time.perf_counter()
        features = extractor(image)
        sum(f.square().mean() for f in features.values()).backward()
        image.grad = None
        sync(args.device)
        times.append(time.perf_counter() - tick)
    return {"step_s": times, "wall_s": time.perf_counter() - start}


WORKERS = {"nst": work_nst, "nst-bf16": lambda args: work_nst(args, "bf16"),
           "pastiche": work_pastiche, "bare": work_bare}


# ------------------------------------------------------------------ the comparison


def common_loss(output: Path, content: Path, style: Path) -> float:
    """The objective both tools optimize, in pastiche's units, on an output file."""
    config = nst_config(1, "cpu").resolved("cpu")
    extractor = build_extractor(CONTENT_LAYERS + STYLE_LAYERS)
    objective = build_objective(extractor, config, to_tensor(load_image(content)),
                                [to_tensor(load_image(style))])
    with torch.no_grad():
        return float(objective(to_tensor(load_image(output)))["total"]) * PASTICHE_UNIT


def run_worker(tool: str, args: argparse.Namespace, content: Path, style: Path, output: Path,
               steps: int, target: float | None = None) -> dict:
    command = [sys.executable, str(HERE), "--worker", tool, "--content", str(content),
               "--style", str(style), "--size", str(args.size), "--steps", str(steps),
               "--device", args.device, "--output", str(output), "--start-size", str(args.start_size)]
    if target is not None:
        command += ["--target", repr(target)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{tool} worker failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def prepare_inputs(args: argparse.Namespace, folder: Path) -> tuple[Path, Path]:
    """Resize both images once, so neither tool's resampling filter makes a difference."""
    paths = []
    for name, source in (("content", args.content), ("style", args.style)):
        path = folder / f"{name}.png"
        resize_longest(load_image(source).convert("RGB"), args.size).save(path)
        paths.append(path)
    return paths[0], paths[1]


def compare(args: argparse.Namespace) -> None:
    folder = Path(tempfile.mkdtemp(prefix="nst-bench-"))
    content, style = prepare_inputs(args, folder)
    nst_rows = ["nst", "nst-bf16"] if bf16_is_fast(args.device) else ["nst"]
    rows: dict[str, list[dict]] = {tool: [] for tool in [*nst_rows, "pastiche", "bare"]}
    for round_index in range(args.repeats):
        order = [*nst_rows, "pastiche"] if round_index % 2 == 0 else ["pastiche", *nst_rows]
        for tool in [*order, "bare"]:
            output = folder / f"{tool}_{round_index}.png"
            stats = run_worker(tool, args, content, style, output, args.steps)
            if tool != "bare":
                stats["loss"] = common_loss(output, content, style)
            rows[tool].append(stats)
            print(f"  round {round_index + 1}/{args.repeats}: {tool} done", file=sys.stderr)
    print_table(args, rows)
    if args.quality:
        quality(args, content, style, folder)


def summarize(runs: list[dict]) -> dict[str, float]:
    # Skip each run's first step: it includes one-time setup (allocations, target features).
    step = statistics.median(s for run in runs for s in run["step_s"][1:])
    out = {"step_s": step, "wall_s": statistics.median(r["wall_s"] for r in runs),
           "peak_mb": statistics.median(r["peak_mb"] for r in runs)}
    if "loss" in runs[0]:
        out["loss"] = statistics.median(r["loss"] for r in runs)
    return out


def print_table(args: argparse.Namespace, rows: dict[str, list[dict]]) -> None:
    summary = {tool: summarize(runs) for tool, runs in rows.items()}
    threads = torch.get_num_threads()
    print(f"\n{args.size} px, {args.steps} L-BFGS steps, device {args.device} ({threads} threads), "
          f"{args.repeats} rounds, torch {torch.__version__}")
    print(f"{'tool':10} {'s/iter':>8} {'wall s':>8} {'peak MB':>8} {'final loss':>12}   nst/pastiche")
    for tool, values in summary.items():
        loss = f"{values['loss']:12.4g}" if "loss" in values else f"{'-':>12}"
        print(f"{tool:10} {values['step_s']:8.4f} {values['wall_s']:8.2f} {values['peak_mb']:8.0f} {loss}")
    pas = summary["pastiche"]
    for tool in (name for name in summary if name.startswith("nst")):
        nst = summary[tool]
        print(f"{'ratio':10} {nst['step_s'] / pas['step_s']:8.3f} {nst['wall_s'] / pas['wall_s']:8.3f} "
              f"{nst['peak_mb'] / pas['peak_mb']:8.3f} {nst['loss'] / pas['loss']:12.3f}   "
              f"({tool} / pastiche)")
    print(f"nst per iteration vs bare fp32 forward+backward: "
          f"{summary['nst']['step_s'] / summary['bare']['step_s']:.3f}x")


def quality(args: argparse.Namespace, content: Path, style: Path, folder: Path) -> None:
    """Time for nst (coarse-to-fine from --start-size, --nst-steps at the
    coarsest scale) to reach the loss pastiche has after --quality-steps steps."""
    steps = args.quality_steps
    reference = run_worker("pastiche", args, content, style, folder / "q_pastiche.png", steps)
    target = common_loss(folder / "q_pastiche.png", content, style)
    reached = run_worker("nst", args, content, style, folder / "q_nst.png", args.nst_steps, target)
    print(f"\nquality: pastiche reaches loss {target:.4g} after {steps} steps in "
          f"{reference['wall_s']:.1f} s")
    if "reached_s" in reached:
        print(f"quality: nst (coarse-to-fine from {args.start_size} px, "
              f"{reached['precision']}) reaches it in "
              f"{reached['reached_s']:.1f} s, after {reached['reached_step']} steps over all scales "
              f"({reference['wall_s'] / reached['reached_s']:.2f}x sooner)")
    else:
        final = common_loss(folder / "q_nst.png", content, style)
        print(f"quality: nst did not reach it in {reached['wall_s']:.1f} s (final loss {final:.4g})")


def main(argv: list[str] | None = None) -> None:
    content, style = default_images()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--content", type=Path, default=content)
    parser.add_argument("--style", type=Path, default=style)
    parser.add_argument("--size", type=int, default=256, help="longest side, pixels")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--quality", action="store_true", help="also measure time to pastiche's loss")
    parser.add_argument("--quality-steps", type=int, default=300, help="pastiche's steps in --quality")
    # 150 at the coarsest scale: 312 steps over five scales from 128 px at 384 px. 100 fell
    # short of pastiche's 300-step loss; 300 reached it too, but in twice the time.
    parser.add_argument("--nst-steps", type=int, default=150,
                        help="nst's --steps in --quality (the coarsest scale's iterations)")
    parser.add_argument("--start-size", type=int, default=128, help="nst's --start-size in --quality")
    parser.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    parser.add_argument("--output", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--target", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        stats = WORKERS[args.worker](args)
        stats["peak_mb"] = peak_memory_mb(args.device)
        print(json.dumps(stats))
        return
    compare(args)


if __name__ == "__main__":
    main()
