"""Every refusal of a spec names its field and says what is wrong, word for word (the message is the status
condition's and the Event's: a user reads it to know what to fix). Boundaries that are accepted are pinned too."""

from __future__ import annotations

from typing import Any

import pytest
from test_api import DELETE, MINIMAL, spec_with

from bluegreen.core.spec import ReleaseSpec, SourceSpec, SpecError, VerifySpec, check_release_name, parse_spec

V = {"mode": "head", "secretRef": {"name": "keys"}}


@pytest.mark.parametrize(("spec", "field", "problem"), [
    pytest.param([], "spec",
                 'must be an object', id="spec-not-object"),
    pytest.param(spec_with(replicas=3), "spec.replicas",
                 'unknown field (known: checks, deletionPolicy, migrations, notify, previewService, '
                 'progressDeadlineSeconds, promotion, scaleDownDelaySeconds, service, source, suspend)',
                 id="unknown-top-field"),
    pytest.param(spec_with(source=DELETE), "spec.source",
                 'is required', id="source-missing"),
    pytest.param(spec_with(source='x'), "spec.source",
                 'must be an object', id="source-not-object"),
    pytest.param(spec_with(source__branch='main'), "spec.source.branch",
                 'unknown field (known: interval, path, ref, secretRef, url, verify)', id="source-unknown-field"),
    pytest.param(spec_with(source__url=DELETE), "spec.source.url",
                 'is required and must be a non-empty string', id="url-missing"),
    pytest.param(spec_with(source__url=5), "spec.source.url",
                 'is required and must be a non-empty string', id="url-not-string"),
    pytest.param(spec_with(source__url='ftp://x/y.git'), "spec.source.url",
                 "'ftp://x/y.git' must start with https://, http://, ssh://, git://, file:// or / (an "
                 'absolute local path)', id="url-ftp"),
    pytest.param(spec_with(source__url='ssh://'), "spec.source.url",
                 "'ssh://' must start with https://, http://, ssh://, git://, file:// or / (an absolute "
                 'local path)', id="url-scheme-only"),
    pytest.param(spec_with(source__path=DELETE), "spec.source.path",
                 'is required and must be a non-empty string', id="path-missing"),
    pytest.param(spec_with(source__path='/etc/passwd'), "spec.source.path",
                 "'/etc/passwd' must be relative to the repository root, without '..'", id="path-absolute"),
    pytest.param(spec_with(source__path='a/../b.yaml'), "spec.source.path",
                 "'a/../b.yaml' must be relative to the repository root, without '..'", id="path-dotdot-inside"),
    pytest.param(spec_with(source__interval='30'), "spec.source.interval",
                 "invalid duration '30': expected a number with a unit (ms, s, m, h), e.g. 30s, 5m, 1h or "
                 '1m30s', id="interval-no-unit"),
    pytest.param(spec_with(source__interval='999ms'), "spec.source.interval",
                 "'999ms' is below the minimum of 1s", id="interval-below-minimum"),
    pytest.param(spec_with(source__ref='main'), "spec.source.ref",
                 'must be an object', id="ref-not-object"),
    pytest.param(spec_with(source__ref={}), "spec.source.ref",
                 'set exactly one of branch, tag, commit or semver (got: none)', id="ref-none-set"),
    pytest.param(spec_with(source__ref={'tag': 'v1', 'branch': 'main'}), "spec.source.ref",
                 'set exactly one of branch, tag, commit or semver (got: branch, tag)', id="ref-two-set"),
    pytest.param(spec_with(source__ref={'sha': 'abc1234'}), "spec.source.ref.sha",
                 'unknown field (known: branch, commit, semver, tag)', id="ref-unknown-kind"),
    pytest.param(spec_with(source__ref={'tag': 1}), "spec.source.ref.tag",
                 'must be a string', id="ref-not-string"),
    pytest.param(spec_with(source__ref={'commit': 'abc12'}), "spec.source.ref.commit",
                 "'abc12' must be 7 to 40 lowercase hex digits", id="commit-short"),
    pytest.param(spec_with(source__ref={'semver': 'not a range'}), "spec.source.ref.semver",
                 "'not a range' is not a semver range ('not' is not a version)", id="semver-bad"),
    pytest.param(spec_with(source__ref={'branch': 'a..b'}), "spec.source.ref.branch",
                 "'a..b' must not contain '..' or '//', nor start with '/' or end with '/' or '.'", id="branch-bad"),
    pytest.param(spec_with(source__secretRef='creds'), "spec.source.secretRef",
                 'must be an object', id="secret-ref-not-object"),
    pytest.param(spec_with(source__secretRef={'name': 'a', 'key': 'b'}), "spec.source.secretRef.key",
                 'unknown field (known: name)', id="secret-ref-unknown-field"),
    pytest.param(spec_with(source__secretRef={'name': 'Creds'}), "spec.source.secretRef.name",
                 "'Creds' must be the name of a Secret (DNS-1123 subdomain)", id="secret-ref-bad-name"),
    pytest.param(spec_with(source__secretRef={}), "spec.source.secretRef.name",
                 'None must be the name of a Secret (DNS-1123 subdomain)', id="secret-ref-no-name"),
    pytest.param(spec_with(source__verify='head'), "spec.source.verify",
                 'must be an object', id="verify-not-object"),
    pytest.param(spec_with(source__verify={**V, 'keys': 1}), "spec.source.verify.keys",
                 'unknown field (known: mode, secretRef)', id="verify-unknown-field"),
    pytest.param(spec_with(source__verify={**V, 'mode': 'all'}), "spec.source.verify.mode",
                 "must be one of head, not 'all'", id="verify-bad-mode"),
    pytest.param(spec_with(source__verify={'mode': 'head'}), "spec.source.verify.secretRef",
                 'is required: the Secret holding the trusted public keys', id="verify-no-secret"),
    pytest.param(spec_with(source__verify={'secretRef': {'name': 'a_b'}}), "spec.source.verify.secretRef.name",
                 "'a_b' must be the name of a Secret (DNS-1123 subdomain)", id="verify-bad-secret-name"),
    pytest.param(spec_with(service=DELETE), "spec.service",
                 'is required', id="service-missing"),
    pytest.param(spec_with(service='Shop'), "spec.service",
                 "'Shop' must be a DNS-1035 name: at most 63 lowercase letters, digits or '-', starting with"
                 ' a letter and ending with a letter or digit', id="service-bad"),
    pytest.param(spec_with(service='s' * 64), "spec.service",
                 "'ssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssss' must be a DNS-1035 "
                 "name: at most 63 lowercase letters, digits or '-', starting with a letter and ending with "
                 'a letter or digit', id="service-too-long"),
    pytest.param(spec_with(service=7), "spec.service",
                 "7 must be a DNS-1035 name: at most 63 lowercase letters, digits or '-', starting with a "
                 'letter and ending with a letter or digit', id="service-not-string"),
    pytest.param(spec_with(previewService='a.b'), "spec.previewService",
                 "'a.b' must be a DNS-1035 name: at most 63 lowercase letters, digits or '-', starting with "
                 'a letter and ending with a letter or digit', id="preview-bad"),
    pytest.param(spec_with(previewService='shop'), "spec.previewService",
                 "must differ from spec.service ('shop')", id="preview-equals-service"),
    pytest.param(spec_with(scaleDownDelaySeconds=-1), "spec.scaleDownDelaySeconds",
                 '-1 must be at least 0', id="delay-negative"),
    pytest.param(spec_with(scaleDownDelaySeconds='5'), "spec.scaleDownDelaySeconds",
                 "'5' must be an integer", id="delay-not-int"),
    pytest.param(spec_with(scaleDownDelaySeconds=True), "spec.scaleDownDelaySeconds",
                 'True must be an integer', id="delay-bool"),
    pytest.param(spec_with(progressDeadlineSeconds=0), "spec.progressDeadlineSeconds",
                 '0 must be at least 1', id="deadline-zero"),
    pytest.param(spec_with(suspend='false'), "spec.suspend",
                 "'false' must be true or false", id="suspend-not-bool"),
    pytest.param(spec_with(deletionPolicy='Cascade'), "spec.deletionPolicy",
                 "must be one of Orphan, Delete, not 'Cascade'", id="deletion-policy-unknown"),
])
def test_each_refusal_says_what_to_fix(spec: Any, field: str, problem: str) -> None:
    error = parse_spec(spec)
    assert isinstance(error, SpecError)
    assert (error.reason, error.field, error.problem) == ("InvalidSpec", field, problem)
    assert error.message == str(error) == f"{field}: {problem}"


