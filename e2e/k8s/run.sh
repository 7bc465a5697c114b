#!/usr/bin/env bash
# Kubernetes end-to-end suite for a real cluster (kind, or whatever KUBECONFIG points at):
# installs the CRDs (server-side apply, field manager strait-crds, as docs/install.md says) and
# the chart, applies a 3-broker Cluster, produces and consumes through the bootstrap Service,
# rolls a config change one broker at a time, scales 3 -> 5 -> 3, applies a Topic and a User,
# deletes a Topic and a User whose Cluster does not exist, and cleans up without leaving a
# finalizer behind (Topics and Users go first, while the operator and their Cluster still run;
# one that does not go fails the suite).
# With no reachable cluster it prints "no Kubernetes cluster available, skipped" and exits 0.
#
# Images: STRAIT_OPERATOR_IMAGE and STRAIT_BROKER_IMAGE (repository:tag) must be pullable by the
# cluster, or, on kind, are built from operator/images/*.Dockerfile and loaded when unset.
# STRAIT_E2E_NAMESPACE (default strait-e2e) is created and deleted by the suite. Resources are
# named in full (clusters.strait.dev): a bare `cluster` may be another API group's kind.
set -euo pipefail

cd "$(dirname "$0")/../.."
NS="${STRAIT_E2E_NAMESPACE:-strait-e2e}"
OPERATOR_NS="$NS-operator"
WAIT="${STRAIT_E2E_TIMEOUT:-600s}"
CLEANUP_SECONDS="${STRAIT_E2E_CLEANUP_TIMEOUT:-300}"
BIN="$(bash charts/tools.sh 2>/dev/null)" || BIN=""
KUBECTL="$(command -v kubectl || echo "$BIN/kubectl")"
HELM="$BIN/helm"
[ -x "$HELM" ] || HELM="$(command -v helm || echo helm)"

if [ ! -x "$KUBECTL" ] || ! "$KUBECTL" version --request-timeout=5s >/dev/null 2>&1; then
    echo "e2e/k8s: no Kubernetes cluster available, skipped"
    exit 0
fi
echo "e2e/k8s: using context $("$KUBECTL" config current-context 2>/dev/null || echo '(in-cluster)')"

step() { echo; echo "==> $*"; }

# Polls (bounded by $CLEANUP_SECONDS) until `kubectl get $2` in namespace $1 lists nothing.
wait_gone() {
    local deadline=$((SECONDS + CLEANUP_SECONDS))
    while [ -n "$("$KUBECTL" -n "$1" get "$2" -o name --ignore-not-found 2>/dev/null)" ]; do
        [ "$SECONDS" -lt "$deadline" ] || return 1
        sleep 2
    done
}

# Deletes in the order that leaves no finalizer behind: Topics and Users first, while the
# operator and their Cluster still run to clean up in Kafka, then the Cluster, the namespace,
# the chart. A Topic or User that outlives the wait is a bug: the suite fails, after dropping the
# finalizers so that the namespace can still go. The CRDs stay (deleting them would delete every
# Strait object in the cluster).
cleanup() {
    local status=$? failed=0 objects
    set +e
    step "cleanup"
    if "$KUBECTL" get namespace "$NS" >/dev/null 2>&1; then
        "$KUBECTL" -n "$NS" delete topics.strait.dev,users.strait.dev --all --wait=false
        if ! wait_gone "$NS" topics.strait.dev,users.strait.dev; then
            echo "e2e/k8s: FAIL: Topics/Users still there after ${CLEANUP_SECONDS}s (finalizers):" >&2
            "$KUBECTL" -n "$NS" get topics.strait.dev,users.strait.dev -o yaml >&2
            objects="$("$KUBECTL" -n "$NS" get topics.strait.dev,users.strait.dev -o name)"
            for obj in $objects; do
                "$KUBECTL" -n "$NS" patch "$obj" --type merge -p '{"metadata":{"finalizers":null}}'
            done
            failed=1
        fi
        "$KUBECTL" -n "$NS" delete clusters.strait.dev --all --wait=false
        wait_gone "$NS" clusters.strait.dev || { echo "e2e/k8s: FAIL: Cluster not deleted" >&2; failed=1; }
        "$KUBECTL" delete namespace "$NS" --wait=false
        wait_gone default "namespace/$NS" || { echo "e2e/k8s: FAIL: namespace $NS still there" >&2; failed=1; }
    fi
    "$HELM" uninstall strait --namespace "$OPERATOR_NS" --wait >/dev/null 2>&1
    "$KUBECTL" delete namespace "$OPERATOR_NS" --ignore-not-found --wait=false >/dev/null 2>&1
    if [ "$failed" -ne 0 ] && [ "$status" -eq 0 ]; then
        exit 1
    fi
}
trap cleanup EXIT

