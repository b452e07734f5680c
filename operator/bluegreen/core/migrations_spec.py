"""``spec.migrations`` of a BlueGreenRelease: the expand and contract Jobs of each commit. Pure.

``expand`` runs to success before the idle colour is created or changed; ``contract`` runs once no pod of the
previous colour is left (docs/migrations.md). Each names a batch/v1 Job manifest read from the same commit as
the Deployment. Called by ``ReleaseSpec.from_dict``; raises ``SpecError`` naming the first offending field.
"""

from __future__ import annotations

from dataclasses import dataclass

from bluegreen.core.spec_fields import SpecError, int_field, known_mapping

DEFAULT_MIGRATION_TIMEOUT_SECONDS = 600
MIGRATION_PHASES = ("expand", "contract")


@dataclass(frozen=True)
class MigrationSpec:
    """``spec.migrations.expand`` / ``contract``: a Job manifest at ``path`` of each commit."""

    path: str
    timeout_seconds: float = float(DEFAULT_MIGRATION_TIMEOUT_SECONDS)
    """The whole run (the Job's activeDeadlineSeconds unless the manifest sets one)."""


@dataclass(frozen=True)
class Migrations:
    """``spec.migrations``; either part may be absent."""

    expand: MigrationSpec | None = None
    contract: MigrationSpec | None = None

    @property
    def paths(self) -> tuple[str, ...]:
        """The Job manifests to read from each commit (expand first)."""
        return tuple(m.path for m in (self.expand, self.contract) if m is not None)

    def of(self, phase: str) -> MigrationSpec | None:
        """The migration of ``phase`` (``expand`` or ``contract``)."""
        if phase not in MIGRATION_PHASES:
            raise ValueError(f"phase must be one of {', '.join(MIGRATION_PHASES)}, not {phase!r}")
        return self.expand if phase == "expand" else self.contract


def parse_migrations(value: object) -> Migrations:
    """``spec.migrations``: ``{expand: {path, timeoutSeconds}, contract: {...}}`` (both optional)."""
    if value is None:
        return Migrations()
    migrations = known_mapping(value, "spec.migrations", set(MIGRATION_PHASES))
    expand = _parse_one(migrations.get("expand"), "spec.migrations.expand")
    contract = _parse_one(migrations.get("contract"), "spec.migrations.contract")
    if expand is not None and contract is not None and expand.path == contract.path:
        raise SpecError("spec.migrations.contract.path", f"{contract.path!r} is the expand Job's file too; the two "
                                                         "phases need their own Jobs")
    return Migrations(expand, contract)


def _parse_one(value: object, field: str) -> MigrationSpec | None:
    if value is None:
        return None
    item = known_mapping(value, field, {"path", "timeoutSeconds"})
    path = item.get("path")
    if not isinstance(path, str) or not path:
        raise SpecError(f"{field}.path", "is required and must be a non-empty string")
    if path.startswith("/") or ".." in path.split("/"):
        raise SpecError(f"{field}.path", f"{path!r} must be relative to the repository root, without '..'")
    timeout = int_field(item.get("timeoutSeconds"), f"{field}.timeoutSeconds",
                        default=DEFAULT_MIGRATION_TIMEOUT_SECONDS, minimum=1)
    return MigrationSpec(path=path, timeout_seconds=float(timeout))
