"""The Kubernetes manifests (deploy/kubernetes) pass only flags and
environment variables `fnhost serve` knows. scripts/check-kubernetes.sh
renders them into target/kubernetes/ and validates them against the
Kubernetes schemas; this test renders them itself when that has not run."""
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, TARGET

FNHOST = str(TARGET / "fnhost")


def rendered():
    out = ROOT / "target" / "kubernetes" / "fnhost.yaml"
    if not out.exists():
        if not shutil.which("kubectl"):
            pytest.skip("kubectl is missing (scripts/check-kubernetes.sh installs it)")
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(subprocess.run(["kubectl", "kustomize", str(ROOT / "deploy" / "kubernetes")],
                                      check=True, capture_output=True, text=True).stdout)
    return [d for d in yaml.safe_load_all(out.read_text()) if d]


def container(docs):
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    return deployment, deployment["spec"]["template"]["spec"]["containers"][0]


def test_every_flag_the_deployment_passes_is_one_fnhost_serve_accepts():
    _, c = container(rendered())
    args = c["args"]
    assert args[0] == "serve"
    help_text = subprocess.run([FNHOST, "serve", "--help"], capture_output=True, text=True, check=True).stdout
    known = set(re.findall(r"--[a-z][a-z0-9-]*", help_text))
    for arg in args[1:]:
        flag = arg.split("=", 1)[0]
        assert flag in known, f"{flag} is not a flag of fnhost serve"
    # And clap parses them together (an unknown or malformed one fails
    # before --help is reached).
    r = subprocess.run([FNHOST] + args + ["--help"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_the_environment_it_sets_is_what_fnhost_reads_and_probes_match_the_server():
    docs = rendered()
    deployment, c = container(docs)
    env = {}
    for source in c["envFrom"]:
        kind = "ConfigMap" if "configMapRef" in source else "Secret"
        name = (source.get("configMapRef") or source.get("secretRef"))["name"]
        obj = next(d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name)
        env.update(obj.get("data") or {})
        env.update(obj.get("stringData") or {})
    help_text = subprocess.run([FNHOST, "serve", "--help"], capture_output=True, text=True, check=True).stdout
    for name in env:
        if name.startswith("FNHOST_"):
            assert f"${name}" in help_text, f"fnhost serve does not read {name}"
    assert "FNHOST_DATABASE_URL" in env and "FNHOST_PACKAGE_STORE" in env
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert "startupProbe" in c and "preStop" in c["lifecycle"]
    grace = int(next(a for a in c["args"] if a.startswith("--shutdown-grace=")).split("=")[1])
    assert deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] > grace
    security = c["securityContext"]
    assert security["readOnlyRootFilesystem"] and not security["allowPrivilegeEscalation"]
    assert deployment["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"]
    # What the worker sandbox needs: a pod user namespace, namespaces and
    # mounts its profiles would forbid, a /proc of a worker's own.
    assert deployment["spec"]["template"]["spec"]["hostUsers"] is False
    assert security["procMount"] == "Unmasked"
    assert security["seccompProfile"]["type"] == "Unconfined"
    assert security["capabilities"]["drop"] == ["ALL"]
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
    assert volumes[mounts["/dev/shm"]]["emptyDir"]["medium"] == "Memory"
    assert deployment["spec"]["replicas"] == 3
    assert {d["kind"] for d in docs} >= {"Deployment", "Service", "ConfigMap", "Secret",
                                        "PodDisruptionBudget", "HorizontalPodAutoscaler"}
