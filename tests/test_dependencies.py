"""The upload stack is past its published advisories: both what is installed and what
pyproject.toml lets a fresh install choose (sources: /work/shared/notes/security.md §2)."""

from __future__ import annotations

import tomllib
from importlib.metadata import version
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent

# (distribution, advisory, first fixed version). Every advisory is listed, not only the newest,
# so dropping one pin below any fix fails with the advisory's name.
ADVISORIES: tuple[tuple[str, str, str], ...] = (
    ("starlette", "GHSA-74m5-2c7w-9w3x (multipart part count)", "0.25.0"),
    ("starlette", "CVE-2024-47874 (unbounded multipart text fields)", "0.40.0"),
    ("starlette", "CVE-2025-54121 (file rollover blocks the event loop)", "0.47.2"),
    ("python-multipart", "CVE-2024-24762 (Content-Type ReDoS)", "0.0.7"),
    ("python-multipart", "CVE-2024-53981 (boundary junk DoS)", "0.0.18"),
    ("python-multipart", "CVE-2026-24486 (path traversal)", "0.0.22"),
    ("python-multipart", "CVE-2026-40347 (preamble/epilogue)", "0.0.26"),
    ("python-multipart", "CVE-2026-42561 (headers)", "0.0.27"),
    ("python-multipart", "GHSA-5rvq / GHSA-6jv3", "0.0.30"),
    ("python-multipart", "GHSA-v9pg (negative Content-Length)", "0.0.31"),
)


def declared() -> dict[str, Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = [Requirement(text) for text in project["dependencies"]]
    return {r.name.lower(): r for r in requirements}


def previous(fixed: str) -> str:
    """The release just below a fix (its micro version minus one, or x.y-1.999)."""
    v = Version(fixed)
    major, minor, micro = [*v.release, 0, 0][:3]
    if micro > 0:
        return f"{major}.{minor}.{micro - 1}"
    return f"{major}.{minor - 1}.999" if minor > 0 else f"{major - 1}.999.999"


@pytest.mark.parametrize(("package", "advisory", "fixed"), ADVISORIES,
                         ids=[f"{p}-{f}" for p, _, f in ADVISORIES])
def test_installed_version_is_past_the_advisory(package: str, advisory: str,
                                                fixed: str) -> None:
    installed = Version(version(package))
    assert installed >= Version(fixed), (
        f"{package} {installed} is affected by {advisory}: upgrade to >= {fixed}")


@pytest.mark.parametrize(("package", "advisory", "fixed"), ADVISORIES,
                         ids=[f"{p}-{f}" for p, _, f in ADVISORIES])
def test_pyproject_refuses_every_affected_version(package: str, advisory: str,
                                                  fixed: str) -> None:
    requirement = declared().get(package)
    assert requirement is not None, (
        f"pyproject.toml: {package} is not a direct dependency, so nothing keeps it past "
        f"{advisory} (fixed in {fixed})")
    floors = [Version(s.version) for s in requirement.specifier if s.operator in (">=", "==")]
    assert floors and max(floors) >= Version(fixed), (
        f"pyproject.toml: `{requirement}` allows versions affected by {advisory}; "
        f"declare {package}>={fixed}")
    assert not requirement.specifier.contains(previous(fixed), prereleases=True)


def test_previous_release_is_below_the_fix() -> None:
    # The helper the exclusion check leans on, on the shapes of version the table holds.
    assert previous("0.47.2") == "0.47.1"
    assert previous("0.40.0") == "0.39.999"
    assert Version(previous("1.0.0")) < Version("1.0.0")
