"""GitSource against real servers on loopback: sshd, git http-backend behind HTTPS, git daemon.

Authentication, host key and certificate checks, failure reasons and their speed, secrets staying secret,
shared mirrors and counted network operations, shallow fetches and semver refs.
"""

from __future__ import annotations

import contextlib
import os
import socket
import stat
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import gitservers
import pygit2
import pytest
from gitservers import HTTP_PASSWORD, HTTP_TOKEN, HTTP_USER, PASSPHRASE

from bluegreen.core.credentials import Credentials
from bluegreen.core.errors import SourceError
from bluegreen.core.spec import GitRef
from bluegreen.git.source import GitSource

if TYPE_CHECKING:
    from conftest import GitRepo, Served, SshKeys, Tls

pytestmark = pytest.mark.integration

MANIFEST = "deploy/deployment.yaml"
V1 = b"kind: Deployment\n# v1\n"
V2 = b"kind: Deployment\n# v2\n"
V3 = b"kind: Deployment\n# v3\n"
MAIN = GitRef("branch", "main")
REPO = "app.git"
SECRETS = (HTTP_PASSWORD, HTTP_TOKEN, PASSPHRASE)


# --- fixtures and helpers ----------------------------------------------------------------------------------


@pytest.fixture
def origin(make_repo: Callable[[str], GitRepo], served: Served) -> GitRepo:
    """A work repository with one commit on main, published as ``REPO`` to the servers."""
    repo = make_repo("origin")
    repo.commit("v1", {MANIFEST: V1})
    served.publish(REPO, repo)
    return repo


