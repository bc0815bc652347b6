// Package deploy holds noon's deployment artifacts, and the tests that
// check them: the image (Dockerfile), the Helm chart (helm/noon) and the
// Grafana dashboard (grafana/noon.json). It has no code of its own; the
// tests render the chart with helm and check the manifests (probes, preStop
// drain, grace periods, resources, PodDisruptionBudgets, autoscalers,
// Services, certificates, the config file against the real config loader),
// and check that the dashboard uses only metric names the daemons export.
package deploy