# Waits (bounded by $WAIT) until jsonpath $2 of object $1 in $NS equals $3.
wait_for() {
    "$KUBECTL" -n "$NS" wait "$1" --for="jsonpath=$2=$3" --timeout="$WAIT"
}

# Images: given, or built and loaded into kind.
OPERATOR_IMAGE="${STRAIT_OPERATOR_IMAGE:-}"
BROKER_IMAGE="${STRAIT_BROKER_IMAGE:-}"
if [ -z "$OPERATOR_IMAGE" ] || [ -z "$BROKER_IMAGE" ]; then
    if command -v kind >/dev/null 2>&1 && command -v docker >/dev/null 2>&1; then
        OPERATOR_IMAGE="strait-operator:e2e"
        BROKER_IMAGE="strait-broker:e2e"
        step "build images and load them into kind"
        docker build -q -f operator/images/operator.Dockerfile -t "$OPERATOR_IMAGE" .
        docker build -q -f operator/images/broker.Dockerfile -t "$BROKER_IMAGE" .
        kind load docker-image "$OPERATOR_IMAGE" "$BROKER_IMAGE" --name "${KIND_CLUSTER_NAME:-kind}"
    else
        echo "e2e/k8s: set STRAIT_OPERATOR_IMAGE and STRAIT_BROKER_IMAGE (or install kind and docker)" >&2
        exit 1
    fi
fi

# Zones: the nodes' topology.kubernetes.io/zone labels; unlabeled test clusters (kind) get
# zone-a/b/c round robin.
mapfile -t zones < <("$KUBECTL" get nodes -o jsonpath='{range .items[*]}{.metadata.labels.topology\.kubernetes\.io/zone}{"\n"}{end}' | sed '/^$/d' | sort -u)
if [ "${#zones[@]}" -eq 0 ]; then
    step "label nodes with zones"
    names=(zone-a zone-b zone-c)
    i=0
    for node in $("$KUBECTL" get nodes -o name); do
        "$KUBECTL" label --overwrite "$node" "topology.kubernetes.io/zone=${names[i % 3]}"
        i=$((i + 1))
    done
    mapfile -t zones < <("$KUBECTL" get nodes -o jsonpath='{range .items[*]}{.metadata.labels.topology\.kubernetes\.io/zone}{"\n"}{end}' | sort -u)
fi
zone_list="$(printf '"%s",' "${zones[@]}")"
zone_list="[${zone_list%,}]"
echo "zones: $zone_list"

step "install the CRDs (one field manager, docs/install.md) and the chart"
# The API server refuses a CRD here whose CEL rules exceed its cost budget.
"$KUBECTL" apply --server-side --field-manager=strait-crds --force-conflicts -f crds/
"$KUBECTL" wait --for=condition=Established crd/clusters.strait.dev crd/topics.strait.dev crd/users.strait.dev --timeout=60s
# The documented upgrade command for a packaged chart (CRDs taken from the chart) applies too.
"$HELM" show crds charts/strait |
    "$KUBECTL" apply --server-side --field-manager=strait-crds --force-conflicts --dry-run=server -f -
"$KUBECTL" create namespace "$OPERATOR_NS" --dry-run=client -o yaml | "$KUBECTL" apply -f -
"$KUBECTL" create namespace "$NS" --dry-run=client -o yaml | "$KUBECTL" apply -f -
"$HELM" upgrade --install strait charts/strait --namespace "$OPERATOR_NS" --wait --timeout "$WAIT" \
    --skip-crds \
    --set image.repository="${OPERATOR_IMAGE%:*}" --set image.tag="${OPERATOR_IMAGE##*:}" \
    --set image.pullPolicy=IfNotPresent --set "watchNamespaces={$NS}"

