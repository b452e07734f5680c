"""Constants and spec types of the BlueGreenRelease resource (pure: no I/O, no clocks).

``ReleaseSpec.from_dict`` applies the same defaults and rules as the CRD schema in
``crds/bluegreenreleases.bluegreen.dev.yaml`` (a unit test keeps the two in step), plus the
few rules an OpenAPI schema cannot express (minimum interval, git ref-name syntax, relative path).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Literal, cast

from bluegreen.core.gitref import is_commit_id, ref_name_problem, semver_problem
from bluegreen.core.migrations_spec import Migrations, parse_migrations
from bluegreen.core.notify_spec import NotifyTarget, parse_notify
from bluegreen.core.repourl import URL_PREFIXES
from bluegreen.core.spec_fields import SpecError as SpecError  # re-exported: the spec's error
from bluegreen.core.spec_fields import int_field, refuse_unknown, require_mapping

if TYPE_CHECKING:
    from bluegreen.core.checks import CheckSpec

GROUP = "bluegreen.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
PLURAL = "bluegreenreleases"
KIND = "BlueGreenRelease"

LABEL_RELEASE = "bluegreen.dev/release"
LABEL_COLOR = "bluegreen.dev/color"
ANNOTATION_COMMIT = "bluegreen.dev/commit"
ANNOTATION_TEMPLATE_HASH = "bluegreen.dev/template-hash"
ANNOTATION_RECONCILE_AT = "bluegreen.dev/reconcile-at"
ANNOTATION_ROLLOUT_STARTED_AT = "bluegreen.dev/rollout-started-at"
ANNOTATION_ABANDONED_COMMIT = "bluegreen.dev/abandoned-commit"
"""The mark of a commit that missed its progress deadline, as older versions wrote it (still read)."""
ANNOTATION_FAILED_COMMIT = "bluegreen.dev/failed-commit"
"""On a colour's Deployment: the commit marked failed there (not tried again until a new commit or a retry)."""
ANNOTATION_FAILED_REASON = "bluegreen.dev/failed-reason"
"""Why: ProgressDeadlineExceeded, PrePromotionCheckFailed, PostPromotionCheckFailed or Aborted."""
ANNOTATION_FAILED_MESSAGE = "bluegreen.dev/failed-message"
"""What was seen (the failed check and its answer), for the status after a restart."""
ANNOTATION_PROMOTE = "bluegreen.dev/promote"
"""On a release, set by ``bluegreen promote`` (or ``kubectl annotate``): ``<commit>``: switch to the colour that
waits for promotion, if it runs that commit. Removed by the operator once handled (done or refused)."""
ANNOTATION_ABORT = "bluegreen.dev/abort"
"""On a release: ``<commit>``: stop the release of that commit (traffic stays on, or goes back to, the previous
colour; the commit is marked aborted). Removed by the operator once handled."""
ANNOTATION_RETRY = "bluegreen.dev/retry"
"""On a release: ``<commit>``: clear the failed/aborted/abandoned mark of that commit and release it again.
Removed by the operator once handled."""
ANNOTATION_AUTOSCALER = "bluegreen.dev/autoscaler"
"""On a colour's Deployment: the name of its HorizontalPodAutoscaler copy while it has one (removed when the
colour is scaled down, with the HPA)."""
ANNOTATION_DISRUPTION_BUDGET = "bluegreen.dev/disruption-budget"
"""On a colour's Deployment: the name of its PodDisruptionBudget copy."""
LABEL_HOOK = "bluegreen.dev/hook"
"""On a Job the operator runs for a commit: ``prePromotion``, ``postPromotion``, ``expand`` or ``contract``."""
ANNOTATION_EXPAND_JOB = "bluegreen.dev/expand-job"
"""On a colour's Deployment: the uid of the expand Job that ran before the colour was last brought up. Once the
colour is scaled to 0, that run no longer counts: bringing it up again runs the expand again."""
RESERVED_PREFIX = "bluegreen.dev/"
"""Label and annotation keys with this prefix belong to the operator."""

FIELD_MANAGER = "bluegreen-operator"

