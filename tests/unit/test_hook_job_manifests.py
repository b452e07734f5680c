"""Unit tests of bluegreen.core.hook_jobs: Job manifest validation, Job names and the rendered Job of a run."""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from typing import Any

import pytest
import yaml

from bluegreen.core.hook_jobs import (
    ANNOTATION_CHECK,
    INVALID_JOB_MANIFEST,
    MAX_NAME_LENGTH,
    HookJobRun,
    JobManifestError,
    job_environment,
    job_name,
    parse_job_manifest,
    render_job,
)
from bluegreen.core.spec import ANNOTATION_COMMIT, LABEL_COLOR, LABEL_HOOK, LABEL_RELEASE, Color, ReleaseRef

NS = "shop"
PATH = "checks/smoke-job.yaml"
SHA = "0123456789abcdef0123456789abcdef01234567"

MANIFEST = """\
# the smoke test of the shop, run before every switch
apiVersion: batch/v1
kind: Job
metadata:
  name: ignored
  labels: {team: web}
  annotations: {owner: qa}
spec:
  template:
    metadata:
      labels: {app: smoke}
    spec:
      restartPolicy: Never
      initContainers:
        - name: wait
          image: local/python:3
      containers:
        - name: smoke
          image: local/python:3
          command: [python3, -c, "print('ok')"]
          env:
            - {name: TARGET, value: "http://$(BLUEGREEN_PREVIEW_SERVICE)/"}
"""


def base() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(MANIFEST)
    return doc


def variant(mutate: Callable[[dict[str, Any]], object]) -> str:
    doc = base()
    mutate(doc)
    return yaml.safe_dump(doc)


def parse(text: str | bytes, **kwargs: Any) -> dict[str, Any]:
    return parse_job_manifest(text, namespace=NS, path=PATH, **kwargs)


