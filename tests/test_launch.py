"""The cluster recipes under ``launch/``: they must parse, match the schemas of the tools that read
them (Ray's cluster launcher, KubeRay, bash, MLflow, hwnas's own config), agree with each other,
only call ``hwnas search`` with options it has, bind dashboards to loopback, and hold no secrets.

Optional tools (jsonschema, shellcheck, kubeconform with KubeRay CRD schemas, docker compose) add
checks when present and skip them otherwise; everything else runs with the project's own deps.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import ROOT

LAUNCH = ROOT / "launch"
RAY_UP = [LAUNCH / "aws.yaml", LAUNCH / "gcp.yaml"]
RAYCLUSTER = LAUNCH / "kuberay-raycluster.yaml"
RAYJOB = LAUNCH / "kuberay-rayjob.yaml"
STORAGE = LAUNCH / "kuberay-storage.yaml"
SLURM = LAUNCH / "slurm.sbatch"
COMPOSE = LAUNCH / "mlflow" / "docker-compose.yaml"
ENV_EXAMPLE = LAUNCH / "mlflow" / ".env.example"
LOCAL_MLFLOW = LAUNCH / "mlflow" / "local.sh"
CLUSTER_SEARCH = LAUNCH / "configs" / "cluster-search.yaml"
README = LAUNCH / "README.md"

EXPECTED = [*RAY_UP, RAYCLUSTER, RAYJOB, STORAGE, SLURM, COMPOSE, ENV_EXAMPLE, LOCAL_MLFLOW,
            CLUSTER_SEARCH, README, LAUNCH / "Dockerfile", LAUNCH / "mlflow" / "Dockerfile"]
# What a user may create beside the recipes (git-ignored): local state and the real .env.
LOCAL_ONLY = {".env", "mlflow.db", "mlartifacts", "ray_results", "__pycache__"}
FILES = sorted(p for p in LAUNCH.rglob("*")
               if p.is_file() and not LOCAL_ONLY & set(p.relative_to(LAUNCH).parts))
YAMLS = [p for p in FILES if p.suffix in (".yaml", ".yml")]
SCRIPTS = [p for p in FILES if p.suffix in (".sh", ".sbatch")]


def rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def docs(path: Path) -> list[Any]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


def strings(node: Any) -> Iterator[str]:
    """Every string value in a parsed YAML tree."""
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for value in node.values():
            yield from strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from strings(value)


def test_every_recipe_is_there() -> None:
    missing = [rel(p) for p in EXPECTED if not p.is_file()]
    assert not missing, missing


@pytest.mark.parametrize("path", YAMLS, ids=rel)
def test_yaml_parses(path: Path) -> None:
    parsed = docs(path)
    assert parsed, f"{rel(path)} has no YAML document"
    assert all(isinstance(d, dict) for d in parsed), f"{rel(path)}: a document is not a mapping"


# --- Ray cluster launcher (`ray up`) ---------------------------------------------------------

def ray_schema() -> dict[str, Any]:
    import ray

    return json.loads((Path(ray.__file__).parent / "autoscaler" / "ray-schema.json").read_text())


@pytest.mark.parametrize("path", RAY_UP, ids=rel)
def test_ray_up_config_matches_rays_schema(path: Path) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    jsonschema.validate(docs(path)[0], ray_schema())


@pytest.mark.parametrize("path", RAY_UP, ids=rel)
def test_ray_up_config_passes_rays_own_checks(path: Path) -> None:
    """What `ray up` runs first: merge with the provider defaults, then validate (head type among
    the node types, min_workers within max_workers, ...). Private Ray API: skipped if it moves."""
    pytest.importorskip("jsonschema")
    try:
        from ray.autoscaler._private.util import prepare_config, validate_config
    except ImportError as err:  # pragma: no cover - depends on the Ray version
        pytest.skip(f"Ray's config validation moved: {err}")
    validate_config(prepare_config(copy.deepcopy(docs(path)[0])))


@pytest.mark.parametrize("path", RAY_UP, ids=rel)
def test_ray_up_node_types(path: Path) -> None:
    cfg = docs(path)[0]
    types = cfg["available_node_types"]
    head = types[cfg["head_node_type"]]
    assert head["resources"].get("GPU", 0) == 0, "the head is a CPU node"
    assert head["resources"].get("CPU") == 0, "no trial should land on the head"
    workers = {name: t for name, t in types.items() if name != cfg["head_node_type"]}
    gpu = {name: t for name, t in workers.items() if t["resources"].get("GPU", 0) >= 1}
    assert gpu, "no GPU worker type"
    for name, node_type in workers.items():
        assert node_type.get("min_workers", 0) == 0, f"{name}: workers must scale from zero"
        assert 1 <= node_type["max_workers"] <= cfg["max_workers"], name
        assert all(isinstance(v, int) and v >= 0 for v in node_type["resources"].values()), name
    assert sum(t.get("min_workers", 0) for t in workers.values()) <= cfg["max_workers"]


@pytest.mark.slow
@pytest.mark.parametrize("path", RAY_UP, ids=rel)
def test_ray_up_commands(path: Path) -> None:
    cfg = docs(path)[0]
    setup = "\n".join(cfg["setup_commands"])
    assert "torch==2.14.1" in setup and "torchvision==0.29.1" in setup
    assert re.search(r"pip install [^\n]*HWNAS_PIP_SPEC", setup), "hwnas is not installed"
    head = " ".join(cfg["head_start_ray_commands"])
    worker = " ".join(cfg["worker_start_ray_commands"])
    assert "ray start --head" in head and "--dashboard-host=127.0.0.1" in head
    assert "--autoscaling-config=~/ray_bootstrap_config.yaml" in head
    assert "--address=$RAY_HEAD_IP:6379" in worker
    assert "RAY_AUTH_MODE=token" in head and "RAY_AUTH_MODE=token" in worker
    assert cfg["file_mounts"].get("~/.ray/auth_token") == "~/.ray/auth_token"
    # Every command is valid shell (they run as `bash -c` on the nodes).
    commands = [c for key, value in cfg.items() if key.endswith("_commands") for c in value]
    for command in commands:
        proc = subprocess.run(["bash", "-n", "-c", command], capture_output=True, text=True)
        assert proc.returncode == 0, f"{command!r}: {proc.stderr}"


@pytest.mark.parametrize("path", RAY_UP, ids=rel)
def test_ray_up_storage_is_shared(path: Path) -> None:
    """The NFS mount that initialization_commands makes is passed into the container and is where
    the cluster search config keeps Tune's state."""
    cfg = docs(path)[0]
    init = " ".join(cfg["initialization_commands"])
    mount = re.search(r"mount -t nfs4? .* (/\S+);", init)
    assert mount, "no NFS mount in initialization_commands"
    mount_point = mount.group(1)
    assert f"-v {mount_point}:{mount_point}" in cfg["docker"]["run_options"]
    storage = docs(CLUSTER_SEARCH)[0]["storage_path"]
    assert storage.startswith(mount_point + "/"), (storage, mount_point)


