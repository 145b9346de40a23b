#!/usr/bin/env bash
# Fetch Debian's `prometheus` package at the version pinned in versions.env and
# unpack it into the cache, without installing it: no dpkg database entry, no
# system user, no service. Re-running is a no-op once the binary is there.
#
# Debian builds Prometheus without Kubernetes service discovery (client-go is
# not packaged), so devstack discovers pods itself and hands Prometheus a
# file_sd file (hack/devstack/prometheus.py).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=versions.env
source "$here/versions.env"

cache="${FRESHET_CACHE:-$HOME/.cache/freshet}"
dest="$cache/prometheus-$PROMETHEUS_DEB_VERSION"
if [[ -x "$dest/usr/bin/prometheus" ]]; then
  echo "prometheus $PROMETHEUS_DEB_VERSION cached in $dest"
  exit 0
fi

candidate() { apt-cache policy prometheus 2>/dev/null | awk '/Candidate:/ {print $2}'; }
cand="$(candidate)"
if [[ -z "$cand" || "$cand" == "(none)" ]]; then
  echo "no package lists know prometheus yet; running apt-get update"
  apt-get update -qq
  cand="$(candidate)"
fi
if [[ "$cand" != "$PROMETHEUS_DEB_VERSION" ]]; then
  echo "error: apt's candidate for prometheus is '${cand:-none}', but hack/versions.env pins" >&2
  echo "       PROMETHEUS_DEB_VERSION=$PROMETHEUS_DEB_VERSION; update the pin (and docs/development.md)" >&2
  echo "       after checking the new version works with hack/devstack/prometheus.py" >&2
  echo "       (or, if the lists are stale, run apt-get update first)" >&2
  exit 1
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# As root, apt downloads as its sandbox user, who must be able to write here
# (otherwise it warns and downloads as root anyway).
if [[ $(id -u) == 0 ]] && id _apt >/dev/null 2>&1; then chown _apt "$work"; fi
(cd "$work" && apt-get download -q "prometheus=$PROMETHEUS_DEB_VERSION")
deb=("$work"/prometheus_*.deb)
got="$(dpkg-deb -f "${deb[0]}" Version)"
if [[ "$got" != "$PROMETHEUS_DEB_VERSION" ]]; then
  echo "error: downloaded prometheus $got, expected $PROMETHEUS_DEB_VERSION" >&2
  exit 1
fi
# Unpack next to the destination and rename, so an interrupted run leaves no
# half-populated directory that the check above would take for done.
mkdir -p "$cache"
tmp="$(mktemp -d "$cache/.prometheus.XXXXXX")"
dpkg-deb -x "${deb[0]}" "$tmp"
"$tmp/usr/bin/prometheus" --version >/dev/null
rm -rf "$dest"
mv "$tmp" "$dest"
chmod 0755 "$dest"
"$dest/usr/bin/prometheus" --version 2>&1 | head -1
echo "prometheus $PROMETHEUS_DEB_VERSION unpacked into $dest"
