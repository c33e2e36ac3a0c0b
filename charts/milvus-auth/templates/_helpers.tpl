{{/* Names, labels and shared pod fragments of the milvus-auth chart. */}}

{{- define "milvus-auth.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Resource-name prefix; truncated so that suffixed names stay within 63 characters. */}}
{{- define "milvus-auth.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "milvus-auth.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "milvus-auth.labels" -}}
helm.sh/chart: {{ include "milvus-auth.chart" . }}
app.kubernetes.io/name: {{ include "milvus-auth.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: milvus-auth
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Selector labels of one component (call with dict "root" $ "component" "proxy"). */}}
{{- define "milvus-auth.selectorLabels" -}}
app.kubernetes.io/name: {{ include "milvus-auth.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "milvus-auth.componentLabels" -}}
{{ include "milvus-auth.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "milvus-auth.proxy.fullname" -}}
{{- printf "%s-proxy" (include "milvus-auth.fullname" .) }}
{{- end }}

{{/* The headless Service whose EndpointSlices list every proxy pod's internal port. */}}
{{- define "milvus-auth.proxy.internalService" -}}
{{- printf "%s-proxy-internal" (include "milvus-auth.fullname" .) }}
{{- end }}

{{- define "milvus-auth.operator.fullname" -}}
{{- printf "%s-operator" (include "milvus-auth.fullname" .) }}
{{- end }}

{{- define "milvus-auth.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "milvus-auth.operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "milvus-auth.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{- define "milvus-auth.internalTokenSecret" -}}
{{- default (printf "%s-internal-token" (include "milvus-auth.fullname" .)) .Values.internalToken.existingSecret }}
{{- end }}

{{- define "milvus-auth.rootPasswordSecret" -}}
{{- default (printf "%s-root-password" (include "milvus-auth.fullname" .)) .Values.proxy.rootPassword.existingSecret }}
{{- end }}

{{/*
The kopf peering name: operator.peering, or the operator's name when operator.replicas > 1
(a hot standby needs peering); empty runs standalone.
*/}}
{{- define "milvus-auth.operator.peering" -}}
{{- if .Values.operator.peering }}
{{- .Values.operator.peering }}
{{- else if gt (int .Values.operator.replicas) 1 }}
{{- include "milvus-auth.operator.fullname" . }}
{{- end }}
{{- end }}

{{/* The namespaces the operator watches when scope is namespaced. */}}
{{- define "milvus-auth.operator.namespaces" -}}
{{- if .Values.operator.watchNamespaces }}
{{- toJson .Values.operator.watchNamespaces }}
{{- else }}
{{- toJson (list .Release.Namespace) }}
{{- end }}
{{- end }}

{{/*
A random secret that survives upgrades: reuse the value already in the cluster (lookup),
generate one on first install. Call with dict "root" $ "name" <secret> "key" <key>.
*/}}
{{- define "milvus-auth.keptRandom" -}}
{{- $existing := lookup "v1" "Secret" .root.Release.Namespace .name }}
{{- if and $existing $existing.data (hasKey $existing.data .key) }}
{{- index $existing.data .key }}
{{- else }}
{{- /* ".Aa0": every class, so the value passes any passwordPolicy */}}
{{- printf "%s.Aa0" (randAlphaNum 40) | b64enc }}
{{- end }}
{{- end }}

{{- define "milvus-auth.secretVolumeMounts" -}}
- name: tmp
  mountPath: /tmp
- name: internal-token
  mountPath: /etc/milvus-auth/internal-token
  readOnly: true
{{- if .Values.etcd.auth.enabled }}
- name: etcd-auth
  mountPath: /etc/milvus-auth/etcd-auth
  readOnly: true
{{- end }}
{{- if .Values.etcd.tls.enabled }}
- name: etcd-tls
  mountPath: /etc/milvus-auth/etcd-tls
  readOnly: true
{{- end }}
{{- end }}

{{- define "milvus-auth.secretVolumes" -}}
- name: tmp
  emptyDir:
    sizeLimit: 64Mi
- name: internal-token
  secret:
    secretName: {{ include "milvus-auth.internalTokenSecret" . }}
    defaultMode: 0440
{{- if .Values.etcd.auth.enabled }}
- name: etcd-auth
  secret:
    secretName: {{ required "etcd.auth.existingSecret is required when etcd.auth.enabled" .Values.etcd.auth.existingSecret }}
    defaultMode: 0440
{{- end }}
{{- if .Values.etcd.tls.enabled }}
- name: etcd-tls
  secret:
    secretName: {{ required "etcd.tls.existingSecret is required when etcd.tls.enabled" .Values.etcd.tls.existingSecret }}
    defaultMode: 0440
{{- end }}
{{- end }}

{{- define "milvus-auth.metricsAnnotations" -}}
{{- if and .root.Values.metrics.enabled .root.Values.metrics.podAnnotations }}
prometheus.io/scrape: "true"
prometheus.io/port: {{ .port | quote }}
prometheus.io/path: /metrics
{{- end }}
{{- end }}

{{/* The operator's rules for MilvusUsers, MilvusRoles, MilvusAPIKeys and their Secrets, in every
watched namespace. */}}
{{- define "milvus-auth.operator.userRules" -}}
# kopf patches MilvusUsers (finalizer, its annotations) and their status.
- apiGroups: [auth.milvus.io]
  resources: [milvususers]
  verbs: [get, list, watch, patch]
- apiGroups: [auth.milvus.io]
  resources: [milvususers/status]
  verbs: [get, patch]
# MilvusRoles: the same as MilvusUsers (finalizer, annotations, status), no owned objects.
- apiGroups: [auth.milvus.io]
  resources: [milvusroles]
  verbs: [get, list, watch, patch]
- apiGroups: [auth.milvus.io]
  resources: [milvusroles/status]
  verbs: [get, patch]
# MilvusAPIKeys: the same again (the daemon's and the Secret watch's trigger annotations).
- apiGroups: [auth.milvus.io]
  resources: [milvusapikeys]
  verbs: [get, list, watch, patch]
- apiGroups: [auth.milvus.io]
  resources: [milvusapikeys/status]
  verbs: [get, patch]
# Generated Secrets carry an owner reference with blockOwnerDeletion to their MilvusUser or
# MilvusAPIKey.
- apiGroups: [auth.milvus.io]
  resources: [milvususers/finalizers, milvusapikeys/finalizers]
  verbs: [update]
# Password Secrets are read live by name, and watched: the watch asks the API server for
# Secrets labelled auth.milvus.io/watch=true only, but RBAC cannot narrow by label, and the
# names are the users' choice, so these verbs cover every Secret of the namespace.
- apiGroups: [""]
  resources: [secrets]
  verbs: [get, list, watch]
{{- if .Values.operator.generatedSecrets }}
# RBAC cannot limit create by name, and patch only by names known at install time, which
# generated ones are not: the operator only writes <name>-milvus-credentials and
# <name>-milvus-api-key Secrets that it owns (owner reference to the MilvusUser or
# MilvusAPIKey) and never touches others.
- apiGroups: [""]
  resources: [secrets]
  verbs: [create, patch]
{{- end }}
- apiGroups: [""]
  resources: [events]
  verbs: [create]
{{- end }}
