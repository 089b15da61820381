"""The Executor's fast path on a random VGG19-shaped network (to relu3_1) and a
tiny untrained decoder file: sizes and aspects, strength 0, colour, masks, blends,
batches, the decoder cache, and --init fast starting the optimization there."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import pytest
import torch
from PIL import Image

from fakes import picture
from fastkit import FAST_LAYERS, fast_factory, tiny_decoder
from nst.config import Config
from nst.core.color import rgb_to_yiq
from nst.core.decoder import crop_to, load_decoder, pad_to_multiple
from nst.core.features import FeatureExtractor
from nst.core.memory import ScalePlan
from nst.events import Result, StepCallback
from nst.files.images import load_image, to_tensor
from nst.jobs.request import prepare
from nst.jobs.runner import Executor, batch_key


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    return {"content": picture(tmp_path / "c.png", 0, (37, 23)),
            "other": picture(tmp_path / "o.png", 5, (37, 23)),
            "style": picture(tmp_path / "s.png", 1, (30, 40), offset=(0.5, 0.1, 0.1), noise=0.3),
            "style2": picture(tmp_path / "t.png", 2, (40, 30), offset=(0.1, 0.1, 0.5)),
            "decoder": tiny_decoder(tmp_path / "d.safetensors")}


def fast(files: dict[str, Path], **changes: object) -> Config:
    return Config(**{"method": "fast", "decoder": str(files["decoder"]), "size": 37, "device": "cpu",
                     "precision": "fp32", "channels_last": False, **changes})


def test_a_fast_run_keeps_the_contents_size_and_aspect(files: dict[str, Path]) -> None:
    request = prepare(fast(files), files["content"], [files["style"]])
    assert request.scale_plans == () and request.sizes is not None and request.sizes.scales == ()
    done = Executor(fast_factory).run(request)
    assert tuple(done.result.image.shape) == (1, 3, 23, 37)
    assert float(done.result.image.min()) >= 0 and float(done.result.image.max()) <= 1
    assert done.record.steps == 0 and done.record.losses == {} and done.record.config.method == "fast"
    assert done.record.wall_time_s > 0


def test_strength_zero_is_the_decoded_content(files: dict[str, Path]) -> None:
    done = Executor(fast_factory).run(prepare(fast(files, strength=0.0), files["content"], [files["style"]]))
    decoder = load_decoder(files["decoder"])
    encoder = fast_factory(Config(content_layers=("relu3_1",), style_layers=(), precision="fp32"))
    content = to_tensor(load_image(files["content"]))
    padded, size = pad_to_multiple(content, decoder.spec.factor)
    with torch.no_grad():
        expected = crop_to(decoder(encoder(padded)["relu_5"]), size).clamp(0, 1)
    assert torch.allclose(done.result.image, expected, atol=1e-5)
    full = Executor(fast_factory).run(prepare(fast(files), files["content"], [files["style"]]))
    # the style changes it (an untrained decoder's output varies little: far more than rounding still)
    assert float((full.result.image - expected).abs().mean()) > 2e-5


def test_luminance_keeps_the_contents_chroma(files: dict[str, Path]) -> None:
    done = Executor(fast_factory).run(prepare(fast(files, preserve_color="luminance"), files["content"],
                                              [files["style"]]))
    content = to_tensor(load_image(files["content"]))
    image = done.result.image
    chroma = (rgb_to_yiq(image)[:, 1:] - rgb_to_yiq(content)[:, 1:]).abs().amax(dim=1)
    # exact where no channel was clamped to [0, 1] (an untrained decoder paints dark:
    # the content's chroma on it leaves the range in places)
    inside = ((image > 1e-4) & (image < 1 - 1e-4)).all(dim=1)
    assert int(inside.sum()) > 0.1 * inside.numel()
    assert float(chroma[inside].max()) < 1e-4
    grey = Executor(fast_factory).run(prepare(fast(files), files["content"], [files["style"]])).result.image
    assert float((rgb_to_yiq(grey)[:, 1:] - rgb_to_yiq(content)[:, 1:]).abs().mean()) > 1 / 255


def test_a_mask_that_covers_nothing_keeps_the_decoded_content(files: dict[str, Path], tmp_path: Path) -> None:
    Image.new("L", (37, 23), 0).save(tmp_path / "none.png")
    Image.new("L", (37, 23), 255).save(tmp_path / "all.png")
    executor = Executor(fast_factory)
    nowhere = executor.run(prepare(fast(files), files["content"], [files["style"]],
                                   [tmp_path / "none.png"]))
    plain = executor.run(prepare(fast(files, strength=0.0), files["content"], [files["style"]]))
    everywhere = executor.run(prepare(fast(files), files["content"], [files["style"]],
                                      [tmp_path / "all.png"]))
    alone = executor.run(prepare(fast(files), files["content"], [files["style"]]))
    assert torch.allclose(nowhere.result.image, plain.result.image, atol=1e-5)
    assert torch.allclose(everywhere.result.image, alone.result.image, atol=1e-5)
    assert float((alone.result.image - plain.result.image).abs().mean()) > 2e-5  # the masks decided it


def test_a_blend_all_on_one_style_is_that_style(files: dict[str, Path]) -> None:
    executor = Executor(fast_factory)
    blended = executor.run(prepare(fast(files, style_blend=(1.0, 0.0)), files["content"],
                                   [files["style"], files["style2"]]))
    alone = executor.run(prepare(fast(files), files["content"], [files["style"]]))
    assert torch.allclose(blended.result.image, alone.result.image, atol=1e-5)
    other = executor.run(prepare(fast(files, style_blend=(0.0, 1.0)), files["content"],
                                 [files["style"], files["style2"]]))
    assert float((other.result.image - alone.result.image).abs().mean()) > 2e-5


def test_a_batch_of_one_size_goes_through_together_as_each_alone(files: dict[str, Path]) -> None:
    config = fast(files, seed=None)
    requests = [prepare(config, files[name], [files["style"]]) for name in ("content", "other")]
    assert batch_key(requests[0]) is not None and batch_key(requests[0]) == batch_key(requests[1])
    executor = Executor(fast_factory)
    together = executor.run_batch(requests)
    for request, run in zip(requests, together, strict=True):
        assert torch.allclose(run.result.image, executor.run(request).result.image, atol=1e-5)
        assert run.request is request


def test_the_decoder_stays_loaded_until_its_file_changes(files: dict[str, Path]) -> None:
    executor = Executor(fast_factory)
    config = fast(files)
    first = executor.decoder(config, "cpu")
    assert executor.decoder(config, "cpu") is first
    stat = files["decoder"].stat()
    tiny_decoder(files["decoder"], seed=1)
    os.utime(files["decoder"], ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert executor.decoder(config, "cpu") is not first


class Recording(Executor):
    """An Executor that keeps the init tensor the engine is given."""

    def stylize(self, network: FeatureExtractor, config: Config, plans: Sequence[ScalePlan],
                canvas: torch.Tensor, content: torch.Tensor | None, styles: Sequence[torch.Tensor],
                masks: torch.Tensor | None = None, init: torch.Tensor | None = None,
                on_step: StepCallback | None = None) -> Result:
        self.init = init
        return super().stylize(network, config, plans, canvas, content, styles, masks, init, on_step)


def test_init_fast_starts_the_optimization_at_the_fast_result(files: dict[str, Path]) -> None:
    executor = Recording(fast_factory)
    gatys = Config(**FAST_LAYERS, init="fast", decoder=str(files["decoder"]), size=37, steps=2, scales=1,
                   device="cpu", optimizer="adam", learning_rate=1e-3, ema_decay=0.0)
    done = executor.run(prepare(gatys, files["content"], [files["style"]]))
    fast_run = Executor(fast_factory).run(prepare(fast(files), files["content"], [files["style"]]))
    assert executor.init is not None
    assert torch.allclose(executor.init, fast_run.result.image, atol=1e-6)
    # two Adam steps of 1e-3 move no pixel further than 2e-3 from where it started
    assert float((done.result.image - fast_run.result.image).abs().max()) < 3e-3
    assert done.record.steps == 2 and isinstance(done.request.scale_plans[0], ScalePlan)


def test_the_python_api_runs_fast_and_reports_show_it(files: dict[str, Path],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from nst.core import features  # noqa: PLC0415
    from nst.files.report import caption_stats  # noqa: PLC0415
    from nst.jobs import runner  # noqa: PLC0415

    monkeypatch.setattr(runner, "extractor_for", fast_factory)
    monkeypatch.setattr(features, "extractor_for", fast_factory)
    done = runner.run(fast(files), files["content"], [files["style"]])
    assert tuple(done.result.image.shape) == (1, 3, 23, 37) and done.config.seed is None
    assert caption_stats(done.record)[1] == "no optimization"  # no loss to show, no KeyError
