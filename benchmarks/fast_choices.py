"""The fast path's design choices, measured: which decoder level (relu4_1 or
relu3_1) and which feature transform (AdaIN or WCT), by nst's own losses (the
default content and style layers, Gram style loss) on the shipped samples, and the
time of one stylization.

    python benchmarks/fast_choices.py DECODER.safetensors [DECODER...] --size 512 --out DIR
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from nst.config import DEFAULT_CONTENT_LAYERS, DEFAULT_STYLE_LAYERS
from nst.core.decoder import load_decoder
from nst.core.fast import fast_stylize, style_statistics
from nst.core.features import build_extractor
from nst.core.losses import content_loss, gram_matrix, style_loss
from nst.files.images import load_image, resize_longest, save_image, to_tensor
from nst.layers import parse_layers
from nst.samples import STYLE_SAMPLES, sample_path


def _image(name: str, size: int) -> torch.Tensor:
    return to_tensor(resize_longest(load_image(sample_path(name)), size))


def _distances(judge: torch.nn.Module, out: torch.Tensor, content: torch.Tensor,
               style: torch.Tensor) -> tuple[float, float]:
    content_layers = parse_layers(list(DEFAULT_CONTENT_LAYERS))
    style_layers = parse_layers(list(DEFAULT_STYLE_LAYERS))
    with torch.no_grad():
        got, want, painting = judge(out), judge(content), judge(style)
        c = sum(float(content_loss(got[n], want[n])) for n in content_layers)
        s = sum(float(style_loss(got[n], gram_matrix(painting[n]))) for n in style_layers)
    return c, s


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("decoders", nargs="+", type=Path)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--out", type=Path, default=Path("fast-choices"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--precision", default="bf16")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    judge = build_extractor([*DEFAULT_CONTENT_LAYERS, *DEFAULT_STYLE_LAYERS])
    content = _image("tubingen", args.size)
    print(f"torch threads {torch.get_num_threads()}, content {tuple(content.shape[-2:])}, "
          f"precision {args.precision}")
    for path in args.decoders:
        decoder = load_decoder(path)
        encoder = build_extractor([decoder.spec.level], precision=args.precision)
        for method in ("adain", "wct"):
            rows = []
            for name in STYLE_SAMPLES:
                style = _image(name, args.size)
                stats = style_statistics(encoder, style, decoder.spec.level)
                fast_stylize(encoder, decoder, content, [stats], method=method)  # warm
                start = time.perf_counter()
                for _ in range(args.repeats):
                    out = fast_stylize(encoder, decoder, content, [stats], method=method)
                seconds = (time.perf_counter() - start) / args.repeats
                c, s = _distances(judge, out, content, style)
                c0, s0 = _distances(judge, content, content, style)
                rows.append((name, seconds, c, s, s0))
                save_image(out, args.out / f"{path.stem}_{method}_{name}.png")
            print(f"{path.name} {decoder.spec.level_name} w{decoder.spec.width} {method}: "
                  + "; ".join(f"{n} {t:.2f}s content {c:.3g} style {s:.3g} (photo {s0:.3g})"
                              for n, t, c, s, s0 in rows))
        recon = fast_stylize(encoder, decoder, content, [content], strength=0.0)
        mse = float(((recon * 255).round() / 255 - content).pow(2).mean())
        print(f"  reconstruction PSNR on tubingen {10 * torch.log10(torch.tensor(1 / mse)):.2f} dB")
        save_image(recon, args.out / f"{path.stem}_reconstruction.png")


if __name__ == "__main__":
    main()