step "apply a 3-broker Cluster"
"$KUBECTL" -n "$NS" apply -f - <<YAML
apiVersion: strait.dev/v1alpha1
kind: Cluster
metadata:
  name: e2e
spec:
  image: $BROKER_IMAGE
  replicas: 3
  zones: $zone_list
  storage:
    size: 1Gi
    deleteClaim: true
  config:
    num.partitions: "3"
  listeners:
    - name: plain
      port: 9092
      type: internal
    - name: ext
      port: 9094
      type: nodeport
YAML
wait_for clusters.strait.dev/e2e '{.status.readyReplicas}' 3
"$KUBECTL" -n "$NS" wait clusters.strait.dev/e2e --for=condition=Ready --timeout="$WAIT"
"$KUBECTL" -n "$NS" get clusters.strait.dev,statefulsets,pods -o wide

step "produce and consume through the bootstrap Service"
BOOTSTRAP="e2e-bootstrap.$NS.svc:9092"
seq 1 100 | sed 's/^/message-/' >/tmp/strait-e2e-messages.txt
"$KUBECTL" -n "$NS" run kcat-produce --rm -i --restart=Never --image=edenhill/kcat:1.7.1 \
    --pod-running-timeout="$WAIT" -- -b "$BOOTSTRAP" -P -t smoke </tmp/strait-e2e-messages.txt
got="$("$KUBECTL" -n "$NS" run kcat-consume --rm -i --restart=Never --image=edenhill/kcat:1.7.1 \
    --pod-running-timeout="$WAIT" -- -b "$BOOTSTRAP" -C -t smoke -o beginning -e -q -c 100 | grep -c '^message-' || true)"
[ "$got" -eq 100 ] || { echo "consumed $got of 100 messages" >&2; exit 1; }
echo "consumed 100 of 100 messages"

step "the nodeport listener advertises node IPs and nodePorts, and they carry traffic"
EXTERNAL="$("$KUBECTL" -n "$NS" get clusters.strait.dev e2e -o jsonpath='{.status.listeners[?(@.name=="ext")].bootstrapServers}')"
case "$EXTERNAL" in
    "" | *.svc*) echo "no external bootstrap addresses in status: '$EXTERNAL'" >&2; exit 1 ;;
esac
echo "external bootstrap: $EXTERNAL"
brokers="$("$KUBECTL" -n "$NS" run kcat-metadata --rm -i --restart=Never --image=edenhill/kcat:1.7.1 \
    --pod-running-timeout="$WAIT" -- -b "$EXTERNAL" -L -t smoke | grep -E '^ +broker [0-9]+ at ' || true)"
echo "$brokers"
[ "$(echo "$brokers" | grep -c ' at ')" -eq 3 ] || { echo "expected 3 brokers in the metadata" >&2; exit 1; }
if echo "$brokers" | grep -q '\.svc'; then
    echo "brokers advertise in-cluster names on the nodeport listener" >&2; exit 1
fi
got="$("$KUBECTL" -n "$NS" run kcat-external --rm -i --restart=Never --image=edenhill/kcat:1.7.1 \
    --pod-running-timeout="$WAIT" -- -b "$EXTERNAL" -C -t smoke -o beginning -e -q -c 100 | grep -c '^message-' || true)"
[ "$got" -eq 100 ] || { echo "consumed $got of 100 messages through $EXTERNAL" >&2; exit 1; }

step "a config change restarts one broker at a time across the zones"
BROKERS="strait.dev/cluster=e2e"
mapfile -t before < <("$KUBECTL" -n "$NS" get pods -l "$BROKERS" -o name)
"$KUBECTL" -n "$NS" patch clusters.strait.dev e2e --type merge -p '{"spec":{"config":{"log.retention.ms":"86400000"}}}'
# `kubectl wait --for=delete` also ends when the name comes back with a new uid.
for pod in "${before[@]}"; do
    "$KUBECTL" -n "$NS" wait "$pod" --for=delete --timeout="$WAIT"
