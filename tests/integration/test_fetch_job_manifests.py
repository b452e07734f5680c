"""The hook Job manifests a release names (``Subscription.job_paths``), read by a feed's run from real git
repositories at the commit of the release's manifest, parsed once per commit."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import pytest
import yaml

from bluegreen.core.commits import Snapshot
from bluegreen.core.credentials import Credentials
from bluegreen.core.errors import Outcome
from bluegreen.core.spec import GitRef, ReleaseRef, ReleaseSpec
from bluegreen.git.source import GitSource
from bluegreen.runtime.feeds import Lane, SourceResult, Subscription, Work, feed_key
from bluegreen.runtime.fetch_work import FeedWork

if TYPE_CHECKING:
    from conftest import GitRepo

pytestmark = pytest.mark.integration

MANIFEST_PATH = "apps/shop/deployment.yaml"
JOB_PATH = "checks/smoke-job.yaml"
MIGRATION_PATH = "db/expand-job.yaml"
DEPLOYMENT = b"""apiVersion: apps/v1
kind: Deployment
metadata: {name: shop}
spec:
  selector: {matchLabels: {app: shop}}
  template:
    metadata: {labels: {app: shop}}
    spec: {containers: [{name: web, image: "local/python:3"}]}
"""


def job(version: str) -> bytes:
    return f"""apiVersion: batch/v1
kind: Job
metadata: {{name: smoke}}
spec:
  template:
    spec:
      restartPolicy: Never
      containers: [{{name: smoke, image: "local/python:3", command: [python3, -c, "print('{version}')"]}}]