def pod(doc: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = doc["spec"]["template"]["spec"]
    return spec


RUN = HookJobRun(ReleaseRef(NS, "shop", "uid-1"), "prePromotion", SHA, Color.GREEN, "smoke", "shop-preview")


# ---- validation ---------------------------------------------------------------------------------------------
def test_a_valid_manifest_is_returned_normalized() -> None:
    doc = parse(MANIFEST)
    assert doc == base()
    assert parse(MANIFEST.encode("utf-8-sig")) == base(), "a BOM is fine"
    assert parse(variant(lambda d: d["metadata"].update(namespace=NS))) == {**base(), "metadata": {
        **base()["metadata"], "namespace": NS}}


REFUSED: list[tuple[str, str | bytes, str]] = [
    ("too large", "x" * 101, f"{PATH} is 101 bytes; the limit is 100 bytes."),
    ("not utf-8", b"\xff\xfe", f"{PATH} is not UTF-8 text"),
    ("bad yaml", "a: [", f"{PATH} is not valid YAML"),
    ("duplicate key", "a: 1\na: 2\n", "found duplicate key 'a'"),
    ("empty", "# nothing\n", f"{PATH}: must hold exactly one YAML document (a batch/v1 Job); found no document."),
    ("two documents", MANIFEST + "---\n" + MANIFEST, "found 2 documents."),
    ("a list", "- 1\n", f"{PATH}: must be a batch/v1 Job; found a list."),
    ("a Deployment", variant(lambda d: d.update(apiVersion="apps/v1", kind="Deployment")),
     "found apiVersion 'apps/v1', kind 'Deployment'."),
    ("batch/v1beta1", variant(lambda d: d.update(apiVersion="batch/v1beta1")), "found apiVersion 'batch/v1beta1'"),
    ("a CronJob", variant(lambda d: d.update(kind="CronJob")), "kind 'CronJob'"),
    ("foreign namespace", variant(lambda d: d["metadata"].update(namespace="other")),
     f"{PATH}: metadata.namespace is 'other', but the release is in namespace 'shop'; remove it or set it to "
     "'shop'."),
    ("metadata not a mapping", variant(lambda d: d.update(metadata=[1])), "metadata must be a mapping."),
    ("reserved label", variant(lambda d: d["metadata"]["labels"].update({"bluegreen.dev/hook": "x"})),
     f"{PATH}: metadata.labels 'bluegreen.dev/hook' uses the reserved prefix bluegreen.dev/; the operator sets "
     "those labels and annotations itself, remove it."),
    ("reserved annotation", variant(lambda d: d["metadata"]["annotations"].update({"bluegreen.dev/commit": "x"})),
     "metadata.annotations 'bluegreen.dev/commit' uses the reserved prefix"),
    ("number label", variant(lambda d: d["metadata"]["labels"].update(n=1)),
     "metadata.labels.n must be a string, not 1 (quote it)."),
    ("reserved pod label", variant(lambda d: d["spec"]["template"]["metadata"]["labels"].update(
        {"bluegreen.dev/color": "blue"})), "spec.template.metadata.labels 'bluegreen.dev/color' uses the reserved"),
    ("reserved pod annotation", variant(lambda d: d["spec"]["template"]["metadata"].update(
        annotations={"bluegreen.dev/x": "y"})), "spec.template.metadata.annotations 'bluegreen.dev/x'"),
    ("no spec", variant(lambda d: d.pop("spec")), f"{PATH}: spec must be a mapping (it is missing)."),
    ("no template", variant(lambda d: d["spec"].pop("template")), "spec.template must be a mapping (it is missing)"),
    ("no pod spec", variant(lambda d: d["spec"]["template"].pop("spec")), "spec.template.spec must be a mapping"),
    ("selector", variant(lambda d: d["spec"].update(selector={"matchLabels": {"a": "b"}})),
     "spec.selector: the Job controller chooses the selector itself; remove spec.selector."),
    ("manualSelector", variant(lambda d: d["spec"].update(manualSelector=False)), "remove spec.manualSelector."),
    ("ttl", variant(lambda d: d["spec"].update(ttlSecondsAfterFinished=60)),
     "spec.ttlSecondsAfterFinished: the operator deletes finished hook Jobs itself"),
    ("deadline zero", variant(lambda d: d["spec"].update(activeDeadlineSeconds=0)),
     "spec.activeDeadlineSeconds must be a whole number >= 1, not 0."),
    ("deadline text", variant(lambda d: d["spec"].update(activeDeadlineSeconds="60")),
     "spec.activeDeadlineSeconds must be a whole number >= 1, not '60'."),
    ("deadline true", variant(lambda d: d["spec"].update(activeDeadlineSeconds=True)), "not True."),
    ("backoff negative", variant(lambda d: d["spec"].update(backoffLimit=-1)),
     "spec.backoffLimit must be a whole number >= 0, not -1."),
    ("restart Always", variant(lambda d: pod(d).update(restartPolicy="Always")),
     "spec.template.spec.restartPolicy must be Never or OnFailure (or absent: Never), not 'Always'."),
    ("no containers", variant(lambda d: pod(d).update(containers=[])),
     "spec.template.spec.containers must be a non-empty list of containers."),
    ("containers absent", variant(lambda d: pod(d).pop("containers")), "spec.template.spec.containers must be"),
    ("init containers not a list", variant(lambda d: pod(d).update(initContainers={"a": 1})),
     "spec.template.spec.initContainers must be a list of containers."),
    ("container not a mapping", variant(lambda d: pod(d).update(containers=["x"])),
     "spec.template.spec.containers[0] must be a mapping."),
    ("no image", variant(lambda d: pod(d)["containers"][0].pop("image")),
     "spec.template.spec.containers[0].image must be a non-empty string."),
    ("empty name", variant(lambda d: pod(d)["initContainers"][0].update(name="")),
     "spec.template.spec.initContainers[0].name must be a non-empty string."),
    ("same name", variant(lambda d: pod(d)["containers"][0].update(name="wait")),
     "spec.template.spec.containers[0].name 'wait' is used by more than one container."),
    ("env not a list", variant(lambda d: pod(d)["containers"][0].update(env={"A": "b"})),
     "spec.template.spec.containers[0].env must be a list."),
    ("env without name", variant(lambda d: pod(d)["containers"][0].update(env=[{"value": "b"}])),
     "spec.template.spec.containers[0].env[0] must be a mapping with a non-empty name."),
    ("reserved env", variant(lambda d: pod(d)["containers"][0]["env"].append({"name": "BLUEGREEN_COMMIT"})),
     "spec.template.spec.containers[0].env[1].name 'BLUEGREEN_COMMIT' is set by the operator (BLUEGREEN_RELEASE, "
     "BLUEGREEN_COLOR, BLUEGREEN_COMMIT, BLUEGREEN_HOOK, BLUEGREEN_PREVIEW_SERVICE); remove it."),
    ("reserved env in init", variant(lambda d: pod(d)["initContainers"][0].update(
        env=[{"name": "BLUEGREEN_PREVIEW_SERVICE", "value": "x"}])), "initContainers[0].env[0].name"),
    ("infinity", variant(lambda d: d["spec"].update(parallelism=float("inf"))), "which JSON cannot hold"),
    ("nested too deeply", "[" * 3000, f"{PATH} is nested too deeply to be read."),
    ("pod metadata not a mapping", variant(lambda d: d["spec"]["template"].update(metadata="x")),
     f"{PATH}: spec.template.metadata must be a mapping."),
    ("number pod label", variant(lambda d: d["spec"]["template"]["metadata"]["labels"].update(n=2)),
     f"{PATH}: spec.template.metadata.labels.n must be a string, not 2 (quote it)."),
    ("pod labels not a mapping", variant(lambda d: d["spec"]["template"]["metadata"].update(labels=["a"])),
     f"{PATH}: spec.template.metadata.labels must be a mapping."),
]


@pytest.mark.parametrize(("text", "expected"), [(t, e) for _, t, e in REFUSED], ids=[n for n, _, _ in REFUSED])
def test_refusals_name_the_file_and_the_field(text: str | bytes, expected: str) -> None:
    with pytest.raises(JobManifestError) as caught:
        parse(text, max_bytes=100) if expected.endswith("limit is 100 bytes.") else parse(text)
    assert caught.value.reason == INVALID_JOB_MANIFEST
    assert expected in caught.value.message
    assert caught.value.message.startswith(PATH), caught.value.message
    assert str(caught.value) == caught.value.message


def test_an_alias_bomb_is_refused() -> None:
    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, "
        f"*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n"
        for i in range(6))
    with pytest.raises(JobManifestError, match=r"expands to more than"):
        parse(bomb)


