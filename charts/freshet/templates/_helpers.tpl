{{- define "freshet.name" -}}freshet-operator{{- end -}}
{{- define "freshet.labels" -}}
app.kubernetes.io/name: freshet
app.kubernetes.io/component: operator
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}
{{- define "freshet.selector" -}}
app.kubernetes.io/name: freshet
app.kubernetes.io/component: operator
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}
