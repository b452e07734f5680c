"""Every refusal of a manifest, word for word: the message is what the user reads in the SourceReady and Ready
conditions and in the Warning Event, so it must name the file, the field and what to do. The cases are those of
test_desired.py::test_parse_refuses (reused, so the two tables cannot drift apart)."""

from __future__ import annotations

import pytest
import test_desired

from bluegreen.core.desired import ManifestError

PATH = "apps/shop/deployment.yaml"
PARSER_WORDED = {"invalid-yaml": "is not valid YAML: ", "duplicate-key": "is not valid YAML: found duplicate key 'a'"}
"""Messages that quote the YAML parser, whose wording is PyYAML's: only our part is pinned."""
MESSAGES = {  # after the path
    'not-utf8':
        ' is not UTF-8 text (invalid start byte).',
    'binary-value':
        ': spec.extra is a bytes; only JSON values are allowed (quote it if it is meant as text).',
    'integer-key':
        ': key 1 under spec must be a string.',
    'infinity':
        ': spec.big is inf, which JSON cannot hold.',
    'too-deep':
        ' is nested more than 100 levels deep.',
    'empty-file':
        ' must hold exactly one YAML document (a Deployment); found no document.',
    'only-comments':
        ' must hold exactly one YAML document (a Deployment); found no document.',
    'two-documents':
        ' must hold exactly one YAML document (a Deployment); found 2 documents.',
    'a-list':
        ' must be an apps/v1 Deployment object, not a list.',
    'a-string':
        ' must be an apps/v1 Deployment object, not a string.',
    'service':
        " must be an apps/v1 Deployment; found apiVersion 'v1', kind 'Service'.",
    'apps-v1beta1':
        " must be an apps/v1 Deployment; found apiVersion 'apps/v1beta1', kind 'Deployment'.",
    'other-namespace':
        " sets metadata.namespace 'other', but the release is in namespace 'shop'; remove "
        "metadata.namespace or set it to 'shop'.",
    'no-spec':
        ': spec must be a mapping (it is missing).',
    'replicas-str':
        ': spec.replicas must be a whole number >= 1 (a colour with no replica cannot take traffic), not '
        "'3'.",
    'replicas-neg':
        ': spec.replicas must be a whole number >= 1 (a colour with no replica cannot take traffic), not '
        '-1.',
    'replicas-zero':
        ': spec.replicas must be a whole number >= 1 (a colour with no replica cannot take traffic), not '
        '0.',
    'replicas-bool':
        ': spec.replicas must be a whole number >= 1 (a colour with no replica cannot take traffic), not '
        'True.',
    'label-not-string':
        ': metadata.labels.version must be a string, not 2 (quote it).',
    'no-template':
        ': spec.template must be a mapping (it is missing).',
    'no-template-labels':
        ': spec.template.metadata.labels must be a mapping (it is missing).',
    'empty-template-labels':
        ': spec.template.metadata.labels must not be empty.',
    'no-selector':
        ': spec.selector must be a mapping (it is missing).',
    'empty-selector':
        ': spec.selector needs matchLabels (or matchExpressions).',
    'selector-value-mismatch':
        ': spec.selector.matchLabels app=other is not among spec.template.metadata.labels; the selector '
        "must select the template's own labels.",
    'selector-key-not-in-template':
        ': spec.selector.matchLabels role=x is not among spec.template.metadata.labels; the selector must'
        " select the template's own labels.",
    'expression-mismatch':
        ': spec.selector.matchExpressions[0] does not match spec.template.metadata.labels.',
    'expression-bad-operator':
        ': spec.selector.matchExpressions[0].operator must be one of In, NotIn, Exists, DoesNotExist.',
    'expression-in-without-values':
        ': spec.selector.matchExpressions[0].values must be non-empty for In/NotIn and empty for '
        'Exists/DoesNotExist.',
    'no-containers':
        ': spec.template.spec.containers must be a non-empty list of containers.',
    'empty-containers':
        ': spec.template.spec.containers must be a non-empty list of containers.',
    'container-without-image':
        ': spec.template.spec.containers[0].image must be a non-empty string.',
    'container-empty-name':
        ': spec.template.spec.containers[0].name must be a non-empty string.',
    'duplicate-container-name':
        ": spec.template.spec.containers[1].name 'web' is used by more than one container.",
    'init-container-without-image':
        ': spec.template.spec.initContainers[0].image must be a non-empty string.',
    'bluegreen-label-in-selector':
        ": spec.selector.matchLabels 'bluegreen.dev/color' uses the reserved prefix bluegreen.dev/; the "
        'operator sets those labels and annotations itself, remove it.',
    'bluegreen-label-in-template':
        ": spec.template.metadata.labels 'bluegreen.dev/release' uses the reserved prefix bluegreen.dev/;"
        ' the operator sets those labels and annotations itself, remove it.',
    'bluegreen-annotation-in-template':
        ": spec.template.metadata.annotations 'bluegreen.dev/template-hash' uses the reserved prefix "
        'bluegreen.dev/; the operator sets those labels and annotations itself, remove it.',
    'bluegreen-annotation-in-metadata':
        ": metadata.annotations 'bluegreen.dev/commit' uses the reserved prefix bluegreen.dev/; the "
        'operator sets those labels and annotations itself, remove it.',
    'bluegreen-key-in-expression':
        ": spec.selector.matchExpressions[0].key 'bluegreen.dev/color' uses the reserved prefix "
        'bluegreen.dev/; remove it.',
}
CASES = next(m for m in test_desired.test_parse_refuses.pytestmark if m.name == "parametrize").args[1]


def test_every_refusal_has_its_message() -> None:
    assert {case.id for case in CASES} == set(MESSAGES) | set(PARSER_WORDED)


@pytest.mark.parametrize(("text", "reason", "fragment"), [pytest.param(*c.values, id=c.id) for c in CASES])
def test_each_refusal_word_for_word(request: pytest.FixtureRequest, text: str | bytes, reason: str,
                                    fragment: str) -> None:
    with pytest.raises(ManifestError) as caught:
        test_desired.parse(text, path=PATH)
    case = request.node.callspec.id
    assert caught.value.reason == reason
    if case in PARSER_WORDED:
        assert caught.value.message.startswith(f"{PATH} {PARSER_WORDED[case]}")
    else:
        assert caught.value.message == PATH + MESSAGES[case]
