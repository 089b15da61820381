"""The record of one run: what was asked (config, input files), what came out
(losses, steps, times) and where it ran.

Every output image embeds it (a PNG text chunk or a JSON sidecar), results.json
holds one per study run, and resuming reads it back: `RunRecord.from_dict`
refuses anything that is not a record of this schema, so nothing downstream
reads loose dict keys.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass, field
from typing import Any

from nst.config import Config

# Bump when a field changes meaning; older records are then recomputed, not misread.
SCHEMA_VERSION = 1
# Config fields that do not change the picture: a run made with other values
# of these still answers the same request.
NOT_COMPARED = ("device", "max_pixels")


@dataclass(frozen=True)
class InputRecord:
    """One input file of a run: its role, the path as given, and its content hash."""

    role: str  # content | style | mask | init
    path: str  # as the user gave it ("<in-memory image>" for PIL inputs of the API)
    sha256: str

    def to_dict(self) -> dict[str, str]:
        return {"role": self.role, "path": self.path, "sha256": self.sha256}


def request_key(config: Config, inputs: tuple[InputRecord, ...], seed_given: bool) -> dict[str, Any]:
    """What decides a run's picture: the resolved config (less NOT_COMPARED, and
    less the seed when the user did not choose one: any seed is then as good)
    and the content of the input files, by role (paths do not matter)."""
    ignored = (*NOT_COMPARED, *(() if seed_given else ("seed",)))
    settings = {k: v for k, v in config.to_dict().items() if k not in ignored}
    return {"config": settings, "inputs": [[i.role, i.sha256] for i in inputs]}


@dataclass(frozen=True)
class RunRecord:
    """A finished run. `config` is resolved: every default and the seed filled in."""

    config: Config
    inputs: tuple[InputRecord, ...]
    seed_given: bool  # the user chose the seed (resume then insists on it)
    losses: dict[str, float]  # final weighted terms: content, style, tv, ..., total
    steps: int
    run_time_s: float  # the optimization
    wall_time_s: float  # loading, optimization and finishing
    device: str
    nst_version: str
    torch_version: str
    machine: str = field(default_factory=platform.machine)
    history: tuple[dict[str, float], ...] = ()  # the terms after every step
    schema: int = SCHEMA_VERSION

    def key(self, seed_given: bool | None = None) -> dict[str, Any]:
        """request_key of this run; `seed_given` of the request it is compared with."""
        given = self.seed_given if seed_given is None else seed_given
        return request_key(self.config, self.inputs, given)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": self.schema,
            "nst_version": self.nst_version,
            "config": self.config.to_dict(),
            "inputs": [i.to_dict() for i in self.inputs],
            "seed_given": self.seed_given,
            "final_losses": self.losses,
            "steps": self.steps,
            "run_time_s": round(self.run_time_s, 3),
            "wall_time_s": round(self.wall_time_s, 3),
            "device": self.device,
            "torch": self.torch_version,
            "machine": self.machine,
            "history": [{k: float(f"{v:.5g}") for k, v in terms.items()} for terms in self.history],
        }

    @classmethod
    def from_dict(cls, data: Any) -> RunRecord:
        """The record in `data`; ValueError if it is not a record of this schema
        (older nst versions, other programs, damage)."""
        if not isinstance(data, dict) or data.get("schema") != SCHEMA_VERSION:
            raise ValueError(f"not an nst run record of schema {SCHEMA_VERSION}")
        try:
            return cls(
                config=Config.from_dict(data["config"]),
                inputs=tuple(InputRecord(str(i["role"]), str(i["path"]), str(i["sha256"]))
                             for i in data["inputs"]),
                seed_given=bool(data["seed_given"]),
                losses={str(k): float(v) for k, v in data["final_losses"].items()},
                steps=int(data["steps"]),
                run_time_s=float(data["run_time_s"]),
                wall_time_s=float(data["wall_time_s"]),
                device=str(data["device"]),
                nst_version=str(data["nst_version"]),
                torch_version=str(data["torch"]),
                machine=str(data["machine"]),
                history=tuple({str(k): float(v) for k, v in h.items()} for h in data.get("history", [])),
            )
        except (KeyError, TypeError, AttributeError) as error:
            raise ValueError(f"malformed nst run record: {error}") from None
