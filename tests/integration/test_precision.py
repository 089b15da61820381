"""The network's arithmetic: fp32, bf16 autocast and channels_last keep the
features and the result; tf32 is refused off CUDA with a clear message."""

import torch

from nst import Config
from nst.cli import app as cli
from nst.core.engine import Settings, build_objective, optimize
from nst.core.features import build_extractor
from nst.files.images import load_image, resize_longest, to_tensor

LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu4_2")


def _image(path, size):
    return to_tensor(resize_longest(load_image(path), size))


def test_bf16_features_are_float32_and_close_to_fp32(content_path):
    image = _image(content_path, 64)
    exact = build_extractor(LAYERS)(image)
    approximate = build_extractor(LAYERS, precision="bf16")(image)
    for layer in exact:
        assert approximate[layer].dtype == torch.float32
        error = (approximate[layer] - exact[layer]).norm() / exact[layer].norm()
        assert 0 < error < 0.05, f"{layer}: relative error {error:.3g}"


def test_channels_last_gives_the_same_features(content_path):
    image = _image(content_path, 64)
    exact = build_extractor(LAYERS)(image)
    nhwc = build_extractor(LAYERS, channels_last=True)(image)
    for layer in exact:
        assert (nhwc[layer] - exact[layer]).norm() < 1e-5 * exact[layer].norm()


def test_bf16_transfer_reaches_the_fp32_loss(content_path, style_path):
    """Optimized in bf16, scored in fp32: the result is as good as an fp32 run's."""
    content, style = _image(content_path, 48), _image(style_path, 48)
    base = Config(content_layers=("relu4_2",), style_layers=LAYERS[:4], steps=30,
                  device="cpu", scales=1).resolved("cpu")
    fp32 = build_extractor(LAYERS)
    scorer = build_objective(fp32, base, content, [style])
    start = float(scorer(content)["total"])
    final = {}
    for precision in ("fp32", "bf16"):
        extractor = build_extractor(LAYERS, precision=precision)
        objective = build_objective(extractor, base, content, [style])
        result = optimize(objective, content, Settings.of(base), base.steps)
        with torch.no_grad():
            final[precision] = float(scorer(result.image)["total"])
    assert final["fp32"] < 0.5 * start
    assert final["bf16"] < 1.1 * final["fp32"], final






def test_cli_tf32_on_cpu_is_one_line(tmp_path, capsys, content_path, style_path):
    output = tmp_path / "out.png"
    status = cli.main(["transfer", str(content_path), str(style_path), "-o", str(output),
                       "--device", "cpu", "--precision", "tf32", "--size", "32", "-q"])
    assert status == 2 and not output.exists()
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0 and "tf32" in error


def test_cli_bf16_channels_last_transfer_writes_an_image(tmp_path, content_path, style_path):
    output = tmp_path / "out.png"
    status = cli.main(["transfer", str(content_path), str(style_path), "-o", str(output),
                       "--device", "cpu", "--precision", "bf16", "--channels-last",
                       "--size", "40", "--steps", "5", "-q"])
    assert status == 0 and output.exists()