""".encode()


class NoSecrets:
    def read_secret(self, namespace: str, name: str) -> dict[str, bytes] | None:
        raise AssertionError("no Secret is named")


class NoVerifier:
    def verify(self, *args: Any, **kwargs: Any) -> Outcome:
        raise AssertionError("verify is not set")


class CountingSource(GitSource):
    """The real GitSource, counting the reads of Job manifests."""

    reads: list[tuple[str, str]]

    def read(self, url: str, commit_sha: str, path: str, *, credentials: Credentials | None = None,
             max_bytes: int = 1_000_000) -> Snapshot:
        if path != MANIFEST_PATH:  # snapshot() reads the release's manifest through read() too
            self.reads.append((commit_sha, path))
        return super().read(url, commit_sha, path, credentials=credentials, max_bytes=max_bytes)


@pytest.fixture
def counting(cache_dir: Any) -> CountingSource:
    source = CountingSource(cache_dir, timeout_seconds=5.0)
    source.reads = []
    return source


MAIN = GitRef("branch", "main")


def check(source: GitSource, repo: GitRepo, *, ref: GitRef = MAIN,
          job_paths: tuple[str, ...] = (JOB_PATH,),
          previous: Mapping[tuple[str, str], SourceResult] | None = None) -> SourceResult:
    sub = Subscription(("shop", "shop"), repo.url, ref, MANIFEST_PATH, job_paths=job_paths)
    now = time.monotonic()
    work = Work(feed_key(sub), (sub,), previous or {}, now, now, Lane.FAST, {})
    return FeedWork(source, NoSecrets(), NoVerifier())(work).results[("shop", "shop")]


def test_the_job_manifests_are_read_at_the_commit_of_the_manifest(
        source: GitSource, make_repo: Callable[[str], GitRepo]) -> None:
    repo = make_repo("deploy")
    first = repo.commit("shop v1", {MANIFEST_PATH: DEPLOYMENT, JOB_PATH: job("v1"), MIGRATION_PATH: job("m1")})
    second = repo.commit("smoke v2", {JOB_PATH: job("v2")})

    pinned = check(source, repo, ref=GitRef("commit", first), job_paths=(JOB_PATH, MIGRATION_PATH))
    assert pinned.source.ok and pinned.commit is not None and pinned.commit.sha == first
    assert pinned.template is not None
    assert pinned.job_manifests == {JOB_PATH: yaml.safe_load(job("v1")), MIGRATION_PATH: yaml.safe_load(job("m1"))}

    head = check(source, repo, job_paths=(JOB_PATH,))
    assert head.commit is not None and head.commit.sha == second
    assert head.job_manifests == {JOB_PATH: yaml.safe_load(job("v2"))}
    assert check(source, repo, job_paths=()).job_manifests == {}


@pytest.mark.parametrize(("files", "expected"), [
    ({}, f"the Job manifest {JOB_PATH!r} cannot be read: {JOB_PATH!r} does not exist at commit"),
    ({JOB_PATH: DEPLOYMENT}, f"{JOB_PATH}: must be a batch/v1 Job; found apiVersion 'apps/v1', kind 'Deployment'."),
    ({JOB_PATH: b"kind: [\n"}, f"{JOB_PATH} is not valid YAML"),
    ({JOB_PATH + "/inner.yaml": job("v1")}, f"{JOB_PATH!r} is a directory"),
])
def test_a_missing_or_invalid_job_manifest_makes_the_commit_unreleasable(
        source: GitSource, make_repo: Callable[[str], GitRepo], files: dict[str, bytes], expected: str) -> None:
    repo = make_repo("deploy")
    sha = repo.commit("shop", {MANIFEST_PATH: DEPLOYMENT, **files})
    result = check(source, repo)
    assert not result.source.ok and result.source.reason == "InvalidJobManifest"
    assert result.source.commit == sha
    assert result.source.message.startswith(f"commit {sha[:7]}: ")
    assert expected in result.source.message, result.source.message
    assert "spec.source.path" not in result.source.message, "the git hint is about the release's manifest"
    assert result.commit is not None and result.template is None and result.job_manifests == {}


def test_a_commit_is_parsed_once_and_read_again_when_the_paths_change(
        counting: CountingSource, make_repo: Callable[[str], GitRepo]) -> None:
    repo = make_repo("deploy")
    sha = repo.commit("shop", {MANIFEST_PATH: DEPLOYMENT, JOB_PATH: job("v1"), MIGRATION_PATH: job("m1")})
    key = ("shop", "shop")
    first = check(counting, repo)
    assert counting.reads == [(sha, JOB_PATH)]
    again = check(counting, repo, previous={key: first})
    assert again == first and again.job_manifests is first.job_manifests
    assert counting.reads == [(sha, JOB_PATH)], "the same commit: parsed once"
    more = check(counting, repo, job_paths=(JOB_PATH, MIGRATION_PATH), previous={key: first})
    assert set(more.job_manifests) == {JOB_PATH, MIGRATION_PATH}
    assert counting.reads[1:] == [(sha, JOB_PATH), (sha, MIGRATION_PATH)]
    newer = repo.commit("smoke v2", {JOB_PATH: job("v2")})
    check(counting, repo, job_paths=(JOB_PATH, MIGRATION_PATH), previous={key: more})
    assert counting.reads[3:] == [(newer, JOB_PATH), (newer, MIGRATION_PATH)], "a new commit is read anew"


def test_a_fixed_job_manifest_is_read_again_on_the_next_check(
        counting: CountingSource, make_repo: Callable[[str], GitRepo]) -> None:
    repo = make_repo("deploy")
    repo.commit("shop", {MANIFEST_PATH: DEPLOYMENT})
    broken = check(counting, repo)
    assert broken.source.reason == "InvalidJobManifest"
    fixed_sha = repo.commit("add the smoke Job", {JOB_PATH: job("v1")})
    fixed = check(counting, repo, previous={("shop", "shop"): broken})
    assert fixed.source.ok and fixed.commit is not None and fixed.commit.sha == fixed_sha
    assert fixed.job_manifests == {JOB_PATH: yaml.safe_load(job("v1"))}


def test_subscription_of_sorts_and_dedups_the_paths_and_they_are_part_of_the_source() -> None:
    plain = Subscription(("shop", "shop"), "/repo", GitRef("branch", "main"), MANIFEST_PATH)
    with_jobs = Subscription(("shop", "shop"), "/repo", GitRef("branch", "main"), MANIFEST_PATH,
                             job_paths=(JOB_PATH,))
    assert not plain.same_source(with_jobs)
    assert with_jobs.same_source(Subscription(("shop", "shop"), "/repo", GitRef("branch", "main"), MANIFEST_PATH,
                                              interval=5, job_paths=(JOB_PATH,)))
    spec = ReleaseSpec.from_dict({"source": {"url": "/repo", "path": MANIFEST_PATH}, "service": "shop"})
    made = Subscription.of(ReleaseRef("shop", "shop"), spec, (MIGRATION_PATH, JOB_PATH, MIGRATION_PATH))
    assert made.job_paths == (JOB_PATH, MIGRATION_PATH)
    assert Subscription.of(ReleaseRef("shop", "shop"), spec).job_paths == ()
