"""``bluegreen`` and ``kubectl bluegreen``: run the operator, and inspect or steer releases from a terminal.

    bluegreen run [-n NS ...| -A] [-v] [--log-format auto|json|console] [--liveness URL]
                  [--webhook-listen HOST:PORT --webhook-secret-file PATH] [--check-deny-networks CIDRS]
    bluegreen status [NAME] [-n NS | -A] [-o json|yaml]   releases, colours, revisions and conditions
    bluegreen history NAME [-o json|yaml]                 the release history of one release
    bluegreen promote|abort|retry NAME [--commit SHA] [--wait[=TIMEOUT]]
    bluegreen reconcile NAME [--wait[=TIMEOUT]]           check git now (bluegreen.dev/reconcile-at)
    bluegreen suspend|resume NAME                         freeze or unfreeze a release (spec.suspend)
    bluegreen diff NAME [--revision SHA]                  what the next release would change (exit 1: changes)

Every verb but ``run`` takes ``-n/--namespace``, ``--kubeconfig`` and ``--context``. Modules: ``main`` (parser,
dispatch, exit codes), ``access`` (cluster and namespace), ``inspect`` (status, history), ``targets`` (which
commit promote/abort/retry name, pure), ``steer`` (the annotations, ``--wait``), ``diff``, ``normalize`` (what
diff compares, pure), ``run`` (the operator), ``output`` (tables, JSON/YAML), ``errors``. See docs/cli.md.
"""

from bluegreen.cli.inspect import condition_rows
from bluegreen.cli.main import build_parser, main

_parser = build_parser  # the name the tests of the run flags use

__all__ = ["_parser", "build_parser", "condition_rows", "main"]
