"""The published JavaScript client (@hapta/client): the same version as the Python package, and a tarball that holds
the built client, its types, README and license, nothing else (no sources, tests or node_modules)."""
from __future__ import annotations

import json
import shutil
import subprocess

import hapta
from tests.services import ROOT

CLIENT = ROOT / "clients" / "js"


def test_one_version_for_both_packages():
    package = json.loads((CLIENT / "package.json").read_text())
    lock = json.loads((CLIENT / "package-lock.json").read_text())
    assert package["version"] == lock["version"] == lock["packages"][""]["version"] == hapta.__version__


def test_the_package_points_at_what_it_ships():
    package = json.loads((CLIENT / "package.json").read_text())
    assert package["name"] == "@hapta/client" and package["license"] == "MIT" and package["type"] == "module"
    assert package["main"] == package["module"] == package["exports"]["."]["import"] == "./dist/hapta.js"
    assert package["types"] == package["exports"]["."]["types"] == "./dist/hapta.d.ts"
    assert package["sideEffects"] is False and package["engines"]["node"]
    for path in (package["main"], package["types"]):
        assert (CLIENT / path).is_file(), path
    assert (CLIENT / "LICENSE").read_text() == (ROOT / "LICENSE").read_text()


def test_npm_pack_ships_the_build_only():
    npm = shutil.which("npm")
    assert npm, "npm is needed for the JS client's tests (Node 20+ with npm)"
    done = subprocess.run([npm, "pack", "--dry-run", "--json", "--ignore-scripts"], cwd=CLIENT, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    [packed] = json.loads(done.stdout)
    assert (packed["name"], packed["version"]) == ("@hapta/client", hapta.__version__)
    assert sorted(entry["path"] for entry in packed["files"]) == [
        "LICENSE", "README.md", "dist/hapta.d.ts", "dist/hapta.js", "package.json"]
