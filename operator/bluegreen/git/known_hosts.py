"""known_hosts for libssh2: only the lines it can parse, and whether a host is listed at all."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re

from bluegreen.core.credentials import known_host_entries


def clean_known_hosts(data: bytes) -> bytes:
    """Only the lines libssh2 can parse: one bad line would make it refuse the whole file."""
    return "".join(f"{hosts} {kind} {key}\n" for hosts, kind, key in known_host_entries(data)).encode()


def host_listed(data: bytes, host: str, port: int | None) -> bool:
    """Whether known_hosts has any key for ``host`` (``[host]:port`` or plain, hashed or not)."""
    names = [host.lower()] if port in (None, 22) else [f"[{host.lower()}]:{port}", host.lower()]
    for hosts, _kind, _key in known_host_entries(data):
        for pattern in hosts.split(","):
            if _host_pattern_matches(pattern, names):
                return True
    return False


def _host_pattern_matches(pattern: str, names: list[str]) -> bool:
    if pattern.startswith("|1|"):
        try:
            salt_b64, digest_b64 = pattern[3:].split("|", 1)
            salt, digest = base64.b64decode(salt_b64), base64.b64decode(digest_b64)
        except (ValueError, binascii.Error):
            return False
        return any(hmac.compare_digest(hmac.new(salt, n.encode(), hashlib.sha1).digest(), digest) for n in names)
    if pattern.startswith("!"):
        return False
    wildcards = re.escape(pattern.lower()).replace(r"\*", ".*").replace(r"\?", ".")  # OpenSSH: only * and ?
    return any(re.fullmatch(wildcards, n) for n in names)
