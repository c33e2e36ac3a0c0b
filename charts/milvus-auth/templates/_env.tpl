{{/* The MILVUS_AUTH_* variables of each process; secrets are always files (the *_FILE flags). */}}

{{/* Shared by both processes: etcd, key layout, hashing, the internal token. */}}
{{- define "milvus-auth.etcdEnv" -}}
- name: MILVUS_AUTH_ETCD_ENDPOINTS
  value: {{ join "," .Values.etcd.endpoints | quote }}
- name: MILVUS_AUTH_META_ROOT
  value: {{ .Values.etcd.metaRoot | quote }}
- name: MILVUS_AUTH_LAYOUT
  value: {{ .Values.etcd.layout | quote }}
- name: MILVUS_AUTH_ETCD_TIMEOUT
  value: {{ .Values.etcd.timeout | quote }}
- name: MILVUS_AUTH_BCRYPT_COST
  value: {{ .Values.bcryptCost | quote }}
- name: MILVUS_AUTH_MAX_USERS
  value: {{ .Values.maxUsers | quote }}
- name: MILVUS_AUTH_PASSWORD_MIN_LENGTH
  value: {{ .Values.passwordPolicy.minLength | quote }}
- name: MILVUS_AUTH_PASSWORD_MIN_CLASSES
  value: {{ .Values.passwordPolicy.minClasses | quote }}
{{- if ge (int .Values.passwordPolicy.minScore) 0 }}
- name: MILVUS_AUTH_PASSWORD_MIN_SCORE
  value: {{ .Values.passwordPolicy.minScore | quote }}
{{- end }}
- name: MILVUS_AUTH_INTERNAL_TOKEN_FILE
  value: /etc/milvus-auth/internal-token/{{ .Values.internalToken.key }}
{{- if .Values.etcd.auth.enabled }}
- name: MILVUS_AUTH_ETCD_USER
  value: {{ required "etcd.auth.username is required when etcd.auth.enabled" .Values.etcd.auth.username | quote }}
- name: MILVUS_AUTH_ETCD_PASSWORD_FILE
  value: /etc/milvus-auth/etcd-auth/{{ .Values.etcd.auth.passwordKey }}
{{- end }}
{{- if .Values.etcd.tls.enabled }}
- name: MILVUS_AUTH_ETCD_CA
  value: /etc/milvus-auth/etcd-tls/{{ .Values.etcd.tls.caKey }}
{{- if .Values.etcd.tls.certKey }}
- name: MILVUS_AUTH_ETCD_CERT
  value: /etc/milvus-auth/etcd-tls/{{ .Values.etcd.tls.certKey }}
- name: MILVUS_AUTH_ETCD_KEY
  value: /etc/milvus-auth/etcd-tls/{{ .Values.etcd.tls.keyKey }}
{{- end }}
{{- end }}
{{- end }}

{{- define "milvus-auth.proxy.env" -}}
{{- $p := .Values.proxy }}
{{- include "milvus-auth.etcdEnv" . }}
- name: MILVUS_AUTH_HOST
  value: "0.0.0.0"
- name: MILVUS_AUTH_PORT
  value: {{ $p.ports.public | quote }}
- name: MILVUS_AUTH_INTERNAL_HOST
  value: "0.0.0.0"
- name: MILVUS_AUTH_INTERNAL_PORT
  value: {{ $p.ports.internal | quote }}
{{- if .Values.metrics.enabled }}
- name: MILVUS_AUTH_METRICS_PORT
  value: {{ $p.ports.metrics | quote }}
{{- end }}
- name: MILVUS_AUTH_UPSTREAM
  value: {{ required "proxy.upstream (host:port of Milvus) is required" $p.upstream | quote }}
- name: MILVUS_AUTH_AUTH_ENABLED
  value: {{ $p.authEnabled | quote }}
- name: MILVUS_AUTH_AUTHORIZATION_ENABLED
  value: {{ $p.authorizationEnabled | quote }}
- name: MILVUS_AUTH_ROOT_SHOULD_BIND_ROLE
  value: {{ $p.rootShouldBindRole | quote }}
{{- with $p.superUsers }}
- name: MILVUS_AUTH_SUPER_USERS
  value: {{ join "," . | quote }}
{{- end }}
- name: MILVUS_AUTH_ROOT_PASSWORD_FILE
  value: /etc/milvus-auth/root-password/{{ $p.rootPassword.key }}
{{- if $p.upstreamToken.existingSecret }}
- name: MILVUS_AUTH_UPSTREAM_TOKEN_FILE
  value: /etc/milvus-auth/upstream-token/{{ $p.upstreamToken.key }}
{{- end }}
{{- if $p.tls.enabled }}
- name: MILVUS_AUTH_TLS_CERT
  value: /etc/milvus-auth/tls/{{ $p.tls.certKey }}
- name: MILVUS_AUTH_TLS_KEY
  value: /etc/milvus-auth/tls/{{ $p.tls.keyKey }}
{{- if $p.tls.clientCAKey }}
- name: MILVUS_AUTH_TLS_CLIENT_CA
  value: /etc/milvus-auth/tls/{{ $p.tls.clientCAKey }}
{{- end }}
{{- end }}
{{- include "milvus-auth.proxy.tlsEnv" . }}
- name: MILVUS_AUTH_FAILED_LOGIN_LOG_BURST
  value: {{ $p.failedLoginLog.burst | quote }}
