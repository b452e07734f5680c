"""Lookups in a mirror, without network access: a ref to its commit as the remote advertised it, and one
file, or the manifest files of one directory, at a commit (escaping paths, symlinks, submodules and oversized
blobs refused)."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

import pygit2
from pygit2.enums import FileMode

from bluegreen.core.commits import CommitInfo
from bluegreen.core.errors import SourceError
from bluegreen.core.gitref import is_commit_id
from bluegreen.core.semver import Version, highest_matching
from bluegreen.core.spec import GitRef
from bluegreen.git.remote import Remote

SUMMARY_MAX_CHARS: Final = 200
DEFAULT_MAX_BYTES: Final = 1_000_000
MAX_FILES: Final = 50
"""Most manifest files a source directory may hold."""
MANIFEST_SUFFIXES: Final = (".yaml", ".yml")


def mirror_commit(mirror: Path, remote: Remote, commit_sha: str) -> tuple[pygit2.Repository, pygit2.Commit]:
    """The mirror and the commit ``commit_sha`` in it, without network access."""
    sha = commit_sha.lower()
    if not is_commit_id(sha):
        raise SourceError("InvalidRef", f"Commit {commit_sha!r} is not a commit id: give 7 to 40 hex digits.")
    repo = open_mirror(mirror)
    try:
        commit = None if repo is None else _lookup_commit(repo, sha)
    except pygit2.AmbiguousError:
        raise SourceError(
            "RefNotFound", f"Commit {commit_sha} is ambiguous in {remote.display}; give more hex digits."
        ) from None
    if repo is None or commit is None:
        raise SourceError(
            "RefNotFound",
            f"Commit {commit_sha} of {remote.display} is not in the local mirror; "
            "fetch a ref that contains it first.",
        )
    return repo, commit


# --- resolving refs ---------------------------------------------------------------------------------------


def select_ref(advertised: Mapping[str, str], ref: GitRef, remote: Remote) -> tuple[str, str]:
    """(ref name, object id) the remote advertised for a branch, tag or semver ref."""
    if ref.kind == "semver":
        return _select_semver(advertised, ref.name, remote)
    refname = f"refs/heads/{ref.name}" if ref.kind == "branch" else f"refs/tags/{ref.name}"
    oid = advertised.get(refname)
    if oid is None:
        raise SourceError(
            "RefNotFound",
            f"The {ref.kind} {ref.name!r} does not exist in {remote.display}; "
            f"check spec.source.ref or push the {ref.kind}.",
        )
    return refname, oid


def _select_semver(advertised: Mapping[str, str], constraint: str, remote: Remote) -> tuple[str, str]:
    """The highest tag inside the range ``constraint``."""
    tags = [name.removeprefix("refs/tags/") for name in tips(advertised) if name.startswith("refs/tags/")]
    best = highest_matching(tags, constraint)
    if best is None:
        versions = sorted(((v, t) for t in tags if (v := Version.parse(t)) is not None), reverse=True)
        seen = ", ".join(t for _, t in versions[:5])
        hint = f"the highest version tags are {seen}" if seen else f"none of its {len(tags)} tags is a version"
        raise SourceError(
            "RefNotFound",
            f"No tag of {remote.display} matches the semver range {constraint!r}; {hint}.",
        )
    refname = f"refs/tags/{best[0]}"
    return refname, advertised[refname]


def resolve(repo: pygit2.Repository, remote: Remote, ref: GitRef, advertised: Mapping[str, str]) -> pygit2.Commit:
    """The commit ``ref`` points to according to the remote's advertisement, from the mirror."""
    if ref.kind == "commit":
        return _resolve_commit(repo, remote, ref.name.lower())
    refname, oid = select_ref(advertised, ref, remote)
    name = refname.removeprefix("refs/heads/").removeprefix("refs/tags/")
    what = f"tag {name!r} (the highest in {ref.name!r})" if ref.kind == "semver" else f"{ref.kind} {name!r}"
    obj = repo.get(oid)
    if obj is None:
        raise SourceError("FetchFailed", f"The {what} of {remote.display} points to {oid[:7]}, which the "
                          "fetch did not bring into the local mirror; try again.")
    try:
        return obj.peel(pygit2.Commit)
    except (pygit2.GitError, ValueError, KeyError, TypeError):
        raise SourceError("RefNotFound", f"The {what} in {remote.display} does not point to a commit.") from None


