"""Real git servers on 127.0.0.1 for tests: sshd, ``git http-backend`` behind HTTPS, ``git daemon``.

Each server serves the bare repositories under one directory (``root``), listens on a free port and is
stopped by ``stop()``, which also checks that none of the processes it started is left. The packages they
need are installed by ``tests/servers/install-deps.sh``. Nothing here reads or changes the user's own
ssh or git configuration.

- ``SshServer``: OpenSSH's sshd as the current user, public-key authentication only, its own host key,
  ``authorized_keys`` and log in a private directory. ``known_hosts_line`` is what a client must trust.
- ``HttpsGitServer``: smart HTTP (``git http-backend`` as CGI) behind a threaded Python HTTPS server with
  a certificate issued by a test CA; requires HTTP basic auth or ``Authorization: Bearer`` and records
  every request, so tests can bound how often a client came back.
- ``GitDaemon``: ``git daemon --export-all`` (no authentication).
"""

from __future__ import annotations

import base64
import contextlib
import getpass
import http.server
import os
import shutil
import signal
import socket
import socketserver
import ssl
import subprocess
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

LOOPBACK = "127.0.0.1"
HTTP_USER, HTTP_PASSWORD, HTTP_TOKEN = "alice", "pw-4d1e-secret", "tok-9c2b-secret"
"""Test credentials (test fixtures give them to the HTTPS server); tests check they never leak."""
PASSPHRASE = "open-sesame-7f3a"
"""Passphrase of the test fixtures' protected SSH client key."""
START_TIMEOUT = 10.0
GIT_ENV = {"GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}


def free_port() -> int:
    """A TCP port on loopback that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def run(*args: str, cwd: Path | None = None) -> str:
    """Run a command, fail with its stderr if it fails, return its stdout."""
    done = subprocess.run(
        list(args), cwd=cwd, env={**os.environ, **GIT_ENV}, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({done.returncode}): {done.stderr.strip()}")
    return done.stdout


def publish(root: Path, name: str, source: Path) -> Path:
    """Make ``root/name`` a bare copy of the repository at ``source``; returns its path."""
    target = root / name
    if target.exists():
        shutil.rmtree(target)
    run("git", "clone", "--quiet", "--bare", "--no-local", str(source), str(target))
    return target


def push(source: Path, bare: Path) -> None:
    """Force-push every branch and tag of ``source`` to ``bare`` (pruning deleted ones)."""
    run("git", "-C", str(source), "push", "--quiet", "--force", "--prune", str(bare), "refs/heads/*:refs/heads/*",
        "refs/tags/*:refs/tags/*")


class ServerProcess:
    """A child process in its own process group; ``stop`` ends the whole group and checks it is gone."""

    def __init__(self, args: list[str], log: Path, env: Mapping[str, str] | None = None) -> None:
        self.args = args
        self.log = log
        with log.open("ab") as out:
            self.proc = subprocess.Popen(
                args, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                env={**os.environ, **(env or {})}, start_new_session=True,
            )
        self.pgid = self.proc.pid
        STARTED_GROUPS.append(self.pgid)

    def wait_listening(self, port: int) -> None:
        """Block until something accepts TCP connections on ``port``; fail if the process died."""
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.args[0]} exited with {self.proc.returncode}: {self.log.read_text()}")
            with contextlib.suppress(OSError), socket.create_connection((LOOPBACK, port), timeout=0.5):
                return
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"{self.args[0]} did not listen on {port} within {START_TIMEOUT}s")

    def wait_logged(self, text: str) -> None:
        """Block until the log contains ``text`` (readiness without a probe connection); fail if it died."""
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if text in self.log.read_text(errors="replace"):
                return
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.args[0]} exited with {self.proc.returncode}: {self.log.read_text()}")
            time.sleep(0.01)
        self.stop()
        raise RuntimeError(f"{self.args[0]} did not log {text!r} within {START_TIMEOUT}s")

    def stop(self) -> None:
        """Terminate the process group, kill it if it lingers, and check no member is left."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pgid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pgid, signal.SIGKILL)
            self.proc.wait(timeout=5)
        deadline = time.monotonic() + 5
        while group_alive(self.pgid):
            if time.monotonic() > deadline:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.pgid, signal.SIGKILL)
                time.sleep(0.1)
                if group_alive(self.pgid):
                    raise AssertionError(f"processes of group {self.pgid} ({self.args[0]}) are left running")
                break
            time.sleep(0.02)


STARTED_GROUPS: list[int] = []
"""Process groups of every server started in this process, for a final leftover check."""


def leftover_groups() -> list[int]:
    """Started process groups that still have a live member."""
    return [pgid for pgid in STARTED_GROUPS if group_alive(pgid)]


