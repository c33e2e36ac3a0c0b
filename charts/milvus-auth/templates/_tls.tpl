{{/*
TLS on the chart's hops, from Secrets: the public port (proxy.tls), the proxies' internal port
and the operator's calls to it (internalTls), the proxies to the upstream Milvus
(proxy.upstreamTls). Each Secret is one you name (existingSecret) or, with certManager.enabled,
the one the chart's Certificate (certificates.yaml) makes.
*/}}

{{/* The DNS name the internal port's certificate carries and the operator checks. */}}
{{- define "milvus-auth.internalTls.serverName" -}}
{{- printf "%s.%s.svc" (include "milvus-auth.proxy.internalService" .) .Release.Namespace }}
{{- end }}

{{- define "milvus-auth.publicTls.secret" -}}
{{- $t := .Values.proxy.tls }}
{{- if $t.existingSecret }}{{ $t.existingSecret }}
{{- else if $t.certManager.enabled }}{{ printf "%s-public-tls" (include "milvus-auth.proxy.fullname" .) }}
{{- else }}{{ required "proxy.tls.existingSecret (or proxy.tls.certManager.enabled) is required when proxy.tls.enabled" "" }}
{{- end }}
{{- end }}

{{- define "milvus-auth.internalTls.secret" -}}
{{- $t := .Values.internalTls }}
{{- if $t.existingSecret }}{{ $t.existingSecret }}
{{- else if $t.certManager.enabled }}{{ printf "%s-internal-tls" (include "milvus-auth.proxy.fullname" .) }}
{{- else }}{{ required "internalTls.existingSecret (or internalTls.certManager.enabled) is required when internalTls.enabled" "" }}
{{- end }}
{{- end }}

{{- define "milvus-auth.internalTls.clientSecret" -}}
{{- $t := .Values.internalTls }}
{{- if $t.clientSecret }}{{ $t.clientSecret }}
{{- else if $t.certManager.enabled }}{{ printf "%s-client-tls" (include "milvus-auth.operator.fullname" .) }}
{{- else }}{{ required "internalTls.clientSecret (or internalTls.certManager.enabled) is required when internalTls.mutual" "" }}
{{- end }}
{{- end }}

{{- define "milvus-auth.upstreamTls.secret" -}}
{{- $t := .Values.proxy.upstreamTls }}
{{- if $t.existingSecret }}{{ $t.existingSecret }}
{{- else if $t.certManager.enabled }}{{ printf "%s-upstream-tls" (include "milvus-auth.proxy.fullname" .) }}
{{- end }}
{{- end }}

{{/* The upstream client certificate's keys: the chart's Certificate always has tls.crt/tls.key. */}}
{{- define "milvus-auth.upstreamTls.certKey" -}}
{{- if .Values.proxy.upstreamTls.certManager.enabled }}tls.crt{{ else }}{{ .Values.proxy.upstreamTls.certKey }}{{ end }}
{{- end }}
{{- define "milvus-auth.upstreamTls.keyKey" -}}
{{- if .Values.proxy.upstreamTls.certManager.enabled }}tls.key{{ else }}{{ .Values.proxy.upstreamTls.keyKey }}{{ end }}
{{- end }}

{{/* The proxy's TLS variables for the internal port and the upstream. */}}
{{- define "milvus-auth.proxy.tlsEnv" -}}
{{- $i := .Values.internalTls }}
{{- if $i.enabled }}
- name: MILVUS_AUTH_INTERNAL_TLS_CERT
  value: /etc/milvus-auth/internal-tls/{{ $i.certKey }}
- name: MILVUS_AUTH_INTERNAL_TLS_KEY
  value: /etc/milvus-auth/internal-tls/{{ $i.keyKey }}
{{- if $i.mutual }}
- name: MILVUS_AUTH_INTERNAL_TLS_CLIENT_CA
  value: /etc/milvus-auth/internal-tls/{{ $i.caKey }}
{{- end }}
{{- end }}
{{- $u := .Values.proxy.upstreamTls }}
{{- if $u.enabled }}
- name: MILVUS_AUTH_UPSTREAM_TLS
  value: "true"
{{- if and (include "milvus-auth.upstreamTls.secret" .) $u.caKey }}
- name: MILVUS_AUTH_UPSTREAM_CA
  value: /etc/milvus-auth/upstream-tls/{{ $u.caKey }}
{{- end }}
{{- with $u.serverName }}
- name: MILVUS_AUTH_UPSTREAM_SERVER_NAME
  value: {{ . | quote }}
{{- end }}
{{- if include "milvus-auth.upstreamTls.certKey" . }}
- name: MILVUS_AUTH_UPSTREAM_CERT
  value: /etc/milvus-auth/upstream-tls/{{ include "milvus-auth.upstreamTls.certKey" . }}
