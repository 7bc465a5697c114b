{{/* Full name of the release's objects. */}}
{{- define "strait.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "strait.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}-operator
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "strait.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}-operator
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "strait.serviceAccountName" -}}
{{- default (include "strait.fullname" .) .Values.serviceAccount.name -}}
{{- end -}}

{{/* Rules the operator needs in a watched namespace. */}}
{{- define "strait.namespacedRules" -}}
- apiGroups: ["strait.dev"]
  resources: ["clusters", "topics", "users", "mirrors"]
  verbs: ["get", "list", "watch", "patch", "update"]
- apiGroups: ["strait.dev"]
  resources: ["clusters/status", "topics/status", "users/status", "mirrors/status"]
  verbs: ["get", "patch", "update"]
{{- /* Secrets: Users' generated passwords; a TLS Cluster's CA (created once, then read), its
public certificate and the brokers' certificates (applied). */}}
- apiGroups: [""]
  resources: ["configmaps", "serviceaccounts", "secrets"]
  verbs: ["get", "list", "watch", "create", "patch"]
{{- /* Services: delete for the per-broker and bootstrap Services of removed brokers and
listeners (the operator picks only its own, by labels, name and owner reference). */}}
- apiGroups: [""]
  resources: ["services"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
{{- /* Claims: patch to grow them in place; delete for removed brokers' claims with
storage.deleteClaim. */}}
- apiGroups: [""]
  resources: ["persistentvolumeclaims"]
  verbs: ["get", "list", "patch", "delete"]
{{- /* Rolling restarts: the operator lists broker pods and evicts one at a time (an eviction
honours the PodDisruptionBudget); it never deletes pods directly. */}}
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["list"]
- apiGroups: [""]
  resources: ["pods/eviction"]
  verbs: ["create"]
{{- /* StatefulSets: delete for the empty StatefulSet of a zone removed from spec.zones (only the
Cluster's own, by labels, name and owner reference), and to recreate a zone's StatefulSet with a
new volume claim template (orphaning its pods, which keep running). */}}
- apiGroups: ["apps"]
  resources: ["statefulsets"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
{{- /* Deployments: the strait-mirror processes of Mirrors (applied, owned by the Mirror). */}}
- apiGroups: ["apps"]
  resources: ["deployments"]
  verbs: ["get", "list", "watch", "create", "patch"]
{{- /* Jobs: a linked Mirror's failover Job (`strait-mirror --failover`, owned by the Mirror),
created once and watched; deleted when the failover is withdrawn before it completes. Its pods
are listed (above) for the failed attempts' messages. */}}
- apiGroups: ["batch"]
  resources: ["jobs"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: ["policy"]
  resources: ["poddisruptionbudgets"]
  verbs: ["get", "create", "patch"]
- apiGroups: ["monitoring.coreos.com"]
  resources: ["servicemonitors", "podmonitors"]
  verbs: ["get", "create", "patch"]
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- /* Core Events, read only: the StatefulSets' FailedCreate events say in the Cluster's Ready
condition why broker pods cannot be created. */}}
- apiGroups: [""]
  resources: ["events"]
  verbs: ["list"]
{{- end -}}
