"""A fake ``CheckRunner`` for reconcile passes: the test decides every verdict; it records what was started
and cancelled."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from bluegreen.core.checks import CheckResult, CheckRun, CheckSpec, Verdict
from bluegreen.core.spec import ReleaseRef

STARTED = datetime(2026, 11, 22, 12, 0, 0, tzinfo=UTC)


@dataclass
class FakeChecks:
    """Runs nothing: ``finish(hook, name, verdict)`` gives a started check of the current run its verdict."""

    runs: dict[tuple[str, str, str], dict[str, CheckResult]] = field(default_factory=dict)
    started: list[tuple[str, str, str, str]] = field(default_factory=list)
    """(hook, commit, colour, name) of every check started, in order."""
    cancelled: list[tuple[str, CheckRun | None]] = field(default_factory=list)

    def ensure(self, run: CheckRun, checks: Sequence[CheckSpec],
               job_manifests: Mapping[str, Mapping[str, Any]]) -> Mapping[str, CheckResult]:
        results = self.runs.setdefault((str(run.hook), run.commit, str(run.color)), {})
        for check in checks:
            if check.name not in results:
                results[check.name] = CheckResult(check.name, Verdict.RUNNING, "Running", "started",
                                                  started_at=STARTED)
                self.started.append((str(run.hook), run.commit, str(run.color), check.name))
        return self.results(run, checks)

    def results(self, run: CheckRun, checks: Sequence[CheckSpec]) -> Mapping[str, CheckResult]:
        results = self.runs.get((str(run.hook), run.commit, str(run.color)), {})
        return {c.name: results[c.name] for c in checks if c.name in results}

    rerun_of: list[tuple[str, str, str]] = field(default_factory=list)
    """(hook, commit, colour) of every run asked to run again (a retry)."""

    def rerun(self, run: CheckRun, checks: Sequence[CheckSpec]) -> None:
        key = (str(run.hook), run.commit, str(run.color))
        self.rerun_of.append(key)
        self.runs.pop(key, None)

    def cancel(self, release: ReleaseRef, keep: CheckRun | None = None) -> None:
        self.cancelled.append((release.name, keep))
        self.runs = {k: v for k, v in self.runs.items()
                     if keep is not None and k == (str(keep.hook), keep.commit, str(keep.color))}

    def finish(self, hook: str, name: str, verdict: Verdict, message: str = "") -> None:
        """Give the one started run of ``hook`` holding ``name`` its ``verdict``."""
        [results] = [r for (h, _, _), r in self.runs.items() if h == hook and name in r]
        reason = "Passed" if verdict is Verdict.PASSED else "HttpStatus"
        results[name] = CheckResult(name, verdict, reason, message or f"{name} {verdict}", started_at=STARTED,
                                    finished_at=STARTED)
