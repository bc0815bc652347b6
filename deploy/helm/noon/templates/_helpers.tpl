{{/* Names and labels. */}}
{{- define "noon.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "noon.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* noon.component: the name of a component's objects, e.g. noon-yellow. Arg: dict root, component. */}}
{{- define "noon.component" -}}
{{- printf "%s-%s" (include "noon.fullname" .root) .component | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "noon.selectorLabels" -}}
app.kubernetes.io/name: {{ include "noon.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "noon.labels" -}}
{{ include "noon.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "noon.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "noon.tlsSecret" -}}
{{- default (printf "%s-tls" (include "noon.fullname" .)) .Values.tls.existingSecret -}}
{{- end -}}

{{- define "noon.storesSecret" -}}
{{- default (printf "%s-stores" (include "noon.fullname" .)) .Values.storesExistingSecret -}}
{{- end -}}

{{/* noon.yellows: the yellows list, the stable DNS name of each yellow pod. */}}
{{- define "noon.yellows" -}}
{{- $svc := include "noon.component" (dict "root" . "component" "yellow") -}}
{{- range $i := until (int .Values.yellow.replicas) }}
- {{ printf "tcp://%s-%d.%s.%s.svc.%s:%d" $svc $i $svc $.Release.Namespace $.Values.clusterDomain (int $.Values.yellow.routerPort) }}
{{- end }}
{{- end -}}

{{/* noon.checkDrain fails the render when the grace period does not outlast the drains. */}}
{{- define "noon.checkDrain" -}}
{{- $d := .Values.drain -}}
{{- if or (le (int $d.terminationGracePeriodSeconds) (int $d.timeoutSeconds)) (le (int $d.terminationGracePeriodSeconds) (int $d.brokerGraceSeconds)) -}}
{{- fail (printf "drain.terminationGracePeriodSeconds (%v) must be longer than drain.timeoutSeconds (%v) and drain.brokerGraceSeconds (%v)" $d.terminationGracePeriodSeconds $d.timeoutSeconds $d.brokerGraceSeconds) -}}
{{- end -}}
{{- end -}}

{{/*
noon.config: the generated config file (configs/cluster.yaml's schema),
before .Values.config is merged over it.
*/}}
{{- define "noon.config" -}}
log:
  level: {{ .Values.log.level }}
  format: {{ .Values.log.format }}
tls:
  insecure: {{ .Values.tls.insecure }}
yellows:
{{- include "noon.yellows" . | nindent 2 }}
yellow:
  router_addr: {{ printf "tcp://0.0.0.0:%d" (int .Values.yellow.routerPort) }}
  pub_addr: {{ printf "tcp://0.0.0.0:%d" (int .Values.yellow.pubPort) }}
postgres:
  max_conns: {{ .Values.postgres.maxConns }}
redis:
  addrs: {{ toJson .Values.redis.addrs }}
  master_name: {{ .Values.redis.masterName | quote }}
  db: {{ .Values.redis.db }}
  username: {{ .Values.redis.username | quote }}
broker:
  {{- with .Values.brokers.advertise }}
  advertise: {{ . | quote }}
  {{- end }}
  drain_grace: {{ printf "%ds" (int .Values.drain.brokerGraceSeconds) }}
  edge:
    tcp_addr: {{ printf ":%d" (int .Values.brokers.tcpPort) | quote }}
    ws_addr: {{ printf ":%d" (int .Values.brokers.wsPort) | quote }}
brokerlist:
  addr: {{ printf ":%d" (int .Values.brokerList.port) | quote }}
services:
{{- range $name, $pool := .Values.services }}
  {{ $name }}:
    bind: {{ printf "tcp://0.0.0.0:%d" (int $.Values.servicePorts.router) }}
    pub_bind: {{ printf "tcp://0.0.0.0:%d" (int $.Values.servicePorts.pub) }}
    drain_timeout: {{ printf "%ds" (int $.Values.drain.timeoutSeconds) }}
    {{- with $pool.httpPort }}
    http_addr: {{ printf ":%d" (int .) | quote }}
    {{- end }}
{{- end }}
{{- end -}}

{{/*
noon.pod: the pod template of one daemon. Arg: dict
  root       the chart's root context
  component  yellow, broker, brokerlist or a service name
  args       the noon command line after /noon, without -config/-admin/-set tls.*
  cert       the base name of its certificate files (yellow, service-login, ...)
  ports      list of dict name, port (the admin port is added)
  resources  the component's resources ({} = .Values.resources)
*/}}
{{- define "noon.pod" -}}
{{- $root := .root -}}
{{- $v := $root.Values -}}
{{- $admin := int $v.adminPort -}}
metadata:
  labels:
    {{- include "noon.selectorLabels" . | nindent 4 }}
    {{- with $v.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  annotations:
    checksum/config: {{ include (print $root.Template.BasePath "/configmap.yaml") $root | sha256sum }}
    {{- if $v.prometheusAnnotations }}
    prometheus.io/scrape: "true"
    prometheus.io/port: {{ $admin | quote }}
    prometheus.io/path: /metrics
    {{- end }}
    {{- with $v.podAnnotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  # NOON_* variables configure noon: keep the Services' link variables
  # (NOON_YELLOW_PORT, ...) out of the environment.
  enableServiceLinks: false
  automountServiceAccountToken: false
  terminationGracePeriodSeconds: {{ int $v.drain.terminationGracePeriodSeconds }}
  securityContext:
    runAsNonRoot: true
    runAsUser: 65532
    runAsGroup: 65532
    fsGroup: 65532
    seccompProfile: {type: RuntimeDefault}
  {{- with $v.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  containers:
    - name: noon
      image: {{ include "noon.image" $root }}
      imagePullPolicy: {{ $v.image.pullPolicy }}
      args:
        {{- range .args }}
        - {{ . | quote }}
        {{- end }}
        - -config
        - /etc/noon/noon.yaml
        - -admin
        - {{ printf ":%d" $admin | quote }}
        - -set
        - tls.ca=/etc/noon/tls/ca.crt
        - -set
        - {{ printf "tls.cert=/etc/noon/tls/%s.crt" .cert }}
        - -set
        - {{ printf "tls.key=/etc/noon/tls/%s.key" .cert }}
      env:
        - name: POD_IP
          valueFrom: {fieldRef: {fieldPath: status.podIP}}
        - name: NOON_POSTGRES_URL
          valueFrom: {secretKeyRef: {name: {{ include "noon.storesSecret" $root }}, key: postgres-url, optional: true}}
        - name: NOON_REDIS_PASSWORD
          valueFrom: {secretKeyRef: {name: {{ include "noon.storesSecret" $root }}, key: redis-password, optional: true}}
      ports:
        - {name: admin, containerPort: {{ $admin }}, protocol: TCP}
        {{- range .ports }}
        - {name: {{ .name }}, containerPort: {{ int .port }}, protocol: TCP}
        {{- end }}
      readinessProbe:
        httpGet: {path: /readyz, port: admin}
        {{- toYaml $v.probes.readiness | nindent 8 }}
      livenessProbe:
        httpGet: {path: /healthz, port: admin}
        {{- toYaml $v.probes.liveness | nindent 8 }}
      lifecycle:
        preStop:
          exec:
            command: ["/noon", "drain", "-admin", {{ printf "127.0.0.1:%d" $admin | quote }}]
      resources:
        {{- toYaml (default $v.resources .resources) | nindent 8 }}
      securityContext:
        allowPrivilegeEscalation: false
        readOnlyRootFilesystem: true
        capabilities: {drop: [ALL]}
      volumeMounts:
        - {name: config, mountPath: /etc/noon/noon.yaml, subPath: noon.yaml, readOnly: true}
        - {name: tls, mountPath: /etc/noon/tls, readOnly: true}
        - {name: tmp, mountPath: /tmp}
  volumes:
    # The root file system is read-only; a scratch /tmp for anything that
    # wants one.
    - name: tmp
      emptyDir: {sizeLimit: 64Mi}
    - name: config
      configMap:
        name: {{ include "noon.fullname" $root }}-config
    - name: tls
      secret:
        secretName: {{ include "noon.tlsSecret" $root }}
        defaultMode: 0440
        items:
          - {key: ca.crt, path: ca.crt}
          - {key: {{ printf "%s.crt" .cert }}, path: {{ printf "%s.crt" .cert }}}
          - {key: {{ printf "%s.key" .cert }}, path: {{ printf "%s.key" .cert }}}
  {{- with $v.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $v.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- if $v.affinity }}
  affinity:
    {{- toYaml $v.affinity | nindent 4 }}
  {{- else }}
  # Spread a component's pods over nodes when it can.
  affinity:
    podAntiAffinity:
      preferredDuringSchedulingIgnoredDuringExecution:
        - weight: 100
          podAffinityTerm:
            topologyKey: kubernetes.io/hostname
            labelSelector:
              matchLabels:
                {{- include "noon.selectorLabels" . | nindent 16 }}
  {{- end }}
{{- end -}}

{{/* noon.pdb: a PodDisruptionBudget of one component. Arg: dict root, component. */}}
{{- define "noon.pdb" -}}
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ include "noon.component" . }}
  labels:
    {{- include "noon.labels" . | nindent 4 }}
spec:
  maxUnavailable: 1
  selector:
    matchLabels:
      {{- include "noon.selectorLabels" . | nindent 6 }}
{{- end -}}
