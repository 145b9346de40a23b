# Shared by build-kube.sh and build-node.sh: build binaries of k8s.io/kubernetes
# from a throwaway wrapper module.
#
# k8s.io/kubernetes replaces its staging modules with local paths, so it cannot be
# `go install`ed directly: the wrapper module pins every staging module to its
# published v0.X.Y twin, read from the pinned release's own go.mod (so a version
# bump that adds a staging module needs no edit here).
#
# kube_build WORKDIR BINDIR CMD...   e.g. kube_build "$work/kube" "$bindir" kubelet kube-proxy
# Needs KUBE_VERSION, GOMODCACHE and the Go environment set by the caller.
kube_build() {
  local dir="$1" out="$2"
  shift 2
  local staging_minor="v0.${KUBE_VERSION#v1.}"
  mkdir -p "$dir"
  (
    cd "$dir"
    [[ -f go.mod ]] || go mod init freshet.local/kubebuild >/dev/null 2>&1
    go mod edit -require="k8s.io/kubernetes@$KUBE_VERSION"
    go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" >/dev/null
    local kmod="$GOMODCACHE/cache/download/k8s.io/kubernetes/@v/$KUBE_VERSION.mod"
    local m
    for m in $(awk '/^replace|^\t?k8s.io\/[a-z0-9-]+ => \.\/staging/ {print $1}' "$kmod" | grep '^k8s.io/'); do
      go mod edit -replace="$m=$m@$staging_minor"
    done
    local ldflags="-s -w" pkg
    for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
      ldflags+=" -X $pkg.gitVersion=$KUBE_VERSION"
      ldflags+=" -X $pkg.gitMajor=1 -X $pkg.gitMinor=$(echo "$KUBE_VERSION" | cut -d. -f2)"
      ldflags+=" -X $pkg.gitTreeState=clean"
    done
    cat > tools.go <<'GO'
//go:build tools

package tools
GO
    local cmds=() c
    for c in "$@"; do cmds+=("k8s.io/kubernetes/cmd/$c"); done
    echo "resolving Kubernetes $KUBE_VERSION modules for $*..."
    go get "${cmds[@]/%/@$KUBE_VERSION}"
    echo "building $*..."
    go build -trimpath -ldflags "$ldflags" -o "$out/" "${cmds[@]}"
  )
}
