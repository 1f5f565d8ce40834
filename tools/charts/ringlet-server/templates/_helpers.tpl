{{/* The chart's name, or nameOverride (default "inlets-pro": the seed's Service names). */}}
{{- define "ringlet.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* <release>-<name>, or the release name alone when it already contains the name; as the
inlets PRO chart computes it, so <release>-inlets-pro-data-plane is the seed's Service. */}}
{{- define "ringlet.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "ringlet.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ringlet.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: server
{{- end }}

{{- define "ringlet.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "ringlet.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: ringlet
{{- end }}

{{- define "ringlet.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "ringlet.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* image: "repo:tag" (the inlets-tcp-server chart's one string) or {repository, tag}. */}}
{{- define "ringlet.image" -}}
{{- if kindIs "string" .Values.image }}
{{- .Values.image }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{- define "ringlet.pullPolicy" -}}
{{- if kindIs "string" .Values.image }}IfNotPresent{{ else }}{{ default "IfNotPresent" .Values.image.pullPolicy }}{{ end }}
{{- end }}

{{/* terminationGracePeriodSeconds: the value, or the drain timeout plus 15 s; never at or
below the drain timeout (the kubelet's SIGKILL would cut the drain short). */}}
{{- define "ringlet.grace" -}}
{{- $drain := int .Values.drainTimeoutSeconds }}
{{- $grace := int (default (add $drain 15) .Values.terminationGracePeriodSeconds) }}
{{- if le $grace $drain }}
{{- fail (printf "terminationGracePeriodSeconds (%d) must be above drainTimeoutSeconds (%d)" $grace $drain) }}
{{- end }}
{{- $grace }}
{{- end }}

{{/* The lowest port the server binds: below 1024 the pod sets the namespaced sysctl
net.ipv4.ip_unprivileged_port_start instead of granting a capability. */}}
{{- define "ringlet.lowestPort" -}}
{{- $low := int .Values.controlPlane.port }}
{{- range .Values.dataPlane.ports }}
{{- if lt (int .targetPort) $low }}{{ $low = int .targetPort }}{{ end }}
{{- end }}
{{- $low }}
{{- end }}
