"""The local control plane's PKI (tests/cluster/pki.py) and Service CIDR check, with the real openssl."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "cluster"))
import pki

CONTROLPLANE = Path(__file__).resolve().parents[1] / "cluster" / "controlplane.py"
SERVER = "https://127.0.0.1:16443"


def sans_of(cert: Path) -> str:
    out = subprocess.run(["openssl", "x509", "-in", str(cert), "-noout", "-ext", "subjectAltName"],
                         check=True, capture_output=True, text=True).stdout
    return out.splitlines()[-1].strip()


def token(kubeconfig: Path) -> str:
    return str(json.loads(kubeconfig.read_text())["users"][0]["user"]["token"])


def test_a_new_service_ip_reissues_only_the_serving_cert_and_a_new_identity_only_adds_a_token(tmp_path: Path) -> None:
    directory = tmp_path / "pki"
    identities = {"admin": ("admin", "system:masters")}
    first = pki.apiserver_sans("127.96.0.1")
    pki.ensure_pki(directory, identities, first, SERVER)
    assert "IP Address:127.96.0.1" in sans_of(directory / "apiserver.crt")
    assert pki.is_current(directory, identities, first)
    ca, admin = (directory / "ca.crt").read_bytes(), token(directory / "admin.kubeconfig")

    second = pki.apiserver_sans("127.97.0.1")
    more = {**identities, "proxy": ("system:kube-proxy", "")}
    assert not pki.is_current(directory, identities, second)
    assert not pki.is_current(directory, more, first)
    pki.ensure_pki(directory, more, second, SERVER)

    assert pki.is_current(directory, more, second)
    names = sans_of(directory / "apiserver.crt")
    assert "IP Address:127.97.0.1" in names and "127.96.0.1" not in names
    assert (directory / "ca.crt").read_bytes() == ca
    assert token(directory / "admin.kubeconfig") == admin
    proxy = token(directory / "proxy.kubeconfig")
    assert (directory / "tokens.csv").read_text().splitlines() == [
        f'{admin},admin,admin,"system:masters"', f"{proxy},system:kube-proxy,system:kube-proxy"]
    verify = subprocess.run(["openssl", "verify", "-CAfile", str(directory / "ca.crt"),
                             str(directory / "apiserver.crt")], capture_output=True, text=True)
    assert verify.returncode == 0, verify.stdout + verify.stderr


def test_up_refuses_a_service_cidr_outside_loopback(tmp_path: Path) -> None:
    env = {**os.environ, "BLUEGREEN_CLUSTER_DIR": str(tmp_path), "BLUEGREEN_SERVICE_CIDR": "10.96.0.0/16"}
    result = subprocess.run([sys.executable, str(CONTROLPLANE), "up"], env=env, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode != 0
    assert "must be a /12 or smaller in 127.0.0.0/8" in result.stderr
    assert not (tmp_path / "pki").exists()  # refused before anything was created or started
