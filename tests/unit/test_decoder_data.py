"""The training data of `nst train-decoder`: the held-out split and the crops."""

from __future__ import annotations

from pathlib import Path

import torch

from nst.jobs.decoder_data import is_held_out, random_crops, split


def test_the_held_out_split_is_about_5_percent_and_depends_on_the_name_only() -> None:
    names = [Path(f"photos/image{index:04d}.jpg") for index in range(2000)]
    train, held = split(names)
    # A hash is a fair coin per file: 100 expected, the binomial's sd is ~9.7; 5 sd either side.
    assert 50 <= len(held) <= 150 and len(train) + len(held) == len(names)
    assert [is_held_out(Path("elsewhere") / p.name) for p in names] == [p in held for p in names]


def test_a_folder_too_small_to_spare_one_still_reports_on_one() -> None:
    names = [Path(f"a{index}.png") for index in range(3)]
    train, held = split(names)
    assert len(held) >= 1 and set(train) | set(held) == set(names) and train


def test_crops_are_the_asked_size_in_range_and_follow_the_generator() -> None:
    images = [torch.randint(0, 256, (3, 50, 70), dtype=torch.uint8), torch.randint(0, 256, (3, 40, 40),
                                                                                   dtype=torch.uint8)]
    first = random_crops(images, 5, 32, torch.Generator().manual_seed(3))
    again = random_crops(images, 5, 32, torch.Generator().manual_seed(3))
    assert first.shape == (5, 3, 32, 32) and first.min() >= 0 and first.max() <= 1
    assert torch.equal(first, again)
