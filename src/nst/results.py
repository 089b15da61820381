"""What results.json holds: a study's sweeps and, for each run, where it sits in
its grid and its `RunRecord`. Typed, so the report, the CLI and resume read
fields, not string keys; `StudyResults.from_dict` refuses a file of another schema.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from nst.record import RunRecord

RESULTS_SCHEMA = 1
STATUSES = ("ran", "resumed", "copied")  # copied: same request earlier in this study


@dataclass
class StudyRun:
    """One run of a sweep: its place in the grid, the image, how it was obtained, its record."""

    slug: str
    label: str
    labels: tuple[str, ...]
    index: tuple[int, ...]
    image: str  # relative to the study folder, POSIX
    params: dict[str, Any]  # the values the sweep's axes set (JSON-ready)
    status: str  # one of STATUSES
    record: RunRecord

    def to_dict(self) -> dict[str, Any]:
        return {"slug": self.slug, "label": self.label, "labels": list(self.labels),
                "index": list(self.index), "image": self.image, "params": self.params,
                "status": self.status, "record": self.record.to_dict()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StudyRun:
        return cls(str(data["slug"]), str(data["label"]), tuple(data["labels"]),
                   tuple(int(i) for i in data["index"]), str(data["image"]), dict(data["params"]),
                   str(data["status"]), RunRecord.from_dict(data["record"]))


@dataclass(frozen=True)
class Comparison:
    """Two runs of one objective (seed pairs): how far apart in pixels and in loss."""

    a: str
    b: str
    labels: tuple[str, str]
    term: str  # content or style
    pixel_difference: float  # mean absolute, 0-255
    loss_a: float
    loss_b: float
    loss_difference: float
    relative_loss_difference: float
    cross_loss: float  # the loss of a against b's targets
    start_loss: float | None  # for scale: the loss after the first step

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "labels": list(self.labels)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Comparison:
        return cls(**{**data, "labels": (data["labels"][0], data["labels"][1])})


@dataclass(frozen=True)
class AxisLabels:
    name: str
    labels: tuple[str, ...]


@dataclass
class SweepResult:
    """A sweep of the report: its description, its runs, its grid."""

    name: str
    title: str
    section: str
    description: str
    task: str
    axes: tuple[AxisLabels, ...]
    columns: int | None = None
    slider: bool = False
    show_stats: bool = False
    runs: list[StudyRun] = field(default_factory=list)
    comparisons: list[Comparison] = field(default_factory=list)
    grid: str | None = None  # relative path of the grid image

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "title": self.title, "section": self.section,
            "description": self.description, "task": self.task,
            "axes": [{"name": a.name, "labels": list(a.labels)} for a in self.axes],
            "columns": self.columns, "slider": self.slider, "show_stats": self.show_stats,
            "runs": [r.to_dict() for r in self.runs],
            "comparisons": [c.to_dict() for c in self.comparisons], "grid": self.grid,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SweepResult:
        return cls(
            str(data["name"]), str(data["title"]), str(data["section"]), str(data["description"]),
            str(data["task"]), tuple(AxisLabels(a["name"], tuple(a["labels"])) for a in data["axes"]),
            data["columns"], bool(data["slider"]), bool(data["show_stats"]),
            [StudyRun.from_dict(r) for r in data["runs"]],
            [Comparison.from_dict(c) for c in data["comparisons"]], data["grid"],
        )


@dataclass
class StudyResults:
    """The whole of results.json."""

    title: str
    nst_version: str
    torch_version: str
    machine: str
    created: str
    sweeps: list[SweepResult] = field(default_factory=list)
    elapsed_s: float = 0.0  # wall time of the command that wrote it
    schema: int = RESULTS_SCHEMA

    @property
    def runs(self) -> list[StudyRun]:
        return [run for sweep in self.sweeps for run in sweep.runs]

    @property
    def compute_time_s(self) -> float:
        return sum(run.record.wall_time_s for run in self.runs)

    def count(self, status: str) -> int:
        return sum(run.status == status for run in self.runs)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": self.schema, "title": self.title, "nst_version": self.nst_version,
            "torch": self.torch_version, "machine": self.machine, "created": self.created,
            "elapsed_s": round(self.elapsed_s, 3), "compute_time_s": round(self.compute_time_s, 3),
            "runs": {status: self.count(status) for status in STATUSES},
            "sweeps": [s.to_dict() for s in self.sweeps],
        }

    @classmethod
    def from_dict(cls, data: Any) -> StudyResults:
        """ValueError unless `data` is a results.json of this schema."""
        if not isinstance(data, dict) or data.get("schema") != RESULTS_SCHEMA:
            raise ValueError(f"not an nst results.json of schema {RESULTS_SCHEMA}")
        try:
            return cls(str(data["title"]), str(data["nst_version"]), str(data["torch"]),
                       str(data["machine"]), str(data["created"]),
                       [SweepResult.from_dict(s) for s in data["sweeps"]], float(data["elapsed_s"]))
        except (KeyError, TypeError, IndexError) as error:
            raise ValueError(f"malformed results.json: {error}") from None
