"""Which arithmetic a run gets: the defaults per CPU kind and task, checked with the
probes set to each kind and against /proc/cpuinfo; tf32 refused off CUDA."""

from pathlib import Path

import pytest
import torch

from nst import Config, NstError
from nst.config import cpu_has_amx, cpu_has_native_bf16


def test_precision_is_checked_against_the_device():
    assert Config(precision="bf16").resolved("cuda").precision == "bf16"
    with pytest.raises(NstError, match="tf32 needs a CUDA GPU"):
        Config(precision="tf32").resolved("cpu")
    with pytest.raises(NstError, match="unknown precision 'fp8'"):
        Config(precision="fp8")


# The CPU kinds nst runs on, as torch's probes see them: (AVX512-BF16, AMX tiles).
CPU_KINDS = {"avx2-only EPYC": (False, False), "avx512-bf16 EPYC": (True, False), "AMX Xeon": (True, True)}


@pytest.mark.parametrize("kind", CPU_KINDS)
def test_precision_defaults_follow_the_cpu_kind_and_the_task(kind: str,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """bf16 for transfers where the CPU computes it natively, NHWC only with AMX; fp32
    for reconstructions and textures everywhere; tf32 on CUDA. The probes are set to
    each CPU kind, so the decision is checked against what it should be, not against
    the probes' own answer on this machine."""
    avx512_bf16, amx = CPU_KINDS[kind]
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx, raising=False)
    transfer = Config().resolved("cpu")
    assert transfer.precision == ("bf16" if avx512_bf16 or amx else "fp32")
    assert transfer.channels_last == amx  # NHWC only pays with AMX bf16
    for task in ("reconstruct", "texture"):
        assert Config(task=task, content_layers=("conv_4",)).resolved("cpu").precision == "fp32"
    assert Config().resolved("cuda").precision == "tf32"
    assert not Config().resolved("cuda").channels_last
    assert Config(precision="fp32", channels_last=True).resolved("cpu").channels_last
    assert not Config(precision="fp32").resolved("cpu").channels_last


def _cpu_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        pytest.skip("no /proc/cpuinfo to read the CPU's flags from")
    line = next((line for line in text.splitlines() if line.startswith("flags")), None)
    if line is None:
        pytest.skip("/proc/cpuinfo lists no flags")
    return set(line.split(":", 1)[1].split())


def test_the_bf16_probes_agree_with_the_cpus_flags() -> None:
    """On this machine, the kernel's account of the CPU (an independent fact): native
    bf16 where it lists avx512_bf16 or AMX, AMX where it lists amx_tile."""
    flags = _cpu_flags()
    native = "avx512_bf16" in flags or "amx_bf16" in flags
    assert cpu_has_native_bf16() == native, sorted(f for f in flags if "bf16" in f or "amx" in f)
    assert cpu_has_amx() == ("amx_tile" in flags)
    assert Config().resolved("cpu").precision == ("bf16" if native else "fp32")