- name: MILVUS_AUTH_UPSTREAM_KEY
  value: /etc/milvus-auth/upstream-tls/{{ include "milvus-auth.upstreamTls.keyKey" . }}
{{- end }}
{{- end }}
{{- end }}

{{- define "milvus-auth.proxy.tlsVolumeMounts" -}}
{{- if .Values.internalTls.enabled }}
- name: internal-tls
  mountPath: /etc/milvus-auth/internal-tls
  readOnly: true
{{- end }}
{{- if include "milvus-auth.upstreamTls.secret" . }}
- name: upstream-tls
  mountPath: /etc/milvus-auth/upstream-tls
  readOnly: true
{{- end }}
{{- end }}

{{/* The proxy gets the internal certificate and key (and the CA only for mutual TLS). */}}
{{- define "milvus-auth.proxy.tlsVolumes" -}}
{{- $i := .Values.internalTls }}
{{- if $i.enabled }}
- name: internal-tls
  secret:
    secretName: {{ include "milvus-auth.internalTls.secret" . }}
    defaultMode: 0440
    items:
      - {key: {{ $i.certKey }}, path: {{ $i.certKey }}}
      - {key: {{ $i.keyKey }}, path: {{ $i.keyKey }}}
      {{- if $i.mutual }}
      - {key: {{ $i.caKey }}, path: {{ $i.caKey }}}
      {{- end }}
{{- end }}
{{- with include "milvus-auth.upstreamTls.secret" . }}
- name: upstream-tls
  secret:
    secretName: {{ . }}
    defaultMode: 0440
{{- end }}
{{- end }}

{{/* The operator's TLS variables: the CA and name of the internal port, a client pair. */}}
{{- define "milvus-auth.operator.tlsEnv" -}}
{{- $i := .Values.internalTls }}
{{- if $i.enabled }}
- name: MILVUS_AUTH_PROXY_TLS_CA
  value: /etc/milvus-auth/internal-tls-ca/{{ $i.caKey }}
- name: MILVUS_AUTH_PROXY_TLS_SERVER_NAME
  value: {{ include "milvus-auth.internalTls.serverName" . | quote }}
{{- if $i.mutual }}
- name: MILVUS_AUTH_PROXY_TLS_CERT
  value: /etc/milvus-auth/internal-tls-client/tls.crt
- name: MILVUS_AUTH_PROXY_TLS_KEY
  value: /etc/milvus-auth/internal-tls-client/tls.key
{{- end }}
{{- end }}
{{- end }}

{{- define "milvus-auth.operator.tlsVolumeMounts" -}}
{{- if .Values.internalTls.enabled }}
- name: internal-tls-ca
  mountPath: /etc/milvus-auth/internal-tls-ca
  readOnly: true
{{- if .Values.internalTls.mutual }}
- name: internal-tls-client
  mountPath: /etc/milvus-auth/internal-tls-client
  readOnly: true
{{- end }}
{{- end }}
{{- end }}

{{/* The operator gets only the CA of the proxies' Secret, never their private key. */}}
{{- define "milvus-auth.operator.tlsVolumes" -}}
{{- $i := .Values.internalTls }}
{{- if $i.enabled }}
- name: internal-tls-ca
  secret:
    secretName: {{ include "milvus-auth.internalTls.secret" . }}
    defaultMode: 0440
    items:
      - {key: {{ $i.caKey }}, path: {{ $i.caKey }}}
{{- if $i.mutual }}
- name: internal-tls-client
  secret:
    secretName: {{ include "milvus-auth.internalTls.clientSecret" . }}
    defaultMode: 0440
    items:
      - {key: tls.crt, path: tls.crt}
      - {key: tls.key, path: tls.key}
{{- end }}
{{- end }}
{{- end }}

{{/*
One cert-manager Certificate. Call with dict "root" $ "name" <secret and object name>
"issuer" <certManager values> "dnsNames" <list> "usages" <list>.
*/}}
{{- define "milvus-auth.certificate" -}}
apiVersion: cert-manager.io/v1
kind: Certificate
metadata:
  name: {{ .name }}
  namespace: {{ .root.Release.Namespace }}
  labels:
    {{- include "milvus-auth.labels" .root | nindent 4 }}
spec:
  secretName: {{ .name }}
  commonName: {{ first .dnsNames | quote }}
  dnsNames:
    {{- toYaml .dnsNames | nindent 4 }}
  usages:
    {{- toYaml .usages | nindent 4 }}
  duration: {{ .issuer.duration | quote }}
  renewBefore: {{ .issuer.renewBefore | quote }}
  privateKey:
    algorithm: ECDSA
    size: 256
    rotationPolicy: Always
  issuerRef:
    name: {{ required "certManager.issuerRef.name is required when certManager.enabled" .issuer.issuerRef.name }}
    kind: {{ .issuer.issuerRef.kind }}
    group: {{ .issuer.issuerRef.group }}
{{- end }}
