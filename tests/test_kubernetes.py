"""The Kubernetes base and overlay as `kubectl kustomize` renders them: objects valid against the
Kubernetes schemas (kubernetes-validate, pinned) and the Prometheus Operator's ServiceMonitor and
PrometheusRule schemas (deploy/kubernetes/schemas/, our transcription of the CRDs), a pod that the
"restricted" Pod Security profile admits, and a PrometheusRule equal to prometheus/rules/."""

import json
import os
import shutil
import subprocess
import sys

import pytest
import yaml

from conftest import ROOT

KUBE = os.path.join(ROOT, "deploy", "kubernetes")
KUBERNETES_VERSION = "1.32"  # the kubectl this machine has
pytestmark = pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")


def render(folder):
    out = subprocess.run(["kubectl", "kustomize", os.path.join(KUBE, folder)], capture_output=True, text=True,
                         check=True).stdout
    return list(yaml.safe_load_all(out))


def one(docs, kind):
    (doc,) = [d for d in docs if d["kind"] == kind]
    return doc


def restricted_violations(pod_spec):
    """What the "restricted" Pod Security Standard (kubernetes.io/docs/concepts/security/pod-security-
    standards) refuses in a pod spec; empty when it admits the pod."""
    out = []
    allowed_volumes = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim",
                       "projected", "secret"}
    for v in pod_spec.get("volumes", []):
        kinds = set(v) - {"name"}
        if not kinds <= allowed_volumes:
            out.append(f"volume {v['name']}: {sorted(kinds - allowed_volumes)}")
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        if pod_spec.get(key):
            out.append(key)
    pod_ctx = pod_spec.get("securityContext", {})
    for c in pod_spec.get("containers", []) + pod_spec.get("initContainers", []):
        ctx = c.get("securityContext", {})
        if ctx.get("privileged"):
            out.append(f"{c['name']}: privileged")
        if ctx.get("allowPrivilegeEscalation") is not False:
            out.append(f"{c['name']}: allowPrivilegeEscalation must be false")
        if not ctx.get("runAsNonRoot", pod_ctx.get("runAsNonRoot")):
            out.append(f"{c['name']}: runAsNonRoot must be true")
        if ctx.get("runAsUser", pod_ctx.get("runAsUser")) == 0:
            out.append(f"{c['name']}: runAsUser 0")
        seccomp = ctx.get("seccompProfile", pod_ctx.get("seccompProfile", {})).get("type")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            out.append(f"{c['name']}: seccompProfile must be RuntimeDefault or Localhost")
        caps = ctx.get("capabilities", {})
        if "ALL" not in caps.get("drop", []):
            out.append(f"{c['name']}: capabilities must drop ALL")
        if set(caps.get("add", [])) - {"NET_BIND_SERVICE"}:
            out.append(f"{c['name']}: adds capabilities")
        if any("hostPort" in p for p in c.get("ports", [])):
            out.append(f"{c['name']}: hostPort")
    return out


def test_base_renders_valid_objects_in_the_orchex_namespace():
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    docs = render("base")
    assert sorted(d["kind"] for d in docs) == ["DaemonSet", "Namespace", "PrometheusRule", "Service",
                                               "ServiceMonitor"]
    for d in docs:
        if d["apiVersion"] != "monitoring.coreos.com/v1":
            kubernetes_validate.validate(d, KUBERNETES_VERSION, strict=True)
        if d["kind"] != "Namespace":
            assert d["metadata"]["namespace"] == "orchex"
    monitor = one(docs, "ServiceMonitor")
    assert monitor["spec"]["selector"]["matchLabels"] == one(docs, "Service")["metadata"]["labels"]
    assert monitor["spec"]["endpoints"][0]["port"] == one(docs, "Service")["spec"]["ports"][0]["name"]
    assert one(docs, "Namespace")["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


def test_the_daemonset_passes_the_restricted_profile_and_the_check_can_fail():
    pod = one(render("base"), "DaemonSet")["spec"]["template"]["spec"]
    assert restricted_violations(pod) == []
    # The overlay's host path is what "restricted" (and "baseline") refuse, and why the overlay
    # relabels it privileged.
    overlay = render(os.path.join("overlays", "example"))
    assert restricted_violations(one(overlay, "DaemonSet")["spec"]["template"]["spec"]) == [
        "volume router-logs: ['hostPath']"]
    assert one(overlay, "Namespace")["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "privileged"
    assert restricted_violations({"containers": [{"name": "x"}]})  # an empty security context fails


def test_the_prometheusrule_is_prometheus_rules():
    rules = []
    for name in sorted(n for n in os.listdir(os.path.join(ROOT, "prometheus", "rules")) if n.startswith("orchex-")):
        rules += yaml.safe_load(open(os.path.join(ROOT, "prometheus", "rules", name)))["groups"]
    assert one(render("base"), "PrometheusRule")["spec"]["groups"] == rules
    generated = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "kubernetes_rules.py")],
                               capture_output=True, text=True, check=True).stdout
    assert generated == open(os.path.join(KUBE, "base", "prometheusrule.yaml")).read(), \
        "deploy/kubernetes/base/prometheusrule.yaml is stale: run `make kubernetes`"


