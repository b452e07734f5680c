"""Print the mutation score per file and per area (core/, runtime/controller.py) from mutmut's results.

Run from the staging directory (.mutation/) after ``mutmut run``: it reads the ``mutants/**/*.py.meta`` files
through mutmut's own classes, so the verdicts are mutmut's. Score = (killed + timeout) / every mutant of the
file: a mutant no unit test reaches ("no tests") counts as not killed.
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

from mutmut.mutation.data import SourceFileMutationData
from mutmut.stats import status_by_exit_code

AREAS = {"core/": "src/bluegreen/core/", "runtime/controller.py": "src/bluegreen/runtime/controller.py"}
JUDGED = ("killed", "survived", "timeout", "suspicious", "no tests")


def counts(path: Path) -> Counter[str]:
    data = SourceFileMutationData(path=path)
    data.load()
    return Counter(status_by_exit_code[code] for code in data.exit_code_by_key.values())


def line(name: str, tally: Counter[str]) -> str:
    judged = sum(tally[k] for k in JUDGED)
    score = f"{100 * (tally['killed'] + tally['timeout']) / judged:5.1f} %" if judged else "    - "
    rest = ", ".join(f"{k} {v}" for k, v in sorted(tally.items()) if k not in JUDGED)
    return (f"{name:28} {score}  killed {tally['killed']:4}  survived {tally['survived']:3}  "
            f"no tests {tally['no tests']:3}  timeout {tally['timeout']:2}  suspicious {tally['suspicious']:2}"
            + (f"  ({rest})" if rest else ""))


def main() -> int:
    files = sorted(p for p in Path("src/bluegreen").rglob("*.py") if (Path("mutants") / f"{p}.meta").exists())
    if not files:
        print("no mutation results: run `make mutation` first")
        return 1
    totals: dict[str, Counter[str]] = {area: Counter() for area in AREAS}
    for path in files:
        tally = counts(path)
        print(line(str(path.relative_to("src/bluegreen")), tally))
        for area, prefix in AREAS.items():
            if str(path).startswith(prefix):
                totals[area] += tally
    print()
    for area, tally in totals.items():
        print(line(area, tally))
    return 0


if __name__ == "__main__":
    sys.exit(main())
