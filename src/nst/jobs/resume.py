"""Resuming batches and videos: finished work is reused only when the settings
that decide the picture are the same as this run's."""

from __future__ import annotations

from typing import Any

# Config fields that do not change the picture: work made with other values
# still counts as done.
NOT_COMPARED = ("device", "max_pixels")


def picture_settings(config: dict[str, Any], with_seed: bool = True) -> dict[str, Any]:
    """The fields of a config dict (Config.to_dict()) that decide the result.
    Leave the seed out when the user gave none: any seed is then as good."""
    ignored = (*NOT_COMPARED, *(() if with_seed else ("seed",)))
    return {key: value for key, value in config.items() if key not in ignored}


def differences(stored: dict[str, Any], current: dict[str, Any], prefix: str = "") -> list[str]:
    """Dotted names of the values that differ between two nested dicts."""
    names: list[str] = []
    for key in sorted(set(stored) | set(current)):
        old, new = stored.get(key), current.get(key)
        if isinstance(old, dict) and isinstance(new, dict):
            names += differences(old, new, f"{prefix}{key}.")
        elif old != new:
            names.append(prefix + key)
    return names