DEFAULT_BRANCH = "main"
DEFAULT_INTERVAL = "30s"
MIN_INTERVAL_SECONDS = 1.0
DEFAULT_SCALE_DOWN_DELAY_SECONDS = 300
DEFAULT_PROGRESS_DEADLINE_SECONDS = 600
DELETION_POLICIES = ("Orphan", "Delete")
DEFAULT_DELETION_POLICY = "Orphan"
MAX_RELEASE_NAME_LENGTH = 63
"""The release name is used as a label value, so it must fit in 63 characters."""

DNS1035_RE = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_SUBDOMAIN_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
DURATION_RE = re.compile(r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$")
_DURATION_PART_RE = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)")
_DURATION_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}

RefKind = Literal["branch", "tag", "commit", "semver"]
REF_KINDS: tuple[RefKind, ...] = ("branch", "tag", "commit", "semver")
VERIFY_MODES = ("head",)


class Color(StrEnum):
    """The two colours; a release's Deployments are ``<release>-blue`` and ``<release>-green``."""

    BLUE = "blue"
    GREEN = "green"

    @property
    def other(self) -> Color:
        """The opposite colour."""
        return Color.GREEN if self is Color.BLUE else Color.BLUE


@dataclass(frozen=True)
class ReleaseRef:
    """Identity of one BlueGreenRelease object."""

    namespace: str
    name: str
    uid: str = ""

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True)
class GitRef:
    """What to follow in the repository: a branch, a tag or a fixed commit."""

    kind: RefKind
    name: str

    def describe(self) -> str:
        """Human form, e.g. ``branch main``."""
        return f"{self.kind} {self.name}"


@dataclass(frozen=True)
class VerifySpec:
    """``spec.source.verify``: only commits signed by a trusted key are deployed."""

    mode: str  # "head": the commit to deploy must carry a valid signature
    secret_ref: str  # Secret with trusted keys: ``*.asc`` OpenPGP public keys, ``*.pub`` SSH public keys


@dataclass(frozen=True)
class SourceSpec:
    """``spec.source``: where the Deployment manifest lives and how often to look."""

    url: str
    ref: GitRef
    path: str
    interval_seconds: float
    secret_ref: str | None = None  # Secret with git credentials, same namespace
    verify: VerifySpec | None = None


@dataclass(frozen=True)
class ReleaseSpec:
    """A validated ``spec`` of a BlueGreenRelease, with defaults applied."""

    source: SourceSpec
    service: str
    preview_service: str | None
    scale_down_delay_seconds: int
    progress_deadline_seconds: int
    suspend: bool
    deletion_policy: str = DEFAULT_DELETION_POLICY
    promotion_mode: str = "Auto"
    """``spec.promotion.mode``: Auto (switch once the checks pass) or Manual (then wait for a promote)."""
    pre_promotion: tuple[CheckSpec, ...] = ()
    """``spec.checks.prePromotion`` (``bluegreen.core.checks_spec`` parses them)."""
    post_promotion: tuple[CheckSpec, ...] = ()
    migrations: Migrations = field(default_factory=Migrations)
    """``spec.migrations``: the expand and contract Jobs of each commit (``bluegreen.core.migrations_spec``)."""
    notify: tuple[NotifyTarget, ...] = ()
    """``spec.notify``: where release notifications go (``bluegreen.core.notify_spec``)."""

    @property
    def job_paths(self) -> tuple[str, ...]:
        """The Job manifests the checks and migrations name, read from each commit beside its Deployment manifest
        (each once, in spec order)."""
        paths = (*(check.job.path for check in (*self.pre_promotion, *self.post_promotion) if check.job is not None),
                 *self.migrations.paths)
        return tuple(dict.fromkeys(paths))

    @property
    def owns_deployments(self) -> bool:
        """With deletionPolicy Delete the colour Deployments carry an ownerReference (garbage-collected with
        the release); with Orphan (the default) they outlive it, so deleting a release never stops traffic."""
        return self.deletion_policy == "Delete"

    @classmethod
    def from_dict(cls, spec: Mapping[str, Any]) -> ReleaseSpec:
        """Validate ``spec`` (as stored in the resource) and apply the CRD's defaults.

        Raises ``SpecError`` naming the first offending field.
        """
        require_mapping(spec, "spec")
        refuse_unknown(
            spec,
            "spec",
            {
                "source",
                "service",
                "previewService",
                "scaleDownDelaySeconds",
                "progressDeadlineSeconds",
                "suspend",
                "deletionPolicy",
                "promotion",
                "checks",
                "migrations",
                "notify",
            },
        )
        from bluegreen.core.checks_spec import parse_checks, parse_promotion_mode  # it imports this module

        pre, post = parse_checks(spec.get("checks"))
        if "source" not in spec:
            raise SpecError("spec.source", "is required")
        source = _parse_source(spec["source"])
        service = _dns1035(spec.get("service"), "spec.service", required=True)
        assert service is not None
        preview = _dns1035(spec.get("previewService"), "spec.previewService", required=False)
        if preview == service:
            raise SpecError("spec.previewService", f"must differ from spec.service ({service!r})")
        return cls(
            source=source,
            service=service,
            preview_service=preview,
            scale_down_delay_seconds=int_field(
                spec.get("scaleDownDelaySeconds"),
                "spec.scaleDownDelaySeconds",
                default=DEFAULT_SCALE_DOWN_DELAY_SECONDS,
                minimum=0,
            ),
            progress_deadline_seconds=int_field(
                spec.get("progressDeadlineSeconds"),
                "spec.progressDeadlineSeconds",
                default=DEFAULT_PROGRESS_DEADLINE_SECONDS,
                minimum=1,
            ),
            suspend=_bool(spec.get("suspend"), "spec.suspend", default=False),
            deletion_policy=_deletion_policy(spec.get("deletionPolicy")),
            promotion_mode=parse_promotion_mode(spec.get("promotion")),
            pre_promotion=pre,
            post_promotion=post,
            migrations=parse_migrations(spec.get("migrations")),
            notify=parse_notify(spec.get("notify")),
        )


