"""Helpers of the video and batch tests: small synthetic clips (a smooth texture
sliding sideways) and a one-thread fixture for tiny optimizations."""

from __future__ import annotations

from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from PIL import Image


def texture(width: int, height: int, seed: int = 0) -> np.ndarray:
    """A smooth random RGB texture (height, width, 3) uint8: blurred noise, so
    optical flow has structure to follow everywhere."""
    rng = np.random.default_rng(seed)
    coarse = Image.fromarray(rng.integers(0, 256, (height // 4 + 1, width // 4 + 1, 3), dtype=np.uint8))
    return np.asarray(coarse.resize((width, height), Image.Resampling.BICUBIC))


def sliding_frames(count: int = 4, width: int = 48, height: int = 32, shift: int = 1) -> list[Image.Image]:
    """`count` frames of a texture moving `shift` pixels right per frame."""
    wide = texture(width + shift * count, height)
    return [Image.fromarray(wide[:, shift * (count - i):shift * (count - i) + width]) for i in range(count)]


def write_mp4_with_audio(path: Path, frames: list[Image.Image], fps: int = 12) -> Path:
    """An H.264 MP4 of `frames` with a 440 Hz AAC tone as long as the pictures."""
    with av.open(str(path), mode="w") as container:
        video = container.add_stream("libx264", rate=fps)
        video.width, video.height = frames[0].size
        video.pix_fmt = "yuv420p"
        audio = container.add_stream("aac", rate=44100, layout="mono")
        for index, frame in enumerate(frames):
            picture = av.VideoFrame.from_image(frame)
            picture.pts, picture.time_base = index, Fraction(1, fps)
            container.mux(video.encode(picture))
        container.mux(video.encode(None))
        seconds = len(frames) / fps
        samples = np.sin(2 * np.pi * 440 * np.arange(int(44100 * seconds)) / 44100).astype(np.float32)
        for start in range(0, len(samples), 1024):
            chunk = av.AudioFrame.from_ndarray(samples[None, start:start + 1024], format="flt", layout="mono")
            chunk.sample_rate = 44100
            container.mux(audio.encode(chunk))
        container.mux(audio.encode(None))
    return path


@pytest.fixture(autouse=True)
def one_torch_thread() -> Iterator[None]:
    """Run a test module's tiny optimizations on one CPU thread: at 32 px a second
    thread only adds hand-offs, and on a shared CPU it made steps 5-10x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def overwrite_middle(path: Path, share: float = 0.125, seed: int = 0) -> Path:
    """Replace `share` of the file's bytes, from its middle on, with random bytes:
    a clip whose start still decodes."""
    data = bytearray(path.read_bytes())
    start, length = len(data) // 2, max(1, int(len(data) * share))
    garbage = np.random.default_rng(seed).integers(0, 256, length, dtype=np.uint8)
    data[start:start + length] = garbage.tobytes()
    path.write_bytes(bytes(data))
    return path


def truncated_png(image: Image.Image, path: Path) -> Path:
    """A PNG whose header is intact (its size reads fine) but whose pixel data is cut
    short, so it fails only when decoded."""
    image.save(path, format="PNG")
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])
    return path