def group_alive(pgid: int) -> bool:
    """Whether any process (other than a zombie) is still in process group ``pgid``."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


# --- SSH -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SshKey:
    """An ed25519 key pair made by ssh-keygen."""

    private: bytes
    public: str
    """``ssh-ed25519 AAAA... comment``."""

    @classmethod
    def generate(cls, path: Path, comment: str, passphrase: str = "") -> SshKey:
        run("ssh-keygen", "-q", "-t", "ed25519", "-N", passphrase, "-C", comment, "-f", str(path))
        return cls(private=path.read_bytes(), public=path.with_suffix(".pub").read_text().strip())


class SshServer:
    """OpenSSH sshd on loopback, logging in the current user with one authorized client key."""

    def __init__(self, workdir: Path, root: Path, authorized: Iterable[SshKey]) -> None:
        self.workdir = workdir
        self.root = root
        self.user = getpass.getuser()
        self.port = free_port()
        workdir.mkdir(parents=True, exist_ok=True)
        workdir.chmod(0o700)
        self.host_key = SshKey.generate(workdir / "host_ed25519", "test-host")
        self.authorized_keys = workdir / "authorized_keys"
        self.authorized_keys.write_text("".join(key.public + "\n" for key in authorized))
        self.log = workdir / "sshd.log"
        config = workdir / "sshd_config"
        config.write_text(self._config())
        self.process = ServerProcess([_sshd(), "-D", "-e", "-f", str(config)], self.log)
        self.process.wait_logged(f"Server listening on {LOOPBACK} port {self.port}")

    def _config(self) -> str:
        return "\n".join([
            f"ListenAddress {LOOPBACK}:{self.port}",
            f"HostKey {self.workdir / 'host_ed25519'}",
            f"PidFile {self.workdir / 'sshd.pid'}",
            f"AuthorizedKeysFile {self.authorized_keys}",
            "PermitRootLogin prohibit-password",
            "PubkeyAuthentication yes",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "UsePAM no",
            "StrictModes no",
            "AllowTcpForwarding no",
            "X11Forwarding no",
            "PermitTTY no",
            "PrintMotd no",
            "LogLevel VERBOSE",
            "",
        ])

    def url(self, name: str, user: str | None = None) -> str:
        """``ssh://user@127.0.0.1:PORT/<root>/name`` for the repository ``root/name``."""
        return f"ssh://{user or self.user}@{LOOPBACK}:{self.port}{self.root / name}"

    @property
    def known_hosts_line(self) -> str:
        """The known_hosts entry for this server: ``[127.0.0.1]:PORT ssh-ed25519 AAAA...``."""
        kind, blob = self.host_key.public.split()[:2]
        return f"[{LOOPBACK}]:{self.port} {kind} {blob}\n"

    def log_count(self, text: str) -> int:
        """How many lines of sshd's log contain ``text`` (e.g. ``Accepted publickey``)."""
        return sum(text in line for line in self.log.read_text(errors="replace").splitlines())

    def stop(self) -> None:
        self.process.stop()


def _sshd() -> str:
    path = shutil.which("sshd") or "/usr/sbin/sshd"
    if not Path(path).exists():
        raise RuntimeError("sshd is missing: run tests/servers/install-deps.sh")
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # privilege separation directory
    return path


# --- TLS material --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TlsFiles:
    """A certificate (PEM) and its private key, as files."""

    cert: Path
    key: Path

    @property
    def cert_pem(self) -> bytes:
        return self.cert.read_bytes()


def make_ca(workdir: Path, name: str) -> TlsFiles:
    """A self-signed CA certificate for tests (EC P-256, valid a day)."""
    workdir.mkdir(parents=True, exist_ok=True)
    key, cert = workdir / f"{name}.key", workdir / f"{name}.pem"
    run("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", f"/CN={name}",
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    return TlsFiles(cert, key)


def issue_server_cert(workdir: Path, name: str, ca: TlsFiles | None) -> TlsFiles:
    """A server certificate for 127.0.0.1 (SAN IP), signed by ``ca`` or self-signed when ``ca`` is None."""
    key, csr, cert = workdir / f"{name}.key", workdir / f"{name}.csr", workdir / f"{name}.pem"
    ext = workdir / f"{name}.ext"
    ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n")
    if ca is None:
        run("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", f"/CN={name}",
            "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost")
        return TlsFiles(cert, key)
    run("openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", str(key), "-out", str(csr), "-subj", f"/CN={name}")
    run("openssl", "x509", "-req", "-in", str(csr), "-CA", str(ca.cert), "-CAkey", str(ca.key),
        "-CAcreateserial", "-out", str(cert), "-days", "1", "-extfile", str(ext))
    return TlsFiles(cert, key)


# --- smart HTTP behind HTTPS ---------------------------------------------------------------------------


@dataclass(frozen=True)
class HttpRequest:
    """One request the HTTPS server answered."""

    method: str
    path: str
    status: int
    user: str | None
    """Who authenticated (the basic-auth user, ``bearer`` for a token), None when refused."""


@dataclass
class HttpAuth:
    """Who may read: basic-auth users (name -> password) and bearer tokens; both can change at run time."""

    users: dict[str, str] = field(default_factory=dict)
    tokens: set[str] = field(default_factory=set)

    def check(self, header: str | None) -> str | None:
        """The authenticated user for an ``Authorization`` header value, or None."""
        if not header:
            return None
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer":
            return "bearer" if value.strip() in self.tokens else None
        if scheme.lower() != "basic":
            return None
        try:
            user, _, password = base64.b64decode(value.strip()).decode("utf-8").partition(":")
        except (ValueError, UnicodeDecodeError):
            return None
        return user if user in self.users and self.users[user] == password else None


class _GitHttpHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _TlsHttpServer

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _serve(self) -> None:
        owner = self.server.owner
        user = owner.auth.check(self.headers.get("Authorization"))
        body = self._read_body()
        if user is None:
            self._send(401, {"WWW-Authenticate": 'Basic realm="git"', "Content-Type": "text/plain"}, b"auth\n")
            owner.record(HttpRequest(self.command, self.path, 401, None))
            return
        status, headers, payload = owner.cgi(self.command, self.path, self.headers, body, user)
        self._send(status, headers, payload)
        owner.record(HttpRequest(self.command, self.path, status, user))

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, status: int, headers: Mapping[str, str], payload: bytes) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