def _resolve_commit(repo: pygit2.Repository, remote: Remote, sha: str) -> pygit2.Commit:
    """A commit by (abbreviated) id, accepted only if a branch or tag of the repository contains it."""
    try:
        commit = _lookup_commit(repo, sha)
    except pygit2.AmbiguousError:
        raise SourceError(
            "RefNotFound",
            f"Commit {sha} is ambiguous in {remote.display}; give more hex digits.",
        ) from None
    if commit is None or not _reachable(repo, commit.id):
        raise SourceError(
            "RefNotFound",
            f"Commit {sha} is not reachable from any branch or tag of {remote.display}; "
            "check spec.source.ref.commit, or push a branch or tag that contains it.",
        )
    return commit


def _lookup_commit(repo: pygit2.Repository, sha: str) -> pygit2.Commit | None:
    """The commit whose id starts with ``sha``, or None (raises AmbiguousError if several match)."""
    try:
        obj = repo.get(sha)
    except pygit2.InvalidError:
        return None
    return obj if isinstance(obj, pygit2.Commit) else None


def _reachable(repo: pygit2.Repository, oid: pygit2.Oid) -> bool:
    """Whether any branch or tag contains ``oid`` (the mirror may still hold force-pushed-away commits)."""
    tips: list[pygit2.Oid] = []
    for reference in repo.references.iterator():
        if not reference.name.startswith(("refs/heads/", "refs/tags/")):
            continue
        try:
            tips.append(reference.peel(pygit2.Commit).id)
        except (pygit2.GitError, ValueError, KeyError):
            continue  # a tag of a tree or blob
    if oid in tips:
        return True
    return any(repo.descendant_of(tip, oid) for tip in tips)


# --- reading files ----------------------------------------------------------------------------------------