@pytest.mark.parametrize(("changes", "check"), [
    pytest.param({"source__interval": "1s"}, lambda s: s.source.interval_seconds == 1.0, id="interval-at-minimum"),
    pytest.param({"source__interval": "1000ms"}, lambda s: s.source.interval_seconds == 1.0, id="interval-1000ms"),
    pytest.param({"scaleDownDelaySeconds": 0}, lambda s: s.scale_down_delay_seconds == 0, id="delay-zero"),
    pytest.param({"progressDeadlineSeconds": 1}, lambda s: s.progress_deadline_seconds == 1, id="deadline-one"),
    pytest.param({"previewService": None}, lambda s: s.preview_service is None, id="preview-null"),
    pytest.param({"suspend": None}, lambda s: s.suspend is False, id="suspend-null"),
    pytest.param({"deletionPolicy": None}, lambda s: s.deletion_policy == "Orphan" and not s.owns_deployments,
                 id="deletion-policy-null"),
    pytest.param({"deletionPolicy": "Delete"}, lambda s: s.owns_deployments, id="deletion-policy-delete"),
    pytest.param({"source__secretRef": None}, lambda s: s.source.secret_ref is None, id="secret-ref-null"),
    pytest.param({"source__secretRef": {"name": "git.creds-1"}}, lambda s: s.source.secret_ref == "git.creds-1",
                 id="secret-ref-subdomain"),
    pytest.param({"source__verify": {"secretRef": {"name": "keys"}}},
                 lambda s: s.source.verify == VerifySpec(mode="head", secret_ref="keys"), id="verify-mode-defaults"),
    pytest.param({"source__verify": None}, lambda s: s.source.verify is None, id="verify-null"),
    pytest.param({"service": "s" * 63}, lambda s: s.service == "s" * 63, id="service-63-characters"),
    pytest.param({"source__url": "/srv/git/deploy"}, lambda s: s.source.url == "/srv/git/deploy", id="local-path"),
    pytest.param({"source__path": "a/b..c/d.yaml"}, lambda s: s.source.path == "a/b..c/d.yaml",
                 id="dots-inside-a-name"),
])
def test_boundaries_that_are_accepted(changes: dict[str, Any], check: Any) -> None:
    spec = parse_spec(spec_with(**changes))
    assert isinstance(spec, ReleaseSpec), spec
    assert check(spec)


def test_a_valid_spec_parses_to_its_source() -> None:
    spec = parse_spec(MINIMAL)
    assert isinstance(spec, ReleaseSpec)
    assert isinstance(spec.source, SourceSpec) and spec.source.secret_ref is None and spec.source.verify is None


@pytest.mark.parametrize("name", ["", "r" * 64])
def test_release_names_that_cannot_be_label_values(name: str) -> None:
    with pytest.raises(SpecError) as caught:
        check_release_name(name)
    assert (caught.value.field, caught.value.problem) == (
        "metadata.name", "must be 1 to 63 characters long (it is used as a label value)")


def test_a_63_character_release_name_is_fine() -> None:
    check_release_name("r" * 63)