def test_the_overlay_configures_the_cluster():
    docs = render(os.path.join("overlays", "example"))
    ds = one(docs, "DaemonSet")["spec"]["template"]["spec"]["containers"][0]
    assert "--selection-log=/var/log/router/selection_metrics*.csv" in ds["args"]
    assert all(d["metadata"]["labels"]["release"] == "prometheus" for d in docs)


def test_the_pod_attribution_overlay_mounts_the_pod_resources_directory():
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    docs = render(os.path.join("overlays", "pod-attribution"))
    for d in docs:
        if d["apiVersion"] != "monitoring.coreos.com/v1":
            kubernetes_validate.validate(d, KUBERNETES_VERSION, strict=True)
    pod = one(docs, "DaemonSet")["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert "--collector.kubernetes" in container["args"]
    assert container["volumeMounts"] == [{"name": "pod-resources", "mountPath": "/var/lib/kubelet/pod-resources",
                                          "readOnly": True}]
    assert pod["volumes"] == [{"name": "pod-resources",
                               "hostPath": {"path": "/var/lib/kubelet/pod-resources", "type": "Directory"}}]
    # What "restricted" refuses here is what its comment says: the host path and the root user.
    assert restricted_violations(pod) == ["volume pod-resources: ['hostPath']", "orchex: runAsNonRoot must be true",
                                          "orchex: runAsUser 0"]
    assert one(docs, "Namespace")["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "privileged"
    assert pod["priorityClassName"] == "system-node-critical" and "hostPID" not in pod
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    # For the opt-in per-pod memory: this node's name, and a service account that may list pods
    # and nothing else (its token is not mounted until the opt-in).
    assert {"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}} in container["env"]
    assert pod["serviceAccountName"] == "orchex" and pod["automountServiceAccountToken"] is False
    account = one(docs, "ServiceAccount")["metadata"]
    binding = one(docs, "ClusterRoleBinding")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": account["name"],
                                    "namespace": account["namespace"]}]
    assert binding["roleRef"]["name"] == one(docs, "ClusterRole")["metadata"]["name"]
    assert one(docs, "ClusterRole")["rules"] == [{"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]}]


def test_the_pod_memory_component_adds_host_pids_the_token_and_the_flag(tmp_path):
    """The kustomization docs/deploy.md shows, rendered as a cluster's repository holding orchex's deploy/."""
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    shown = open(os.path.join(ROOT, "docs", "deploy.md")).read().split("# kustomization.yaml of your cluster\n")[1]
    (tmp_path / "kustomization.yaml").write_text(shown.split("```")[0])
    os.symlink(os.path.join(ROOT, "deploy"), tmp_path / "deploy")
    out = subprocess.run(["kubectl", "kustomize", str(tmp_path)], capture_output=True, text=True, check=True).stdout
    docs = list(yaml.safe_load_all(out))
    for d in docs:
        if d["apiVersion"] != "monitoring.coreos.com/v1":
            kubernetes_validate.validate(d, KUBERNETES_VERSION, strict=True)
    pod = one(docs, "DaemonSet")["spec"]["template"]["spec"]
    assert pod["hostPID"] is True and pod["automountServiceAccountToken"] is True
    assert pod["containers"][0]["args"][-2:] == ["--collector.kubernetes", "--kubernetes.pod-memory"]
    assert "hostPID" in restricted_violations(pod)  # "baseline" refuses it too: the namespace is privileged


def crd_errors(doc):
    """What the CRD schema for `doc`'s kind refuses in it; empty when it is valid."""
    import jsonschema

    schema = json.load(open(os.path.join(KUBE, "schemas", doc["kind"].lower() + ".json")))
    return [f"{'/'.join(map(str, e.path))}: {e.message}"
            for e in jsonschema.Draft7Validator(schema).iter_errors(doc)]


@pytest.mark.parametrize("folder", ["base", os.path.join("overlays", "example"),
                                    os.path.join("overlays", "pod-attribution")])
def test_operator_objects_validate_against_the_crd_schemas(folder):
    docs = [d for d in render(folder) if d["apiVersion"] == "monitoring.coreos.com/v1"]
    assert sorted(d["kind"] for d in docs) == ["PrometheusRule", "ServiceMonitor"]
    for d in docs:
        assert crd_errors(d) == [], d["kind"]


@pytest.mark.parametrize("breakage", ["for: 5 minutes", "no expr", "record and alert", "scheme ftp",
                                      "unknown endpoint field", "no selector"])
def test_the_crd_check_refuses_what_the_operator_refuses(breakage):
    docs = render("base")
    rule, monitor = one(docs, "PrometheusRule"), one(docs, "ServiceMonitor")
    alert = next(r for g in rule["spec"]["groups"] for r in g["rules"] if "alert" in r)
    endpoint = monitor["spec"]["endpoints"][0]
    broken = {"for: 5 minutes": lambda: alert.update({"for": "5 minutes"}),
              "no expr": lambda: alert.pop("expr"),
              "record and alert": lambda: alert.update(record="x:y:z"),
              "scheme ftp": lambda: endpoint.update(scheme="ftp"),
              "unknown endpoint field": lambda: endpoint.update(scrapeInterval="15s"),
              "no selector": lambda: monitor["spec"].pop("selector")}
    broken[breakage]()
    assert crd_errors(rule) + crd_errors(monitor)