- name: MILVUS_AUTH_FAILED_LOGIN_LOG_INTERVAL
  value: {{ $p.failedLoginLog.interval | quote }}
{{- if $p.accessLog.enabled }}
# One JSON line per call on stdout, apart from the process log on stderr.
- name: MILVUS_AUTH_ACCESS_LOG
  value: "-"
- name: MILVUS_AUTH_ACCESS_LOG_SAMPLE_RATE
  value: {{ $p.accessLog.sampleRate | quote }}
{{- end }}
- name: MILVUS_AUTH_RATE_LIMIT_USER_BURST
  value: {{ $p.rateLimit.userBurst | quote }}
- name: MILVUS_AUTH_RATE_LIMIT_USER_PER_SECOND
  value: {{ $p.rateLimit.userPerSecond | quote }}
- name: MILVUS_AUTH_RATE_LIMIT_PEER_BURST
  value: {{ $p.rateLimit.peerBurst | quote }}
- name: MILVUS_AUTH_RATE_LIMIT_PEER_PER_SECOND
  value: {{ $p.rateLimit.peerPerSecond | quote }}
- name: MILVUS_AUTH_RATE_LIMIT_USER_TOTAL_BURST
  value: {{ $p.rateLimit.userTotalBurst | quote }}
- name: MILVUS_AUTH_RATE_LIMIT_USER_TOTAL_PER_SECOND
  value: {{ $p.rateLimit.userTotalPerSecond | quote }}
- name: MILVUS_AUTH_SHUTDOWN_GRACE
  value: {{ $p.shutdownGrace | quote }}
{{- /* One worker per CPU of the container's limit (the downward API rounds it up). */}}
{{- if $p.workers }}
- name: MILVUS_AUTH_WORKERS
  value: {{ $p.workers | quote }}
{{- else if (($p.resources).limits).cpu }}
- name: MILVUS_AUTH_WORKERS
  valueFrom:
    resourceFieldRef:
      containerName: proxy
      resource: limits.cpu
      divisor: "1"
{{- else }}
- name: MILVUS_AUTH_WORKERS
  value: "1"
{{- end }}
- name: MILVUS_AUTH_LOG_LEVEL
  value: {{ $p.logLevel | quote }}
{{- end }}

{{- define "milvus-auth.operator.env" -}}
{{- $o := .Values.operator }}
{{- include "milvus-auth.etcdEnv" . }}
{{- if eq $o.scope "cluster" }}
- name: MILVUS_AUTH_ALL_NAMESPACES
  value: "true"
{{- else }}
- name: MILVUS_AUTH_NAMESPACE
  value: {{ include "milvus-auth.operator.namespaces" . | fromJsonArray | join "," | quote }}
{{- end }}
# The default privileged namespace: the operator's own, from the downward API.
- name: MILVUS_AUTH_OPERATOR_NAMESPACE
  valueFrom:
    fieldRef:
      fieldPath: metadata.namespace
{{- with $o.privilegedNamespaces }}
- name: MILVUS_AUTH_PRIVILEGED_NAMESPACES
  value: {{ join "," . | quote }}
{{- end }}
{{- with $o.namespaceDatabases }}
{{- $entries := list }}
{{- range $namespace, $databases := . }}
{{- $entries = append $entries (printf "%s=%s" $namespace (join "," $databases)) }}
{{- end }}
- name: MILVUS_AUTH_NAMESPACE_DATABASES
  value: {{ join ";" $entries | quote }}
{{- end }}
- name: MILVUS_AUTH_PROXY_SERVICE
  value: {{ default (printf "%s/%s" .Release.Namespace (include "milvus-auth.proxy.internalService" .)) $o.proxyService | quote }}
{{- include "milvus-auth.operator.tlsEnv" . }}
- name: MILVUS_AUTH_RESYNC_PERIOD
  value: {{ $o.resyncPeriod | quote }}
- name: MILVUS_AUTH_PROXY_TIMEOUT
  value: {{ $o.proxyTimeout | quote }}
{{- with include "milvus-auth.operator.peering" . }}
- name: MILVUS_AUTH_PEERING
  value: {{ . | quote }}
- name: MILVUS_AUTH_PEERING_LIFETIME
  value: {{ $o.peeringLifetime | quote }}
# kopf's peer identity: the pod's name, so the peering object says which pod is which.
- name: POD_ID
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
{{- end }}
- name: MILVUS_AUTH_LIVENESS
  value: {{ printf "http://0.0.0.0:%v/healthz" $o.ports.health | quote }}
{{- if .Values.metrics.enabled }}
- name: MILVUS_AUTH_METRICS_PORT
  value: {{ $o.ports.metrics | quote }}
{{- end }}
{{- end }}

{{/*
extraFlags as variables: `flag-name: value` -> MILVUS_AUTH_FLAG_NAME. A flag the chart already
sets fails the render, so a value is never silently given twice.
Call with dict "flags" <map> "managed" <the rendered env>.
*/}}
{{- define "milvus-auth.flagEnv" -}}
{{- $lines := list }}
{{- range $flag, $value := .flags }}
{{- $name := printf "MILVUS_AUTH_%s" ($flag | replace "-" "_" | upper) }}
{{- if contains (printf "name: %s\n" $name) (printf "%s\n" $.managed) }}
{{- fail (printf "extraFlags.%s: the chart already sets %s from its own value" $flag $name) }}
{{- end }}
{{- $lines = append $lines (printf "- name: %s\n  value: %s" $name ($value | toString | quote)) }}
{{- end }}
{{- join "\n" $lines }}
{{- end }}