def parse_spec(spec: Mapping[str, Any]) -> ReleaseSpec | SpecError:
    """``ReleaseSpec.from_dict`` with the error returned, not raised: parsed once per change of the release and
    kept with it."""
    try:
        return ReleaseSpec.from_dict(spec)
    except SpecError as exc:
        return exc


def _deletion_policy(value: object) -> str:
    if value is None:
        return DEFAULT_DELETION_POLICY
    if value not in DELETION_POLICIES:
        raise SpecError("spec.deletionPolicy", f"must be one of {', '.join(DELETION_POLICIES)}, not {value!r}")
    return str(value)


def deployment_name(release: str, color: Color) -> str:
    """Name of the Deployment that runs ``color`` of ``release``."""
    return f"{release}-{color}"


def check_release_name(name: str) -> None:
    """Refuse a release name that cannot be used as a label value (longer than 63 characters)."""
    if not name or len(name) > MAX_RELEASE_NAME_LENGTH:
        raise SpecError(
            "metadata.name",
            f"must be 1 to {MAX_RELEASE_NAME_LENGTH} characters long (it is used as a label value)",
        )


def parse_duration(text: str) -> float:
    """Seconds in a Go-style duration such as ``30s``, ``5m``, ``1h``, ``1m30s`` or ``1.5s``.

    Units are ``ms``, ``s``, ``m`` and ``h``; a bare number is refused.
    """
    if not isinstance(text, str) or not DURATION_RE.fullmatch(text):
        raise ValueError(
            f"invalid duration {text!r}: expected a number with a unit (ms, s, m, h), "
            "e.g. 30s, 5m, 1h or 1m30s"
        )
    return sum(float(num) * _DURATION_UNIT_SECONDS[unit] for num, unit in _DURATION_PART_RE.findall(text))


