{{/* Names and labels, as in `helm create`. */}}
{{- define "tagwatch.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "tagwatch.fullname" -}}
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

{{/* The name of one component's objects: <fullname>-<component>, at most 63 characters. */}}
{{- define "tagwatch.componentName" -}}
{{- printf "%s-%s" (include "tagwatch.fullname" .root) .component | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "tagwatch.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "tagwatch.selectorLabels" -}}
app.kubernetes.io/name: {{ include "tagwatch.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "tagwatch.labels" -}}
helm.sh/chart: {{ include "tagwatch.chart" . }}
{{ include "tagwatch.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: tagwatch
{{- end }}

{{/* Labels of one component: (dict "root" $ "component" "api"). */}}
{{- define "tagwatch.componentLabels" -}}
{{ include "tagwatch.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "tagwatch.componentSelectorLabels" -}}
{{ include "tagwatch.selectorLabels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* monitoring.labels on top of the common labels: ServiceMonitors, PrometheusRules, Grafana ConfigMaps. */}}
{{- define "tagwatch.monitoringLabels" -}}
{{ include "tagwatch.labels" . }}
{{- with .Values.monitoring.labels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "tagwatch.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "tagwatch.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "tagwatch.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/*
The Prometheus `job` label of each scraped component: the alert rules (prometheus/alerts.rules.yml) and dashboards
select on exactly these. The Services carry it as their `jobLabel` label, which the ServiceMonitors name in their
`jobLabel` field (kube-prometheus-stack's node-exporter does the same), so the job does not depend on the release
name.
*/}}
{{- define "tagwatch.job" -}}
{{- get (dict "api" "tagwatch-api" "exporter" "tagwatch-monitor" "retrain-worker" "tagwatch-retrain") . }}
{{- end }}

{{/* The monitor's interval, one value for the CronJob schedule and for TAGWATCH_MONITOR_INTERVAL_SECONDS. */}}
{{- define "tagwatch.monitorSchedule" -}}
{{- $n := int .Values.monitor.everyMinutes }}
{{- if eq $n 60 }}0 * * * *{{ else }}*/{{ $n }} * * * *{{ end }}
{{- end }}

{{- define "tagwatch.monitorIntervalSeconds" -}}
{{- mul (int .Values.monitor.everyMinutes) 60 }}
{{- end }}

{{- define "tagwatch.persistenceClaim" -}}
{{- default (include "tagwatch.componentName" (dict "root" . "component" "home")) .Values.persistence.existingClaim }}
{{- end }}

{{- define "tagwatch.spillClaim" -}}
{{- default (include "tagwatch.componentName" (dict "root" . "component" "spill")) .Values.spill.existingClaim }}
{{- end }}

{{- define "tagwatch.home" -}}/var/lib/tagwatch{{- end }}
{{- define "tagwatch.spillDir" -}}/var/lib/tagwatch-spill{{- end }}

{{/*
Checks no schema can express. A failed check stops `helm install` / `helm template` with its message.
*/}}
{{- define "tagwatch.validate" -}}
{{- $s := .Values.api.shutdown }}
{{- $needed := add $s.preStopSleepSeconds $s.inFlightSeconds $s.logDrainSeconds }}
{{- if le (int .Values.api.terminationGracePeriodSeconds) (int $needed) }}
{{- fail (printf "api.terminationGracePeriodSeconds (%d) must exceed api.shutdown's preStopSleepSeconds + inFlightSeconds + logDrainSeconds (%d): the pod would be killed while the request log drains" (int .Values.api.terminationGracePeriodSeconds) (int $needed)) }}
{{- end }}
{{- if and .Values.api.autoscaling.enabled (gt (int .Values.api.autoscaling.minReplicas) (int .Values.api.autoscaling.maxReplicas)) }}
{{- fail (printf "api.autoscaling.minReplicas (%d) is above maxReplicas (%d)" (int .Values.api.autoscaling.minReplicas) (int .Values.api.autoscaling.maxReplicas)) }}
{{- end }}
{{- $reserved := list "TAGWATCH_ENVIRONMENT" "TAGWATCH_HOME" "TAGWATCH_SPILL_DIR" "TAGWATCH_SPILL_MAX_BYTES" "TAGWATCH_AUTO_MIGRATE" "TAGWATCH_MONITOR_INTERVAL_SECONDS" "TAGWATCH_RETRAIN_RUNNER" "TAGWATCH_DATABASE_URL" "TAGWATCH_REGISTRY_URL" "TAGWATCH_FEEDBACK_KEYS" "TAGWATCH_PREDICT_KEYS" "TAGWATCH_API_DB_PASSWORD" "TAGWATCH_MONITOR_DB_PASSWORD" "TAGWATCH_GRAFANA_DB_PASSWORD" "TAGWATCH_DB_ROLE_PREFIX" "TAGWATCH_LOG_DRAIN_SECONDS" }}
{{- range $name, $_ := .Values.env }}
{{- if has $name $reserved }}
{{- fail (printf "env.%s is set by the chart: use its own value (see values.yaml) instead" $name) }}
{{- end }}
{{- end }}
{{- if and .Values.grafana.datasources.enabled (not .Values.grafana.datasources.postgres.host) }}
{{- fail "grafana.datasources.postgres.host is empty: the dashboards' PostgreSQL data source needs the database's host (or set grafana.datasources.enabled=false)" }}
{{- end }}
{{- end }}

{{/* Environment of every tagwatch process. */}}
{{- define "tagwatch.env.common" -}}
- name: TAGWATCH_ENVIRONMENT
  value: production
- name: TAGWATCH_HOME
  value: {{ include "tagwatch.home" . | quote }}
# The init hook migrates, once, before the pods of a new version start: they must not race to do it.
- name: TAGWATCH_AUTO_MIGRATE
  value: "false"
- name: TAGWATCH_DB_ROLE_PREFIX
  value: {{ .Values.database.rolePrefix | quote }}
- name: TAGWATCH_MONITOR_INTERVAL_SECONDS
  value: {{ include "tagwatch.monitorIntervalSeconds" . | quote }}
# matplotlib (imported by Evidently) keeps its cache under $HOME, the shared volume otherwise.
- name: MPLCONFIGDIR
  value: /tmp/matplotlib
{{- range $name, $value := .Values.env }}
- name: {{ $name }}
  value: {{ $value | toString | quote }}
{{- end }}
{{- end }}

{{/* A value from the database Secret: (dict "root" $ "name" "TAGWATCH_DATABASE_URL" "key" "apiUrl"). */}}
{{- define "tagwatch.env.dbSecret" -}}
- name: {{ .name }}
  valueFrom:
    secretKeyRef:
      name: {{ required "database.existingSecret is required: the Secret with the database URLs (see values.yaml)" .root.Values.database.existingSecret }}
      key: {{ index .root.Values.database.keys .key }}
{{- if .optional }}
      optional: true
{{- end }}
{{- end }}

{{/* The database URLs of a role: (dict "root" $ "role" "api"|"monitor"|"owner"). */}}
{{- define "tagwatch.env.database" -}}
{{ include "tagwatch.env.dbSecret" (dict "root" .root "name" "TAGWATCH_DATABASE_URL" "key" (printf "%sUrl" .role)) }}
{{ include "tagwatch.env.dbSecret" (dict "root" .root "name" "TAGWATCH_REGISTRY_URL" "key" (printf "%sRegistryUrl" .role)) }}
{{- end }}

{{/* Volumes and mounts. (dict "root" $ "homeReadOnly" bool "spill" bool) */}}
{{- define "tagwatch.volumeMounts" -}}
- name: home
  mountPath: {{ include "tagwatch.home" .root }}
  readOnly: {{ .homeReadOnly }}
{{- if .spill }}
- name: spill
  mountPath: {{ include "tagwatch.spillDir" .root }}
{{- end }}
- name: tmp
  mountPath: /tmp
{{- end }}

{{- define "tagwatch.volumes" -}}
- name: home
  persistentVolumeClaim:
    claimName: {{ include "tagwatch.persistenceClaim" .root }}
    readOnly: {{ .homeReadOnly }}
{{- if .spill }}
- name: spill
{{- if eq .root.Values.spill.type "emptyDir" }}
  emptyDir:
    sizeLimit: {{ .root.Values.spill.size }}
{{- else }}
  persistentVolumeClaim:
    claimName: {{ include "tagwatch.spillClaim" .root }}
{{- end }}
{{- end }}
- name: tmp
  emptyDir:
    sizeLimit: 1Gi
{{- end }}

{{/* The pod-level settings every tagwatch pod shares: (dict "root" $) or with "serviceAccountName". */}}
{{- define "tagwatch.podSpec" -}}
{{- $v := .root.Values -}}
serviceAccountName: {{ .serviceAccountName | default (include "tagwatch.serviceAccountName" .root) }}
automountServiceAccountToken: {{ $v.serviceAccount.automountServiceAccountToken }}
{{- with $v.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml $v.podSecurityContext | nindent 2 }}
{{- with $v.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $v.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $v.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{- define "tagwatch.podMetadata" -}}
labels:
  {{- include "tagwatch.componentLabels" . | nindent 2 }}
  {{- with .root.Values.podLabels }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- with .root.Values.podAnnotations }}
annotations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/* A probe on an HTTP path of a named port, with the timings from values. */}}
{{- define "tagwatch.httpProbe" -}}
httpGet:
  path: {{ .path }}
  port: {{ .port }}
{{ toYaml .timing }}
{{- end }}

{{- define "tagwatch.mlflowImage" -}}
{{- printf "%s:%s" .Values.mlflow.image.repository (default .Chart.AppVersion .Values.mlflow.image.tag) }}
{{- end }}