def test_the_path_may_be_empty() -> None:
    with pytest.raises(JobManifestError, match=r"^the Job manifest: spec must be a mapping"):
        parse_job_manifest("apiVersion: batch/v1\nkind: Job\n", namespace=NS, path="")


@pytest.mark.parametrize("policy", ["Never", "OnFailure"])
def test_restart_policies_that_a_job_allows(policy: str) -> None:
    assert pod(parse(variant(lambda d: pod(d).update(restartPolicy=policy))))["restartPolicy"] == policy


def test_what_a_job_may_leave_out() -> None:
    bare = variant(lambda d: (d["spec"]["template"].pop("metadata"), pod(d).pop("initContainers"), d.pop("metadata"),
                              pod(d)["containers"][0].pop("env")))
    doc = parse(bare)
    assert "metadata" not in doc and "initContainers" not in pod(doc)


def test_limits_at_their_edges_are_accepted() -> None:
    parse(variant(lambda d: d["spec"].update(activeDeadlineSeconds=1, backoffLimit=0)))
    parse(variant(lambda d: pod(d).pop("restartPolicy")))
    assert parse(MANIFEST, max_bytes=len(MANIFEST.encode()))


# ---- names ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("args", "expected"), [
    (("shop", "prePromotion", SHA, Color.GREEN, "smoke"), "shop-pre-smoke-0123456789-green"),
    (("shop", "postPromotion", SHA, Color.BLUE, "smoke"), "shop-post-smoke-0123456789-blue"),
    (("shop", "expand", SHA, Color.BLUE, None), "shop-expand-0123456789-blue"),
    (("shop", "contract", SHA, None, None), "shop-contract-0123456789"),
    (("shop", "contract", SHA, "green", None), "shop-contract-0123456789-green"),
])
def test_the_name_says_release_hook_check_commit_and_colour(args: tuple[Any, ...], expected: str) -> None:
    assert job_name(*args) == expected