def split_path(path: str) -> list[str]:
    """``path`` as components; refuses absolute paths, ``..`` and the empty path."""
    if not isinstance(path, str) or path.startswith("/") or "\x00" in path:
        raise SourceError(
            "InvalidPath", f"Path {path!r} must be relative to the repository root (no leading '/')."
        )
    parts = [part for part in path.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise SourceError("InvalidPath", f"Path {path!r} must not contain '..'.")
    if not parts:
        raise SourceError("InvalidPath", f"Path {path!r} must name a file or directory in the repository.")
    return parts


def read_blob(
    repo: pygit2.Repository, commit: pygit2.Commit, parts: list[str], remote: Remote, max_bytes: int
) -> bytes:
    """The bytes of the file at ``parts``: a directory, symlink or submodule is ``NotAFile``."""
    found = _walk(repo, commit, parts, remote)
    if isinstance(found, pygit2.Tree):
        raise SourceError("NotAFile", f"{'/'.join(parts)!r} is a directory at commit {str(commit.id)[:7]}; point "
                                      "spec.source.path at a file.")
    return _blob_data(repo, found, "/".join(parts), f"at commit {str(commit.id)[:7]}", max_bytes)


def read_path(
    repo: pygit2.Repository, commit: pygit2.Commit, parts: list[str], remote: Remote, max_bytes: int,
    max_files: int = MAX_FILES,
) -> bytes | tuple[tuple[str, bytes], ...]:
    """The file at ``parts``, or for a directory its ``.yaml``/``.yml`` files directly inside it as (repository
    path, bytes) by name: subdirectories and other files are not read; a manifest that is a symlink or a
    submodule is ``NotAFile``, each file is held to ``max_bytes``, and more than ``max_files`` is
    ``TooManyFiles``."""
    path, where = "/".join(parts), f"at commit {str(commit.id)[:7]}"
    found = _walk(repo, commit, parts, remote)
    if not isinstance(found, pygit2.Tree):
        return _blob_data(repo, found, path, where, max_bytes)
    manifests: list[tuple[str, pygit2.Blob]] = []
    for child in found:  # iterated, never looked up by name (see _entry)
        name, mode = child.name or "", int(child.filemode)
        if not name.endswith(MANIFEST_SUFFIXES) or mode == FileMode.TREE:
            continue
        at = f"{path}/{name}"
        if mode == FileMode.LINK:
            raise SourceError("NotAFile", f"{at!r} is a symbolic link {where}; symlinks are not followed, commit "
                                          "the file itself.")
        if mode == FileMode.COMMIT or not isinstance(child, pygit2.Blob):
            raise SourceError("NotAFile", f"{at!r} is a submodule {where}; it cannot be read.")
        manifests.append((at, child))
    if len(manifests) > max_files:
        raise SourceError("TooManyFiles", f"{path!r} holds {len(manifests)} .yaml/.yml files {where}; the limit is "
                                          f"{max_files}: a source directory holds one release's manifests.")
    return tuple(sorted((at, _blob_data(repo, blob, at, where, max_bytes)) for at, blob in manifests))


def _walk(repo: pygit2.Repository, commit: pygit2.Commit, parts: list[str], remote: Remote) -> pygit2.Object:
    """Walk the tree one component at a time, so that a symlink anywhere on the way is refused."""
    path = "/".join(parts)
    where = f"at commit {str(commit.id)[:7]}"
    tree = commit.tree
    for depth, name in enumerate(parts):
        so_far = "/".join(parts[: depth + 1])
        entry = _entry(tree, name)
        if entry is None:
            raise SourceError(
                "PathNotFound",
                f"{path!r} does not exist {where} of {remote.display}; check spec.source.path.",
            )
        mode, obj = entry
        if mode == FileMode.LINK:
            raise SourceError(
                "NotAFile",
                f"{so_far!r} is a symbolic link {where}; symlinks are not followed, "
                "point spec.source.path at the real file.",
            )
        if mode == FileMode.COMMIT or obj is None:
            raise SourceError("NotAFile", f"{so_far!r} is a submodule {where}; it cannot be read.")
        if depth == len(parts) - 1:
            return obj
        if not isinstance(obj, pygit2.Tree):
            raise SourceError(
                "PathNotFound",
                f"{path!r} does not exist {where} of {remote.display}: {so_far!r} is a file.",
            )
        tree = obj
    raise AssertionError("unreachable: parts is never empty")


def _blob_data(repo: pygit2.Repository, obj: pygit2.Object, path: str, where: str, max_bytes: int) -> bytes:
    if not isinstance(obj, pygit2.Blob):
        raise SourceError("NotAFile", f"{path!r} is not a regular file {where}.")
    _check_size(repo, obj, path, where, max_bytes)
    return obj.data


def _check_size(repo: pygit2.Repository, blob: pygit2.Blob, path: str, where: str, max_bytes: int) -> None:
    """Refuse a blob over ``max_bytes``, reading only its object header."""
    _kind, size = repo.odb.read_header(blob.id)
    if size > max_bytes:
        raise SourceError(
            "ManifestTooLarge",
            f"{path!r} is {size} bytes {where}, more than the limit of {max_bytes} bytes; "
            "point spec.source.path at the release's manifests.",
        )


def _entry(tree: pygit2.Tree, name: str) -> tuple[int, pygit2.Object | None] | None:
    """(file mode, object) of ``name`` in ``tree``, or None; the object is None for a submodule.

    Found by iterating: pygit2 1.21's ``name in tree`` and ``tree[name]`` never release ``name`` (one string
    leaked per call, forever, in a process that reads on every fetch).
    """
    for child in tree:
        if child.name == name:
            mode = int(child.filemode)
            return mode, None if mode == FileMode.COMMIT else child
    return None


def commit_info(commit: pygit2.Commit, refreshed_at: float | None) -> CommitInfo:
    encoding = commit.message_encoding or "utf-8"
    message = _decode(commit.raw_message, encoding).lstrip("\r\n")
    summary = message.splitlines()[0].rstrip() if message else ""
    author = commit.author
    return CommitInfo(
        sha=str(commit.id),
        summary=summary[:SUMMARY_MAX_CHARS],
        author=f"{_decode(author.raw_name, encoding)} <{_decode(author.raw_email, encoding)}>",
        time=datetime.fromtimestamp(commit.commit_time, tz=UTC),
        refreshed_at=refreshed_at or 0.0,
    )


def _decode(raw: bytes, encoding: str) -> str:
    with contextlib.suppress(LookupError):
        return raw.decode(encoding, errors="replace")
    return raw.decode("utf-8", errors="replace")


def open_mirror(mirror: Path) -> pygit2.Repository | None:
    if not mirror.is_dir():
        return None
    try:
        return pygit2.Repository(str(mirror))
    except pygit2.GitError:
        return None


def tips(advertised: Mapping[str, str]) -> dict[str, str]:
    return {name: oid for name, oid in advertised.items() if not name.endswith("^{}")}
