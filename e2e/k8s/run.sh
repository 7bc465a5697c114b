#!/usr/bin/env bash
# Kubernetes end-to-end suite for a real cluster (kind, or whatever KUBECONFIG points at):
# installs the chart, applies a 3-broker Cluster, produces and consumes through the bootstrap
# Service, rolls a config change one broker at a time, scales 3 -> 5 -> 3, applies a Topic and
# a User, and cleans up.
# With no reachable cluster it prints "no Kubernetes cluster available, skipped" and exits 0.
#
# Images: STRAIT_OPERATOR_IMAGE and STRAIT_BROKER_IMAGE (repository:tag) must be pullable by the
# cluster, or, on kind, are built from operator/images/*.Dockerfile and loaded when unset.
# STRAIT_E2E_NAMESPACE (default strait-e2e) is created and deleted by the suite.
set -euo pipefail

cd "$(dirname "$0")/../.."
NS="${STRAIT_E2E_NAMESPACE:-strait-e2e}"
OPERATOR_NS="$NS-operator"
WAIT="${STRAIT_E2E_TIMEOUT:-600s}"
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

cleanup() {
    step "cleanup"
    "$KUBECTL" delete namespace "$NS" --ignore-not-found --wait=false >/dev/null 2>&1 || true
    "$HELM" uninstall strait --namespace "$OPERATOR_NS" >/dev/null 2>&1 || true
    "$KUBECTL" delete namespace "$OPERATOR_NS" --ignore-not-found --wait=false >/dev/null 2>&1 || true
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

step "install the chart"
"$KUBECTL" create namespace "$OPERATOR_NS" --dry-run=client -o yaml | "$KUBECTL" apply -f -
"$KUBECTL" create namespace "$NS" --dry-run=client -o yaml | "$KUBECTL" apply -f -
"$HELM" upgrade --install strait charts/strait --namespace "$OPERATOR_NS" --wait --timeout "$WAIT" \
    --set image.repository="${OPERATOR_IMAGE%:*}" --set image.tag="${OPERATOR_IMAGE##*:}" \
    --set image.pullPolicy=IfNotPresent --set "watchNamespaces={$NS}"
"$KUBECTL" wait --for=condition=Established crd/clusters.strait.dev crd/topics.strait.dev crd/users.strait.dev --timeout=60s

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
wait_for cluster/e2e '{.status.readyReplicas}' 3
"$KUBECTL" -n "$NS" wait cluster/e2e --for=condition=Ready --timeout="$WAIT"
"$KUBECTL" -n "$NS" get cluster,statefulsets,pods -o wide

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
EXTERNAL="$("$KUBECTL" -n "$NS" get cluster e2e -o jsonpath='{.status.listeners[?(@.name=="ext")].bootstrapServers}')"
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
"$KUBECTL" -n "$NS" patch cluster e2e --type merge -p '{"spec":{"config":{"log.retention.ms":"86400000"}}}'
# `kubectl wait --for=delete` also ends when the name comes back with a new uid.
for pod in "${before[@]}"; do
    "$KUBECTL" -n "$NS" wait "$pod" --for=delete --timeout="$WAIT"
done
"$KUBECTL" -n "$NS" wait pods -l "$BROKERS" --for=condition=Ready --timeout="$WAIT"
"$KUBECTL" -n "$NS" wait cluster/e2e --for=condition=Ready --timeout="$WAIT"
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
"$KUBECTL" -n "$NS" scale cluster/e2e --replicas=5
wait_for cluster/e2e '{.status.readyReplicas}' 5
"$KUBECTL" -n "$NS" wait cluster/e2e --for=condition=Ready --timeout="$WAIT"

step "scale 5 -> 3 (partitions move off the leaving brokers first)"
"$KUBECTL" -n "$NS" scale cluster/e2e --replicas=3
wait_for cluster/e2e '{.status.replicas}' 3
"$KUBECTL" -n "$NS" wait cluster/e2e --for=condition=Ready --timeout="$WAIT"
"$KUBECTL" -n "$NS" get cluster e2e -o jsonpath='{range .status.conditions[*]}{.type}={.status} {.reason}{"\n"}{end}'

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
"$KUBECTL" -n "$NS" wait topic/orders --for=condition=Ready --timeout="$WAIT"
wait_for topic/orders '{.status.partitions}' 6

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
"$KUBECTL" -n "$NS" wait user/orders-app --for=condition=Ready --timeout="$WAIT"
"$KUBECTL" -n "$NS" get secret orders-app -o jsonpath='{.data.password}' | grep -q . ||
    { echo "no generated password Secret" >&2; exit 1; }

step "delete the Topic (the finalizer deletes it in Kafka)"
"$KUBECTL" -n "$NS" delete topic orders --timeout="$WAIT"

echo
echo "e2e/k8s: all steps passed"
