#!/usr/bin/env bash
# Checks the Helm chart and the CRDs without a Kubernetes cluster:
#   - `helm lint --strict` and `helm template --include-crds`, with the default values and with
#     ci/test-values.yaml (namespaced RBAC, ServiceMonitor, scheduling);
#   - every rendered manifest validated against the Kubernetes schemas (`kubernetes-validate
#     --strict`), which includes the CRDs as apiextensions.k8s.io/v1 objects;
#   - the chart's CRDs identical to crds/ (both written by crdgen);
#   - every file in docs/examples/ validated against its CRD's openAPIV3Schema
#     (`check-jsonschema`), and a broken example rejected (so the check can fail).
# Needs python3 with kubernetes-validate and check-jsonschema (e2e/setup.sh installs them);
# installs helm through charts/tools.sh.
set -euo pipefail

cd "$(dirname "$0")/.."
CHART=charts/strait
BIN="$(bash charts/tools.sh)"
HELM="$BIN/helm"
OUT="$(mktemp -d)"
trap 'rm -rf "$OUT"' EXIT
failures=0

fail() {
    echo "charts/test.sh: FAIL: $*" >&2
    failures=$((failures + 1))
}

echo "==> chart copies of the alert rules and dashboards are current"
bash charts/sync-monitoring.sh --check || fail "stale monitoring files in the chart"

echo "==> helm lint"
"$HELM" lint --strict "$CHART" || fail "helm lint (defaults)"
"$HELM" lint --strict "$CHART" -f "$CHART/ci/test-values.yaml" || fail "helm lint (ci/test-values.yaml)"

echo "==> helm template"
"$HELM" template strait "$CHART" --namespace strait-system --include-crds >"$OUT/default.yaml" ||
    fail "helm template (defaults)"
"$HELM" template strait "$CHART" --namespace strait-system --include-crds \
    -f "$CHART/ci/test-values.yaml" >"$OUT/ci.yaml" || fail "helm template (ci values)"

echo "==> split and validate rendered manifests"
python3 - "$OUT" <<'PY' || fail "rendered manifests do not have the expected kinds"
import os, sys, yaml
out = sys.argv[1]
expect = {
    "default.yaml": {"CustomResourceDefinition": 4, "Deployment": 1, "ServiceAccount": 1,
                     "ClusterRole": 1, "ClusterRoleBinding": 1, "Role": 1, "RoleBinding": 1,
                     "Service": 1},
    # Two watched namespaces: a Role and RoleBinding each, plus the leader-election pair.
    "ci.yaml": {"CustomResourceDefinition": 4, "Deployment": 1, "ServiceAccount": 1,
                "Role": 3, "RoleBinding": 3, "Service": 1, "ServiceMonitor": 1,
                "PrometheusRule": 1, "PodMonitor": 1, "ConfigMap": 1},
}
bad = False
for name, kinds in expect.items():
    docs = [d for d in yaml.safe_load_all(open(os.path.join(out, name))) if d]
    seen = {}
    os.makedirs(os.path.join(out, name + ".d"), exist_ok=True)
    for i, d in enumerate(docs):
        seen[d["kind"]] = seen.get(d["kind"], 0) + 1
        # ServiceMonitor is not a built-in kind; its shape is checked below.
        sub = "extra" if d["apiVersion"].startswith("monitoring.coreos.com/") else "k8s"
        os.makedirs(os.path.join(out, name + ".d", sub), exist_ok=True)
        with open(os.path.join(out, name + ".d", sub, f"{i:02d}-{d['kind']}.yaml"), "w") as f:
            yaml.safe_dump(d, f)
    if seen != kinds:
        print(f"{name}: kinds {seen}, expected {kinds}", file=sys.stderr)
        bad = True
    for d in docs:
        if d["kind"] == "ServiceMonitor":
            ep = d["spec"]["endpoints"][0]
            if ep.get("port") != "metrics" or not d["spec"]["selector"]["matchLabels"]:
                print(f"{name}: malformed ServiceMonitor {d}", file=sys.stderr)
                bad = True
        if d["kind"] == "PrometheusRule":
            # The chart ships exactly the rules in dashboards/alerts.yaml.
            shipped = yaml.safe_load(open("dashboards/alerts.yaml"))
            if d["spec"] != shipped:
                print(f"{name}: PrometheusRule differs from dashboards/alerts.yaml", file=sys.stderr)
                bad = True
        if d["kind"] == "PodMonitor":
            ep = d["spec"]["podMetricsEndpoints"][0]
            sel = d["spec"]["selector"]["matchLabels"]
            if ep.get("port") != "metrics" or sel.get("app.kubernetes.io/component") != "broker":
                print(f"{name}: malformed PodMonitor {d}", file=sys.stderr)
                bad = True
        if d["kind"] == "ConfigMap":
            import json
            dashboards = sorted(f for f in os.listdir("dashboards") if f.endswith(".json"))
            if d["metadata"]["labels"].get("grafana_dashboard") != "1" or sorted(d["data"]) != dashboards:
                print(f"{name}: dashboards ConfigMap {sorted(d['data'])} vs {dashboards}", file=sys.stderr)
                bad = True
            for f, body in d["data"].items():
                if json.loads(body) != json.load(open(os.path.join("dashboards", f))):
                    print(f"{name}: dashboard {f} differs from dashboards/{f}", file=sys.stderr)
                    bad = True
        if d["kind"] == "Deployment":
            c = d["spec"]["template"]["spec"]["containers"][0]
            env = {e["name"]: e for e in c["env"]}
            if name == "ci.yaml" and env["WATCH_NAMESPACES"]["value"] != "team-a,team-b":
                print(f"{name}: WATCH_NAMESPACES {env['WATCH_NAMESPACES']}", file=sys.stderr)
                bad = True
