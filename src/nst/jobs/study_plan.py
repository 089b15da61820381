"""A study's plan: its sweeps, its folder, and each run's prepared Request.

Torch-free to import, so `nst study` refuses a bad study file before torch loads.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from nst.errors import NstError
from nst.jobs.request import Request, check_not_an_input, precheck, prepare
from nst.jobs.resume import answers, read_record
from nst.plans.study_config import read_study
from nst.plans.sweeps import RunSpec, Sweep
from nst.record import RunRecord
from nst.results import StudyResults

RESULTS_NAME = "results.json"
REPORT_NAME = "index.html"


def precheck_sweep(sweep: Sweep, prefix: str = "") -> list[RunSpec]:
    """A sweep's checks that need no torch: its inputs, then every run's settings
    (a refusal names the run, after `prefix`). Returns the runs."""
    sweep.check_inputs()
    specs = sweep.runs()
    for spec in specs:
        try:
            precheck(spec.config, spec.content, spec.styles)
        except NstError as error:
            raise NstError(f"{prefix}{spec.label}: {error}") from None
    return specs


@dataclass
class StudyPlan:
    """The sweeps of a study and where it goes. `owner` names who the folder
    belongs to: "sweep" (sweep commands build up one report together) or
    "study:<path of its TOML file>"."""

    sweeps: Sequence[Sweep]
    output: Path
    title: str = "nst study"
    force: bool = False  # rerun every run, and use a folder nst did not make for this owner
    keep_other_sweeps: bool = False  # keep sweeps of an earlier results.json in the report
    owner: str = "sweep"
    command: str = "nst study"
    run_on: str | None = None  # the device kind of the machines that run it, if not this one
    _requests: dict[tuple[str, str], Request] = field(default_factory=dict)

    def request(self, sweep: Sweep, spec: RunSpec) -> Request:
        """The run's Request (prepared once: checks, defaults, input hashes)."""
        key = (sweep.name, spec.slug)
        if key not in self._requests:
            try:
                self._requests[key] = prepare(spec.config, spec.content, spec.styles, run_on=self.run_on)
            except NstError as error:
                raise NstError(f"{sweep.name} {spec.label}: {error}") from None
        return self._requests[key]

    def image_path(self, sweep: Sweep, spec: RunSpec) -> Path:
        return self.output / "images" / sweep.name / f"{spec.slug}.png"

    def check(self) -> int:
        """Validate every run before the first one starts; returns how many there
        are. The checks that need no torch run for every run first, so a bad
        run anywhere in a study is refused at once."""
        names = [s.name for s in self.sweeps]
        if len(set(names)) != len(names):
            twice = sorted({n for n in names if names.count(n) > 1})
            raise NstError(f"two sweeps share a name: {', '.join(twice)}")
        runs = [(sweep, spec) for sweep in self.sweeps for spec in precheck_sweep(sweep, f"{sweep.name} ")]
        for sweep, spec in runs:
            request = self.request(sweep, spec)
            try:
                check_not_an_input(self.image_path(sweep, spec), request.inputs)
            except NstError as error:
                raise NstError(f"{sweep.name} {spec.label}: {error}") from None
        return len(runs)

    def saved(self, sweep: Sweep, spec: RunSpec) -> RunRecord | None:
        """The record of an earlier run of this spec that answers its request."""
        path = self.image_path(sweep, spec)
        if self.force or not path.is_file():
            return None
        record = read_record(path)
        return record if isinstance(record, RunRecord) and answers(record, self.request(sweep, spec)) \
            else None


def load_study(path: str | Path, output: str | Path | None = None, force: bool = False,
               device: str | None = None) -> StudyPlan:
    """The plan of a study file (see plans.study_config.read_study); `force` reruns every run."""
    study = read_study(path, output, device)
    return StudyPlan(study.sweeps, study.output, study.title, force, owner=study.owner)


def earlier_results(output: Path) -> StudyResults | None:
    """The results.json an earlier command wrote to `output`, if it is one of this schema."""
    try:
        return StudyResults.from_dict(json.loads((output / RESULTS_NAME).read_text()))
    except (OSError, ValueError):
        return None
