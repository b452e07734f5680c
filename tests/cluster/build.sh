#!/usr/bin/env bash
# Build kube-apiserver and kube-controller-manager v1.20.2 from Debian bookworm's `kubernetes` source
# package, once per machine, into a cache outside the checkout. Re-running with the binaries present is a
# no-op. Progress goes to stdout; the full build log goes to $CACHE/build.log.
set -euo pipefail

K8S_VERSION=v1.20.2
# The build id names the cache: bump its suffix whenever the patches below change (controlplane.py: K8S_BUILD).
K8S_BUILD=$K8S_VERSION-loopback1
CACHE=${BLUEGREEN_CACHE:-$HOME/.cache/bluegreen}/k8s-$K8S_BUILD
BIN=$CACHE/bin

if [ -x "$BIN/kube-apiserver" ] && [ -x "$BIN/kube-controller-manager" ]; then
  exit 0
fi

here=$(cd "$(dirname "$0")" && pwd)
"$here/install-deps.sh"

mkdir -p "$CACHE"
log=$CACHE/build.log
: >"$log"
work=$CACHE/src
rm -rf "$work"
mkdir -p "$work"
start=$(date +%s)

echo "cluster: downloading Debian's kubernetes source package (34 MB)"
(cd "$work" && apt-get source --download-only kubernetes >>"$log" 2>&1)
orig=$(ls "$work"/kubernetes_*.orig.tar.* | head -n 1)
echo "cluster: unpacking $(basename "$orig")"
mkdir -p "$work/go/src/k8s.io"
tar -xf "$orig" -C "$work/go/src/k8s.io"
top=$(find "$work/go/src/k8s.io" -mindepth 1 -maxdepth 1 -type d | head -n 1)
[ "$top" = "$work/go/src/k8s.io/kubernetes" ] || mv "$top" "$work/go/src/k8s.io/kubernetes"
k8s=$work/go/src/k8s.io/kubernetes

# The vendored reflect2 v1.0.1 predates Go 1.18 and breaks at run time; use Debian's 1.0.2 sources.
reflect2=$k8s/vendor/github.com/modern-go/reflect2
echo "cluster: replacing vendored reflect2 with Debian's 1.0.2"
rm -rf "$reflect2"
mkdir -p "$reflect2"
cp -r /usr/share/gocode/src/github.com/modern-go/reflect2/. "$reflect2/"

# The local node gives pods loopback IPs (127.244.0.0/16) so that many can listen on one port; upstream
# validation refuses loopback addresses in Endpoints and EndpointSlices (ValidateNonSpecialIP), so the
# endpoints controller could never list a pod. Allow loopback there, and nothing else.
validation=$k8s/pkg/apis/core/validation/validation.go
[ "$(grep -c 'if ip.IsLoopback() {' "$validation")" = 1 ] || { echo "cluster: loopback patch does not apply" >&2; exit 1; }
sed -i 's|if ip.IsLoopback() {|if false \&\& ip.IsLoopback() { // bluegreen: loopback pod IPs on the local node|' "$validation"
grep -q 'if false && ip.IsLoopback() {' "$validation"
echo "cluster: patched Endpoints validation to accept loopback pod IPs"

echo "cluster: compiling kube-apiserver and kube-controller-manager (about 9 minutes on 2 cores)"
(
  cd "$k8s"
  export GOPATH=$work/go GO111MODULE=off PATH=/usr/lib/go-1.19/bin:$PATH GOFLAGS= \
         KUBE_GIT_VERSION=$K8S_VERSION KUBE_GIT_TREE_STATE=clean GOCACHE=$CACHE/gocache
  make WHAT="cmd/kube-apiserver cmd/kube-controller-manager" >>"$log" 2>&1
) &
builder=$!
while kill -0 "$builder" 2>/dev/null; do
  sleep 30
  kill -0 "$builder" 2>/dev/null && echo "cluster: still compiling ($(( $(date +%s) - start ))s; last: $(tail -n 1 "$log" | cut -c1-100))"
done
if ! wait "$builder"; then
  echo "cluster: build failed; last lines of $log:" >&2
  tail -n 30 "$log" >&2
  exit 1
fi

mkdir -p "$BIN"
for b in kube-apiserver kube-controller-manager; do
  cp "$k8s/_output/local/bin/linux/amd64/$b" "$BIN/$b.tmp"
  mv "$BIN/$b.tmp" "$BIN/$b"
done
rm -rf "$work" "$CACHE/gocache"
echo "cluster: built $K8S_VERSION binaries in $(( $(date +%s) - start ))s into $BIN"
