"""One run of a feed (``runtime.fetch_work.FeedWork``) with fakes behind the Protocols: what a release's result
says, and that a run reads each Secret and fetches each ref once, whatever the number of releases."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from bluegreen.core.commits import CommitInfo, Snapshot
from bluegreen.core.credentials import Credentials
from bluegreen.core.errors import Outcome, SourceError, VerifyError
from bluegreen.core.spec import GitRef
from bluegreen.runtime.feeds import Lane, SourceResult, Subscription, Work, feed_key
from bluegreen.runtime.fetch_work import FeedWork

MAIN = GitRef("branch", "main")
URL = "https://git.example.com/deploy.git"
MANIFEST = b"""apiVersion: apps/v1
kind: Deployment
metadata: {name: shop}
spec:
  replicas: 2
  selector: {matchLabels: {app: shop}}
  template:
    metadata: {labels: {app: shop}}
    spec: {containers: [{name: web, image: "shop:v1"}]}
"""


class Source:
    def __init__(self) -> None:
        self.snapshots: list[tuple[str, GitRef, str, float | None]] = []
        self.signatures = 0
        self.content = MANIFEST
        self.sha = "1" * 40
        self.error: SourceError | None = None

    def snapshot(self, url: str, ref: GitRef, path: str, *, credentials: Credentials | None = None,
                 not_before: float | None = None) -> Snapshot:
        self.snapshots.append((url, ref, path, not_before))
        if self.error is not None:
            raise self.error
        commit = CommitInfo(self.sha, "v1", "Dev <dev@example.com>", datetime(2024, 5, 1, tzinfo=UTC),
                            refreshed_at=40.0 + len(self.snapshots))
        return Snapshot(commit, path, self.content)

    def signature(self, url: str, commit_sha: str, *,
                  credentials: Credentials | None = None) -> tuple[bytes, bytes] | None:
        self.signatures += 1
        return None


class Secrets:
    def __init__(self, **secrets: Mapping[str, bytes]) -> None:
        self.secrets = dict(secrets)
        self.reads: list[tuple[str, str]] = []

    def read_secret(self, namespace: str, name: str) -> dict[str, bytes] | None:
        self.reads.append((namespace, name))
        data = self.secrets.get(name)
        return dict(data) if data is not None else None


class Verifier:
    def __init__(self) -> None:
        self.calls = 0
        self.unavailable = False

    def verify(self, commit_sha: str, signature: tuple[bytes, bytes] | None, trusted_keys: Mapping[str, bytes], *,
               secret_name: str) -> Outcome:
        self.calls += 1
        if self.unavailable:
            raise VerifyError("VerifierUnavailable", "gpg is missing")
        return Outcome(False, "Unsigned", f"commit {commit_sha[:7]} is not signed", commit_sha)


def sub(name: str, **extra: Any) -> Subscription:
    return Subscription(("shop", name), URL, extra.pop("ref", MAIN), extra.pop("path", "d.yaml"), **extra)


def work(*subs: Subscription, previous: Mapping[tuple[str, str], SourceResult] | None = None,
         verdicts: dict[tuple[str, str], Outcome] | None = None) -> Work:
    return Work(feed_key(subs[0]), subs, previous or {}, 50.0, 50.0, Lane.FAST,
                verdicts if verdicts is not None else {})


def test_many_releases_one_ref_cost_one_fetch_and_one_secret_read() -> None:
    source, secrets = Source(), Secrets(git={"username": b"bot", "password": b"pw"})
    subs = [sub(f"r{n}", secret="git") for n in range(5)] + [sub("tagged", ref=GitRef("tag", "v1"), secret="git")]
    outcome = FeedWork(source, secrets, Verifier())(work(*subs))
    assert [(ref.kind, nb) for _, ref, _, nb in source.snapshots] == [("branch", 50.0), ("tag", 50.0)]
    assert secrets.reads == [("shop", "git")]
    assert all(r.source.ok and r.template is not None and r.template.replicas == 2 for r in outcome.results.values())
    assert outcome.results[("shop", "r0")].checked_at == 50.0
    assert outcome.refreshed_at == 42.0, "the latest contact any fetch of the run reported"


def test_a_missing_secret_fails_every_release_before_any_fetch() -> None:
    source = Source()
    outcome = FeedWork(source, Secrets(), Verifier())(work(sub("a", secret="git"), sub("b", secret="git")))
    assert source.snapshots == []
    assert {r.source.reason for r in outcome.results.values()} == {"SecretNotFound"}
    assert all(r.commit is None and r.template is None for r in outcome.results.values())
    assert outcome.refreshed_at is None


def test_an_unreadable_secret_is_a_transient_failure() -> None:
    class Broken(Secrets):
        def read_secret(self, namespace: str, name: str) -> dict[str, bytes] | None:
            raise TimeoutError("the API server did not answer")

    result = FeedWork(Source(), Broken(), Verifier())(work(sub("a", secret="git"))).results[("shop", "a")]
    assert result.source.reason == "FetchFailed" and "'git'" in result.source.message
    assert "did not answer" not in result.source.message


def test_a_git_failure_names_no_commit() -> None:
    source = Source()
    source.error = SourceError("RepositoryUnreachable", "timed out")
    result = FeedWork(source, Secrets(), Verifier())(work(sub("a"))).results[("shop", "a")]
    assert result == SourceResult(Outcome(False, "RepositoryUnreachable", "timed out"))


def test_a_bad_manifest_names_the_commit_and_withholds_the_template() -> None:
    source = Source()
    source.content = b"kind: Service\n"
    result = FeedWork(source, Secrets(), Verifier())(work(sub("a"))).results[("shop", "a")]
    assert not result.source.ok and result.source.commit == source.sha and source.sha[:7] in result.source.message
    assert result.commit is not None and result.commit.sha == source.sha and result.template is None


def test_the_manifest_of_a_known_commit_is_not_parsed_again() -> None:
    source, feed = Source(), FeedWork(Source(), Secrets(), Verifier())
    feed.source = source
    first = feed(work(sub("a"))).results[("shop", "a")]
    again = feed(work(sub("a"), previous={("shop", "a"): first})).results[("shop", "a")]
    assert again.template is first.template and again == first
    source.sha = "2" * 40
    newer = feed(work(sub("a"), previous={("shop", "a"): first})).results[("shop", "a")]
    assert newer.template is not first.template and newer.commit is not None and newer.commit.sha == "2" * 40


def test_an_unsigned_commit_is_named_but_never_handed_on_and_the_verdict_is_cached() -> None:
    source, verifier = Source(), Verifier()
    secrets = Secrets(keys={"alice.pub": b"ssh-ed25519 AAAA alice"})
    verdicts: dict[tuple[str, str], Outcome] = {}
    feed = FeedWork(source, secrets, verifier)
    for _ in range(3):
        result = feed(work(sub("a", verify_secret="keys"), sub("b", verify_secret="keys"),
                           verdicts=verdicts)).results[("shop", "a")]
        assert (result.source.ok, result.source.reason, result.template) == (False, "Unsigned", None)
        assert result.verified is not None and result.verified.reason == "Unsigned"
        assert result.commit is not None and result.commit.sha == source.sha
    assert verifier.calls == 1 and source.signatures == 1, "one verdict per commit and key set"
    secrets.secrets["keys"] = {"bob.pub": b"ssh-ed25519 BBBB bob"}
    feed(work(sub("a", verify_secret="keys"), verdicts=verdicts))
    assert verifier.calls == 2, "rotated keys are verified again"


def test_a_verifier_that_cannot_run_is_not_cached() -> None:
    source, verifier = Source(), Verifier()
    verifier.unavailable = True
    verdicts: dict[tuple[str, str], Outcome] = {}
    feed = FeedWork(source, Secrets(keys={"a.pub": b"k"}), verifier)
    for _ in range(2):
        result = feed(work(sub("a", verify_secret="keys"), verdicts=verdicts)).results[("shop", "a")]
        assert result.source.reason == "VerifierUnavailable" and result.template is None
    assert verifier.calls == 2 and verdicts == {}


def test_unreadable_trusted_keys_are_a_transient_failure() -> None:
    class Broken(Secrets):
        def read_secret(self, namespace: str, name: str) -> dict[str, bytes] | None:
            raise TimeoutError("the API server did not answer")

    result = FeedWork(Source(), Broken(), Verifier())(work(sub("a", verify_secret="keys"))).results[("shop", "a")]
    assert (result.source.ok, result.source.reason, result.template) == (False, "VerifierUnavailable", None)
    assert result.verified is not None and not result.verified.ok


def test_missing_trusted_keys_are_reported() -> None:
    result = FeedWork(Source(), Secrets(), Verifier())(work(sub("a", verify_secret="keys"))).results[("shop", "a")]
    assert result.source.reason == "SecretNotFound" and "verify" in result.source.message
