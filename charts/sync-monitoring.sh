#!/usr/bin/env bash
# Copies the alert rules and Grafana dashboards from dashboards/ into the chart (Helm can only
# package files inside the chart). `--check` fails when the chart's copies are stale.
set -euo pipefail
cd "$(dirname "$0")/.."
dst=charts/strait/files
if [ "${1:-}" = "--check" ]; then
    diff -r <(cd dashboards && cat alerts.yaml) "$dst/alerts.yaml" >/dev/null ||
        { echo "charts/strait/files/alerts.yaml is stale: run charts/sync-monitoring.sh" >&2; exit 1; }
    diff <(cd dashboards && ls ./*.json | sort) <(cd "$dst/dashboards" && ls ./*.json | sort) >/dev/null ||
        { echo "charts/strait/files/dashboards is stale: run charts/sync-monitoring.sh" >&2; exit 1; }
    for f in dashboards/*.json; do
        cmp -s "$f" "$dst/dashboards/$(basename "$f")" ||
            { echo "charts/strait/files/dashboards/$(basename "$f") is stale: run charts/sync-monitoring.sh" >&2; exit 1; }
    done
    exit 0
fi
mkdir -p "$dst/dashboards"
cp dashboards/alerts.yaml "$dst/alerts.yaml"
rm -f "$dst"/dashboards/*.json
cp dashboards/*.json "$dst/dashboards/"
