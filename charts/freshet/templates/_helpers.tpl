{{- define "freshet.name" -}}freshet-operator{{- end -}}
{{- /* Labels and selector of one component (operator, dashboard): each selects
only its own pods. Called with (dict "ctx" $ "component" "..."). */ -}}
{{- define "freshet.componentLabels" -}}
app.kubernetes.io/name: freshet
app.kubernetes.io/component: {{ .component }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .ctx.Chart.Name .ctx.Chart.Version }}
{{- end -}}
{{- define "freshet.componentSelector" -}}
app.kubernetes.io/name: freshet
app.kubernetes.io/component: {{ .component }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
{{- end -}}
{{- define "freshet.labels" -}}
{{ include "freshet.componentLabels" (dict "ctx" . "component" "operator") }}
{{- end -}}
{{- define "freshet.selector" -}}
{{ include "freshet.componentSelector" (dict "ctx" . "component" "operator") }}
{{- end -}}
{{- /* The web dashboard (`freshet dashboard`, templates/dashboard.yaml). */ -}}
{{- define "freshet.dashboard.name" -}}{{ include "freshet.name" . }}-dashboard{{- end -}}
{{- define "freshet.dashboard.labels" -}}
{{ include "freshet.componentLabels" (dict "ctx" . "component" "dashboard") }}
{{- end -}}
{{- define "freshet.dashboard.selector" -}}
{{ include "freshet.componentSelector" (dict "ctx" . "component" "dashboard") }}
{{- end -}}
{{- define "freshet.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}
{{- /* Pod spec fields shared by every pod the chart runs (operator, dashboard):
pull Secrets, priority and the restricted pod securityContext. Use with nindent 6
under `spec:` of a pod template. */ -}}
{{- define "freshet.podCommon" -}}
{{- with .Values.imagePullSecrets }}
imagePullSecrets: {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
securityContext:
  runAsNonRoot: true
  runAsUser: 65532
  runAsGroup: 65532
  seccompProfile: {type: RuntimeDefault}
{{- end -}}
{{- /* Where the chart's pods may run: nodeSelector, tolerations, affinity. */ -}}
{{- define "freshet.podPlacement" -}}
{{- with .Values.nodeSelector }}
nodeSelector: {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations: {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.affinity }}
affinity: {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}
{{- /* Every container: no privilege escalation, read-only root, no capabilities
(writes go to the emptyDir at /tmp). */ -}}
{{- define "freshet.containerSecurity" -}}
securityContext:
  allowPrivilegeEscalation: false
  readOnlyRootFilesystem: true
  capabilities: {drop: [ALL]}
{{- end -}}