def _parse_source(source: object) -> SourceSpec:
    """Validate ``spec.source``."""
    require_mapping(source, "spec.source")
    src = cast(Mapping[str, Any], source)
    refuse_unknown(src, "spec.source", {"url", "ref", "path", "interval", "secretRef", "verify"})

    url = src.get("url")
    if not isinstance(url, str) or not url:
        raise SpecError("spec.source.url", "is required and must be a non-empty string")
    if not url.startswith(URL_PREFIXES) or url in URL_PREFIXES:
        raise SpecError(
            "spec.source.url",
            f"{url!r} must start with https://, http://, ssh://, git://, file:// or / (an absolute local path)",
        )

    path = src.get("path")
    if not isinstance(path, str) or not path:
        raise SpecError("spec.source.path", "is required and must be a non-empty string")
    if path.startswith("/") or ".." in path.split("/"):
        raise SpecError("spec.source.path", f"{path!r} must be relative to the repository root, without '..'")

    interval_text = src.get("interval", DEFAULT_INTERVAL)
    try:
        interval = parse_duration(interval_text)
    except ValueError as exc:
        raise SpecError("spec.source.interval", str(exc)) from None
    if interval < MIN_INTERVAL_SECONDS:
        raise SpecError("spec.source.interval", f"{interval_text!r} is below the minimum of 1s")

    return SourceSpec(url=url, ref=_parse_ref(src.get("ref")), path=path, interval_seconds=interval,
                      secret_ref=_secret_ref(src.get("secretRef"), "spec.source.secretRef"),
                      verify=_parse_verify(src.get("verify")))


def _secret_ref(value: object, field: str) -> str | None:
    """``{name: <secret>}`` (a Secret in the release's namespace) or absent."""
    if value is None:
        return None
    require_mapping(value, field)
    ref = cast(Mapping[str, Any], value)
    refuse_unknown(ref, field, {"name"})
    name = ref.get("name")
    if not isinstance(name, str) or not _DNS1123_SUBDOMAIN_RE.fullmatch(name):
        raise SpecError(f"{field}.name", f"{name!r} must be the name of a Secret (DNS-1123 subdomain)")
    return name


def _parse_verify(value: object) -> VerifySpec | None:
    if value is None:
        return None
    require_mapping(value, "spec.source.verify")
    verify = cast(Mapping[str, Any], value)
    refuse_unknown(verify, "spec.source.verify", {"mode", "secretRef"})
    mode = verify.get("mode", "head")
    if mode not in VERIFY_MODES:
        raise SpecError("spec.source.verify.mode", f"must be one of {', '.join(VERIFY_MODES)}, not {mode!r}")
    secret = _secret_ref(verify.get("secretRef"), "spec.source.verify.secretRef")
    if secret is None:
        raise SpecError("spec.source.verify.secretRef", "is required: the Secret holding the trusted public keys")
    return VerifySpec(mode=str(mode), secret_ref=secret)


def _parse_ref(ref: object) -> GitRef:
    """Validate ``spec.source.ref``: exactly one of branch, tag or commit."""
    if ref is None:
        return GitRef("branch", DEFAULT_BRANCH)
    require_mapping(ref, "spec.source.ref")
    mapping = cast(Mapping[str, Any], ref)
    refuse_unknown(mapping, "spec.source.ref", set(REF_KINDS))
    kinds = [kind for kind in REF_KINDS if kind in mapping]
    if len(kinds) != 1:
        got = ", ".join(kinds) if kinds else "none"
        raise SpecError("spec.source.ref", f"set exactly one of branch, tag, commit or semver (got: {got})")
    kind = kinds[0]
    field = f"spec.source.ref.{kind}"
    name = mapping[kind]
    if not isinstance(name, str):
        raise SpecError(field, "must be a string")
    if kind == "commit":
        if not is_commit_id(name):
            raise SpecError(field, f"{name!r} must be 7 to 40 lowercase hex digits")
    elif kind == "semver":
        problem = semver_problem(name)
        if problem:
            raise SpecError(field, problem)
    else:
        problem = ref_name_problem(name)
        if problem:
            raise SpecError(field, f"{name!r} {problem}")
    return GitRef(kind, name)


def _dns1035(value: object, field: str, *, required: bool) -> str | None:
    if value is None:
        if required:
            raise SpecError(field, "is required")
        return None
    if not isinstance(value, str) or len(value) > 63 or not DNS1035_RE.fullmatch(value):
        raise SpecError(
            field,
            f"{value!r} must be a DNS-1035 name: at most 63 lowercase letters, digits or '-', "
            "starting with a letter and ending with a letter or digit",
        )
    return value


def _bool(value: object, field: str, *, default: bool) -> bool:
    if value is None:
        return default
    if not isinstance(value, bool):
        raise SpecError(field, f"{value!r} must be true or false")
    return value
