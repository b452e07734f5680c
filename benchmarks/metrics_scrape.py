"""The metrics endpoint at scale, without a cluster: what a scrape costs with N releases.

N releases (default 1,000) are fed to a ``PrometheusRecorder`` as the watches would: a full status each (five
conditions, a 20-entry history, a check) and both colours' Deployments, then a change of each (a new revision
switched to). The ``/metrics`` server then answers scrapes over HTTP on loopback, as Prometheus makes them.
Printed: the series and the bytes of one scrape (plain and gzip), the scrape time (median and worst of
``--scrapes``), and the cost of one ``release_observed`` (what every release watch event and status patch adds).

Usage: ``python benchmarks/metrics_scrape.py [--releases 1000] [--scrapes 20]``.
"""

from __future__ import annotations

import argparse
import statistics
import time
import urllib.request
from typing import Any

from bluegreen.core.planner import ColorState
from bluegreen.core.spec import Color
from bluegreen.metrics.recorder import PrometheusRecorder
from bluegreen.metrics.server import MetricsServer

CONDITIONS = ("Ready", "Reconciling", "Stalled", "SourceReady", "SourceVerified")


def status(n: int, revision: str) -> dict[str, Any]:
    history = [{"revision": f"{(n + k):040x}", "color": "blue" if k % 2 else "green", "outcome": "Succeeded",
                "reason": "Promote", "startedAt": f"2026-12-01T12:{k:02d}:00Z"} for k in range(20)]
    return {"activeColor": "blue", "activeRevision": revision, "phase": "Healthy",
            "conditions": [{"type": c, "status": "True" if c in ("Ready", "SourceReady") else "False"}
                           for c in CONDITIONS],
            "history": history,
            "checks": [{"name": "smoke", "hook": "prePromotion", "commit": revision, "color": "blue",
                        "verdict": "Passed", "startedAt": "2026-12-01T12:00:00Z"}]}


def release(n: int, version: int, revision: str) -> dict[str, Any]:
    return {"metadata": {"namespace": f"team-{n % 50}", "name": f"app-{n}", "resourceVersion": str(version)},
            "spec": {"service": f"app-{n}"}, "status": status(n, revision)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--releases", type=int, default=1000)
    parser.add_argument("--scrapes", type=int, default=20)
    args = parser.parse_args()

    recorder = PrometheusRecorder()
    colors = [ColorState(color=c, exists=True, replicas=3, generation=1, observed_generation=1, status_replicas=3,
                         updated_replicas=3, ready_replicas=3, available_replicas=3) for c in Color]
    for n in range(args.releases):
        recorder.release_observed(release(n, 1, "a" * 40))
        for state in colors:
            recorder.color_observed(f"team-{n % 50}", f"app-{n}", state)
    started = time.perf_counter()
    for n in range(args.releases):
        recorder.release_observed(release(n, 2, "b" * 40))
    per_event = (time.perf_counter() - started) / args.releases

    server = MetricsServer("127.0.0.1", 0, recorder.registry)
    server.start()
    try:
        timings, plain, packed = [], 0, 0
        for k in range(args.scrapes):
            gzip = k % 2 == 1
            request = urllib.request.Request(f"http://127.0.0.1:{server.port}/metrics",
                                             headers={"Accept-Encoding": "gzip"} if gzip else {})
            began = time.perf_counter()
            with urllib.request.urlopen(request, timeout=30) as answer:
                body = answer.read()
            timings.append(time.perf_counter() - began)
            if gzip:
                packed = len(body)
            else:
                plain = len(body)
                text = body.decode()
    finally:
        server.stop()
    series = sum(1 for line in text.splitlines() if line.startswith("bluegreen_"))
    print(f"metrics with {args.releases} releases (both colours up, 5 conditions, a check each): "
          f"{series} bluegreen_ series, {plain / 1e6:.2f} MB per scrape ({packed / 1e6:.2f} MB gzip); "
          f"scrape {statistics.median(timings) * 1000:.0f} ms median, {max(timings) * 1000:.0f} ms worst of "
          f"{len(timings)}; release_observed {per_event * 1e6:.0f} us per status")


if __name__ == "__main__":
    main()