done
"$KUBECTL" -n "$NS" wait pods -l "$BROKERS" --for=condition=Ready --timeout="$WAIT"
"$KUBECTL" -n "$NS" wait clusters.strait.dev/e2e --for=condition=Ready --timeout="$WAIT"
# One at a time: each recreated pod was created after the one before it became Ready.
"$KUBECTL" -n "$NS" get pods -l "$BROKERS" -o json | python3 -c '
import json, sys
pods = json.load(sys.stdin)["items"]
rows = sorted(
    (p["metadata"]["creationTimestamp"],
     next(c["lastTransitionTime"] for c in p["status"]["conditions"] if c["type"] == "Ready"),
     p["metadata"]["name"])
    for p in pods)
for (created, ready, name), (next_created, _, next_name) in zip(rows, rows[1:]):
    if next_created < ready:
        sys.exit(f"{next_name} was created at {next_created}, before {name} was ready at {ready}")
print("restart order:", " ".join(r[2] for r in rows))
'

step "scale 3 -> 5"
"$KUBECTL" -n "$NS" scale clusters.strait.dev/e2e --replicas=5
wait_for clusters.strait.dev/e2e '{.status.readyReplicas}' 5
"$KUBECTL" -n "$NS" wait clusters.strait.dev/e2e --for=condition=Ready --timeout="$WAIT"

step "scale 5 -> 3 (partitions move off the leaving brokers first)"
"$KUBECTL" -n "$NS" scale clusters.strait.dev/e2e --replicas=3
wait_for clusters.strait.dev/e2e '{.status.replicas}' 3
"$KUBECTL" -n "$NS" wait clusters.strait.dev/e2e --for=condition=Ready --timeout="$WAIT"
"$KUBECTL" -n "$NS" get clusters.strait.dev e2e -o jsonpath='{range .status.conditions[*]}{.type}={.status} {.reason}{"\n"}{end}'

step "apply a Topic"
"$KUBECTL" -n "$NS" apply -f - <<'YAML'
apiVersion: strait.dev/v1alpha1
kind: Topic
metadata:
  name: orders
spec:
  cluster: {name: e2e}
  partitions: 6
  replicas: 3
  config:
    retention.ms: "3600000"
YAML
"$KUBECTL" -n "$NS" wait topics.strait.dev/orders --for=condition=Ready --timeout="$WAIT"
wait_for topics.strait.dev/orders '{.status.partitions}' 6

step "apply a User"
"$KUBECTL" -n "$NS" apply -f - <<'YAML'
apiVersion: strait.dev/v1alpha1
kind: User
metadata:
  name: orders-app
spec:
  cluster: {name: e2e}
  authentication: {type: scram-sha-512}
  authorization:
    type: simple
    acls:
      - resource: {type: topic, name: orders}
        operations: [Read, Write, Describe]
YAML
"$KUBECTL" -n "$NS" wait users.strait.dev/orders-app --for=condition=Ready --timeout="$WAIT"
"$KUBECTL" -n "$NS" get secret orders-app -o jsonpath='{.data.password}' | grep -q . ||
    { echo "no generated password Secret" >&2; exit 1; }

step "delete the Topic (the finalizer deletes it in Kafka)"
"$KUBECTL" -n "$NS" delete topics.strait.dev orders --timeout="$WAIT"

step "a Topic and a User of a Cluster that does not exist go when deleted (nothing to clean)"
"$KUBECTL" -n "$NS" apply -f - <<'YAML'
apiVersion: strait.dev/v1alpha1
kind: Topic
metadata:
  name: orphan
spec:
  cluster: {name: nope}
  partitions: 1
  replicas: 1
---
apiVersion: strait.dev/v1alpha1
kind: User
metadata:
  name: orphan
spec:
  cluster: {name: nope}
YAML
"$KUBECTL" -n "$NS" delete topics.strait.dev/orphan users.strait.dev/orphan --timeout="$WAIT"

echo
echo "e2e/k8s: all steps passed"
