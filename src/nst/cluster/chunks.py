"""How consistent mode cuts a clip for a pool of workers: chunks inside shots
(plan_chunks) and which chunk a free worker takes next (Schedule). Torch- and
ray-free, so the command line checks --chunk-frames and --chunk-overlap early."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from nst.errors import NstError

DEFAULT_CHUNK_FRAMES = 24
DEFAULT_CHUNK_OVERLAP = 3


@dataclass(frozen=True)
class Chunking:
    """How consistent mode splits a clip: chunks of `frames` frames; a chunk that
    cannot continue from its finished predecessor starts `overlap` frames early,
    and (with `blend`) its first `overlap` frames are blended in afterwards."""

    frames: int = DEFAULT_CHUNK_FRAMES
    overlap: int = DEFAULT_CHUNK_OVERLAP
    blend: bool = True

    def __post_init__(self) -> None:
        for name, least in (("frames", 1), ("overlap", 0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise NstError(f"chunk-{name} must be an integer of at least {least}, got {value!r}")


@dataclass(frozen=True)
class Chunk:
    """Frames [start, stop) of the clip, inside the shot that begins at frame `shot`."""

    index: int
    start: int
    stop: int
    shot: int

    def blended(self, overlap: int) -> int:
        """How many of its first frames a blend re-makes (never all: the last
        one stays, for the next chunk to continue from)."""
        return max(0, min(overlap, self.stop - self.start - 1))


def plan_chunks(count: int, cuts: Sequence[int], frames: int) -> list[Chunk]:
    """The chunks of a clip of `count` frames with scene cuts before the frames
    in `cuts`: each shot split into ceil(length / frames) chunks of near-equal length."""
    bounds = sorted({0, *(c for c in cuts if 0 < c < count), count})
    chunks: list[Chunk] = []
    for shot, end in zip(bounds, bounds[1:], strict=False):
        pieces = math.ceil((end - shot) / frames)
        edges = [shot + round(i * (end - shot) / pieces) for i in range(pieces + 1)]
        for start, stop in zip(edges, edges[1:], strict=False):
            chunks.append(Chunk(len(chunks), start, stop, shot))
    return chunks


@dataclass
class Schedule:
    """Which chunk a free worker takes next (consistent mode).

    A chunk is pending until handed out, then running, then done. Its first
    frame joins the chain before it without a seam when it begins a shot or its
    predecessor is done (it continues from that chunk's last frame). Otherwise
    it needs a lead-in, and a free worker takes the chunk in the middle of the
    longest run of pending chunks, so that chains meet as rarely as possible.
    """

    chunks: list[Chunk]
    pending: set[int] = field(default_factory=set)
    done: set[int] = field(default_factory=set)

    def joins_cleanly(self, chunk: Chunk) -> bool:
        return chunk.start == chunk.shot or chunk.index - 1 in self.done

    def next(self) -> Chunk | None:
        if not self.pending:
            return None
        order = sorted(self.pending)
        clean = [i for i in order if self.joins_cleanly(self.chunks[i])]
        if clean:
            choice = clean[0]
        else:
            runs: list[list[int]] = []
            for i in order:
                if runs and runs[-1][-1] == i - 1 and self.chunks[i].shot == self.chunks[i - 1].shot:
                    runs[-1].append(i)
                else:
                    runs.append([i])
            longest = max(runs, key=len)  # the first of equally long runs
            choice = longest[len(longest) // 2]
        self.pending.discard(choice)
        return self.chunks[choice]

