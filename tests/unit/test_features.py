"""Weight files: decoding, local .pth and .safetensors, torch.hub's cache,
and clear refusals; all on synthetic state dicts (the real weights: tests/integration)."""

import urllib.error

import pytest
import torch

from nst import NstError
from nst.core import features as feat
from nst.core.features import (
    TORCHVISION_CONV_INDICES,
    decode_quantized,
    load_weights,
)
from nst.layers import CONV_CHANNELS


def test_decode_quantized_looks_up_the_table():
    table = torch.linspace(-1, 1, 256)
    codes = torch.tensor([[0, 255], [128, 1]], dtype=torch.uint8)
    expected = torch.stack([table[[0, 255]], table[[128, 1]]])
    assert torch.equal(decode_quantized(codes, table), expected)


def _torchvision_state(shapes_ok: bool = True) -> dict[str, torch.Tensor]:
    state = {}
    in_ch = 3
    for index, out_ch in zip(TORCHVISION_CONV_INDICES, CONV_CHANNELS, strict=True):
        kernel = 3 if shapes_ok or index else 5
        state[f"features.{index}.weight"] = torch.randn(out_ch, in_ch, kernel, kernel) * 0.01
        state[f"features.{index}.bias"] = torch.zeros(out_ch)
        in_ch = out_ch
    return state


def test_local_pth_and_safetensors_load(tmp_path):
    from safetensors.torch import save_file

    state = _torchvision_state()
    torch.save(state, tmp_path / "vgg.pth")
    save_file(state, tmp_path / "vgg.safetensors")
    for name in ("vgg.pth", "vgg.safetensors"):
        params, convention = load_weights(str(tmp_path / name))
        assert torch.equal(params[3][0], state["features.7.weight"])
        assert not convention.bgr


def test_wrong_shape_file_is_a_clear_error(tmp_path):
    torch.save(_torchvision_state(shapes_ok=False), tmp_path / "bad.pth")
    with pytest.raises(NstError, match=r"conv_1 has weight \(64, 3, 5, 5\).*expected \(64, 3, 3, 3\)"):
        load_weights(str(tmp_path / "bad.pth"))


def test_file_that_is_not_a_state_dict(tmp_path):
    (tmp_path / "junk.pth").write_bytes(b"not a torch file")
    with pytest.raises(NstError, match="cannot read weights file"):
        load_weights(str(tmp_path / "junk.pth"))
    with pytest.raises(NstError, match="weights file not found"):
        load_weights(str(tmp_path / "missing.pth"))
    with pytest.raises(NstError, match="unknown weights 'vgg.h5'"):
        load_weights("vgg.h5")


def test_torchvision_offline_says_where_to_put_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(NstError) as error:
        load_weights("torchvision")
    message = str(error.value)
    assert "vgg19-dcbb9e9d.pth" in message and str(tmp_path) in message
    assert "\n" not in message


def test_torchvision_weights_come_from_the_hub_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    cached = feat.torchvision_cache_path()
    cached.parent.mkdir(parents=True)
    state = _torchvision_state()
    state["classifier.0.weight"] = torch.zeros(2, 2)  # a real file has the classifier too
    torch.save(state, cached)
    params, convention = load_weights("torchvision")
    assert torch.equal(params[0][0], state["features.0.weight"])
    assert convention is feat.TORCHVISION
