#!/usr/bin/env bash
# Build the pinned MinIO server from its official Go module into the same cache
# bin dir as the kube binaries (see hack/build-kube.sh). Re-running is a no-op
# once the binary exists. Kept apart from build-kube.sh so that a MinIO build
# failure cannot cost the Kubernetes binaries; only the MinIO-flavoured S3 store
# (hack/devstack/s3store.py, flavour="minio") needs it.
#
# Upstream stopped publishing semver tags: its RELEASE.* tags are not valid Go
# versions, so MINIO_VERSION is a pseudo-version of the commit we pin. The binary
# carries one added file fixing notification streaming: see below.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=versions.env
source "$here/versions.env"

cache="${FRESHET_CACHE:-$HOME/.cache/freshet}"
bindir="$cache/kube-$KUBE_VERSION-etcd-$ETCD_VERSION/bin"
export GOMODCACHE="${GOMODCACHE_OVERRIDE:-$cache/go/mod}"
export GOCACHE="${GOCACHE_OVERRIDE:-$cache/go/build}"
export GOFLAGS="-buildvcs=false"
export CGO_ENABLED=0

# A marker next to the binary records which version it is, so bumping
# MINIO_VERSION rebuilds even though the bin dir is keyed by kube/etcd only.
# The suffix names the local patch (below); change it when the patch changes.
build_id="$MINIO_VERSION+flush"
stamp="$bindir/.minio-version"
if [[ -x "$bindir/minio" && "$(cat "$stamp" 2>/dev/null)" == "$build_id" ]]; then
  echo "minio cached in $bindir"
  exit 0
fi

start=$(date +%s)
mkdir -p "$bindir"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

module=github.com/minio/minio
# Version strings for `minio --version`, from the pseudo-version
# v0.0.0-YYYYMMDDhhmmss-<12 hex commit>.
ts="$(echo "$MINIO_VERSION" | cut -d- -f2)"
commit="$(echo "$MINIO_VERSION" | cut -d- -f3)"
when="${ts:0:4}-${ts:4:2}-${ts:6:2}T${ts:8:2}:${ts:10:2}:${ts:12:2}Z"
ldflags="-s -w"
ldflags+=" -X $module/cmd.Version=$when -X $module/cmd.CopyrightYear=${ts:0:4}"
ldflags+=" -X $module/cmd.ReleaseTag=DEVELOPMENT.${when//:/-}"
ldflags+=" -X $module/cmd.CommitID=$commit -X $module/cmd.ShortCommitID=$commit"

echo "resolving minio $MINIO_VERSION..."
src="$(go mod download -json "$module@$MINIO_VERSION" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')"
[[ -d "$src" ]] || { echo "go mod download gave no source dir for $module@$MINIO_VERSION" >&2; exit 1; }

# Upstream bug, never fixed there (the repository is unmaintained): commit
# 52eee5a2f (PR #21651, Oct 2025) wraps every S3 response in trackingResponseWriter,
# which lacks Flush, so xhttp.Flush is a no-op and ListenBucketNotification holds
# events in the server's 4 KiB write buffer: a single put is never delivered.
# We build the pinned module source, unchanged, plus one added file that gives the
# wrapper a Flush (the fix forks of MinIO carry). Building the copy as the main
# module keeps its own go.mod/go.sum, replace directives included. If a future
# MINIO_VERSION defines Flush itself, the build fails on the duplicate method:
# drop the patch then.
cp -R "$src" "$work/src"
chmod -R u+w "$work/src"
cat >"$work/src/cmd/zz_freshet_flush.go" <<'GO'
package cmd

import "net/http"

// Flush forwards to the wrapped writer, so streaming handlers such as
// ListenBucketNotification reach the client. Added by freshet's build-minio.sh.
func (w *trackingResponseWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}
GO
echo "building minio..."
(cd "$work/src" && go build -trimpath -ldflags "$ldflags" -o "$work/minio" .)

# Move into place only once complete, so an interrupted build never leaves a
# half-written binary that the cache check above would accept.
mv "$work/minio" "$bindir/minio"
echo "$build_id" >"$stamp"
end=$(date +%s)
echo "built minio $MINIO_VERSION into $bindir in $((end - start))s"
