"""Operations that need process-wide libgit2 settings of their own run in a child process
(``python -m bluegreen.git.isolated``):

- with a private CA: the child's TLS trust store holds only that bundle (libgit2 keeps one OpenSSL store per
  process and can only add to it);
- over SSH while the operator's homedir holds another Secret's known_hosts (``settings.HOMEDIR`` never makes
  anyone wait): the child points its own homedir at this Secret's known_hosts.

The child is bounded in time (three network timeouts plus ten seconds), so it never hangs its caller.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import fields
from pathlib import Path
from typing import Any, Final, cast, get_args

import pygit2

from bluegreen.core.credentials import SECRET_BYTES_KEYS, Credentials
from bluegreen.core.errors import SourceError, SourceReason
from bluegreen.core.spec import GitRef
from bluegreen.git.remote import Remote, parse_url
from bluegreen.git.settings import millis, private_dir, transport_settings, write_private
from bluegreen.git.sync import SyncResult, sync_mirror

_PACKAGE_ROOT: Final = str(Path(__file__).resolve().parents[2])


def sync_isolated(
    mirror: Path, remote: Remote, ref: GitRef, credentials: Credentials, timeout_seconds: float
) -> SyncResult:
    """``sync_mirror`` in a child process with its own process-wide settings: a TLS trust store holding only
    ``credentials.ca_bundle`` when there is one, the SSH homedir holding its known_hosts."""
    request = {
        "mirror": str(mirror),
        "url": remote.fetch_url,
        "ref": [ref.kind, ref.name],
        "timeout_ms": millis(timeout_seconds),
        "credentials": _credentials_to_json(credentials),
    }
    with private_dir("bluegreen-ca-") as tmp:
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(p for p in (_PACKAGE_ROOT, os.environ.get("PYTHONPATH")) if p),
        }
        if credentials.ca_bundle is not None:
            bundle, certs = tmp / "ca.pem", tmp / "certs"
            write_private(bundle, credentials.ca_bundle)
            certs.mkdir(mode=0o700)
            env["SSL_CERT_FILE"] = str(bundle)  # read by pygit2 at import and by OpenSSL's default paths
            env["SSL_CERT_DIR"] = str(certs)
        try:
            done = subprocess.run(
                [sys.executable, "-m", "bluegreen.git.isolated"], input=json.dumps(request).encode(),
                capture_output=True, env=env, timeout=3 * timeout_seconds + 10, check=False,
            )
        except subprocess.TimeoutExpired:
            return SyncResult(ls_remote=1, error=SourceError(
                "RepositoryUnreachable", f"Cannot reach the repository {remote.display}: timed out."))
    return _decode_result(done, remote, credentials)


def _decode_result(done: subprocess.CompletedProcess[bytes], remote: Remote, creds: Credentials) -> SyncResult:
    try:
        answer = json.loads(done.stdout)
        error = answer.get("error")
        reason = error[0] if error else None
        if reason is not None and reason not in get_args(SourceReason):
            raise ValueError(reason)
        return SyncResult(
            advertised=answer.get("advertised"),
            ls_remote=int(answer.get("ls_remote", 0)),
            fetch=int(answer.get("fetch", 0)),
            fetch_seconds=float(answer.get("fetch_seconds", 0.0)),
            error=SourceError(cast(SourceReason, reason), str(error[1])) if error else None,
        )
    except (ValueError, TypeError, IndexError, AttributeError):
        tail = remote.scrub(done.stderr.decode("utf-8", "replace").strip()[-500:], creds)
        return SyncResult(ls_remote=1, error=SourceError(
            "FetchFailed", f"Fetching {remote.display} failed: the helper process ended with "
            f"{done.returncode}: {tail or 'no output'}."))


def _worker_main() -> int:
    """Child side of ``sync_isolated``: read the request on stdin, answer JSON on stdout."""
    result = SyncResult()
    try:
        request = json.loads(sys.stdin.buffer.read())
        pygit2.settings.server_connect_timeout = pygit2.settings.server_timeout = int(request["timeout_ms"])
        remote = parse_url(request["url"])
        credentials = _credentials_from_json(request["credentials"])
        with transport_settings(remote, credentials) as held:  # this process's own: always held
            assert held
            result = sync_mirror(pygit2.Repository(request["mirror"]), remote, GitRef(*request["ref"]), credentials)
    except SourceError as exc:
        result.error = exc
    except Exception as exc:  # report, never crash with a traceback that could quote a value
        result.error = SourceError("FetchFailed", f"The fetch helper failed: {type(exc).__name__}.")
    error = [result.error.reason, result.error.message] if result.error else None
    sys.stdout.write(json.dumps({
        "advertised": result.advertised, "ls_remote": result.ls_remote, "fetch": result.fetch, "error": error,
        "fetch_seconds": result.fetch_seconds,
    }))
    return 0


def _credentials_to_json(credentials: Credentials) -> dict[str, str]:
    """The set fields, base64-encoded (for the helper's stdin; never for a file or the command line)."""
    encoded = {}
    for f in fields(credentials):
        value = getattr(credentials, f.name)
        if value is not None:
            encoded[f.name] = base64.b64encode(value if isinstance(value, bytes) else value.encode()).decode()
    return encoded


def _credentials_from_json(encoded: Mapping[str, str]) -> Credentials:
    values: dict[str, Any] = {name: base64.b64decode(text) for name, text in encoded.items()}
    for name in set(values) - set(SECRET_BYTES_KEYS.values()):
        values[name] = values[name].decode("utf-8")
    return Credentials(**values)


if __name__ == "__main__":
    sys.exit(_worker_main())
