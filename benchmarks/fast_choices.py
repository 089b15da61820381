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

from nst.config import DEFAULT_CONTENT_LAYERS, DEFAULT_STYLE_LAYERS, PRESETS
from nst.core.decoder import load_decoder
from nst.core.fast import fast_stylize, style_statistics
from nst.core.features import build_extractor
from nst.core.losses import content_loss, gram_matrix, style_loss
from nst.files.images import load_image, resize_longest, save_image, to_tensor
from nst.layers import parse_layers
from nst.samples import STYLE_SAMPLES, sample_path


def _image(name: str, size: int) -> torch.Tensor:
    return to_tensor(resize_longest(load_image(sample_path(name)), size))


# nst's default layers (style conv1_1..conv3_1, content conv2_2) and the Gatys
# preset's deeper ones (style relu1_1..relu5_1, content relu4_2).
LAYER_SETS = {"default": (DEFAULT_CONTENT_LAYERS, DEFAULT_STYLE_LAYERS),
              "gatys": (PRESETS["gatys"]["content_layers"], PRESETS["gatys"]["style_layers"])}


def _distances(judge: torch.nn.Module, out: torch.Tensor, content: torch.Tensor,
               style: torch.Tensor) -> dict[str, tuple[float, float]]:
    """{layer set: (content loss, Gram style loss summed over its layers)}."""
    with torch.no_grad():
        got, want, painting = judge(out), judge(content), judge(style)
    found = {}
    for name, (contents, styles) in LAYER_SETS.items():
        c = sum(float(content_loss(got[n], want[n])) for n in parse_layers(list(contents)))
        s = sum(float(style_loss(got[n], gram_matrix(painting[n]))) for n in parse_layers(list(styles)))
        found[name] = (c, s)
    return found


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("decoders", nargs="+", type=Path)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--out", type=Path, default=Path("fast-choices"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--precision", default="bf16")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    judge = build_extractor([layer for pair in LAYER_SETS.values() for group in pair for layer in group])
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
                got = _distances(judge, out, content, style)
                photo = _distances(judge, content, content, style)
                rows.append((name, seconds, got, photo))
                save_image(out, args.out / f"{path.stem}_{method}_{name}.png")
            print(f"{path.name} {decoder.spec.level_name} w{decoder.spec.width} {method}:")
            for n, t, got, photo in rows:
                print(f"  {n}: {t:.2f} s; " + "; ".join(
                    f"{k} layers content {got[k][0]:.3g} style {got[k][1]:.3g} "
                    f"(the photo's style {photo[k][1]:.3g})" for k in LAYER_SETS))
        recon = fast_stylize(encoder, decoder, content, [content], strength=0.0)
        mse = float(((recon * 255).round() / 255 - content).pow(2).mean())
        print(f"  reconstruction PSNR on tubingen {10 * torch.log10(torch.tensor(1 / mse)):.2f} dB")
        save_image(recon, args.out / f"{path.stem}_reconstruction.png")


if __name__ == "__main__":
    main()
