"""spec.migrations: parsing, the refusals that name the field, and the Job files read from each commit."""

from __future__ import annotations

from typing import Any

import pytest

from bluegreen.core.migrations_spec import Migrations, MigrationSpec, parse_migrations
from bluegreen.core.spec import ReleaseSpec, SpecError

BASE: dict[str, Any] = {"source": {"url": "https://git.example/app.git", "path": "deploy.yaml"}, "service": "web"}


def spec(**extra: Any) -> ReleaseSpec:
    return ReleaseSpec.from_dict({**BASE, **extra})


def test_absent_means_no_migration() -> None:
    parsed = spec()
    assert parsed.migrations == Migrations()
    assert parsed.migrations.paths == ()
    assert parsed.job_paths == ()


def test_expand_and_contract_with_defaults() -> None:
    parsed = spec(migrations={"expand": {"path": "db/expand.yaml"},
                              "contract": {"path": "db/contract.yaml", "timeoutSeconds": 30}})
    assert parsed.migrations.expand == MigrationSpec("db/expand.yaml", 600.0)
    assert parsed.migrations.contract == MigrationSpec("db/contract.yaml", 30.0)
    assert parsed.migrations.of("expand") is parsed.migrations.expand
    assert parsed.migrations.of("contract") is parsed.migrations.contract
    assert parsed.migrations.paths == ("db/expand.yaml", "db/contract.yaml")


def test_job_paths_read_each_file_once_checks_first() -> None:
    parsed = spec(checks={"prePromotion": [{"name": "smoke", "job": {"path": "db/expand.yaml"}},
                                           {"name": "other", "job": {"path": "checks/other.yaml"}}]},
                  migrations={"expand": {"path": "db/expand.yaml"}, "contract": {"path": "db/contract.yaml"}})
    assert parsed.job_paths == ("db/expand.yaml", "checks/other.yaml", "db/contract.yaml")


def test_only_one_phase() -> None:
    assert parse_migrations({"contract": {"path": "c.yaml"}}) == Migrations(None, MigrationSpec("c.yaml"))
    assert parse_migrations({}) == Migrations()


def test_unknown_phase_name_is_refused_by_of() -> None:
    with pytest.raises(ValueError, match="expand, contract"):
        Migrations().of("backfill")


@pytest.mark.parametrize(("value", "field", "problem"), [
    ("x", "spec.migrations", "must be an object"),
    ({"backfill": {"path": "a"}}, "spec.migrations.backfill", "unknown field (known: contract, expand)"),
    ({"expand": {}}, "spec.migrations.expand.path", "is required and must be a non-empty string"),
    ({"expand": {"path": ""}}, "spec.migrations.expand.path", "is required and must be a non-empty string"),
    ({"expand": {"path": 3}}, "spec.migrations.expand.path", "is required and must be a non-empty string"),
    ({"expand": {"path": "/db/e.yaml"}}, "spec.migrations.expand.path",
     "'/db/e.yaml' must be relative to the repository root, without '..'"),
    ({"contract": {"path": "db/../e.yaml"}}, "spec.migrations.contract.path",
     "'db/../e.yaml' must be relative to the repository root, without '..'"),
    ({"expand": {"path": "e.yaml", "timeoutSeconds": 0}}, "spec.migrations.expand.timeoutSeconds",
     "0 must be at least 1"),
    ({"expand": {"path": "e.yaml", "timeoutSeconds": "5"}}, "spec.migrations.expand.timeoutSeconds",
     "'5' must be an integer"),
    ({"expand": {"path": "e.yaml", "image": "x"}}, "spec.migrations.expand.image",
     "unknown field (known: path, timeoutSeconds)"),
    ({"expand": {"path": "same.yaml"}, "contract": {"path": "same.yaml"}}, "spec.migrations.contract.path",
     "'same.yaml' is the expand Job's file too; the two phases need their own Jobs"),
])
def test_refusals_name_the_field(value: object, field: str, problem: str) -> None:
    with pytest.raises(SpecError) as caught:
        spec(migrations=value)
    assert (caught.value.reason, caught.value.field, caught.value.problem) == ("InvalidSpec", field, problem)
