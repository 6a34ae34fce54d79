{{/* The objects' name: the release's, "streamproc" unless installed under another. */}}
{{- define "streamproc.fullname" -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "streamproc.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: processor
{{- end -}}

{{- define "streamproc.labels" -}}
{{ include "streamproc.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "streamproc.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{/*
The settings as STREAMPROC_* name: value (YAML), from the common values and `config`;
`config` wins, so any setting can be overridden by its own name.
*/}}
{{- define "streamproc.settings" -}}
{{- $s := dict
  "bootstrap_servers" .Values.kafka.bootstrapServers
  "security_protocol" .Values.kafka.securityProtocol
  "sasl_mechanism" .Values.kafka.saslMechanism
  "group_id" .Values.groupId
  "provider" .Values.provider.name
  "provider_url" .Values.provider.url
  "credits_per_lead" .Values.provider.creditsPerLead
  "budget_daily_credits" .Values.budget.dailyCredits
  "budget_timezone" .Values.budget.timezone
  "shutdown_grace_s" .Values.shutdownGraceS
  "http_port" .Values.httpPort
-}}
{{- if .Values.kafka.saslUsername }}{{ $_ := set $s "sasl_username" .Values.kafka.saslUsername }}{{ end -}}
{{- range $name, $value := .Values.config }}{{ $_ := set $s $name $value }}{{ end -}}
{{- range $name := keys $s | sortAlpha }}
{{- $value := get $s $name }}
{{- if or $value (eq (toString $value) "0") (eq (toString $value) "false") }}
{{ printf "STREAMPROC_%s" (upper $name) }}: {{ toString $value | quote }}
{{- end }}
{{- end }}
{{- end -}}

{{/* env entries for the secret settings, each from its key in existingSecret. */}}
{{- define "streamproc.secretEnv" -}}
{{- if .Values.existingSecret }}
{{- range $name, $key := .Values.secretKeys }}
{{- if $key }}
- name: {{ printf "STREAMPROC_%s" (upper $name) }}
  valueFrom:
    secretKeyRef:
      name: {{ $.Values.existingSecret }}
      key: {{ $key }}
{{- end }}
{{- end }}
{{- end }}
{{- end -}}

{{/* The pod's security: the image's own non-root user (Dockerfile: uid 10001). */}}
{{- define "streamproc.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "streamproc.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: ["ALL"]
{{- end -}}
