"""The part of kubelet's API that ``kubectl logs`` uses: ``GET /containerLogs/<ns>/<pod>/<container>``
with ``previous``, ``tailLines``, ``limitBytes`` and ``follow``, served over HTTPS on loopback from the
log files of process-backed pods. The API server proxies to it (node address ``InternalIP``, port from
the Node's ``daemonEndpoints``); it checks no client credentials (loopback only, test infrastructure)."""

from __future__ import annotations

import http.server
import ssl
import subprocess
import threading
import time
import urllib.parse
from pathlib import Path


def ensure_certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed serving certificate for the node (the API server does not verify it by default)."""
    cert, key = directory / "kubelet.crt", directory / "kubelet.key"
    if not cert.exists() or not key.exists():
        directory.mkdir(parents=True, exist_ok=True)
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "3650",
                        "-subj", "/CN=bluegreen-node", "-addext", "subjectAltName=IP:127.0.0.1",
                        "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return cert, key


def log_files(pods_dir: Path, namespace: str, pod: str, container: str) -> list[Path]:
    """The container's log files, oldest run first."""
    runs = [d / "logs" / container for d in pods_dir.glob(f"{namespace}_{pod}_*")]
    files = [f for d in runs if d.is_dir() for f in d.glob("*.log")]
    return sorted(files, key=lambda f: int(f.stem))


class Handler(http.server.BaseHTTPRequestHandler):
    pods_dir: Path

    def do_GET(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        parts = url.path.strip("/").split("/")
        query = urllib.parse.parse_qs(url.query)
        if len(parts) != 4 or parts[0] != "containerLogs":
            self.send_error(404, "only /containerLogs/<namespace>/<pod>/<container> is served")
            return
        files = log_files(self.pods_dir, parts[1], parts[2], parts[3])
        want_previous = query.get("previous", ["false"])[0] == "true"
        if len(files) < (2 if want_previous else 1):
            which = "previous terminated" if want_previous else ""
            self.send_error(404, f'{which} container "{parts[3]}" in pod "{parts[2]}" has no logs')
            return
        path = files[-2] if want_previous else files[-1]
        data = path.read_bytes()
        if "tailLines" in query:
            lines = data.splitlines(keepends=True)
            data = b"".join(lines[-int(query["tailLines"][0]):]) if int(query["tailLines"][0]) else b""
        if "limitBytes" in query:
            data = data[: int(query["limitBytes"][0])]
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.end_headers()
        self.wfile.write(data)
        if query.get("follow", ["false"])[0] == "true" and not want_previous:
            self._follow(path, path.stat().st_size)

    def _follow(self, path: Path, offset: int) -> None:
        """Stream what is appended until the run's file is superseded or removed."""
        while True:
            try:
                with open(path, "rb") as log:
                    log.seek(offset)
                    chunk = log.read()
            except OSError:
                return
            if chunk:
                offset += len(chunk)
                self.wfile.write(chunk)
                self.wfile.flush()
            elif path.parent.is_dir() and max(int(f.stem) for f in path.parent.glob("*.log")) > int(path.stem):
                return
            time.sleep(0.2)

    def log_message(self, *args: object) -> None:
        pass


def serve(pods_dir: Path, cert_dir: Path) -> int:
    """Start the server in a thread; returns its port on 127.0.0.1."""
    cert, key = ensure_certificate(cert_dir)
    handler = type("LogHandler", (Handler,), {"pods_dir": pods_dir})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True, name="kubelet-logs").start()
    return int(server.server_address[1])
