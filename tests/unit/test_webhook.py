"""The push-webhook receiver: per-provider authentication and parsing (pure), then the aiohttp app on loopback."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import socket
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bluegreen.cli import _parser
from bluegreen.webhook.providers import PayloadError, Push, authenticate, event_name, is_ping, parse_push, redact
from bluegreen.webhook.secret import SecretFile, WebhookSecretError
from bluegreen.webhook.server import MAX_BODY_BYTES, WebhookServer, parse_listen

SECRET = "s3cr3t-Shared-Value"
PROVIDERS = ("github", "gitlab", "gitea", "forgejo", "generic")  # forgejo: the gitea route, Forgejo's headers
ROUTE = {"github": "github", "gitlab": "gitlab", "gitea": "gitea", "forgejo": "gitea", "generic": "generic"}

# ---- real-looking payloads, trimmed (the providers' documented examples) ----------------------------------
GITHUB_PUSH: dict[str, Any] = {
    "ref": "refs/heads/main",
    "before": "6113728f27ae82c7b1a177c8d03f9e96e0adf246",
    "after": "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c",
    "repository": {
        "id": 186853002, "node_id": "MDEwOlJlcG9zaXRvcnkxODY4NTMwMDI=", "name": "deploy",
        "full_name": "Acme/deploy", "private": True,
        "html_url": "https://github.com/Acme/deploy",
        "url": "https://github.com/Acme/deploy",
        "git_url": "git://github.com/Acme/deploy.git",
        "ssh_url": "git@github.com:Acme/deploy.git",
        "clone_url": "https://github.com/Acme/deploy.git",
        "default_branch": "main",
    },
    "pusher": {"name": "dev-one", "email": "dev@example.com"},
    "sender": {"login": "dev-one", "id": 21031067, "type": "User"},
    "created": False, "deleted": False, "forced": False,
    "compare": "https://github.com/Acme/deploy/compare/6113728f27ae...0d1a26e67d8f",
    "commits": [{"id": "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c", "message": "shop v2",
                 "author": {"name": "Dev One", "email": "dev@example.com"}}],
    "head_commit": {"id": "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c", "message": "shop v2"},
}
GITHUB_PING: dict[str, Any] = {
    "zen": "Keep it logically awesome.", "hook_id": 30,
    "hook": {"type": "Repository", "id": 30, "events": ["push"], "active": True,
             "config": {"content_type": "json", "insecure_ssl": "0", "url": "https://bluegreen.example.com/hooks/github"}},
    "repository": GITHUB_PUSH["repository"],
}
GITLAB_PUSH: dict[str, Any] = {
    "object_kind": "push", "event_name": "push",
    "before": "95790bf891e76fee5e1747ab589903a6a1f80f22",
    "after": "da1560886d4f094c3e6c9ef40349f7d38b5d27d7",
    "ref": "refs/heads/main", "ref_protected": True,
    "checkout_sha": "da1560886d4f094c3e6c9ef40349f7d38b5d27d7",
    "user_id": 4, "user_name": "John Smith", "user_username": "jsmith", "project_id": 15,
    "project": {
        "id": 15, "name": "Deploy", "web_url": "https://gitlab.example.com/acme/deploy",
        "git_ssh_url": "git@gitlab.example.com:acme/deploy.git",
        "git_http_url": "https://gitlab.example.com/acme/deploy.git",
        "namespace": "Acme", "visibility_level": 0, "path_with_namespace": "acme/deploy",
        "default_branch": "main", "homepage": "https://gitlab.example.com/acme/deploy",
        "url": "git@gitlab.example.com:acme/deploy.git",
        "ssh_url": "git@gitlab.example.com:acme/deploy.git",
        "http_url": "https://gitlab.example.com/acme/deploy.git",
    },
    "repository": {
        "name": "Deploy", "url": "git@gitlab.example.com:acme/deploy.git", "description": "",
        "homepage": "https://gitlab.example.com/acme/deploy",
        "git_http_url": "https://gitlab.example.com/acme/deploy.git",
        "git_ssh_url": "git@gitlab.example.com:acme/deploy.git", "visibility_level": 0,
    },
    "commits": [{"id": "da1560886d4f094c3e6c9ef40349f7d38b5d27d7", "message": "shop v2",
                 "author": {"name": "John Smith", "email": "john@example.com"}}],
    "total_commits_count": 1,
}
GITLAB_TAG_PUSH: dict[str, Any] = {**GITLAB_PUSH, "object_kind": "tag_push", "event_name": "tag_push",
                                   "ref": "refs/tags/v1.4.0"}
GITEA_PUSH: dict[str, Any] = {
    "ref": "refs/heads/main",
    "before": "28e1879d029cb852e4844d9c718537df08844e03",
    "after": "bffeb74224043ba2feb48d137756c8a9331c449a",
    "compare_url": "https://gitea.example.com/acme/deploy/compare/28e1879d029c...bffeb7422404",
    "commits": [{"id": "bffeb74224043ba2feb48d137756c8a9331c449a", "message": "shop v2\n",
                 "url": "https://gitea.example.com/acme/deploy/commit/bffeb74224043ba2feb48d137756c8a9331c449a"}],
    "repository": {
        "id": 140, "owner": {"id": 1, "login": "acme", "full_name": ""}, "name": "deploy",
        "full_name": "acme/deploy", "private": True, "fork": False,
        "html_url": "https://gitea.example.com/acme/deploy",
        "ssh_url": "ssh://git@gitea.example.com:2222/acme/deploy.git",
        "clone_url": "https://gitea.example.com/acme/deploy.git",
        "default_branch": "main",
    },
    "pusher": {"id": 1, "login": "dev-one"}, "sender": {"id": 1, "login": "dev-one"},
}
GENERIC_PUSH: dict[str, Any] = {"repository": "https://git.example.com/acme/deploy.git", "ref": "refs/heads/main"}

PUSHES = {"github": GITHUB_PUSH, "gitlab": GITLAB_PUSH, "gitea": GITEA_PUSH, "forgejo": GITEA_PUSH,
          "generic": GENERIC_PUSH}
EXPECTED_URLS = {
    "github": {"https://github.com/Acme/deploy.git", "git@github.com:Acme/deploy.git",
               "git://github.com/Acme/deploy.git", "https://github.com/Acme/deploy"},
    "gitlab": {"https://gitlab.example.com/acme/deploy.git", "git@gitlab.example.com:acme/deploy.git",
               "https://gitlab.example.com/acme/deploy"},
    "gitea": {"https://gitea.example.com/acme/deploy.git", "ssh://git@gitea.example.com:2222/acme/deploy.git",
              "https://gitea.example.com/acme/deploy"},
    "generic": {"https://git.example.com/acme/deploy.git"},
}
EXPECTED_URLS["forgejo"] = EXPECTED_URLS["gitea"]


def body_of(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload).encode()


def hex_hmac(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def push_headers(provider: str, body: bytes, secret: str = SECRET) -> dict[str, str]:
    """The headers each git server sends with a push, signed with ``secret``."""
    return {
        "github": {"X-GitHub-Event": "push", "X-GitHub-Delivery": "72d3162e-cc78-11e3-81ab-4c9367dc0958",
                   "X-Hub-Signature-256": "sha256=" + hex_hmac(secret, body)},
        "gitlab": {"X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": secret,
                   "X-Gitlab-Event-UUID": "13792a34-cac6-4fda-95a8-c58e00a3954e"},
        "gitea": {"X-Gitea-Event": "push", "X-Gitea-Delivery": "f6266f16-1bf3-46a5-9ea4-602e06ead473",
                  "X-Gitea-Signature": hex_hmac(secret, body)},
        "forgejo": {"X-Forgejo-Event": "push", "X-Forgejo-Delivery": "f6266f16-1bf3-46a5-9ea4-602e06ead473",
                    "X-Forgejo-Signature": hex_hmac(secret, body)},
        "generic": {"X-Signature-256": "sha256=" + hex_hmac(secret, body)},
    }[provider]


AUTH_HEADER = {"github": "X-Hub-Signature-256", "gitlab": "X-Gitlab-Token", "gitea": "X-Gitea-Signature",
               "forgejo": "X-Forgejo-Signature", "generic": "X-Signature-256"}


# ---- authenticate ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_valid_signature_or_token_is_accepted(provider: str) -> None:
    body = body_of(PUSHES[provider])
    assert authenticate(ROUTE[provider], push_headers(provider, body), body, SECRET)
    assert authenticate(ROUTE[provider], push_headers(provider, body), body, SECRET.encode())


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_different_secret_is_refused(provider: str) -> None:
    body = body_of(PUSHES[provider])
    assert not authenticate(ROUTE[provider], push_headers(provider, body, secret="guessed"), body, SECRET)
    assert not authenticate(ROUTE[provider], push_headers(provider, body, secret=SECRET.upper()), body, SECRET)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_missing_signature_or_token_is_refused(provider: str) -> None:
    body = body_of(PUSHES[provider])
    headers = {k: v for k, v in push_headers(provider, body).items() if k != AUTH_HEADER[provider]}
    assert not authenticate(ROUTE[provider], headers, body, SECRET)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_an_empty_header_or_an_empty_secret_is_refused(provider: str) -> None:
    body = body_of(PUSHES[provider])
    assert not authenticate(ROUTE[provider], {**push_headers(provider, body), AUTH_HEADER[provider]: ""}, body, "")
    assert not authenticate(ROUTE[provider], push_headers(provider, body, secret=""), body, "")
    assert not authenticate(ROUTE[provider], push_headers(provider, body), body, "")


@pytest.mark.parametrize("provider", [p for p in PROVIDERS if p != "gitlab"])
def test_a_signature_over_another_body_is_refused(provider: str) -> None:
    """HMAC covers the raw body: a payload changed after signing (another repository) fails."""
    body = body_of(PUSHES[provider])
    tampered = body.replace(b"deploy", b"dEploy", 1)
    assert tampered != body
    assert not authenticate(ROUTE[provider], push_headers(provider, body), tampered, SECRET)
    assert not authenticate(ROUTE[provider], push_headers(provider, body), body + b" ", SECRET)


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("case", [str.lower, str.upper])
def test_header_names_are_case_insensitive(provider: str, case: Callable[[str], str]) -> None:
    body = body_of(PUSHES[provider])
    headers = {case(name): value for name, value in push_headers(provider, body).items()}
    assert authenticate(ROUTE[provider], headers, body, SECRET)
    assert parse_push(ROUTE[provider], headers, body) is not None


def test_the_gitlab_token_is_compared_exactly_not_case_folded() -> None:
    body = body_of(GITLAB_PUSH)
    assert authenticate("gitlab", {"X-Gitlab-Token": SECRET}, body, SECRET)
    assert not authenticate("gitlab", {"X-Gitlab-Token": SECRET.lower()}, body, SECRET)
    assert not authenticate("gitlab", {"X-Gitlab-Token": SECRET[:-1]}, body, SECRET)
    assert not authenticate("gitlab", {"X-Gitlab-Token": SECRET + "x"}, body, SECRET)


@pytest.mark.parametrize(("provider", "value"), [
    ("github", "sha1={}"), ("github", "{}"), ("github", "sha512={}"),
    ("generic", "{}"), ("generic", "sha1={}"),
    ("gitea", "sha256={}"),
])
def test_signature_formats_other_than_the_providers_are_refused(provider: str, value: str) -> None:
    body = body_of(GITHUB_PUSH)
    assert not authenticate(provider, {AUTH_HEADER[provider]: value.format(hex_hmac(SECRET, body))}, body, SECRET)


def test_upper_case_hex_and_surrounding_spaces_in_a_signature_are_tolerated() -> None:
    body = body_of(GITHUB_PUSH)
    digest = hex_hmac(SECRET, body).upper()
    assert authenticate("github", {"X-Hub-Signature-256": f" sha256={digest} "}, body, SECRET)
    assert authenticate("gitea", {"X-Gitea-Signature": digest}, body, SECRET)


def test_a_non_ascii_header_value_is_refused_not_an_error() -> None:
    body = body_of(GITHUB_PUSH)
    assert not authenticate("github", {"X-Hub-Signature-256": "sha256=é" + "0" * 63}, body, SECRET)
    assert not authenticate("gitlab", {"X-Gitlab-Token": "sécret"}, body, SECRET)


def test_an_unknown_provider_authenticates_nothing() -> None:
    body = body_of(GITHUB_PUSH)
    assert not authenticate("bitbucket", push_headers("github", body), body, SECRET)


# ---- parse_push ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_push_names_the_repository_by_all_its_urls_and_the_ref(provider: str) -> None:
    body = body_of(PUSHES[provider])
    push = parse_push(ROUTE[provider], push_headers(provider, body), body)
    assert push == Push(frozenset(EXPECTED_URLS[provider]), PUSHES[provider]["ref"])


def test_a_gitlab_tag_push_names_the_tag() -> None:
    body = body_of(GITLAB_TAG_PUSH)
    push = parse_push("gitlab", {"X-Gitlab-Event": "Tag Push Hook"}, body)
    assert push is not None and push.ref == "refs/tags/v1.4.0"


def test_a_github_tag_push_names_the_tag() -> None:
    body = body_of({**GITHUB_PUSH, "ref": "refs/tags/v2.0.0", "base_ref": None})
    push = parse_push("github", {"X-GitHub-Event": "push"}, body)
    assert push is not None and push.ref == "refs/tags/v2.0.0"


def test_the_generic_hook_may_omit_the_ref_to_mean_any_ref() -> None:
    push = parse_push("generic", {}, body_of({"repository": "/srv/git/deploy"}))
    assert push == Push(frozenset({"/srv/git/deploy"}), None)


def test_github_ping_is_recognised_and_is_not_a_push() -> None:
    body = body_of(GITHUB_PING)
    headers = {"X-GitHub-Event": "ping", "X-Hub-Signature-256": "sha256=" + hex_hmac(SECRET, body)}
    assert is_ping("github", headers)
    assert authenticate("github", headers, body, SECRET)
    assert parse_push("github", headers, body) is None
    assert not is_ping("github", push_headers("github", body))


@pytest.mark.parametrize(("provider", "headers"), [
    ("github", {"X-GitHub-Event": "pull_request"}),
    ("github", {"X-GitHub-Event": "issues"}),
    ("github", {"X-GitHub-Event": "create"}),
    ("github", {}),
    ("gitlab", {"X-Gitlab-Event": "Merge Request Hook"}),
    ("gitlab", {"X-Gitlab-Event": "Pipeline Hook"}),
    ("gitlab", {"X-Gitlab-Event": "push"}),  # GitLab's names are "Push Hook" / "Tag Push Hook"
    ("gitea", {"X-Gitea-Event": "pull_request"}),
    ("gitea", {"X-Gitea-Event": "create"}),
    ("gitea", {"X-Forgejo-Event": "issues"}),
    ("gitea", {}),
])
def test_events_other_than_push_are_ignored(provider: str, headers: dict[str, str]) -> None:
    assert parse_push(provider, headers, body_of(GITHUB_PUSH)) is None


def test_event_names_come_from_the_providers_headers() -> None:
    assert event_name("github", {"x-github-event": "push"}) == "push"
    assert event_name("gitlab", {"X-Gitlab-Event": "Tag Push Hook"}) == "Tag Push Hook"
    assert event_name("gitea", {"X-Forgejo-Event": "push", "X-Gitea-Event": "push"}) == "push"
    assert event_name("generic", {}) == "push"
    assert event_name("github", {}) is None


@pytest.mark.parametrize(("provider", "body"), [
    ("github", b"not json"),
    ("github", b"[1, 2]"),
    ("github", b"\xff\xfe"),
    ("github", body_of({"ref": "refs/heads/main"})),  # no repository
    ("github", body_of({**GITHUB_PUSH, "ref": None})),
    ("github", body_of({**GITHUB_PUSH, "ref": "main"})),
    ("github", body_of({**GITHUB_PUSH, "ref": "refs/heads/"})),
    ("github", body_of({**GITHUB_PUSH, "ref": "refs/pull/1/head"})),
    ("github", body_of({**GITHUB_PUSH, "ref": "refs/heads/a b"})),
    ("github", body_of({**GITHUB_PUSH, "repository": {"clone_url": 42, "html_url": ""}})),
    ("gitlab", body_of({"ref": "refs/heads/main", "project": "acme/deploy"})),
    ("gitea", body_of({"ref": "refs/heads/main", "repository": None})),
    ("generic", body_of({"repository": ["https://a/b"], "ref": "refs/heads/main"})),
    ("generic", body_of({"ref": "refs/heads/main"})),
    ("generic", body_of({"repository": "https://git.example.com/a", "ref": 7})),
])
def test_a_malformed_push_is_a_payload_error(provider: str, body: bytes) -> None:
    with pytest.raises(PayloadError):
        parse_push(provider, {"X-GitHub-Event": "push", "X-Gitlab-Event": "Push Hook", "X-Gitea-Event": "push"}, body)


def test_commit_ids_in_the_payload_are_not_part_of_what_a_push_says() -> None:
    body = body_of(GITHUB_PUSH)
    push = parse_push("github", {"X-GitHub-Event": "push"}, body)
    assert push is not None
    assert set(vars(push)) == {"repository_urls", "ref"}
    assert not any(GITHUB_PUSH["after"] in url for url in push.repository_urls)


def test_over_long_urls_are_dropped() -> None:
    repository = {"clone_url": "https://git.example.com/" + "x" * 5000, "html_url": "https://git.example.com/a/b"}
    body = body_of({"ref": "refs/heads/main", "repository": repository})
    push = parse_push("github", {"X-GitHub-Event": "push"}, body)
    assert push is not None and push.repository_urls == {"https://git.example.com/a/b"}
    del repository["html_url"]
    with pytest.raises(PayloadError):
        parse_push("gitea", {"X-Gitea-Event": "push"}, body_of({"ref": "refs/heads/main", "repository": repository}))


@pytest.mark.parametrize(("url", "logged"), [
    ("https://ci:glpat-TOKEN@gitlab.example.com/acme/deploy.git", "https://gitlab.example.com/acme/deploy.git"),
    ("https://TOKEN@github.com/acme/deploy.git", "https://github.com/acme/deploy.git"),
    ("git@github.com:acme/deploy.git", "git@github.com:acme/deploy.git"),
    ("ssh://git@gitea.example.com:2222/acme/deploy.git", "ssh://gitea.example.com:2222/acme/deploy.git"),
    ("/srv/git/deploy", "/srv/git/deploy"),
])
def test_urls_are_logged_without_credentials(url: str, logged: str) -> None:
    assert redact(url) == logged


# ---- the listen address and the CLI -------------------------------------------------------------------
@pytest.mark.parametrize(("text", "expected"), [
    ("0.0.0.0:9443", ("0.0.0.0", 9443)), ("127.0.0.1:0", ("127.0.0.1", 0)), ("[::]:9443", ("::", 9443)),
    ("localhost:8000", ("localhost", 8000)),
])
def test_parse_listen(text: str, expected: tuple[str, int]) -> None:
    assert parse_listen(text) == expected


@pytest.mark.parametrize("text", ["9443", ":9443", "0.0.0.0:", "0.0.0.0:http", "0.0.0.0:70000", ""])
def test_parse_listen_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        parse_listen(text)


def test_the_cli_accepts_the_webhook_flags() -> None:
    args = _parser().parse_args(["run", "--webhook-listen", "0.0.0.0:9443",
                                 "--webhook-secret-file", "/etc/bluegreen/webhook/secret"])
    assert args.webhook_listen == ("0.0.0.0", 9443)
    assert args.webhook_secret_file == "/etc/bluegreen/webhook/secret"
    default = _parser().parse_args(["run"])
    assert default.webhook_listen is None and default.webhook_secret_file is None


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KUBECONFIG": "/nonexistent/kubeconfig"}
    return subprocess.run([sys.executable, "-m", "bluegreen.cli", *args], capture_output=True, text=True,
                          timeout=60, env=env)


@pytest.mark.parametrize("flags", [["--webhook-listen", "127.0.0.1:0"], ["--webhook-secret-file", "/x"],
                                   ["--webhook-listen", "nonsense", "--webhook-secret-file", "/x"]])
def test_the_cli_refuses_half_a_webhook_configuration(flags: list[str]) -> None:
    result = run_cli("run", *flags)
    assert result.returncode == 2
    assert "--webhook" in result.stderr


@pytest.mark.parametrize("content", [None, b"", b"\n  \n"])
def test_the_operator_does_not_start_without_a_secret(tmp_path: Path, content: bytes | None) -> None:
    path = tmp_path / "secret"
    if content is not None:
        path.write_bytes(content)
    result = run_cli("run", "-n", "default", "--log-format", "json", "--webhook-listen", "127.0.0.1:0",
                     "--webhook-secret-file", str(path))
    assert result.returncode == 2
    assert "webhook secret file" in result.stderr and str(path) in result.stderr


def test_the_operator_does_not_start_when_the_port_is_taken(tmp_path: Path) -> None:
    (tmp_path / "secret").write_text(SECRET)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_cli("run", "-n", "default", "--log-format", "json", "--webhook-listen", f"127.0.0.1:{port}",
                         "--webhook-secret-file", str(tmp_path / "secret"))
    assert result.returncode == 2
    assert f"--webhook-listen 127.0.0.1:{port}" in result.stderr and "in use" in result.stderr
    assert SECRET not in result.stderr


# ---- the secret file ----------------------------------------------------------------------------------
def test_the_secret_file_is_stripped_and_must_not_be_empty(tmp_path: Path) -> None:
    path = tmp_path / "secret"
    with pytest.raises(WebhookSecretError, match="cannot be read"):
        SecretFile(path).load()
    path.write_text("\n")
    with pytest.raises(WebhookSecretError, match="is empty"):
        SecretFile(path).load()
    path.write_text(SECRET + "\n")
    assert SecretFile(path).load() == SECRET.encode()


def kubernetes_secret_volume(directory: Path, value: str) -> Path:
    """The layout kubelet makes for a Secret volume: ``secret -> ..data/secret``, ``..data -> ..<timestamp>``."""
    directory.mkdir(exist_ok=True)
    version = directory / f"..2026_01_01_00_00_{len(list(directory.glob('..2026_*'))):02d}"
    version.mkdir()
    (version / "secret").write_text(value)
    link = directory / "..data_tmp"
    link.symlink_to(version.name)
    link.replace(directory / "..data")  # the atomic swap kubelet does on every update
    if not (directory / "secret").is_symlink():
        (directory / "secret").symlink_to("..data/secret")
    return directory / "secret"


def test_a_rotated_kubernetes_secret_is_picked_up(tmp_path: Path) -> None:
    path = kubernetes_secret_volume(tmp_path / "mount", "first")
    source = SecretFile(path)
    assert source() == b"first"
    kubernetes_secret_volume(tmp_path / "mount", "second")
    assert source() == b"second"


def test_a_secret_that_disappears_refuses_everything_until_it_is_back(tmp_path: Path) -> None:
    path = tmp_path / "secret"
    path.write_text("first")
    source = SecretFile(path)
    assert source.load() == b"first"
    path.unlink()
    assert source() is None
    path.write_text("")
    assert source() is None
    path.write_text("again")
    assert source() == b"again"


# ---- the aiohttp app on a loopback port ----------------------------------------------------------------
class FakeTrigger:
    def __init__(self, result: int = 1) -> None:
        self.calls: list[tuple[frozenset[str], str | None]] = []
        self.result = result

    def __call__(self, urls: frozenset[str], ref: str | None) -> int:
        self.calls.append((urls, ref))
        return self.result


Call = Callable[..., Awaitable[tuple[int, dict[str, Any]]]]


def serve(scenario: Callable[[Call, FakeTrigger], Awaitable[None]], secret: Callable[[], bytes | None] | None = None,
          trigger: FakeTrigger | None = None) -> FakeTrigger:
    """Run the receiver on 127.0.0.1:<free port> and ``scenario(call, trigger)`` against it."""
    fake = trigger or FakeTrigger()

    async def main() -> None:
        server = WebhookServer("127.0.0.1", 0, secret or (lambda: SECRET.encode()), fake)
        await server.start()
        try:
            async with aiohttp.ClientSession() as session:
                async def call(method: str, path: str, data: Any = b"", headers: dict[str, str] | None = None,
                               content_type: str | None = "application/json") -> tuple[int, dict[str, Any]]:
                    sent = {**({"Content-Type": content_type} if content_type else {}), **(headers or {})}
                    url = f"http://127.0.0.1:{server.port}{path}"
                    async with session.request(method, url, data=data, headers=sent) as response:
                        text = await response.text()
                        try:
                            return response.status, json.loads(text)
                        except ValueError:
                            return response.status, {"text": text}

                await scenario(call, fake)
        finally:
            await server.stop()

    asyncio.run(main())
    return fake


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_signed_push_is_answered_202_with_the_triggered_count(provider: str) -> None:
    body = body_of(PUSHES[provider])

    async def scenario(call: Call, trigger: FakeTrigger) -> None:
        status, reply = await call("POST", f"/hooks/{ROUTE[provider]}", body, push_headers(provider, body))
        assert (status, reply) == (202, {"triggered": 3})

    trigger = serve(scenario, trigger=FakeTrigger(result=3))
    assert trigger.calls == [(frozenset(EXPECTED_URLS[provider]), PUSHES[provider]["ref"])]


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("how", ["missing", "wrong secret", "tampered"])
def test_an_unauthenticated_push_is_401_and_triggers_nothing(provider: str, how: str) -> None:
    body = body_of(PUSHES[provider])
    headers = push_headers(provider, body, secret="wrong" if how == "wrong secret" else SECRET)
    if how == "missing":
        del headers[AUTH_HEADER[provider]]
    sent = body.replace(b"main", b"prod") if how == "tampered" and provider != "gitlab" else body
    if how == "tampered" and provider == "gitlab":  # a token has no body to tamper with: alter the token
        headers[AUTH_HEADER[provider]] = SECRET + "x"

    async def scenario(call: Call, trigger: FakeTrigger) -> None:
        status, reply = await call("POST", f"/hooks/{ROUTE[provider]}", sent, headers)
        assert status == 401
        assert reply == {"error": "missing or invalid signature"}

    assert serve(scenario).calls == []


def test_oversized_bodies_are_413_with_or_without_a_content_length() -> None:
    big = b'{"repository": "' + b"x" * MAX_BODY_BYTES + b'"}'

    async def chunks() -> Any:
        for start in range(0, len(big), 65536):
            yield big[start:start + 65536]

    async def scenario(call: Call, trigger: FakeTrigger) -> None:
        status, reply = await call("POST", "/hooks/generic", big, push_headers("generic", big))
        assert status == 413, reply
        status, reply = await call("POST", "/hooks/generic", chunks(), push_headers("generic", big))
        assert status == 413, reply

    assert serve(scenario).calls == []


def test_unknown_provider_wrong_method_and_content_type() -> None:
    body = body_of(GITHUB_PUSH)
    signed = push_headers("github", body)

    async def scenario(call: Call, trigger: FakeTrigger) -> None:
        assert (await call("POST", "/hooks/bitbucket", body, signed))[0] == 404
        assert (await call("POST", "/hooks", body, signed))[0] == 404
        assert (await call("POST", "/elsewhere", body, signed))[0] == 404
        assert (await call("GET", "/hooks/github"))[0] == 405
        assert (await call("PUT", "/hooks/github", body, signed))[0] == 405
        assert (await call("POST", "/hooks/github", body, signed, content_type="text/plain"))[0] == 415
        assert (await call("POST", "/hooks/github", b"payload=%7B%7D", signed,
                           content_type="application/x-www-form-urlencoded"))[0] == 415
        assert (await call("POST", "/hooks/github", body, signed, content_type=None))[0] == 415
        assert (await call("POST", "/hooks/github", body, signed,
                           content_type="application/json; charset=utf-8"))[0] == 202
        assert await call("GET", "/healthz") == (200, {"status": "ok"})

    assert len(serve(scenario).calls) == 1


def test_ping_is_200_and_other_events_are_200_without_a_trigger() -> None:
    ping = body_of(GITHUB_PING)
    pull = body_of({"action": "opened", "repository": GITHUB_PUSH["repository"]})

    async def scenario(call: Call, trigger: FakeTrigger) -> None:
        headers = {"X-GitHub-Event": "ping", "X-Hub-Signature-256": "sha256=" + hex_hmac(SECRET, ping)}
        assert await call("POST", "/hooks/github", ping, headers) == (200, {"ping": "pong"})
        headers = {"X-GitHub-Event": "ping", "X-Hub-Signature-256": "sha256=" + hex_hmac("wrong", ping)}
        assert (await call("POST", "/hooks/github", ping, headers))[0] == 401, "a ping is authenticated too"
        headers = {"X-GitHub-Event": "pull_request", "X-Hub-Signature-256": "sha256=" + hex_hmac(SECRET, pull)}
        status, reply = await call("POST", "/hooks/github", pull, headers)
        assert status == 200 and reply["triggered"] == 0

    assert serve(scenario).calls == []


def test_a_malformed_authenticated_push_is_400() -> None:
    bad = b'{"ref": "refs/heads/main"}'

    async def scenario(call: Call, trigger: FakeTrigger) -> None:
        status, reply = await call("POST", "/hooks/github", bad, push_headers("github", bad))
        assert status == 400 and "repository" in reply["error"]

    assert serve(scenario).calls == []


def test_a_rotated_secret_file_is_picked_up_without_a_restart(tmp_path: Path) -> None:
    path = kubernetes_secret_volume(tmp_path / "mount", "old-secret")
    body = body_of(GENERIC_PUSH)

    async def scenario(call: Call, trigger: FakeTrigger) -> None:
        assert (await call("POST", "/hooks/generic", body, push_headers("generic", body, "old-secret")))[0] == 202
        kubernetes_secret_volume(tmp_path / "mount", "new-secret")
        assert (await call("POST", "/hooks/generic", body, push_headers("generic", body, "old-secret")))[0] == 401
        assert (await call("POST", "/hooks/generic", body, push_headers("generic", body, "new-secret")))[0] == 202

    assert len(serve(scenario, secret=SecretFile(path)).calls) == 2


def test_an_unavailable_secret_refuses_every_request() -> None:
    body = body_of(GENERIC_PUSH)

    async def scenario(call: Call, trigger: FakeTrigger) -> None:
        status, reply = await call("POST", "/hooks/generic", body, push_headers("generic", body))
        assert status == 503 and reply == {"error": "webhook secret unavailable"}

    assert serve(scenario, secret=lambda: None).calls == []


def test_a_failing_trigger_is_a_500_without_details() -> None:
    body = body_of(GENERIC_PUSH)

    class Broken(FakeTrigger):
        def __call__(self, urls: frozenset[str], ref: str | None) -> int:
            raise RuntimeError("queue exploded at /internal/path")

    async def scenario(call: Call, trigger: FakeTrigger) -> None:
        assert await call("POST", "/hooks/generic", body, push_headers("generic", body)) == (
            500, {"error": "internal error"})

    serve(scenario, trigger=Broken())


def test_oversized_headers_are_refused_by_the_http_parser() -> None:
    body = body_of(GENERIC_PUSH)

    async def scenario(call: Call, trigger: FakeTrigger) -> None:
        headers = {**push_headers("generic", body), "X-Padding": "x" * 20000}
        status, _ = await call("POST", "/hooks/generic", body, headers)
        assert status in (400, 431)

    assert serve(scenario).calls == []


def test_a_burst_is_cheap_per_call_each_call_just_triggers() -> None:
    """Coalescing is the controller's job: the receiver only forwards each push, with no per-call work."""
    body = body_of(GENERIC_PUSH)

    async def scenario(call: Call, trigger: FakeTrigger) -> None:
        results = await asyncio.gather(*(call("POST", "/hooks/generic", body, push_headers("generic", body))
                                         for _ in range(20)))
        assert {status for status, _ in results} == {202}

    assert len(serve(scenario).calls) == 20


def test_rejections_do_not_log_the_secret_or_the_body(capsys: pytest.CaptureFixture[str]) -> None:
    body = body_of({**GENERIC_PUSH, "marker": "BODY-MARKER",
                    "repository": "https://ci:URL-TOKEN-MARKER@git.example.com/acme/deploy.git"})

    async def scenario(call: Call, trigger: FakeTrigger) -> None:
        await call("POST", "/hooks/generic", body, push_headers("generic", body, "WRONG-" + SECRET))
        await call("POST", "/hooks/gitlab", body, {"X-Gitlab-Token": "TOKEN-MARKER", "X-Gitlab-Event": "Push Hook"})
        await call("POST", "/hooks/generic", body, push_headers("generic", body))

    serve(scenario)
    out = capsys.readouterr()
    logged = out.out + out.err
    assert "webhook rejected" in logged
    assert "webhook push" in logged and "https://git.example.com/acme/deploy.git" in logged
    for marker in (SECRET, "BODY-MARKER", "TOKEN-MARKER", "URL-TOKEN-MARKER"):
        assert marker not in logged