@pytest.fixture
def private_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Where ``tempfile`` puts temporary files during the test, to check what is left there."""
    path = tmp_path / "tmp"
    path.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(path))
    return path


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A TCP port that accepts connections (kernel backlog) but never says a word."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield sock.getsockname()[1]


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def ssh_creds(server: gitservers.SshServer, key: gitservers.SshKey, **extra: bytes) -> Credentials:
    data = {"identity": key.private, "known_hosts": server.known_hosts_line.encode(), **extra}
    return Credentials.from_secret_data(data)


def basic(password: str = HTTP_PASSWORD, **extra: bytes) -> Credentials:
    return Credentials.from_secret_data({"username": HTTP_USER.encode(), "password": password.encode(), **extra})


def source_error(call: Callable[[], object]) -> SourceError:
    with pytest.raises(SourceError) as caught:
        call()
    return caught.value


def timed_error(call: Callable[[], object]) -> tuple[SourceError, float]:
    started = time.monotonic()
    err = source_error(call)
    return err, time.monotonic() - started


def assert_no_secret(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text


def files_under(*roots: Path) -> Iterator[Path]:
    for root in roots:
        for path in root.rglob("*"):
            if path.is_file() and not path.is_symlink():
                yield path


# --- SSH ------------------------------------------------------------------------------------------------


def test_ssh_clone_then_follow_a_new_commit(
    source: GitSource, origin: GitRepo, served: Served, ssh_server: gitservers.SshServer, ssh_keys: SshKeys
) -> None:
    creds = ssh_creds(ssh_server, ssh_keys.client)
    url = ssh_server.url(REPO)
    snap = source.snapshot(url, MAIN, MANIFEST, credentials=creds)
    assert (snap.commit.sha, snap.content) == (origin.head(), V1)

    origin.commit("v2", {MANIFEST: V2})
    served.push(REPO, origin)
    snap = source.snapshot(url, MAIN, MANIFEST, credentials=creds)
    assert (snap.commit.sha, snap.content) == (origin.head(), V2)
    assert ssh_server.log_count("Accepted publickey") == 2  # one connection per refresh (ls-remote + fetch)


def test_ssh_key_with_passphrase(
    source: GitSource, origin: GitRepo, ssh_server: gitservers.SshServer, ssh_keys: SshKeys
) -> None:
    creds = ssh_creds(ssh_server, ssh_keys.protected, passphrase=PASSPHRASE.encode())
    assert source.fetch(ssh_server.url(REPO), MAIN, credentials=creds).sha == origin.head()

    wrong = ssh_creds(ssh_server, ssh_keys.protected, passphrase=b"not-it")
    err = source_error(lambda: source.fetch(ssh_server.url(REPO), MAIN, credentials=wrong))
    assert err.reason == "AuthenticationFailed"
    assert "passphrase" in err.message


def test_ssh_wrong_key_is_authentication_failed_once(
    source: GitSource, origin: GitRepo, ssh_server: gitservers.SshServer, ssh_keys: SshKeys
) -> None:
    creds = ssh_creds(ssh_server, ssh_keys.other)
    err, elapsed = timed_error(lambda: source.fetch(ssh_server.url(REPO), MAIN, credentials=creds))
    assert err.reason == "AuthenticationFailed"
    assert "refused" in err.message and repr(ssh_server.user) in err.message
    assert elapsed < 3
    assert ssh_server.log_count("Connection from") == 1
    assert ssh_server.log_count("Accepted publickey") == 0


def test_ssh_user_defaults_to_git(
    source: GitSource, origin: GitRepo, ssh_server: gitservers.SshServer, ssh_keys: SshKeys
) -> None:
    url = ssh_server.url(REPO).replace(f"{ssh_server.user}@", "")
    err = source_error(lambda: source.fetch(url, MAIN, credentials=ssh_creds(ssh_server, ssh_keys.client)))
    assert err.reason == "AuthenticationFailed"
    assert "'git'" in err.message
    assert ssh_server.log_count("Invalid user git") >= 1


def test_ssh_host_key_mismatch(
    source: GitSource, origin: GitRepo, ssh_server: gitservers.SshServer, ssh_keys: SshKeys
) -> None:
    kind, blob = ssh_keys.other.public.split()[:2]  # a real key, but not the server's
    known_hosts = f"[127.0.0.1]:{ssh_server.port} {kind} {blob}\n".encode()
    creds = Credentials(ssh_identity=ssh_keys.client.private, known_hosts=known_hosts)
    err = source_error(lambda: source.fetch(ssh_server.url(REPO), MAIN, credentials=creds))
    assert err.reason == "HostKeyMismatch"
    assert f"127.0.0.1:{ssh_server.port}" in err.message
    assert ssh_server.log_count("publickey") == 0  # the key was never offered to the impostor


def test_ssh_host_key_unknown(
    source: GitSource, origin: GitRepo, ssh_server: gitservers.SshServer, ssh_keys: SshKeys
) -> None:
    other_host = ssh_server.known_hosts_line.replace(f"[127.0.0.1]:{ssh_server.port}", "git.example.com")
    creds = Credentials(ssh_identity=ssh_keys.client.private, known_hosts=other_host.encode())
    err = source_error(lambda: source.fetch(ssh_server.url(REPO), MAIN, credentials=creds))
    assert err.reason == "HostKeyUnknown"
    assert f"[127.0.0.1]:{ssh_server.port}" in err.message and "ssh-keyscan" in err.message


@pytest.mark.parametrize("credentials", [None, "identity only"])
def test_ssh_without_known_hosts_fails_before_connecting(
    source: GitSource, origin: GitRepo, ssh_server: gitservers.SshServer, ssh_keys: SshKeys, credentials: str | None
) -> None:
    creds = None if credentials is None else Credentials.from_secret_data({"identity": ssh_keys.client.private})
    err, elapsed = timed_error(lambda: source.fetch(ssh_server.url(REPO), MAIN, credentials=creds))
    assert err.reason == "KnownHostsMissing"
    assert "known_hosts" in err.message and "ssh-keyscan" in err.message
    assert elapsed < 0.5
    assert ssh_server.log_count("Connection from") == 0
    assert source.stats(ssh_server.url(REPO), creds) == {"ls_remote": 0, "fetch": 0, "compact": 0}


def test_ssh_keyscan_output_hashed_with_comments_and_markers(
    source: GitSource, origin: GitRepo, ssh_server: gitservers.SshServer, ssh_keys: SshKeys, tmp_path: Path
) -> None:
    scanned = gitservers.run("ssh-keyscan", "-p", str(ssh_server.port), "127.0.0.1")
    hashed = tmp_path / "known_hosts"
    hashed.write_text(scanned)
    gitservers.run("ssh-keygen", "-q", "-H", "-f", str(hashed))
    known_hosts = (
        "# from ssh-keyscan, hashed\n"
        "@cert-authority *.example.com ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHh0ZXN0\n"
        "garbage that libssh2 would choke on\n" + hashed.read_text()
    )
    creds = Credentials.from_secret_data({"identity": ssh_keys.client.private, "known_hosts": known_hosts.encode()})
    assert source.fetch(ssh_server.url(REPO), MAIN, credentials=creds).sha == origin.head()


def test_ssh_calls_with_different_known_hosts_run_side_by_side(
    source: GitSource,
    make_repo: Callable[[str], GitRepo],
    served: Served,
    ssh_keys: SshKeys,
    tmp_path: Path,
) -> None:
    """The process-wide homedir is never shared by calls that trust different host keys."""
    repo = make_repo("shared")
    repo.commit("v1", {MANIFEST: V1})
    served.publish(REPO, repo)
    servers = [gitservers.SshServer(tmp_path / f"sshd{n}", served.root, [ssh_keys.client]) for n in range(2)]
    try:
        good = [ssh_creds(server, ssh_keys.client) for server in servers]
        swapped = Credentials(ssh_identity=ssh_keys.client.private,
                              known_hosts=servers[1].known_hosts_line.replace(
                                  str(servers[1].port), str(servers[0].port)).encode())
        jobs = [(servers[n % 2], good[n % 2], "ok") for n in range(6)] + [(servers[0], swapped, "HostKeyMismatch")] * 2
        outcomes: list[tuple[str, str]] = []
        lock = threading.Lock()

        def work(server: gitservers.SshServer, creds: Credentials, expected: str) -> None:
            try:
                GitSource(source.cache_dir, timeout_seconds=5).fetch(server.url(REPO), MAIN, credentials=creds)
                got = "ok"
            except SourceError as exc:
                got = exc.reason
            with lock:
                outcomes.append((expected, got))

        threads = [threading.Thread(target=work, args=job) for job in jobs]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert len(outcomes) == len(jobs)
        assert all(expected == got for expected, got in outcomes), outcomes
    finally:
        for server in servers:
            server.stop()


def test_an_ssh_server_that_hangs_delays_no_fetch_that_trusts_other_host_keys(
    cache_dir: Path, origin: GitRepo, silent_port: int, ssh_server: gitservers.SshServer, ssh_keys: SshKeys
) -> None:
    """A fetch hanging on a silent SSH server holds the process-wide homedir for its known_hosts until the
    timeout; a fetch that needs other known_hosts does not wait for it: it runs in a child process."""
    source = GitSource(cache_dir, timeout_seconds=8.0)
    silent_line = ssh_server.known_hosts_line.replace(f"[127.0.0.1]:{ssh_server.port}", f"[127.0.0.1]:{silent_port}")
    silent = Credentials(ssh_identity=ssh_keys.client.private, known_hosts=silent_line.encode())
    outcome: list[tuple[str, float]] = []

    def hang() -> None:
        err, elapsed = timed_error(lambda: source.fetch(f"ssh://git@127.0.0.1:{silent_port}/x.git", MAIN,
                                                        credentials=silent))
        outcome.append((err.reason, elapsed))

    hanging = threading.Thread(target=hang)
    hanging.start()
    time.sleep(0.5)  # the hanging fetch holds the homedir now
    started = time.monotonic()
    info = source.fetch(ssh_server.url(REPO), MAIN, credentials=ssh_creds(ssh_server, ssh_keys.client))
    elapsed = time.monotonic() - started
    still_hanging = hanging.is_alive()
    hanging.join(timeout=30)
    print(f"fetch beside a hanging SSH fetch: {elapsed:.2f}s; the hanging one ended after {outcome[0][1]:.1f}s")
    assert info.sha == origin.head()
    assert still_hanging, "the other fetch must have run while the silent server held its connection"
    assert elapsed < 4, f"the fetch waited {elapsed:.1f}s for the hanging one"
    assert outcome[0][0] == "RepositoryUnreachable"


# --- HTTPS -------------------------------------------------------------------------------------------------


def test_https_basic_auth_with_private_ca(
    source: GitSource, origin: GitRepo, served: Served, https_server: gitservers.HttpsGitServer, tls: Tls
) -> None:
    creds = basic(caFile=tls.ca.cert_pem)
    snap = source.snapshot(https_server.url(REPO), MAIN, MANIFEST, credentials=creds)
    assert (snap.commit.sha, snap.content) == (origin.head(), V1)
    origin.commit("v2", {MANIFEST: V2})
    served.push(REPO, origin)
    assert source.snapshot(https_server.url(REPO), MAIN, MANIFEST, credentials=creds).content == V2
    assert {r.user for r in https_server.requests if r.status == 200} == {HTTP_USER}


def test_https_bearer_token_is_sent_as_a_header(
    source: GitSource, origin: GitRepo, https_server: gitservers.HttpsGitServer, tls: Tls
) -> None:
    creds = Credentials.from_secret_data({"bearerToken": HTTP_TOKEN.encode(), "caFile": tls.ca.cert_pem})
    assert source.fetch(https_server.url(REPO), MAIN, credentials=creds).sha == origin.head()
    assert https_server.requests and all(r.user == "bearer" for r in https_server.requests)  # never a 401


def test_https_wrong_password_fails_fast_without_retrying(
    source: GitSource, origin: GitRepo, https_server: gitservers.HttpsGitServer, tls: Tls
) -> None:
    creds = basic("wrong-password", caFile=tls.ca.cert_pem)
    err, elapsed = timed_error(lambda: source.fetch(https_server.url(REPO), MAIN, credentials=creds))
    assert err.reason == "AuthenticationFailed"
    assert repr(HTTP_USER) in err.message and "wrong-password" not in err.message
    assert elapsed < 3
    assert len(https_server.requests) <= 2  # the anonymous probe and one try with the password
    assert all(r.status == 401 for r in https_server.requests)


@pytest.mark.parametrize(
    ("secret", "expected"),
    [({}, "requires authentication"), ({"bearerToken": b"not-the-token"}, "bearer token")],
    ids=["no-credentials", "wrong-token"],
)
def test_https_missing_or_wrong_token_is_authentication_failed(
    source: GitSource,
    origin: GitRepo,
    https_server: gitservers.HttpsGitServer,
    tls: Tls,
    secret: dict[str, bytes],
    expected: str,
) -> None:
    creds = Credentials.from_secret_data({**secret, "caFile": tls.ca.cert_pem})
    err = source_error(lambda: source.fetch(https_server.url(REPO), MAIN, credentials=creds))
    assert err.reason == "AuthenticationFailed"
    assert expected in err.message
    assert len(https_server.requests) == 1


def test_https_certificate_of_a_private_ca_needs_its_ca_file(
    source: GitSource, origin: GitRepo, https_server: gitservers.HttpsGitServer, tls: Tls
) -> None:
    url = https_server.url(REPO)
    assert source.fetch(url, MAIN, credentials=basic(caFile=tls.ca.cert_pem)).sha == origin.head()
    answered = len(https_server.requests)
    # The CA used just now must not have become trusted for everyone in this process.
    for creds in (basic(), None):
        err = source_error(lambda creds=creds: source.fetch(url, MAIN, credentials=creds))
        assert err.reason == "CertificateInvalid", creds
        assert "system's trusted CAs" in err.message
    assert len(https_server.requests) == answered  # not one request (nor password) went to the unverified server


def test_https_ca_file_of_another_ca_is_certificate_invalid(
    source: GitSource, origin: GitRepo, https_server: gitservers.HttpsGitServer, tls: Tls
) -> None:
    creds = basic(caFile=tls.other_ca.cert_pem)
    err = source_error(lambda: source.fetch(https_server.url(REPO), MAIN, credentials=creds))
    assert err.reason == "CertificateInvalid"
    assert "caFile" in err.message
    assert https_server.requests == []


def test_https_self_signed_server_is_certificate_invalid(
    source: GitSource, origin: GitRepo, served: Served, tls: Tls
) -> None:
    auth = gitservers.HttpAuth(users={HTTP_USER: HTTP_PASSWORD})
    server = gitservers.HttpsGitServer(served.root, tls.self_signed, auth)
    try:
        for creds in (basic(), basic(caFile=tls.ca.cert_pem)):
            err = source_error(lambda creds=creds: source.fetch(server.url(REPO), MAIN, credentials=creds))
            assert err.reason == "CertificateInvalid"
        both = basic(caFile=tls.other_ca.cert_pem + tls.self_signed.cert_pem)  # a bundle with several CAs
        assert source.fetch(server.url(REPO), MAIN, credentials=both).sha == origin.head()
    finally:
        server.stop()


def test_credentials_are_never_sent_over_plain_http(source: GitSource) -> None:
    err = source_error(lambda: source.fetch("http://127.0.0.1:1/x.git", MAIN, credentials=basic()))
    assert err.reason == "InvalidURL"
    assert "https://" in err.message


# --- git daemon and shallow mirrors -------------------------------------------------------------------------


def test_git_daemon_shallow_branch_then_full_history_for_a_commit(
    source: GitSource, origin: GitRepo, served: Served, git_daemon: gitservers.GitDaemon
) -> None:
    first = origin.head()
    origin.commit("v2", {MANIFEST: V2})
    served.push(REPO, origin)
    url = git_daemon.url(REPO)

    assert source.snapshot(url, MAIN, MANIFEST).content == V2
    mirror = pygit2.Repository(str(source.mirror_path(url)))
    assert mirror.is_shallow
    assert mirror.get(first) is None  # only the tip was fetched

    for n in (3, 4):
        origin.commit(f"v{n}", {MANIFEST: f"# v{n}\n".encode()})
    served.push(REPO, origin)
    assert source.snapshot(url, MAIN, MANIFEST).content == b"# v4\n"

    # A commit ref needs the whole graph to check reachability: the mirror is deepened.
    assert source.snapshot(url, GitRef("commit", first), MANIFEST).content == V1
    assert not pygit2.Repository(str(source.mirror_path(url))).is_shallow


def test_shallow_mirror_follows_a_force_push_and_keeps_what_it_read(
    source: GitSource, origin: GitRepo, served: Served, git_daemon: gitservers.GitDaemon
) -> None:
    url = git_daemon.url(REPO)
    base = origin.head()
    old = origin.commit("v2", {MANIFEST: V2})
    served.push(REPO, origin)
    assert source.fetch(url, MAIN).sha == old

    origin.git("reset", "--quiet", "--hard", base)
    rewritten = origin.commit("v3", {MANIFEST: V3})
    served.push(REPO, origin)
    snap = source.snapshot(url, MAIN, MANIFEST)
    assert (snap.commit.sha, snap.content) == (rewritten, V3)
    assert source.read(url, old, MANIFEST).content == V2
    err = source_error(lambda: source.fetch(url, GitRef("commit", old)))
    assert err.reason == "RefNotFound"


def test_annotated_tag_over_the_network_is_peeled(
    source: GitSource, origin: GitRepo, served: Served, git_daemon: gitservers.GitDaemon
) -> None:
    tagged = origin.head()
    origin.git("tag", "-a", "release", "-m", "release")
    origin.commit("v2", {MANIFEST: V2})
    served.push(REPO, origin)
    assert source.fetch(git_daemon.url(REPO), GitRef("tag", "release")).sha == tagged


# --- semver -------------------------------------------------------------------------------------------------


def test_semver_picks_the_highest_matching_tag_and_follows_new_ones(
    source: GitSource, origin: GitRepo, served: Served, git_daemon: gitservers.GitDaemon
) -> None:
    shas = {}
    for version in ("v1.0.0", "v1.2.0", "v1.10.0-rc.1", "v2.0.0", "latest"):
        shas[version] = origin.commit(version, {MANIFEST: version.encode()})
        if version == "v1.2.0":
            origin.git("tag", version)  # lightweight; the others are annotated
        else:
            origin.git("tag", "-a", version, "-m", version)
    served.push(REPO, origin)
    url = git_daemon.url(REPO)
    ref = GitRef("semver", ">=1.0.0 <2.0.0")

    snap = source.snapshot(url, ref, MANIFEST)
    assert (snap.commit.sha, snap.content) == (shas["v1.2.0"], b"v1.2.0")
    assert source.fetch(url, GitRef("semver", "^2")).sha == shas["v2.0.0"]  # an annotated tag, peeled

    newer = origin.commit("v1.3.1", {MANIFEST: b"v1.3.1"})
    origin.git("tag", "-a", "v1.3.1", "-m", "v1.3.1")
    served.push(REPO, origin)
    assert source.fetch(url, ref).sha == newer
    before = source.stats(url)
    assert source.fetch(url, ref).sha == newer
    assert source.stats(url) == {**before, "ls_remote": before["ls_remote"] + 1}


def test_semver_without_a_matching_tag_names_the_range_and_the_tags_seen(
    source: GitSource, origin: GitRepo, served: Served, git_daemon: gitservers.GitDaemon
) -> None:
    for version in ("v0.9.0", "v1.0.0", "nightly"):
        origin.git("tag", version)
    served.push(REPO, origin)
    err = source_error(lambda: source.fetch(git_daemon.url(REPO), GitRef("semver", ">=3.0.0")))
    assert err.reason == "RefNotFound"
    assert "'>=3.0.0'" in err.message and "v1.0.0, v0.9.0" in err.message


def test_invalid_semver_range_is_refused_before_the_network(source: GitSource) -> None:
    err = source_error(lambda: source.fetch("https://127.0.0.1:1/x.git", GitRef("semver", "not a range")))
    assert err.reason == "InvalidRef"


# --- unreachable, gone ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("scheme", ["ssh", "https", "git"])
def test_closed_port_is_unreachable_at_once(
    source: GitSource, ssh_server: gitservers.SshServer, ssh_keys: SshKeys, scheme: str
) -> None:
    port = closed_port()
    creds = ssh_creds(ssh_server, ssh_keys.client) if scheme == "ssh" else None
    err, elapsed = timed_error(lambda: source.fetch(f"{scheme}://git@127.0.0.1:{port}/x.git", MAIN, credentials=creds))
    assert err.reason == "RepositoryUnreachable"
    assert elapsed < 1


@pytest.mark.parametrize("scheme", ["ssh", "https", "git"])
def test_silent_server_is_unreachable_within_the_timeout(
    cache_dir: Path, silent_port: int, ssh_server: gitservers.SshServer, ssh_keys: SshKeys, tls: Tls, scheme: str
) -> None:
    source = GitSource(cache_dir, timeout_seconds=1.0)
    creds = ssh_creds(ssh_server, ssh_keys.client) if scheme == "ssh" else None
    err, elapsed = timed_error(
        lambda: source.fetch(f"{scheme}://git@127.0.0.1:{silent_port}/x.git", MAIN, credentials=creds)
    )
    assert err.reason == "RepositoryUnreachable"
    assert 0.9 < elapsed < 4, elapsed


def test_silent_server_with_a_ca_file_is_unreachable_within_the_timeout(
    cache_dir: Path, silent_port: int, tls: Tls
) -> None:
    source = GitSource(cache_dir, timeout_seconds=1.0)
    creds = basic(caFile=tls.ca.cert_pem)
    err, elapsed = timed_error(lambda: source.fetch(f"https://127.0.0.1:{silent_port}/x.git", MAIN, credentials=creds))
    assert err.reason == "RepositoryUnreachable"
    assert elapsed < 5, elapsed


@pytest.mark.parametrize("transport", ["ssh", "https", "git"])
def test_repository_deleted_after_the_first_fetch_is_not_found(
    source: GitSource,
    origin: GitRepo,
    served: Served,
    ssh_server: gitservers.SshServer,
    https_server: gitservers.HttpsGitServer,
    git_daemon: gitservers.GitDaemon,
    ssh_keys: SshKeys,
    tls: Tls,
    transport: str,
) -> None:
    url, creds = {
        "ssh": (ssh_server.url(REPO), ssh_creds(ssh_server, ssh_keys.client)),
        "https": (https_server.url(REPO), basic(caFile=tls.ca.cert_pem)),
        "git": (git_daemon.url(REPO), None),
    }[transport]
    assert source.fetch(url, MAIN, credentials=creds).sha == origin.head()
    served.delete(REPO)
    err = source_error(lambda: source.fetch(url, MAIN, credentials=creds))
    assert err.reason == "RepositoryNotFound"
    assert "does not exist" in err.message
    # What was fetched before can still be read from the mirror.
    assert source.read(url, origin.head(), MANIFEST, credentials=creds).content == V1


# --- secrets ----------------------------------------------------------------------------------------------


def test_rotation_takes_effect_on_the_next_call(
    source: GitSource, origin: GitRepo, https_server: gitservers.HttpsGitServer, tls: Tls
) -> None:
    url = https_server.url(REPO)
    old = basic("rotated-away", caFile=tls.ca.cert_pem)
    assert source_error(lambda: source.fetch(url, MAIN, credentials=old)).reason == "AuthenticationFailed"
    new = basic(caFile=tls.ca.cert_pem)
    assert source.fetch(url, MAIN, credentials=new).sha == origin.head()
    assert source.mirror_path(url, old) != source.mirror_path(url, new)
    assert source.stats(url, new) == {"ls_remote": 1, "fetch": 1, "compact": 0}


def test_secrets_stay_out_of_messages_repr_and_files(
    cache_dir: Path,
    origin: GitRepo,
    served: Served,
    https_server: gitservers.HttpsGitServer,
    ssh_server: gitservers.SshServer,
    ssh_keys: SshKeys,
    tls: Tls,
    private_tmp: Path,
) -> None:
    source = GitSource(cache_dir, timeout_seconds=2)
    https, ssh = https_server.url(REPO), ssh_server.url(REPO)
    attempts: list[tuple[str, Credentials | None]] = [
        (https, basic(caFile=tls.ca.cert_pem)),
        (https, basic()),  # untrusted certificate
        (https, Credentials.from_secret_data({"bearerToken": HTTP_TOKEN.encode(), "caFile": tls.ca.cert_pem})),
        (https_server.url("missing.git"), basic(caFile=tls.ca.cert_pem)),
        (f"https://{HTTP_USER}:{HTTP_PASSWORD}@127.0.0.1:{https_server.port}/{REPO}", None),
        (ssh, ssh_creds(ssh_server, ssh_keys.protected, passphrase=PASSPHRASE.encode())),
        (ssh, ssh_creds(ssh_server, ssh_keys.protected, passphrase=b"x" + PASSPHRASE.encode())),
        (f"https://127.0.0.1:{closed_port()}/x.git", basic(caFile=tls.ca.cert_pem)),
    ]
    for url, creds in attempts:
        assert_no_secret(repr(creds))
        assert_no_secret(str(creds))
        try:
            source.snapshot(url, MAIN, MANIFEST, credentials=creds)
        except SourceError as exc:
            assert_no_secret(exc.message)
            assert_no_secret(str(exc))
            assert_no_secret(repr(exc))
    assert list(private_tmp.iterdir()) == []  # temporary key, known_hosts and CA files are gone
    identity_line = ssh_keys.protected.private.decode().splitlines()[1]
    for path in files_under(cache_dir):
        data = path.read_bytes()
        for secret in (*SECRETS, identity_line):
            assert secret.encode() not in data, path


@pytest.mark.parametrize("transport", ["ssh", "https-with-ca"])
def test_temporary_files_are_private_while_in_use(
    cache_dir: Path,
    silent_port: int,
    ssh_server: gitservers.SshServer,
    ssh_keys: SshKeys,
    tls: Tls,
    private_tmp: Path,
    transport: str,
) -> None:
    """While a call hangs on a silent server, its temporary directory is 0700 and its files 0600."""
    source = GitSource(cache_dir, timeout_seconds=1.5)
    if transport == "ssh":
        url, creds = f"ssh://git@127.0.0.1:{silent_port}/x.git", ssh_creds(ssh_server, ssh_keys.client)
    else:
        url, creds = f"https://127.0.0.1:{silent_port}/x.git", basic(caFile=tls.ca.cert_pem)
    worker = threading.Thread(target=lambda: source_error(lambda: source.fetch(url, MAIN, credentials=creds)))
    worker.start()
    deadline = time.monotonic() + 1.0
    modes: dict[str, int] = {}
    while not any(name.endswith((".pem", "known_hosts")) for name in modes) and time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            modes = {str(p.relative_to(private_tmp)): stat.S_IMODE(os.lstat(p).st_mode) for p in private_tmp.rglob("*")}
        time.sleep(0.005)
    worker.join(timeout=30)
    files = {name: mode for name, mode in modes.items() if name.endswith((".pem", "known_hosts"))}
    assert files, f"no temporary file was seen: {modes}"
    assert set(files.values()) == {0o600}, modes
    assert {mode for name, mode in modes.items() if name not in files} == {0o700}, modes
    assert list(private_tmp.iterdir()) == []


# --- one refresh per repository -------------------------------------------------------------------------------


def test_callers_with_the_same_credentials_share_one_mirror_and_one_refresh(
    cache_dir: Path, origin: GitRepo, https_server: gitservers.HttpsGitServer, tls: Tls
) -> None:
    url = https_server.url(REPO)
    not_before = time.monotonic()
    results: list[str] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def work() -> None:
        try:
            source = GitSource(cache_dir, timeout_seconds=5)
            barrier.wait()
            creds = basic(caFile=tls.ca.cert_pem)
            snap = source.snapshot(url, MAIN, MANIFEST, credentials=creds, not_before=not_before)
            assert snap.refreshed_at >= not_before
            results.append(snap.commit.sha)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert results == [origin.head()] * 4
    assert len(list(cache_dir.iterdir())) == 1
    assert GitSource(cache_dir).stats(url, basic(caFile=tls.ca.cert_pem)) == {"ls_remote": 1, "fetch": 1, "compact": 0}


def test_different_credentials_never_share_a_mirror(
    source: GitSource, origin: GitRepo, git_daemon: gitservers.GitDaemon
) -> None:
    url = git_daemon.url(REPO)
    token = Credentials.from_secret_data({"bearerToken": b"tenant-a"})
    sha = source.fetch(url, MAIN, credentials=token).sha
    assert source.mirror_path(url, token) != source.mirror_path(url) != source.mirror_path(url, basic())
    err = source_error(lambda: source.read(url, sha, MANIFEST))  # not fetched without credentials
    assert err.reason == "RefNotFound"
    assert source.read(url, sha, MANIFEST, credentials=token).content == V1


def test_unchanged_ref_is_listed_but_not_fetched_and_a_moved_one_is_fetched(
    source: GitSource, origin: GitRepo, served: Served, git_daemon: gitservers.GitDaemon
) -> None:
    url = git_daemon.url(REPO)
    source.fetch(url, MAIN)
    source.fetch(url, MAIN)
    assert source.stats(url) == {"ls_remote": 2, "fetch": 1, "compact": 0}
    origin.commit("v2", {MANIFEST: V2})
    served.push(REPO, origin)
    assert source.fetch(url, MAIN).sha == origin.head()
    assert source.stats(url) == {"ls_remote": 3, "fetch": 2, "compact": 0}


def test_not_before_reuses_a_recent_refresh_and_reports_when_it_was(
    source: GitSource, origin: GitRepo, served: Served, git_daemon: gitservers.GitDaemon
) -> None:
    url = git_daemon.url(REPO)
    first = source.fetch(url, MAIN, not_before=time.monotonic())
    origin.commit("v2", {MANIFEST: V2})
    origin.git("switch", "--quiet", "-c", "side")
    side = origin.commit("side", {MANIFEST: V3})
    origin.git("tag", "side-tag")
    origin.git("switch", "--quiet", "main")
    served.push(REPO, origin)

    reused = source.fetch(url, MAIN, not_before=first.refreshed_at)
    assert (reused.sha, reused.refreshed_at) == (first.sha, first.refreshed_at)
    assert source.stats(url) == {"ls_remote": 1, "fetch": 1, "compact": 0}

    fresh = source.fetch(url, MAIN, not_before=time.monotonic())
    assert fresh.sha == origin.head() and fresh.refreshed_at > first.refreshed_at
    assert source.read(url, fresh.sha, MANIFEST).refreshed_at == fresh.refreshed_at
    assert source.stats(url) == {"ls_remote": 2, "fetch": 2, "compact": 0}

    # Another ref of the same mirror, listed by that refresh but never fetched: the remote is contacted.
    assert source.fetch(url, GitRef("tag", "side-tag"), not_before=fresh.refreshed_at).sha == side
    assert source.stats(url) == {"ls_remote": 3, "fetch": 3, "compact": 0}
    # A ref the listing had and the mirror holds: answered from the mirror.
    assert source.fetch(url, GitRef("branch", "side"), not_before=fresh.refreshed_at).sha == side
    assert source.stats(url) == {"ls_remote": 3, "fetch": 3, "compact": 0}


def test_a_recent_failure_is_reported_again_without_contacting_the_remote(source: GitSource) -> None:
    url = f"git://127.0.0.1:{closed_port()}/x.git"
    started = time.monotonic()
    first = source_error(lambda: source.fetch(url, MAIN, not_before=started))
    again = source_error(lambda: source.fetch(url, MAIN, not_before=started))
    assert (again.reason, again.message) == (first.reason, first.message)
    assert source.stats(url) == {"ls_remote": 1, "fetch": 0, "compact": 0}
    source_error(lambda: source.fetch(url, MAIN, not_before=time.monotonic()))
    assert source.stats(url)["ls_remote"] == 2