def test_a_long_name_is_cut_and_ends_with_a_hash_of_the_whole_identity() -> None:
    release = "a" * 50
    name = job_name(release, "prePromotion", SHA, Color.GREEN, "smoke")
    assert len(name) == MAX_NAME_LENGTH
    assert name.startswith("a" * 50 + "-pre-") and re.fullmatch(r"[a-z0-9-]+-[0-9a-f]{8}", name)
    assert job_name(release, "prePromotion", SHA, Color.GREEN, "smoke") == name, "deterministic"
    others = {job_name(release, "prePromotion", SHA, Color.BLUE, "smoke"),
              job_name(release, "postPromotion", SHA, Color.GREEN, "smoke"),
              job_name(release, "prePromotion", SHA[:-1] + "8", Color.GREEN, "smoke"),
              job_name(release, "prePromotion", SHA, Color.GREEN, "smoke2")}
    assert len(others) == 4 and name not in others, "every part of the identity changes the hash"


def test_a_name_with_unsafe_characters_is_made_safe_and_hashed() -> None:
    name = job_name("shop", "prePromotion", SHA, Color.GREEN, "Smoke_Test")
    assert re.fullmatch(r"shop-pre-smoke-test-0123456789-green-[0-9a-f]{8}", name), name
    assert name != job_name("shop", "prePromotion", SHA, Color.GREEN, "smoke-test"), "no collision with the safe one"
    assert len(job_name("shop", "prePromotion", SHA, Color.GREEN, "x" * 80)) == MAX_NAME_LENGTH
    cut = job_name("shop", "prePromotion", SHA, Color.GREEN, "y" * 44 + "-" + "z" * 10)  # cut just after a "-"
    assert "--" not in cut and re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", cut)


def test_hashed_names_stay_the_same_across_versions() -> None:
    """A changed hash would run every hook Job again after an upgrade: these are pinned."""
    assert job_name("a" * 50, "prePromotion", SHA, Color.GREEN, "smoke") == "a" * 50 + "-pre-b91d51fd"
    assert job_name("shop", "expand", SHA, None, "Smoke_Test") == "shop-expand-smoke-test-0123456789-676542c9"
    assert job_name("b" * 60, "expand", SHA, Color.BLUE) == "b" * 54 + "-58554e9c"


def test_a_name_of_exactly_63_characters_is_kept() -> None:
    fits = job_name("a" * 36, "prePromotion", SHA, Color.GREEN, "smoke")
    assert fits == "a" * 36 + "-pre-smoke-0123456789-green" and len(fits) == MAX_NAME_LENGTH
    longer = job_name("a" * 37, "prePromotion", SHA, Color.GREEN, "smoke")
    assert re.fullmatch("a" * 37 + r"-pre-smoke-012345-[0-9a-f]{8}", longer), longer
    assert len(longer) == MAX_NAME_LENGTH


def test_the_run_names_its_job() -> None:
    assert RUN.job_name == "shop-pre-smoke-0123456789-green"


