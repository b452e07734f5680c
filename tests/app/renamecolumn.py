"""Renaming a column without downtime, in three releases: what the migration e2e test
(``tests/e2e/test_migrations_rename.py``) and ``make demo-migrations`` commit to git for each release.

Each release is a version of the web app (``APP_DB_COLUMNS``: the columns it reads and writes) plus two
migration Jobs running ``migrate.py``: the **expand** (run before the new version's colour is brought up, so
the schema serves the old and the new version at once) and the **contract** (run once no pod of the previous
version is left). Every expand is idempotent and restores what its own version needs, because a cold rollback
runs the expand of the commit it goes back to:

- v1 reads and writes ``name``; its expand creates the table.
- v2 dual-writes ``name`` and ``display_name``; its expand (re-)adds both columns, makes ``name`` nullable (v3
  will stop writing it), and backfills each column from the other.
- v3 uses ``display_name`` only; its expand backfills once more (v1 may have written rows after v2's expand,
  in a rollback); its contract drops ``name``.

The SQL avoids ``$$``: in a container's command kubelet turns ``$$`` into ``$`` (``$(VAR)`` expansion), so a
``DO`` block uses a named dollar quote (``$backfill$``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

TABLE = "items"
NOTHING_TO_CONTRACT = "SELECT count(*) FROM items"
"""The contract of a release that drops nothing: a harmless statement (every commit carries both Jobs)."""


@dataclass(frozen=True)
class Release:
    """One release of the rename: the app's version and columns, and the SQL of its two migrations."""

    version: str
    columns: str
    """``APP_DB_COLUMNS`` of this version."""
    expand: tuple[str, ...]
    contract: tuple[str, ...]


V1 = Release("v1", "name", expand=(
    "CREATE TABLE IF NOT EXISTS items (id serial PRIMARY KEY, name text NOT NULL)",
), contract=(NOTHING_TO_CONTRACT,))

V2 = Release("v2", "name,display_name", expand=(
    "ALTER TABLE items ADD COLUMN IF NOT EXISTS name text",  # back after v3's contract dropped it (cold rollback)
    "ALTER TABLE items ADD COLUMN IF NOT EXISTS display_name text",
    "ALTER TABLE items ALTER COLUMN name DROP NOT NULL",
    "UPDATE items SET display_name = name WHERE display_name IS NULL",
    "UPDATE items SET name = display_name WHERE name IS NULL",
), contract=(NOTHING_TO_CONTRACT,))

V3 = Release("v3", "display_name", expand=(
    "ALTER TABLE items ADD COLUMN IF NOT EXISTS display_name text",
    "DO $backfill$ BEGIN IF EXISTS (SELECT 1 FROM information_schema.columns WHERE table_schema = "
    "current_schema() AND table_name = 'items' AND column_name = 'name') THEN "
    "UPDATE items SET display_name = name WHERE display_name IS NULL; END IF; END $backfill$",
), contract=(
    "ALTER TABLE items DROP COLUMN IF EXISTS name",
))

RELEASES = {r.version: r for r in (V1, V2, V3)}

FAILING_EXPAND = (
    "ALTER TABLE items ADD COLUMN IF NOT EXISTS nickname text",
    "ALTER TABLE items ADD COLUMN broken no_such_type",
)
"""An expand that fails on its second statement (SQLSTATE 42704): nothing of it is committed."""


def migration_job(name: str, statements: Sequence[str], migrate_py: str, *, secret: str, key: str = "url") -> str:
    """A batch/v1 Job manifest (YAML text) running ``migrate.py`` with ``statements`` in one transaction, with
    ``DATABASE_URL`` from key ``key`` of the Secret ``secret`` (credentials are never kept in git)."""
    command = "\n".join(f"            - {json.dumps(part)}" for part in ("python3", "-u", migrate_py, *statements))
    return f"""apiVersion: batch/v1
kind: Job
metadata:
  name: {name}
spec:
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      containers:
        - name: migrate
          image: local/python:3
          command:
{command}
          env:
            - name: DATABASE_URL
              valueFrom: {{secretKeyRef: {{name: {secret}, key: {key}}}}}
"""