class _TlsHttpServer(socketserver.ThreadingMixIn, http.server.HTTPServer):
    """HTTPS with the TLS handshake done in the request's own thread (a silent client blocks no one)."""

    daemon_threads = True
    allow_reuse_address = True
    owner: HttpsGitServer

    def finish_request(self, request: socket.socket, client_address: object) -> None:  # type: ignore[override]
        request.settimeout(10)
        try:
            tls = self.owner.tls_context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            self.owner.record_handshake_failure()
            return
        self.RequestHandlerClass(tls, client_address, self)


class HttpsGitServer:
    """``git http-backend`` for ``root`` behind HTTPS on loopback, with basic or bearer authentication."""

    def __init__(self, root: Path, cert: TlsFiles, auth: HttpAuth) -> None:
        self.root = root
        self.auth = auth
        self.requests: list[HttpRequest] = []
        self.handshake_failures = 0
        self._lock = threading.Lock()
        self.tls_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.tls_context.load_cert_chain(cert.cert, cert.key)
        self._server = _TlsHttpServer((LOOPBACK, 0), _GitHttpHandler)
        self._server.owner = self
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, name="https-git", daemon=True)
        self._thread.start()

    def url(self, name: str) -> str:
        return f"https://{LOOPBACK}:{self.port}/{name}"

    def record(self, request: HttpRequest) -> None:
        with self._lock:
            self.requests.append(request)

    def record_handshake_failure(self) -> None:
        with self._lock:
            self.handshake_failures += 1

    def cgi(
        self, method: str, raw_path: str, headers: Mapping[str, str], body: bytes, user: str
    ) -> tuple[int, dict[str, str], bytes]:
        """Run ``git http-backend`` for one request; (status, headers, body) of its answer."""
        parts = urlsplit(raw_path)
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            **GIT_ENV,
            "GIT_PROJECT_ROOT": str(self.root),
            "GIT_HTTP_EXPORT_ALL": "1",
            "GATEWAY_INTERFACE": "CGI/1.1",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "REQUEST_METHOD": method,
            "PATH_INFO": unquote(parts.path),
            "QUERY_STRING": parts.query,
            "CONTENT_TYPE": headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(len(body)),
            "REMOTE_USER": user,
            "REMOTE_ADDR": LOOPBACK,
        }
        for name in ("Git-Protocol", "Content-Encoding"):
            if headers.get(name):
                env["HTTP_" + name.upper().replace("-", "_")] = headers[name]
        done = subprocess.run(
            ["git", "http-backend"], input=body, env=env, capture_output=True, timeout=30, check=False
        )
        return _parse_cgi(done.stdout)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def _parse_cgi(output: bytes) -> tuple[int, dict[str, str], bytes]:
    head, sep, body = output.partition(b"\r\n\r\n")
    if not sep:
        head, _, body = output.partition(b"\n\n")
    status = 200
    headers: dict[str, str] = {}
    for line in head.decode("latin-1").splitlines():
        name, _, value = line.partition(":")
        if name.lower() == "status":
            status = int(value.split()[0])
        elif name:
            headers[name.strip()] = value.strip()
    return status, headers, body


# --- git daemon ----------------------------------------------------------------------------------------


class GitDaemon:
    """``git daemon`` exporting every repository under ``root`` (``git://127.0.0.1:PORT/name``)."""

    def __init__(self, workdir: Path, root: Path) -> None:
        self.root = root
        self.port = free_port()
        workdir.mkdir(parents=True, exist_ok=True)
        args = [
            "git", "daemon", "--export-all", "--reuseaddr", "--informative-errors",
            f"--base-path={root}", f"--listen={LOOPBACK}", f"--port={self.port}", str(root),
        ]
        self.process = ServerProcess(args, workdir / "git-daemon.log", env=GIT_ENV)
        self.process.wait_listening(self.port)

    def url(self, name: str) -> str:
        return f"git://{LOOPBACK}:{self.port}/{name}"

    def stop(self) -> None:
        self.process.stop()
