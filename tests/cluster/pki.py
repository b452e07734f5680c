"""Certificates, tokens and kubeconfigs of the local control plane, kept in one ``pki`` directory.

Created once per state directory (``pki/complete`` marks it done) and then only extended: the API server's
serving certificate is issued again when its subject alternative names change (a new Service CIDR), and a
token identity added to ``identities`` gets a token and a kubeconfig; the CA and the existing tokens stay,
so the kubeconfigs already handed out remain valid.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
from pathlib import Path

Identities = dict[str, tuple[str, str]]  # kubeconfig name -> (token user, groups)


def openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def issue_cert(pki: Path, name: str, subject: str, sans: str, usage: str) -> None:
    """Sign ``pki/<name>.crt`` with the local CA."""
    key, csr, crt, ext = (pki / f"{name}.{s}" for s in ("key", "csr", "crt", "ext"))
    ext.write_text(
        f"subjectAltName={sans}\nextendedKeyUsage={usage}\nkeyUsage=digitalSignature,keyEncipherment\n"
        if sans
        else f"extendedKeyUsage={usage}\nkeyUsage=digitalSignature,keyEncipherment\n"
    )
    openssl("genrsa", "-out", str(key), "2048")
    openssl("req", "-new", "-key", str(key), "-subj", subject, "-out", str(csr))
    openssl(
        "x509", "-req", "-in", str(csr), "-CA", str(pki / "ca.crt"), "-CAkey", str(pki / "ca.key"),
        "-CAcreateserial", "-days", "3650", "-sha256", "-extfile", str(ext), "-out", str(crt),
    )
    csr.unlink()
    ext.unlink()
    for path in (key, crt):
        os.chmod(path, 0o600)


def apiserver_sans(service_ip: str) -> str:
    """The serving certificate's names: localhost, the ``kubernetes`` Service's DNS names and ClusterIP."""
    names = ["localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"]
    names.append("kubernetes.default.svc.cluster.local")
    return ",".join([*(f"DNS:{n}" for n in names), "IP:127.0.0.1", f"IP:{service_ip}"])


def is_current(pki: Path, identities: Identities, sans: str) -> bool:
    """Whether ``ensure_pki`` would change nothing (so a running API server uses what is on disk)."""
    return (
        (pki / "complete").exists()
        and _read(pki / "apiserver.sans") == sans
        and all((pki / f"{name}.kubeconfig").exists() for name in identities)
    )


def ensure_pki(pki: Path, identities: Identities, sans: str, server: str) -> None:
    """Create what is missing: CA, etcd certificates and service-account keys once; then the serving
    certificate for ``sans`` and a token and kubeconfig per identity."""
    if not (pki / "complete").exists():
        _create_base(pki)
    if _read(pki / "apiserver.sans") != sans:
        print(f"cluster: issuing the API server certificate for {sans}", flush=True)
        issue_cert(pki, "apiserver", "/CN=kube-apiserver", sans, "serverAuth")
        (pki / "apiserver.sans").write_text(sans)
    if not all((pki / f"{name}.kubeconfig").exists() for name in identities):
        _ensure_tokens(pki, identities, server)


def _create_base(pki: Path) -> None:
    print("cluster: creating certificates and tokens", flush=True)
    shutil.rmtree(pki, ignore_errors=True)
    pki.mkdir(parents=True)
    os.chmod(pki, 0o700)
    openssl("genrsa", "-out", str(pki / "ca.key"), "2048")
    openssl(
        "req", "-x509", "-new", "-nodes", "-key", str(pki / "ca.key"), "-subj", "/CN=bluegreen-local-ca",
        "-days", "3650", "-sha256", "-out", str(pki / "ca.crt"),
    )
    issue_cert(pki, "etcd-server", "/CN=etcd", "DNS:localhost,IP:127.0.0.1", "serverAuth,clientAuth")
    issue_cert(pki, "etcd-client", "/CN=kube-apiserver-etcd-client", "", "clientAuth")
    openssl("genrsa", "-out", str(pki / "sa.key"), "2048")
    openssl("rsa", "-in", str(pki / "sa.key"), "-pubout", "-out", str(pki / "sa.pub"))
    for path in pki.iterdir():
        os.chmod(path, 0o600)
    (pki / "complete").write_text("ok\n")


def _ensure_tokens(pki: Path, identities: Identities, server: str) -> None:
    """A token and kubeconfig for each identity that has none; ``tokens.csv`` lists them all."""
    lines = []
    for name, (user, groups) in identities.items():
        kubeconfig = pki / f"{name}.kubeconfig"
        if kubeconfig.exists():
            token = str(json.loads(kubeconfig.read_text())["users"][0]["user"]["token"])
        else:
            token = secrets.token_hex(24)
            write_kubeconfig(pki, kubeconfig, server, user, token)
        lines.append(f"{token},{user},{user}" + (f',"{groups}"' if groups else ""))
    (pki / "tokens.csv").write_text("\n".join(lines) + "\n")
    os.chmod(pki / "tokens.csv", 0o600)


def write_kubeconfig(pki: Path, path: Path, server: str, user: str, token: str) -> None:
    """A kubeconfig (JSON is valid YAML) for one token identity against the local API server."""
    ca = (pki / "ca.crt").resolve()
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "bluegreen-local",
        "clusters": [
            {"name": "bluegreen-local", "cluster": {"server": server, "certificate-authority": str(ca)}}
        ],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": "bluegreen-local", "context": {"cluster": "bluegreen-local", "user": user}}],
    }
    path.write_text(json.dumps(doc, indent=2) + "\n")
    os.chmod(path, 0o600)


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None
