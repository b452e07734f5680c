"""Run SQL against ``$DATABASE_URL`` in one transaction: the command of a test migration Job.

    python3 tests/app/migrate.py "ALTER TABLE items ADD COLUMN IF NOT EXISTS display_name text" \
        "UPDATE items SET display_name = name WHERE display_name IS NULL"
    python3 tests/app/migrate.py --file /etc/migration/expand.sql

Exit status 0 when every statement succeeded (all committed), 1 with the server's error on stderr when
one failed (nothing committed), 2 for bad usage. Write migrations idempotently (``IF NOT EXISTS``...):
a migration may run again.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from appdb import Database, DatabaseError


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="run SQL statements in one transaction")
    parser.add_argument("statements", nargs="*", help="SQL statements, run in order")
    parser.add_argument("--file", type=Path, help="a file of SQL (may hold several statements)")
    parser.add_argument("--url", default=os.environ.get("DATABASE_URL"), help="default: $DATABASE_URL")
    args = parser.parse_args(argv)
    statements = list(args.statements)
    if args.file is not None:
        statements.append(args.file.read_text())
    if not args.url or not statements:
        parser.print_usage(sys.stderr)
        print("migrate: need DATABASE_URL (or --url) and at least one statement", file=sys.stderr)
        return 2
    database = Database(args.url)
    try:
        database.execute(statements)
    except DatabaseError as exc:
        print(f"migrate: failed, nothing committed: {exc}", file=sys.stderr)
        return 1
    finally:
        database.close()
    print(f"migrate: {len(statements)} statement(s) committed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
