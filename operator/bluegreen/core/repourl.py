"""Repository URL rules: which prefixes a spec may use, userinfo stripped for display, and which repository
a URL names whatever the transport (for matching push webhooks to releases). Pure.

``https://git.example.com/Team/Deploy.git``, ``ssh://git@git.example.com:2222/team/deploy``,
``git@git.example.com:team/deploy.git`` and ``http://user:token@git.example.com/team/deploy/`` all name
``git.example.com/team/deploy``: the host (lower case, without user, password or port) and the path (lower
case, without a trailing ``.git`` or ``/``). Local paths and ``file://`` URLs keep their absolute path.
"""

from __future__ import annotations

import re
from urllib.parse import unquote, urlsplit

URL_PREFIXES = ("https://", "http://", "ssh://", "git://", "file://", "/")
"""What a repository URL may start with (``/``: an absolute local path)."""
NETWORK_SCHEMES = frozenset({"https", "http", "ssh", "git"})
_SCP_LIKE = re.compile(r"^(?:[^@/]+@)?([^:/]+):(?!//)(.+)$")
_USERINFO_RE = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/@\s]+@")


def strip_userinfo(text: str) -> str:
    """``text`` with every ``scheme://user:password@`` reduced to ``scheme://`` (for logs and messages)."""
    return _USERINFO_RE.sub(r"\1", text)


def is_scp_like(url: str) -> bool:
    """``[user@]host:path``, git's short form of an SSH URL."""
    return "://" not in url and bool(_SCP_LIKE.match(url))


def repository_key(url: str) -> str:
    """A transport-independent name of the repository ``url`` points at."""
    text = url.strip()
    if text.startswith("/"):
        return "file:" + _clean_path(text, fold_case=False)
    if text.startswith("file://"):
        return "file:" + _clean_path(unquote(urlsplit(text).path), fold_case=False)
    if "://" not in text:
        scp = _SCP_LIKE.match(text)
        if scp:
            return f"{scp.group(1).lower()}/{_clean_path(scp.group(2)).lstrip('/')}"
        return text.lower()
    parts = urlsplit(text)
    host = (parts.hostname or "").lower()
    return f"{host}/{_clean_path(unquote(parts.path)).lstrip('/')}"


def same_repository(a: str, b: str) -> bool:
    return repository_key(a) == repository_key(b)


def _clean_path(path: str, *, fold_case: bool = True) -> str:
    """Without trailing ``/`` and ``.git``; lower case for hosted repositories (their paths ignore case)."""
    path = path.rstrip("/")
    if path.endswith(".git"):
        path = path[: -len(".git")]
    path = path.rstrip("/")
    return path.lower() if fold_case else path
