"""Which commit promote / abort / retry name, and when they are refused up front (bluegreen.cli.targets)."""

from __future__ import annotations

from typing import Any

import pytest

from bluegreen.cli.errors import CliError
from bluegreen.cli.targets import (
    abort_target,
    commit_argument,
    expand,
    failure_mark,
    promote_target,
    retry_target,
)

WAITING = "a" * 8 + "1" * 32
SERVING = "b" * 8 + "2" * 32
OLD = "c" * 8 + "3" * 32


def release(**status: Any) -> dict[str, Any]:
    return {"metadata": {"namespace": "shop", "name": "web"}, "status": status}


def ready(value: str = "True", reason: str = "Serving") -> dict[str, str]:
    return {"type": "Ready", "status": value, "reason": reason}


AWAITING = {"phase": "AwaitingPromotion", "lastAttemptedRevision": WAITING, "activeRevision": SERVING,
            "awaitingPromotion": {"revision": WAITING, "color": "green", "since": "2026-12-01T10:00:00Z"}}
HEALTHY = {"phase": "Healthy", "message": "blue serves", "lastAttemptedRevision": SERVING,
           "activeRevision": SERVING, "conditions": [ready()]}


# ---- --commit ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("text", "expected"), [(None, None), ("ABCD", "abcd"), (" abcdef1 ", "abcdef1"),
                                                 ("f" * 40, "f" * 40)])
def test_a_commit_argument_is_a_lowercased_hex_prefix(text: str | None, expected: str | None) -> None:
    assert commit_argument(text) == expected


@pytest.mark.parametrize("text", ["abc", "f" * 41, "xyz1", "", "abcd-ef"])
def test_a_commit_argument_that_is_no_hex_prefix_is_refused(text: str) -> None:
    with pytest.raises(CliError, match="is not a commit: give 4 to 40 hex digits"):
        commit_argument(text)


def test_expand_finds_the_one_commit_with_the_prefix() -> None:
    assert expand("aaaa", [None, WAITING, SERVING, WAITING]) == WAITING
    assert expand("dddd", [WAITING, SERVING]) is None
    with pytest.raises(CliError, match="ambiguous"):
        expand("a", [WAITING, "a" + "0" * 39])


# ---- promote ------------------------------------------------------------------------------------------------
def test_promote_names_the_waiting_commit_in_full() -> None:
    target = promote_target(release(**AWAITING), None)
    assert (target.annotation, target.commit) == ("bluegreen.dev/promote", WAITING)
    assert promote_target(release(**AWAITING), WAITING[:6]).commit == WAITING


def test_promote_is_refused_when_nothing_waits() -> None:
    with pytest.raises(CliError) as refused:
        promote_target(release(**HEALTHY), None)
    assert refused.value.message == "nothing waits for promotion in shop/web (phase Healthy: blue serves)"
    assert refused.value.code == 1


def test_promote_of_another_commit_is_refused_naming_the_waiting_one() -> None:
    with pytest.raises(CliError) as refused:
        promote_target(release(**AWAITING), SERVING[:8])
    assert refused.value.message == (f"commit {SERVING[:8]} does not wait for promotion in shop/web: commit "
                                     f"{WAITING[:12]} does, on green; promote that one or leave out --commit")


# ---- abort --------------------------------------------------------------------------------------------------
def test_abort_names_the_last_attempted_commit() -> None:
    target = abort_target(release(phase="Progressing", lastAttemptedRevision=OLD), None)
    assert (target.annotation, target.commit) == ("bluegreen.dev/abort", OLD)
    assert abort_target(release(phase="Healthy", **{k: v for k, v in AWAITING.items() if k != "phase"}),
                        None).commit == WAITING, "a commit waiting for promotion can be aborted"
    assert abort_target(release(phase="Progressing", awaitingPromotion={"revision": WAITING}), None).commit == WAITING
    assert abort_target(release(**{**AWAITING, "lastAttemptedRevision": OLD}), WAITING[:5]).commit == WAITING


@pytest.mark.parametrize("status", [HEALTHY, {"phase": "Progressing"}, {}])
def test_abort_is_refused_without_a_release_under_way(status: dict[str, Any]) -> None:
    with pytest.raises(CliError, match="nothing to abort in shop/web: no release is under way"):
        abort_target(release(**status), None)


