"""The execution environment's build context, as `ansible-builder create` writes it (offline, well under a second):
every pinned package in it has constraints.txt's version and the build installs under constraints.txt, bindep.txt
is carried, there is no Galaxy stage, the base image is a build argument, and the modules' libraries are in it.

The drift check is also run on a copy of the project with one version changed, so it is known to fail when a pin
drifts (a check that cannot fail proves nothing)."""
from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest
import yaml
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
BUILDER = ROOT / ".venv" / "bin" / "ansible-builder"
EE_REQUIREMENTS = ROOT / "ee" / "requirements.txt"
# What the build context is made of (the copy the drift self-test mutates).
EE_FILES = ("execution-environment.yml", "ee/requirements.txt", "bindep.txt", "constraints.txt")
# Pins the Containerfile carries that are ansible-builder's own, not the project's dependencies.
BUILDER_OWN_PINS = {"dumb-init": "ansible-builder's container init (PID 1 of the image)"}
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;#]+)")


def create_context(project: Path, context: Path) -> Path:
    """ansible-builder create, as the build would run it; returns the build context."""
    proc = subprocess.run([str(BUILDER), "create", "-f", str(project / "execution-environment.yml"), "-c", str(context),
                           "--output-filename", "Containerfile"], cwd=project, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return context


def constraints(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        match = PIN.match(line.strip())
        if match:
            pins[canonicalize_name(match.group(1))] = match.group(2)
    return pins


def context_pins(context: Path) -> tuple[dict[str, str], list[str]]:
    """({package: version} pinned anywhere in the build context, [requirements that are not pinned exactly])."""
    pins, unpinned = {}, []
    for raw in (context / "_build" / "requirements.txt").read_text().splitlines():
        line = re.sub(r"(^|\s+)#.*$", "", raw).strip()
        if not line:
            continue
        try:
            req = Requirement(line)
        except InvalidRequirement:
            unpinned.append(line)
            continue
        exact = [s.version for s in req.specifier if s.operator == "=="]
        if len(exact) != 1 or len(req.specifier) != 1:
            unpinned.append(line)
        else:
            pins[canonicalize_name(req.name)] = exact[0]
    containerfile = (context / "Containerfile").read_text()
    refs = re.search(r'^ARG ANSIBLE_INSTALL_REFS="([^"]*)"', containerfile, re.M)
    assert refs, "no ANSIBLE_INSTALL_REFS in the Containerfile (ansible-core / ansible-runner)"
    for token in refs.group(1).split() + re.findall(r"'([^']+==[^']+)'", containerfile):
        match = PIN.match(token)
        if not match:
            unpinned.append(token)
        elif canonicalize_name(match.group(1)) not in BUILDER_OWN_PINS:
            pins[canonicalize_name(match.group(1))] = match.group(2)
    return pins, unpinned


def drift(context: Path, constraints_file: Path) -> list[str]:
    """One line per pin of the build context that constraints.txt does not have, or has with another version."""
    wanted = constraints(constraints_file)
    pins, unpinned = context_pins(context)
    problems = [f"{name}=={version}: constraints.txt has {wanted.get(name, 'no pin')}"
                for name, version in sorted(pins.items()) if wanted.get(name) != version]
    return problems + [f"{line}: not pinned with ==" for line in unpinned]


@pytest.fixture(scope="module")
def context(tmp_path_factory) -> Path:
    return create_context(ROOT, tmp_path_factory.mktemp("ee") / "context")


def test_every_pin_of_the_build_context_is_the_constraints_version(context):
    pins, _ = context_pins(context)
    # The packages the EE exists for are pinned (else an empty context would pass).
    assert {"ansible", "ansible-core", "ansible-runner", "psycopg2-binary"} <= set(pins), pins
    assert drift(context, ROOT / "constraints.txt") == []


def _first_requirement_pin() -> tuple[str, str]:
    match = next(m for m in map(PIN.match, EE_REQUIREMENTS.read_text().splitlines()) if m)
    return match.group(1), match.group(2)


def _mutations() -> dict[str, tuple[tuple[str, str, str], str]]:
    """A drifted copy of the project, per kind of drift: (file, old text, new text) and the line drift() must report."""
    name, version = _first_requirement_pin()
    core = yaml.safe_load((ROOT / "execution-environment.yml").read_text())["dependencies"]["ansible_core"]["package_pip"]
    return {
        "constraint-drift": (("constraints.txt", f"\n{name}=={version}\n", f"\n{name}==0.0.1\n"),
                             f"{canonicalize_name(name)}=={version}: constraints.txt has 0.0.1"),
        "unpinned-requirement": (("ee/requirements.txt", f"{name}=={version}", f"{name}>={version}"),
                                 f"{name}>={version}: not pinned with =="),
        "ansible-core-drift": (("execution-environment.yml", core, "ansible-core==0.0.1"),
                               f"ansible-core==0.0.1: constraints.txt has {core.split('==')[1]}"),
    }


@pytest.mark.parametrize("kind", ["constraint-drift", "unpinned-requirement", "ansible-core-drift"])
def test_the_drift_check_fails_on_a_drifted_copy(tmp_path, kind):
    (path, old, new), expected = _mutations()[kind]
    project = tmp_path / "project"
    for name in EE_FILES:
        (project / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / name, project / name)
    text = (project / path).read_text()
    assert old in text, f"{path} does not hold {old!r}"
    (project / path).write_text(text.replace(old, new))
    assert expected in drift(create_context(project, tmp_path / "context"), project / "constraints.txt")


def test_the_build_installs_under_constraints(context):
    """Unpinned transitive dependencies get constraints.txt's versions too: PIP_CONSTRAINT is set to the project's
    constraints.txt before the first pip install (base stage; builder and final stages inherit it)."""
    assert (context / "_build" / "constraints" / "constraints.txt").read_bytes() == (ROOT / "constraints.txt").read_bytes()
    lines = (context / "Containerfile").read_text().splitlines()
    copy = next(i for i, line in enumerate(lines) if line.startswith("COPY _build/constraints/constraints.txt "))
    target = lines[copy].split()[-1]
    env = lines.index(f"ENV PIP_CONSTRAINT={target}")
    first_pip = next(i for i, line in enumerate(lines) if "pip install" in line)
    first_stage_end = next(i for i, line in enumerate(lines) if line.startswith("FROM base AS"))
    assert copy < env < first_pip < first_stage_end


def test_bindep_is_carried_and_parses(context):
    assert (context / "_build" / "bindep.txt").read_text() == (ROOT / "bindep.txt").read_text()
    containerfile = (context / "Containerfile").read_text()
    assert "COPY _build/bindep.txt bindep.txt" in containerfile and "--user-bindep=bindep.txt" in containerfile
    from bindep.depends import Depends
    rpm = [name for name, _, _ in Depends((ROOT / "bindep.txt").read_text()).active_rules(["platform:rpm", "default"])]
    # The EE's base image is EL9 (rpm): SSH to the Docker host, `ps` for remediate.yml's lock owner.
    assert {"openssh-clients", "procps-ng"} <= set(rpm), rpm


def test_no_galaxy_stage(context):
    containerfile = (context / "Containerfile").read_text()
    assert not re.search(r"^FROM .* AS galaxy", containerfile, re.M | re.I)
    assert "ansible-galaxy" not in containerfile
    assert not (context / "_build" / "requirements.yml").exists()


def test_base_image_is_a_build_argument(context):
    containerfile = (context / "Containerfile").read_text()
    default = yaml.safe_load((ROOT / "execution-environment.yml").read_text())["images"]["base_image"]["name"]
    assert f'ARG EE_BASE_IMAGE="{default}"' in containerfile
    first_from = next(line for line in containerfile.splitlines() if line.startswith("FROM "))
    assert first_from.startswith("FROM $EE_BASE_IMAGE ")


def _third_party_imports() -> set[str]:
    own = {p.stem for p in (ROOT / "module_utils").glob("*.py")}
    names = set()
    for path in [*(ROOT / "library").glob("*.py"), *(ROOT / "module_utils").glob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return {n for n in names if n not in sys.stdlib_module_names and n not in own and n not in ("ansible", "__future__")}


def test_the_modules_libraries_are_in_the_ee():
    """Every third-party package library/ and module_utils/ import is installed by ee/requirements.txt."""
    listed = {canonicalize_name(Requirement(re.sub(r"\s+#.*$", "", line)).name)
              for line in EE_REQUIREMENTS.read_text().splitlines() if line.strip() and not line.startswith("#")}
    imports = _third_party_imports()
    assert {"psycopg2", "clickhouse_connect", "pyiceberg", "pyarrow", "docker"} <= imports  # the scan sees them
    providers = packages_distributions()
    missing = {name: providers.get(name) for name in imports
               if not {canonicalize_name(d) for d in providers.get(name, [])} & listed}
    assert missing == {}, f"imported by the modules, not in ee/requirements.txt: {missing}"