# --- KubeRay ---------------------------------------------------------------------------------

def ray_cluster_specs() -> list[tuple[str, dict[str, Any]]]:
    """(file, RayCluster spec) for the RayCluster and the cluster inside the RayJob."""
    specs = []
    for path in (RAYCLUSTER, RAYJOB):
        for doc in docs(path):
            if doc["kind"] == "RayCluster":
                specs.append((rel(path), doc["spec"]))
            elif doc["kind"] == "RayJob":
                specs.append((rel(path), doc["spec"]["rayClusterSpec"]))
    return specs


def pod_specs(spec: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    pods = [("head", spec["headGroupSpec"]["template"]["spec"])]
    pods += [(g["groupName"], g["template"]["spec"]) for g in spec["workerGroupSpecs"]]
    return pods


def test_kuberay_manifests_kinds() -> None:
    assert [d["kind"] for d in docs(RAYCLUSTER)] == ["RayCluster"]
    assert sorted(d["kind"] for d in docs(RAYJOB)) == ["ConfigMap", "RayJob"]
    for path in (RAYCLUSTER, RAYJOB, STORAGE):
        for doc in docs(path):
            expected = "ray.io/v1" if doc["kind"].startswith("Ray") else "v1"
            assert doc["apiVersion"] == expected, (rel(path), doc["kind"])
            assert doc["metadata"]["name"], (rel(path), doc["kind"])


@pytest.mark.parametrize("name,spec", [pytest.param(n, s, id=n) for n, s in ray_cluster_specs()])
def test_kuberay_cluster_spec(name: str, spec: dict[str, Any]) -> None:
    assert re.fullmatch(r"\d+\.\d+\.\d+", str(spec["rayVersion"]))
    assert spec.get("authOptions", {}).get("mode") == "token", "token auth off"
    head = spec["headGroupSpec"]
    assert head.get("serviceType", "ClusterIP") == "ClusterIP", "head exposed outside the cluster"
    assert spec["workerGroupSpecs"], "no worker group"
    gpu_groups = 0
    for group in [head, *spec["workerGroupSpecs"]]:
        params = group["rayStartParams"]
        assert all(isinstance(v, str) for v in params.values()), "rayStartParams are strings"
        assert params.get("dashboard-host", "127.0.0.1") == "127.0.0.1"
    for group in spec["workerGroupSpecs"]:
        assert group["groupName"]
        assert 0 <= group["minReplicas"] <= group["replicas"] <= group["maxReplicas"]
    for group_name, pod in pod_specs(spec):
        volumes = {v["name"] for v in pod.get("volumes", [])}
        assert pod["containers"], group_name
        for container in pod["containers"]:
            assert container["image"], group_name
            resources = container["resources"]
            for kind in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(resources[kind]), (group_name, kind)
            if "nvidia.com/gpu" in resources["limits"]:
                gpu_groups += 1
                assert group_name != "head", "the head is a CPU pod"
            for mount in container.get("volumeMounts", []):
                assert mount["name"] in volumes, (group_name, mount["name"])
    assert gpu_groups, "no worker group with nvidia.com/gpu limits"


def test_kuberay_rayjob_runs_the_search_from_its_configmap() -> None:
    by_kind = {d["kind"]: d for d in docs(RAYJOB)}
    job, config_map = by_kind["RayJob"], by_kind["ConfigMap"]
    entrypoint = job["spec"]["entrypoint"]
    assert entrypoint.startswith("hwnas search ")
    assert "--config /configs/search.yaml" in entrypoint
    assert "--tracking-uri http://mlflow:5000" in entrypoint
    assert "--address auto" in entrypoint, "without --address hwnas starts its own Ray"
    assert job["spec"]["shutdownAfterJobFinishes"] is True
    head = job["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]
    volume = next(v for v in head["volumes"] if "configMap" in v)
    assert volume["configMap"]["name"] == config_map["metadata"]["name"]
    mounts = {m["name"]: m["mountPath"] for c in head["containers"] for m in c["volumeMounts"]}
    assert mounts[volume["name"]] == "/configs"
    assert "search.yaml" in config_map["data"]


def test_kuberay_storage_is_one_shared_claim() -> None:
    """Every Ray pod mounts the ReadWriteMany claim of kuberay-storage.yaml, and the RayJob's
    storage_path lies on it."""
    (pvc,) = docs(STORAGE)
    assert pvc["kind"] == "PersistentVolumeClaim"
    assert "ReadWriteMany" in pvc["spec"]["accessModes"]
    storage = yaml.safe_load(
        next(d for d in docs(RAYJOB) if d["kind"] == "ConfigMap")["data"]["search.yaml"]
    )["storage_path"]
    for name, spec in ray_cluster_specs():
        for group_name, pod in pod_specs(spec):
            claims = {v["name"] for v in pod.get("volumes", [])
                      if v.get("persistentVolumeClaim", {}).get("claimName")
                      == pvc["metadata"]["name"]}
            paths = [m["mountPath"] for c in pod["containers"]
                     for m in c.get("volumeMounts", []) if m["name"] in claims]
            assert paths, f"{name} {group_name}: shared claim not mounted"
            if name == rel(RAYJOB):
                assert any(storage.startswith(p + "/") for p in paths), (storage, paths)


@pytest.mark.slow
def test_kuberay_against_crd_schemas() -> None:
    """kubeconform against the KubeRay CRD schemas, when both are available (set
    KUBERAY_SCHEMA_LOCATION to a kubeconform -schema-location template for them)."""
    kubeconform = shutil.which("kubeconform")
    location = os.environ.get("KUBERAY_SCHEMA_LOCATION")
    if not kubeconform or not location:
        pytest.skip("kubeconform and KUBERAY_SCHEMA_LOCATION (KubeRay CRD schemas) not available")
    proc = subprocess.run(
        [kubeconform, "-strict", "-summary", "-schema-location", "default",
         "-schema-location", location, str(RAYCLUSTER), str(RAYJOB), str(STORAGE)],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


# --- search configs --------------------------------------------------------------------------

def search_configs() -> list[tuple[str, dict[str, Any]]]:
    config_map = next(d for d in docs(RAYJOB) if d["kind"] == "ConfigMap")
    return [(rel(CLUSTER_SEARCH), docs(CLUSTER_SEARCH)[0]),
            (f"{rel(RAYJOB)}:search.yaml", yaml.safe_load(config_map["data"]["search.yaml"]))]


@pytest.mark.parametrize("source,data", [pytest.param(s, d, id=s) for s, d in search_configs()])
def test_cluster_search_configs_are_valid(source: str, data: dict[str, Any]) -> None:
    from nas.config import validate_config

    config = validate_config(data, source)
    assert config.resources.gpus > 0, "cluster configs train on GPU workers"
    storage = config.storage_path
    assert storage.startswith("/") and not storage.startswith("/tmp"), \
        f"{source}: storage_path must be shared storage, not {storage!r}"
    assert config.tracking.uri.startswith("http"), "a cluster logs to an MLflow server"


# --- shell scripts ---------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("path", SCRIPTS, ids=rel)
def test_script_syntax(path: Path) -> None:
    proc = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert path.read_text().startswith("#!/usr/bin/env bash\n")
    assert os.access(path, os.X_OK), f"{rel(path)} is not executable"


@pytest.mark.slow
@pytest.mark.parametrize("path", SCRIPTS, ids=rel)
def test_script_shellcheck(path: Path) -> None:
    shellcheck = shutil.which("shellcheck")
    if shellcheck is None:
        pytest.skip("shellcheck not installed")
    proc = subprocess.run([shellcheck, "-s", "bash", str(path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_slurm_script_starts_and_stops_only_its_own_ray() -> None:
    text = SLURM.read_text()
    assert re.search(r"srun [^\n]*-w \"\$\{head_node\}\" \\\n\s+ray start --head --block", text)
    assert "--dashboard-host=127.0.0.1" in text
    assert '--num-cpus="${cpus}"' in text and '--num-gpus="${gpus}"' in text
    assert "cpus=${SLURM_CPUS_PER_TASK" in text and "gpus=${SLURM_GPUS_ON_NODE" in text
    assert re.search(r"ray start --block --address=", text), "no workers"
    assert "trap cleanup EXIT" in text
    code = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    assert "ray stop" not in code, "`ray stop` kills other jobs' Ray processes too"
    assert "${MLFLOW_TRACKING_URI:-sqlite:///mlflow.db}" in text
    assert "${CONFIG:-configs/quickstart.yaml}" in text


# --- MLflow ----------------------------------------------------------------------------------

def test_mlflow_local_recipe() -> None:
    text = LOCAL_MLFLOW.read_text()
    for flag in ("--backend-store-uri sqlite:///mlflow.db", "--artifacts-destination ./mlartifacts",
                 "--host 127.0.0.1", "--workers 1", "--port"):
        assert flag in text, flag
    assert "export MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false" in text


def test_mlflow_compose_recipe() -> None:
    compose = docs(COMPOSE)[0]
    services = compose["services"]
    assert {"postgres", "minio", "mlflow"} <= set(services)
    server = services["mlflow"]
    argv = [str(a) for a in server["entrypoint"]]
    assert argv[:2] == ["mlflow", "server"]
    options = dict(zip(argv[2::2], argv[3::2], strict=True))
    assert options["--artifacts-destination"].startswith("s3://")
    assert options["--host"] == "0.0.0.0" and options["--port"] == "5000"
    env = server["environment"]
    backend = env["MLFLOW_BACKEND_STORE_URI"]
    assert re.fullmatch(r"postgresql://\$\{\w+\}:\$\{\w+\}@postgres:5432/.+", backend), backend
    assert env["MLFLOW_S3_ENDPOINT_URL"] == "http://minio:9000"
    assert str(env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"]).lower() == "false"
    assert "MLFLOW_SERVER_ALLOWED_HOSTS" in env and "--allowed-hosts" in COMPOSE.read_text()
    # Published ports listen on loopback unless the operator chooses otherwise.
    for name, service in services.items():
        for port in service.get("ports", []):
            host = str(port).rsplit(":", 2)[0]
            assert host in ("127.0.0.1", "${MLFLOW_BIND:-127.0.0.1}"), (name, port)


def test_mlflow_compose_secrets_come_from_env_file() -> None:
    text = COMPOSE.read_text().replace("$$", "")
    required = {m.group(1) for m in re.finditer(r"\$\{(\w+)(?!:-)(?::?\?[^}]*)?\}", text)}
    example = dict(line.split("=", 1) for line in ENV_EXAMPLE.read_text().splitlines()
                   if line and not line.startswith("#"))
    assert required <= set(example), f"not in .env.example: {required - set(example)}"
    for key, value in example.items():
        if re.search(r"PASSWORD|SECRET|TOKEN", key):
            assert value.startswith("change-me"), f"{key} must hold a placeholder"
    ignored = (LAUNCH / "mlflow" / ".gitignore").read_text().splitlines()
    assert ".env" in ignored


@pytest.mark.slow
def test_mlflow_compose_config() -> None:
    """`docker compose config` with the example env, when compose is installed."""
    docker = shutil.which("docker")
    if docker is None or subprocess.run([docker, "compose", "version"], capture_output=True,
                                        timeout=30).returncode != 0:
        pytest.skip("docker compose not installed")
    proc = subprocess.run([docker, "compose", "-f", str(COMPOSE), "--env-file", str(ENV_EXAMPLE),
                           "config", "--quiet"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr


# --- across all files ------------------------------------------------------------------------

SECRET_PATTERNS = {
    "AWS access key id": re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),
    "private key": re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    "GitHub token": re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_\w{30,})"),
    "Slack token": re.compile(r"\bxox[abprs]-[A-Za-z0-9-]{10,}"),
    "Google API key": re.compile(r"\bAIza[0-9A-Za-z_-]{35}\b"),
}
URL_CREDENTIALS = re.compile(r"\b[a-z][a-z0-9+.-]*://([^/\s:@]+):([^/\s@]+)@")
ASSIGNED_SECRET = re.compile(
    r"\b([A-Z0-9_]*(?:PASSWORD|SECRET|TOKEN)[A-Z0-9_]*)[ \t]*[:=][ \t]*[\"']?([^\s\"'#]+)")


def is_placeholder(value: str) -> bool:
    return (value.startswith(("$", "<")) or value.isupper() or "change-me" in value
            or "REPLACE" in value or value in ("...", "token"))


@pytest.mark.parametrize("path", FILES, ids=rel)
def test_no_secrets(path: Path) -> None:
    text = path.read_text()
    for what, pattern in SECRET_PATTERNS.items():
        assert not pattern.search(text), f"{rel(path)}: looks like a {what}"
    for match in URL_CREDENTIALS.finditer(text):
        assert is_placeholder(match.group(2)), f"{rel(path)}: credentials in {match.group(0)}"
    for match in ASSIGNED_SECRET.finditer(text):
        assert is_placeholder(match.group(2)), f"{rel(path)}: {match.group(1)} has a value"


def test_dashboards_bind_loopback() -> None:
    hosts = {}
    pattern = re.compile(r"dashboard[-_]host[\"']?\s*[=: ]\s*[\"']?([^\s\"',`]+)")
    for path in FILES:
        found = pattern.findall(path.read_text())
        assert all(h == "127.0.0.1" for h in found), f"{rel(path)}: dashboard host {found}"
        hosts[path] = found
    for path in [*RAY_UP, SLURM]:
        assert hosts[path], f"{rel(path)} does not pin the dashboard to 127.0.0.1"


@cache
def hwnas_search_options() -> frozenset[str]:
    env = dict(os.environ, COLUMNS="200", NO_COLOR="1", TERM="dumb")
    proc = subprocess.run(
        [sys.executable, "-c", "import sys; from nas.cli import main; sys.exit(main())",
         "search", "--help"], capture_output=True, text=True, cwd=ROOT, env=env, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    options = frozenset(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", proc.stdout))
    assert {"--config", "--address", "--tracking-uri"} <= options, proc.stdout
    return options


def logical_lines(text: str) -> Iterator[str]:
    """Lines with backslash continuations joined (a continued comment loses its '#')."""
    pending = ""
    for line in text.splitlines():
        if pending:
            line = line.lstrip().lstrip("#")
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        yield pending + line
        pending = ""
    if pending:
        yield pending


def search_invocations(path: Path) -> list[str]:
    """The text after each `hwnas search` up to the end of that shell command."""
    sources = list(logical_lines(path.read_text()))
    if path.suffix in (".yaml", ".yml"):  # folded YAML strings span several raw lines
        sources += [s for d in docs(path) for s in strings(d)]
    calls = []
    for source in sources:
        for part in source.split("hwnas search")[1:]:
            calls.append(re.split(r"&&|\|\||[;|`)]", part)[0])
    return calls


@pytest.mark.slow
def test_hwnas_search_options_exist() -> None:
    known = hwnas_search_options()
    used_in = []
    for path in FILES:
        for call in search_invocations(path):
            used = set(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", call))
            assert used <= known, f"{rel(path)}: hwnas search {call.strip()!r}: {used - known}"
            used_in.append(path)
    for path in (*RAY_UP, RAYJOB, SLURM, CLUSTER_SEARCH, README):
        assert path in used_in, f"no hwnas search command in {rel(path)}"


def test_jobs_on_a_cluster_join_it() -> None:
    """Under `ray job submit` (and in a RayJob) hwnas must be told to join the cluster."""
    for path in FILES:
        for line in logical_lines(path.read_text()):
            if "ray job submit" in line and "hwnas search" in line:
                call = line.split("hwnas search", 1)[1]
                assert "--address" in call, f"{rel(path)}: {line.strip()}"


def test_ray_versions_agree() -> None:
    """One Ray version everywhere: the cluster images and KubeRay's rayVersion (and the Ray that
    submits jobs, which the README pins to the same)."""
    versions = {}
    for path in FILES:
        for tag in re.findall(r"rayproject/ray:(\d+\.\d+\.\d+)", path.read_text()):
            versions.setdefault(tag, set()).add(rel(path))
    for name, spec in ray_cluster_specs():
        versions.setdefault(str(spec["rayVersion"]), set()).add(name)
    assert len(versions) == 1, versions
    (version,) = versions
    assert f'"ray[default]=={version}"' in README.read_text()