def test_abort_refusal_says_what_serves() -> None:
    with pytest.raises(CliError, match=f"phase Healthy: blue serves, commit {SERVING[:12]} serves"):
        abort_target(release(**HEALTHY), None)


def test_abort_of_another_commit_is_refused() -> None:
    with pytest.raises(CliError, match=f"commit {SERVING[:8]} is not the release under way in shop/web: commit "
                                       f"{WAITING[:12]} is"):
        abort_target(release(**AWAITING), SERVING[:8])


# ---- retry --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("reason", ["PrePromotionCheckFailed", "PostPromotionCheckFailed", "Aborted",
                                    "ProgressDeadlineExceeded"])
@pytest.mark.parametrize("kind", ["Ready", "Stalled"])
def test_a_failure_reason_on_ready_or_stalled_marks_the_current_commit(kind: str, reason: str) -> None:
    marked = release(lastAttemptedRevision=WAITING, conditions=[{"type": kind, "status": "True", "reason": reason}])
    assert failure_mark(marked, WAITING) == reason
    assert failure_mark(marked, OLD) is None, "the conditions speak of the current commit only"
    target = retry_target(marked, None)
    assert (target.annotation, target.commit) == ("bluegreen.dev/retry", WAITING)
    assert target.asks == f"clear the {reason} mark of commit {WAITING[:12]} and release it again"


def test_other_conditions_and_reasons_mark_nothing() -> None:
    assert failure_mark(release(lastAttemptedRevision=WAITING,
                                conditions=[{"type": "Reconciling", "reason": "Aborted"},
                                            {"type": "Ready", "reason": "Serving"}]), WAITING) is None


@pytest.mark.parametrize(("outcome", "mark"), [("Failed", "Failed"), ("Abandoned", "Abandoned"),
                                               ("Aborted", "Aborted"), ("Succeeded", None), ("RolledBack", None)])
def test_the_newest_history_entry_of_a_commit_marks_it(outcome: str, mark: str | None) -> None:
    history = [{"revision": SERVING, "outcome": "Failed"}, {"revision": OLD, "outcome": outcome},
               {"revision": OLD, "outcome": "Abandoned"}]
    assert failure_mark(release(lastAttemptedRevision=SERVING, history=history), OLD) == mark


def test_retry_is_refused_when_the_commit_serves_and_is_ready() -> None:
    with pytest.raises(CliError, match=f"nothing to retry in shop/web: commit {SERVING[:12]} serves and is Ready"):
        retry_target(release(**HEALTHY), None)


def test_retry_is_refused_before_git_was_read() -> None:
    with pytest.raises(CliError, match="nothing to retry in shop/web: no commit was read from git yet"):
        retry_target(release(phase="Pending"), None)


def test_retry_is_lenient_when_no_mark_is_visible() -> None:
    not_ready = release(**{**HEALTHY, "conditions": [ready("False", "Progressing")]})
    target = retry_target(not_ready, None)
    assert target.commit == SERVING and "no such mark is visible" in target.asks
    other = release(**{**HEALTHY, "lastAttemptedRevision": WAITING})
    assert retry_target(other, None).commit == WAITING, "Ready, but another commit than the current one serves"


def test_retry_of_a_named_commit_expands_it_from_the_status() -> None:
    history = release(**{**HEALTHY, "history": [{"revision": OLD, "outcome": "Abandoned"}]})
    target = retry_target(history, OLD[:6])
    assert target.commit == OLD and "Abandoned" in target.asks
    assert retry_target(history, "d" * 40).commit == "d" * 40, "a full sha is written as given"
    with pytest.raises(CliError, match="commit dddddd is not known to shop/web"):
        retry_target(history, "d" * 6)


@pytest.mark.parametrize(("reason", "phase"), [("MigrationFailed", "expand"), ("ContractFailed", "contract")])
def test_retry_of_a_failed_migration_runs_it_again_even_while_the_commit_serves(reason: str, phase: str) -> None:
    serving = release(**{**HEALTHY, "conditions": [ready("True", reason),
                                                   {"type": "Stalled", "status": "True", "reason": reason}]})
    target = retry_target(serving, None)
    assert (target.commit, target.asks) == (SERVING, f"run the failed {phase} migration of commit {SERVING[:12]} again")