sys.exit(1 if bad else 0)
PY
for set in default.yaml ci.yaml; do
    kubernetes-validate --strict --quiet "$OUT/$set.d"/k8s/*.yaml || fail "kubernetes-validate $set"
done

echo "==> CRDs in the chart match crds/"
for f in crds/*.yaml; do
    cmp -s "$f" "$CHART/crds/$(basename "$f")" || fail "$CHART/crds/$(basename "$f") differs from $f (run crdgen)"
done

echo "==> docs/examples against their CRD schemas"
python3 - "$OUT" <<'PY' || fail "cannot extract CRD schemas"
import glob, json, os, sys, yaml
out = sys.argv[1]
for path in glob.glob("crds/*.yaml"):
    crd = yaml.safe_load(open(path))
    kind = crd["spec"]["names"]["kind"]
    for v in crd["spec"]["versions"]:
        schema = v["schema"]["openAPIV3Schema"]
        # OpenAPI's `nullable` becomes JSON Schema's null type so that both agree.
        def fix(node):
            if isinstance(node, dict):
                if node.get("nullable") and isinstance(node.get("type"), str):
                    node["type"] = [node["type"], "null"]
                for value in node.values():
                    fix(value)
            elif isinstance(node, list):
                for value in node:
                    fix(value)
        fix(schema)
        with open(os.path.join(out, f"{kind}-{v['name']}.schema.json"), "w") as f:
            json.dump(schema, f)
PY
shopt -s nullglob
examples=(docs/examples/*.yaml)
[ ${#examples[@]} -ge 3 ] || fail "expected at least 3 files in docs/examples"
for example in "${examples[@]}"; do
    kind_version="$(python3 -c 'import sys, yaml; d = yaml.safe_load(open(sys.argv[1])); print(d["kind"] + "-" + d["apiVersion"].split("/")[1])' "$example")"
    schema="$OUT/$kind_version.schema.json"
    if [ ! -f "$schema" ]; then
        fail "$example: no CRD for $kind_version"
        continue
    fi
    check-jsonschema --schemafile "$schema" "$example" || fail "$example does not match its CRD"
done
python3 - "$OUT" <<'PY'
import sys, yaml
d = yaml.safe_load(open("docs/examples/cluster.yaml"))
d["spec"]["replicas"] = 0
d["spec"]["listeners"][0]["type"] = "hostport"
yaml.safe_dump(d, open(sys.argv[1] + "/broken-cluster.yaml", "w"))
PY
if check-jsonschema --schemafile "$OUT/Cluster-v1alpha1.schema.json" "$OUT/broken-cluster.yaml" >/dev/null 2>&1; then
    fail "a Cluster with replicas 0 and listener type hostport passed schema validation"
fi

if [ "$failures" -gt 0 ]; then
    echo "charts/test.sh: $failures check(s) failed" >&2
    exit 1
fi
echo "charts/test.sh: ok"
