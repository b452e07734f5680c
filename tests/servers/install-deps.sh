#!/usr/bin/env bash
# Install the Debian packages the loopback git servers of the integration tests need: sshd and ssh-keygen
# (SSH transport), git (git daemon, git http-backend), openssl (test CA and server certificates) and gnupg
# (OpenPGP signature tests), postgresql (the throwaway database server of tests/servers/postgres.py; its
# binaries live in /usr/lib/postgresql/<major>/bin, which that module finds), lua5.1, which runs the Argo CD
# health check of docs/conditions.md in a unit test, and prometheus, the server the metrics e2e test starts on
# loopback (tests/servers/prometheus.py) to scrape the operator. Idempotent and quiet when everything is present;
# sudo only when not root.
set -euo pipefail

packages=(openssh-server openssh-client git openssl gnupg gpgsm ca-certificates postgresql lua5.1 prometheus)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"

if [ ${#missing[@]} -gt 0 ]; then
  echo "servers: apt-get update"
  $sudo apt-get update -q >/dev/null
  echo "servers: installing ${missing[*]}"
  # policy-rc.d 101: do not start the system sshd, postgresql or prometheus service on install (the tests run their
  # own).
  policy=/usr/sbin/policy-rc.d
  added_policy=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null
    $sudo chmod 755 "$policy"
    added_policy=1
  fi
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
  [ "$added_policy" -eq 0 ] || $sudo rm -f "$policy"
fi

# sshd refuses to start without its privilege-separation directory (normally made by the service unit).
[ -d /run/sshd ] || { $sudo mkdir -p /run/sshd && $sudo chmod 0755 /run/sshd; }

# The PostgreSQL server binaries are not on $PATH on Debian; check they are where postgres.py looks.
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { echo "servers: PostgreSQL initdb not found" >&2; exit 1; }
