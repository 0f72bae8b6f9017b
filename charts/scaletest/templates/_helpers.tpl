{{/*
Names. Truncated so that "<fullname>-cluster-<ordinal>" and the StatefulSet's
controller-revision-hash label stay within 63 characters.
*/}}
{{- define "scaletest.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "scaletest.clusterName" -}}
{{- printf "%s-cluster" (include "scaletest.fullname" .) -}}
{{- end -}}

{{- define "scaletest.prometheusName" -}}
{{- printf "%s-prometheus" (include "scaletest.fullname" .) -}}
{{- end -}}

{{/*
Labels every object carries: scaletest-run is the one teardown and leak checks select by.
Call with (list $ "component").
*/}}
{{- define "scaletest.labels" -}}
{{- $ := index . 0 -}}
{{ include "scaletest.selectorLabels" . }}
app.kubernetes.io/managed-by: {{ $.Release.Service }}
app.kubernetes.io/version: {{ $.Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" $.Chart.Name $.Chart.Version | replace "+" "_" }}
scaletest-run: {{ $.Values.runId | quote }}
{{- end -}}

{{- define "scaletest.selectorLabels" -}}
{{- $ := index . 0 -}}
app.kubernetes.io/name: {{ $.Chart.Name }}
app.kubernetes.io/instance: {{ $.Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{/*
The profile, parsed (a YAML mapping; "{}" without one). Fails on text that is not a
mapping or has no name: the runner validates profiles, this only guards the chart's own use.
*/}}
{{- define "scaletest.profileDoc" -}}
{{- if .Values.profile -}}
{{- $p := fromYaml .Values.profile -}}
{{- if hasKey $p "Error" -}}
{{- fail (printf "profile: expected a scale profile (a YAML mapping), found: %s" (get $p "Error")) -}}
{{- end -}}
{{- if not (kindIs "string" $p.name) -}}
{{- fail "profile.name: expected the profile's name (a string), found nothing" -}}
{{- end -}}
{{- toYaml $p -}}
{{- else -}}
{}
{{- end -}}
{{- end -}}

{{/*
What the chart derives from values and profile together:
  clusterCount  kwok.clusterCount, else the profile's, else 1
  scheduler     harness.scheduler, else the profile's, else kube-scheduler
  density       harness.density, else the profile's ("" when neither says)
  sutSidecar    true when sut.mode is sidecar or the profile's sut names an image
  profileFile   the profile's file name in the mounted ConfigMap ("" without a profile)
*/}}
{{- define "scaletest.settings" -}}
{{- $p := include "scaletest.profileDoc" . | fromYaml -}}
{{- $count := .Values.kwok.clusterCount -}}
{{- if kindIs "invalid" $count -}}
{{- $count = dig "kwok" "clusterCount" 1 $p -}}
{{- if lt (float64 $count) 1.0 -}}
{{- fail (printf "profile kwok.clusterCount: expected a positive integer, found %v" $count) -}}
{{- end -}}
{{- end -}}
{{- $scheduler := .Values.harness.scheduler | default (dig "harness" "scheduler" "kube-scheduler" $p) -}}
{{- if not (has $scheduler (list "kube-scheduler" "pod-shim")) -}}
{{- fail (printf "profile harness.scheduler: expected kube-scheduler or pod-shim, found %v" $scheduler) -}}
{{- end -}}
{{- $density := .Values.harness.density | default (dig "harness" "density" "" $p) -}}
{{- $base := int .Values.cluster.portBase -}}
{{- $sutPort := int .Values.sut.metricsPort -}}
{{- $sidecar := or (eq .Values.sut.mode "sidecar") (ne (dig "sut" "image" "" $p) "") -}}
{{- if and $sidecar (ge $sutPort $base) (le $sutPort (add $base 11)) -}}
{{- fail (printf "sut.metricsPort: expected a port outside cluster.portBase..+11 (%d..%d), found %d" $base (add $base 11) $sutPort) -}}
{{- end -}}
clusterCount: {{ int64 $count }}
scheduler: {{ $scheduler }}
density: {{ if kindIs "string" $density }}""{{ else }}{{ int64 $density }}{{ end }}
hasProfile: {{ ne .Values.profile "" }}
profileFile: {{ if .Values.profile }}{{ printf "%s.yaml" $p.name | quote }}{{ else }}""{{ end }}
sutSidecar: {{ $sidecar }}
userSut: {{ ne (dig "sut" "image" "" $p) "" }}
{{- end -}}

{{/*
The profile file as mounted: the profile as given. Chart values that override it
(harness.density, a SUT in a sidecar) reach the supervisor as flags instead.
*/}}
{{- define "scaletest.profileFile" -}}
{{ .Values.profile }}
{{- end -}}

{{/*
The fixed port layout of `scaletest-cluster --port-base N` (crates/scaletest-cluster/src/ports.rs):
name (a container port name, at most 15 characters), port, the component it belongs to
(the `component` label the local runner's Prometheus uses) and how its /metrics is
scraped (http, https with a self-signed cert, or "": not scraped).
*/}}
{{- define "scaletest.ports" -}}
{{- $b := int .Values.cluster.portBase -}}
- {name: apiserver, port: {{ $b }}, component: kube-apiserver, scrape: ""}
- {name: kine, port: {{ add $b 1 }}, component: kine, scrape: ""}
- {name: kine-metrics, port: {{ add $b 2 }}, component: kine, scrape: http}
- {name: controller-mgr, port: {{ add $b 3 }}, component: kube-controller-manager, scrape: https}
- {name: scheduler, port: {{ add $b 4 }}, component: kube-scheduler, scrape: https}
- {name: kwok, port: {{ add $b 5 }}, component: kwok, scrape: http}
- {name: supervisor, port: {{ add $b 6 }}, component: scaletest-cluster, scrape: http}
- {name: node-creator, port: {{ add $b 7 }}, component: node-creator, scrape: http}
- {name: pod-shim, port: {{ add $b 8 }}, component: pod-shim, scrape: http}
- {name: load-driver, port: {{ add $b 9 }}, component: load-driver, scrape: http}
- {name: sut, port: {{ add $b 10 }}, component: sut, scrape: http}
- {name: sut-health, port: {{ add $b 11 }}, component: sut, scrape: ""}
{{- end -}}

{{/*
The ports whose component runs in this release (by scheduler mode and profile) and
serves /metrics with the given scheme. Call with (list $ "http"); returns a YAML list.
*/}}
{{- define "scaletest.scrapedPorts" -}}
{{- $ := index . 0 -}}
{{- $scheme := index . 1 -}}
{{- $s := include "scaletest.settings" $ | fromYaml -}}
{{- $skip := list -}}
{{- if eq $s.scheduler "pod-shim" -}}
{{- $skip = list "scheduler" "node-creator" -}}
{{- else -}}
{{- $skip = list "pod-shim" -}}
{{- end -}}
{{- if not $s.hasProfile -}}
{{- $skip = concat $skip (list "load-driver" "sut") -}}
{{- else if $s.userSut -}}
{{- $skip = append $skip "sut" -}}
{{- end -}}
{{- if eq (dig "harness" "nodes" "node-creator" (include "scaletest.profileDoc" $ | fromYaml)) "sut" -}}
{{- $skip = append $skip "node-creator" -}}
{{- end -}}
{{- range (include "scaletest.ports" $ | fromYamlArray) }}
{{- if and (eq .scrape $scheme) (not (has .name $skip)) }}
- {{ toJson . }}
{{- end }}
{{- end }}
{{- end -}}

{{- define "scaletest.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
fsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "scaletest.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop: [ALL]
{{- end -}}

{{/* The plain-HTTP metrics port names, comma-separated (a Pod annotation). */}}
{{- define "scaletest.metricsPortNames" -}}
{{- $names := list -}}
{{- range (include "scaletest.scrapedPorts" (list . "http") | fromYamlArray) -}}
{{- $names = append $names .name -}}
{{- end -}}
{{- join "," $names -}}
{{- end -}}

{{/*
A value of the user's controller (sut.env) with the simulated cluster's facts in place
of ${...}, as the local supervisor does (crates/scaletest-core/src/profile/sut.rs).
The Pod's own facts are left to the kubelet's $(VAR) expansion. Call with (list $ value).
*/}}
{{- define "scaletest.sutValue" -}}
{{- $ := index . 0 -}}
{{- $v := toString (index . 1) -}}
{{- $b := int $.Values.cluster.portBase -}}
{{- $v = replace "${kubeconfig}" (printf "%s/pki/admin.kubeconfig" (include "scaletest.dataDir" $)) $v -}}
{{- $v = replace "${apiserverUrl}" (printf "https://127.0.0.1:%d" $b) $v -}}
{{- $v = replace "${clusterIndex}" "$(SCALETEST_CLUSTER_INDEX)" $v -}}
{{- $v = replace "${clusterName}" "$(SCALETEST_CLUSTER_NAME)" $v -}}
{{- $v = replace "${runId}" (toString $.Values.runId) $v -}}
{{- $v = replace "${metricsPort}" (toString (add $b 10)) $v -}}
{{- $v = replace "${healthPort}" (toString (add $b 11)) $v -}}
{{- $v = replace "${dataDir}" "/tmp/sut" $v -}}
{{- $v -}}
{{- end -}}

{{/*
The container port of a `sut.metrics.port` / `sut.readiness.port` (a number or
${metricsPort} / ${healthPort}); "" when the profile gives none. Call with (list $ port).
*/}}
{{- define "scaletest.sutPort" -}}
{{- $port := index . 1 -}}
{{- if ne (toString $port) "" -}}
{{- include "scaletest.sutValue" (list (index . 0) $port) -}}
{{- end -}}
{{- end -}}

{{/* Where each simulated cluster keeps its state, certificates and admin kubeconfig. */}}
{{- define "scaletest.dataDir" -}}
/var/lib/scaletest
{{- end -}}

{{/*
Prometheus keeping only what the run reads (the runner sets both past one Prometheus's
series budget; README.md "Prometheus at scale"). prometheusKeepTargets ends a job's
relabel_configs: other components' targets are never scraped. prometheusKeepSeries is a
job's metric_relabel_configs: other series are dropped before they are stored.
*/}}
{{- define "scaletest.prometheusKeepTargets" -}}
{{- with .Values.prometheus.components }}
- source_labels: [component]
  action: keep
  regex: {{ printf "(%s)" (join "|" .) | quote }}
{{- end }}
{{- end }}

{{- define "scaletest.prometheusKeepSeries" -}}
{{- with .Values.prometheus.keepMetrics }}
metric_relabel_configs:
  - source_labels: [__name__]
    action: keep
    regex: {{ . | quote }}
{{- end }}
{{- end }}
