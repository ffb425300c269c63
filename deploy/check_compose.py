"""Checks deploy/compose.yaml against the Compose specification's JSON schema
(compose_spec.json as shipped in PyPI's docker-compose 1.29.2, installed
without dependencies for the file only), then what qsign's deployment needs:
two qsign replicas, PostgreSQL, a load balancer in front, secrets as files."""
import importlib.util
import json
import sys
from pathlib import Path

import jsonschema
import yaml

compose = yaml.safe_load(Path(sys.argv[1]).read_text())
package = importlib.util.find_spec("compose").submodule_search_locations[0]
schema = json.loads((Path(package) / "config" / "compose_spec.json").read_text())
jsonschema.validate(compose, schema)

services = compose["services"]
assert services["qsign"]["deploy"]["replicas"] == 2, "two replicas"
assert services["postgres"]["image"].startswith("postgres:"), "PostgreSQL"
assert "grpc_pass" in (Path(sys.argv[1]).parent / "nginx.conf").read_text(), "gRPC balancing"
assert services["lb"]["depends_on"] == ["qsign"], "the balancer fronts qsign"
for name, secret in compose["secrets"].items():
    assert "file" in secret, f"secret {name} comes from a file"
print("compose: schema and structure ok")
