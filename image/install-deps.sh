#!/usr/bin/env bash
# Install the Debian packages `make image` needs on the build machine: mmdebstrap (the Debian root filesystem),
# umoci (OCI image layout: layers, config), skopeo (the docker-archive and pushing to a registry), util-linux
# (unshare: the image tests run the root filesystem read-only as uid 65532) and podman (the tests `podman load`
# the archive; no daemon).
# Idempotent and quiet when everything is present; sudo only when not root.
set -euo pipefail

packages=(mmdebstrap umoci skopeo util-linux ca-certificates podman)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -gt 0 ] || exit 0

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "image: apt-get update"
$sudo apt-get update -q >/dev/null
echo "image: installing ${missing[*]}"
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
