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
{{- if .Values.tunnels }}
{{- range .Values.tunnels }}
{{- range .ports }}
{{- if lt (int .listenPort) $low }}{{ $low = int .listenPort }}{{ end }}
{{- end }}
{{- end }}
{{- else }}
{{- range .Values.dataPlane.ports }}
{{- if lt (int .targetPort) $low }}{{ $low = int .targetPort }}{{ end }}
{{- end }}
{{- end }}
{{- $low }}
{{- end }}


{{/* A tunnel's token Secret: tokenSecretName, or <name>-inlets-pro-secret. */}}
{{- define "ringlet.tunnelSecret" -}}
{{- default (printf "%s-inlets-pro-secret" .name) .tokenSecretName }}
{{- end }}

{{/* A tunnel's data-plane Service: <name>-<nameOverride>-data-plane, the name the seed's
Prometheus job uses for a cluster (orion-aws-inlets-pro-data-plane). Needs .root, .t. */}}
{{- define "ringlet.tunnelService" -}}
{{- printf "%s-%s-data-plane" .t.name (include "ringlet.name" .root) }}
{{- end }}

{{/* tunnels: refuse what Kubernetes or ringlet would refuse later, with a message naming
the entry: names ([a-z0-9-], a letter first, unique; the Service name within 63
characters), ports (1..65535; listenPort required and unique in the release, not the
control port; within a tunnel, unique Service ports and offered ports). Renders nothing. */}}
{{- define "ringlet.checkTunnels" -}}
{{- $names := dict }}
{{- $listen := dict }}
{{- $control := int .Values.controlPlane.port }}
{{- range $i, $t := .Values.tunnels }}
{{- if not (kindIs "map" $t) }}
{{- fail (printf "tunnels[%d]: each tunnel is a map {name, tokenSecretName, ports}" $i) }}
{{- end }}
{{- $name := toString (default "" $t.name) }}
{{- if not (regexMatch "^[a-z]([-a-z0-9]*[a-z0-9])?$" $name) }}
{{- fail (printf "tunnels[%d].name %q: use a-z, 0-9 and '-', starting with a letter and not ending with '-' (it names a Service)" $i $name) }}
{{- end }}
{{- $svc := include "ringlet.tunnelService" (dict "root" $ "t" $t) }}
{{- if gt (len $svc) 63 }}
{{- fail (printf "tunnels[%d].name %q: its Service name %s is over 63 characters" $i $name $svc) }}
{{- end }}
{{- if hasKey $names $name }}
{{- fail (printf "tunnels[%d].name %q: the name is used twice" $i $name) }}
{{- end }}
{{- $_ := set $names $name true }}
{{- if not $t.ports }}
{{- fail (printf "tunnels[%d] (%s): ports is required (a list of {port, listenPort})" $i $name) }}
{{- end }}
{{- $svcPorts := dict }}
{{- $offered := dict }}
{{- range $j, $p := $t.ports }}
{{- $where := printf "tunnels[%d].ports[%d] (%s)" $i $j $name }}
{{- if or (not $p.port) (not $p.listenPort) }}
{{- fail (printf "%s: port and listenPort are required" $where) }}
{{- end }}
{{- range $k := list "port" "listenPort" "targetPort" }}
{{- $v := get $p $k }}
{{- if hasKey $p $k }}
{{- $num := or (kindIs "int" $v) (kindIs "int64" $v) (kindIs "float64" $v) }}
{{- if or (not $num) (and $num (or (lt (int64 $v) 1) (gt (int64 $v) 65535) (ne (toString $v) (toString (int64 $v))))) }}
{{- fail (printf "%s: %s must be a port number, 1 to 65535 (not %v)" $where $k $v) }}
{{- end }}
{{- end }}
{{- end }}
{{- $lp := toString (int $p.listenPort) }}
{{- if hasKey $listen $lp }}
{{- fail (printf "%s: listenPort %s is also %s's: two tunnels cannot listen on one port of the node" $where $lp (get $listen $lp)) }}
{{- end }}
{{- if eq (int $p.listenPort) $control }}
{{- fail (printf "%s: listenPort %s is the control port" $where $lp) }}
{{- end }}
{{- $_ := set $listen $lp $name }}
{{- $sp := toString (int $p.port) }}
{{- if hasKey $svcPorts $sp }}
{{- fail (printf "%s: port %s twice in one tunnel" $where $sp) }}
{{- end }}
{{- $_ := set $svcPorts $sp true }}
{{- $op := toString (int (default $p.port $p.targetPort)) }}
{{- if hasKey $offered $op }}
{{- fail (printf "%s: targetPort %s (the port the client offers) twice in one tunnel" $where $op) }}
{{- end }}
{{- $_ := set $offered $op true }}
{{- end }}
{{- end }}
{{- end }}
{{/*
--allow-ports without --tunnels: .Values.allowPorts when set, else the dataPlane
targetPorts (a client may open exactly the ports the data-plane Service carries).
*/}}
{{- define "ringlet.allowPorts" -}}
{{- $ports := list }}
{{- if .Values.allowPorts }}
{{- range .Values.allowPorts }}{{ $ports = append $ports (toString .) }}{{ end }}
{{- else }}
{{- range .Values.dataPlane.ports }}{{ $ports = append $ports (toString (int .targetPort)) }}{{ end }}
{{- end }}
{{- if not $ports }}
{{- fail "dataPlane.ports is empty and allowPorts unset: no client could open a port" }}
{{- end }}
{{- join "," $ports }}
{{- end }}
