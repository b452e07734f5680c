#!/usr/bin/env bash
# Install the Debian packages the local control plane needs (idempotent, quiet when all is present).
set -euo pipefail

packages=(golang-1.19-go rsync etcd-server golang-github-modern-go-reflect2-dev
          openssl dpkg-dev git make ca-certificates)
# kubectl: Debian's 1.20 client unless some kubectl is already installed (it would conflict).
command -v kubectl >/dev/null 2>&1 || packages+=(kubernetes-client)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

src_list=/etc/apt/sources.list.d/bluegreen-src.sources
need_src=0
grep -rqs "^Types:.*deb-src" /etc/apt/sources.list.d/ /etc/apt/sources.list 2>/dev/null || need_src=1

if [ ${#missing[@]} -eq 0 ] && [ "$need_src" -eq 0 ]; then
  exit 0
fi

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"

if [ "$need_src" -eq 1 ]; then
  echo "cluster: adding a deb-src entry for bookworm ($src_list)"
  $sudo tee "$src_list" >/dev/null <<'SRC'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
fi

echo "cluster: apt-get update"
$sudo apt-get update -q >/dev/null
if [ ${#missing[@]} -gt 0 ]; then
  echo "cluster: installing ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi
