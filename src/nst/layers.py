"""VGG19 layer names: one table maps every accepted name to a convolution index.

`conv_k` is the k-th convolution's output before its ReLU, `relu_k` after it
(the numbering of our study write-up); `conv1_1`..`conv5_4` and
`relu1_1`..`relu5_4` are the usual block aliases.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable

from nst.errors import NstError

# Output channels of VGG19's 16 convolutions; a 2x2 pooling follows the last
# convolution of each of the first four blocks.
CONV_CHANNELS = (64, 64, 128, 128, 256, 256, 256, 256, 512, 512, 512, 512, 512, 512, 512, 512)
BLOCK_SIZES = (2, 2, 4, 4, 4)
POOL_AFTER = frozenset({2, 4, 8, 12})  # 1-based conv indices followed by pooling


def block_names() -> list[tuple[int, int]]:
    return [(block, conv) for block, count in enumerate(BLOCK_SIZES, 1) for conv in range(1, count + 1)]


def _layer_table() -> dict[str, tuple[int, bool]]:
    """Every accepted layer name -> (1-based conv index, after ReLU?)."""
    table: dict[str, tuple[int, bool]] = {}
    for index, (block, conv) in enumerate(block_names(), 1):
        table[f"conv_{index}"] = (index, False)
        table[f"relu_{index}"] = (index, True)
        table[f"conv{block}_{conv}"] = (index, False)
        table[f"relu{block}_{conv}"] = (index, True)
    return table


LAYERS = _layer_table()
CANONICAL_LAYERS = tuple(f"{kind}_{i}" for i in range(1, 17) for kind in ("conv", "relu"))


def canonical_name(index: int, after_relu: bool) -> str:
    return f"{'relu' if after_relu else 'conv'}_{index}"


ALL_NAMES = "conv_1..conv_16, relu_1..relu_16, conv1_1..conv5_4 and relu1_1..relu5_4"
_FLAT = re.compile(r"(conv|relu)_(\d+)")
_BLOCK = re.compile(r"(conv|relu)(\d+)_(\d+)")
_LOOKALIKES = str.maketrans("lio", "110")


def _in_blocks(block: int, conv: int) -> bool:
    return 1 <= block <= len(BLOCK_SIZES) and 1 <= conv <= BLOCK_SIZES[block - 1]


def _out_of_range(name: str, key: str) -> str | None:
    """The message for a well-formed name past VGG19's end (conv_17, conv5_5), where a
    spelling hint would point at an unrelated layer; None for other names."""
    if (flat := _FLAT.fullmatch(key)) and not 1 <= int(flat[2]) <= len(CONV_CHANNELS):
        kind = flat[1]
        other = "conv" if kind == "relu" else "relu"
        return (f"unknown layer {name!r}: VGG19 has {len(CONV_CHANNELS)} convolutions; valid names are "
                f"{kind}_1..{kind}_16 ({other}_1..{other}_16, {kind}1_1..{kind}5_4)")
    if (block := _BLOCK.fullmatch(key)) and not _in_blocks(int(block[2]), int(block[3])):
        kind = block[1]
        spans = ", ".join(f"{kind}{b}_1..{kind}{b}_{count}" for b, count in enumerate(BLOCK_SIZES, 1))
        return (f"unknown layer {name!r}: VGG19's {len(BLOCK_SIZES)} blocks are {spans}; "
                f"valid names are {ALL_NAMES}")
    return None


def _suggestion(key: str) -> str | None:
    """The layer a misspelt name most likely meant: letters typed for digits
    (conv_l) first, as difflib scores conv_1..conv_9 alike for those, else the
    closest name."""
    if kind := re.match(r"conv|relu", key):
        fixed = kind[0] + key[kind.end():].translate(_LOOKALIKES)
        if fixed in LAYERS:
            return fixed
    close = difflib.get_close_matches(key, LAYERS, n=1)
    return close[0] if close else None


def _lookup(name: str) -> tuple[int, bool]:
    key = name.strip().lower()
    if key in LAYERS:
        return LAYERS[key]
    message = _out_of_range(name, key)
    if message is not None:
        raise NstError(message)
    close = _suggestion(key)
    hint = f" (did you mean {close}?)" if close else ""
    raise NstError(f"unknown layer {name!r}{hint}; valid names are {ALL_NAMES}")


def parse_layers(spec: str | Iterable[str]) -> tuple[str, ...]:
    """Parse 'conv_1-conv_5,relu4_2' (or a list of such items) into canonical names.

    A range runs over convolution indices and keeps the kind (conv/relu) of its ends,
    which must agree. Duplicates are dropped, order is kept.
    """
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    names: list[str] = []
    for item in (i.strip() for i in items):
        if not item:
            continue
        if "-" in item:
            first, _, last = item.partition("-")
            (start, start_relu), (stop, stop_relu) = _lookup(first), _lookup(last)
            if start_relu != stop_relu:
                raise NstError(f"layer range {item!r} mixes conv and relu layers")
            if stop < start:
                raise NstError(f"layer range {item!r} runs backwards")
            names += [canonical_name(i, start_relu) for i in range(start, stop + 1)]
        else:
            names.append(canonical_name(*_lookup(item)))
    if not names and isinstance(spec, str) and spec.strip():
        raise NstError(f"no layers in {spec!r}")
    return tuple(dict.fromkeys(names))
