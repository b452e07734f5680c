#!/usr/bin/env bash
# Mutation testing with mutmut 3 (`make mutation`; not part of `make test` or CI).
#
# mutmut 3 names a mutant after its file's path with only a leading `src.` stripped, and puts only
# mutants/, mutants/src or mutants/source on sys.path. Our package lives in operator/bluegreen (no
# operator/__init__.py: `operator` would shadow the standard library), so the run happens in a staging
# directory, .mutation/, where src -> ../operator; the mutants are then named bluegreen.core.<module>...,
# exactly as the tests import them, and the original tree is taken off sys.path. The configuration is the
# [tool.mutmut] table of pyproject.toml (read there through a symlink).
#
# Usage: tests/mutation/run.sh                 a fresh run over everything (about 16 minutes on 2 cores)
#        tests/mutation/run.sh 'GLOB' ...      re-judge the mutants named (e.g. 'bluegreen.core.history*')
#                                              against the current tests, keeping the other verdicts
# mutmut keeps a verdict until a mutant is named again, so a run without names starts from scratch.
# The summary is printed at the end by tests/mutation/score.py (per file, then core/ and the controller).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
stage="$root/.mutation"
mutmut="$root/.venv/bin/mutmut"
mkdir -p "$stage"
for entry in src:operator tests:tests pyproject.toml:pyproject.toml crds:crds charts:charts manifests:manifests \
             README.md:README.md Makefile:Makefile docs:docs demo:demo benchmarks:benchmarks image:image \
             Dockerfile:Dockerfile .dockerignore:.dockerignore; do
  ln -sfn "../${entry#*:}" "$stage/${entry%%:*}"
done
cd "$stage"
[ "$#" -gt 0 ] || rm -rf mutants
"$mutmut" run --max-children "${MUTATION_JOBS:-2}" "$@"
"$root/.venv/bin/python" "$root/tests/mutation/score.py"
echo "surviving mutants: (cd .mutation && ../.venv/bin/mutmut results); one of them: ../.venv/bin/mutmut show NAME"