# ---- rendering ------------------------------------------------------------------------------------------------
def test_the_rendered_job_carries_the_run() -> None:
    manifest = parse(MANIFEST)
    before = copy.deepcopy(manifest)
    owner: dict[str, Any] = {"kind": "BlueGreenRelease", "uid": "uid-1", "extra": {"a": 1}}
    job = render_job(manifest, RUN, timeout_seconds=299.5, owner=owner)
    assert manifest == before, "the manifest is not modified"
    owner["extra"]["a"] = 2
    assert job["metadata"]["ownerReferences"][0]["extra"] == {"a": 1}, "a copy"
    del job["metadata"]["ownerReferences"][0]["extra"]
    meta = job["metadata"]
    assert (job["apiVersion"], job["kind"]) == ("batch/v1", "Job")
    assert meta["name"] == "shop-pre-smoke-0123456789-green" and meta["namespace"] == NS
    assert meta["labels"] == {"team": "web", LABEL_RELEASE: "shop", LABEL_HOOK: "prePromotion", LABEL_COLOR: "green"}
    assert meta["annotations"] == {"owner": "qa", ANNOTATION_COMMIT: SHA, ANNOTATION_CHECK: "smoke"}
    assert meta["ownerReferences"] == [{"kind": "BlueGreenRelease", "uid": "uid-1"}]
    spec = job["spec"]
    assert spec["activeDeadlineSeconds"] == 300, "rounded up"
    assert spec["backoffLimit"] == 0
    template = spec["template"]
    assert template["metadata"]["labels"] == {"app": "smoke", LABEL_RELEASE: "shop", LABEL_HOOK: "prePromotion"}
    assert LABEL_COLOR not in template["metadata"]["labels"], "a Job's pod never takes a colour's traffic"
    ours = [{"name": "BLUEGREEN_RELEASE", "value": "shop"}, {"name": "BLUEGREEN_COMMIT", "value": SHA},
            {"name": "BLUEGREEN_HOOK", "value": "prePromotion"}, {"name": "BLUEGREEN_COLOR", "value": "green"},
            {"name": "BLUEGREEN_PREVIEW_SERVICE", "value": "shop-preview"}]
    assert template["spec"]["initContainers"][0]["env"] == ours
    assert template["spec"]["containers"][0]["env"] == [*ours, {"name": "TARGET",
                                                               "value": "http://$(BLUEGREEN_PREVIEW_SERVICE)/"}]
    assert template["spec"]["restartPolicy"] == "Never"


def test_the_manifest_keeps_what_it_sets() -> None:
    text = variant(lambda d: (d["spec"].update(activeDeadlineSeconds=7, backoffLimit=2), pod(d).pop("restartPolicy")))
    job = render_job(parse(text), RUN, timeout_seconds=300)
    assert (job["spec"]["activeDeadlineSeconds"], job["spec"]["backoffLimit"]) == (7, 2)
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never", "absent: Never"
    kept = render_job(parse(variant(lambda d: pod(d).update(restartPolicy="OnFailure"))), RUN)
    assert kept["spec"]["template"]["spec"]["restartPolicy"] == "OnFailure"
    assert "activeDeadlineSeconds" not in kept["spec"], "no timeout, no deadline"
    assert "ownerReferences" not in kept["metadata"]


@pytest.mark.parametrize(("timeout", "deadline"), [(0.2, 1), (1, 1), (1.01, 2), (60, 60)])
def test_the_deadline_is_a_whole_number_of_seconds_at_least_one(timeout: float, deadline: int) -> None:
    assert render_job(parse(MANIFEST), RUN, timeout_seconds=timeout)["spec"]["activeDeadlineSeconds"] == deadline


def test_a_migration_run_without_colour_check_or_preview() -> None:
    run = HookJobRun(ReleaseRef(NS, "shop"), "contract", SHA)
    job = render_job(parse(variant(lambda d: d.pop("metadata"))), run)
    assert job["metadata"]["name"] == "shop-contract-0123456789"
    assert job["metadata"]["labels"] == {LABEL_RELEASE: "shop", LABEL_HOOK: "contract"}
    assert job["metadata"]["annotations"] == {ANNOTATION_COMMIT: SHA}
    assert [v["name"] for v in job_environment(run)] == ["BLUEGREEN_RELEASE", "BLUEGREEN_COMMIT", "BLUEGREEN_HOOK"]
    containers = job["spec"]["template"]["spec"]["containers"]
    assert containers[0]["env"][:3] == job_environment(run)
