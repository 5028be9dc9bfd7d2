"""The package carries what it needs: the UI's assets are package data, the wheel holds them,
the command line starts from any folder, and pyproject.toml declares the runtime
dependencies requirements.txt pins."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile
from importlib import resources
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_assets_resolve_inside_the_package():
    assets = resources.files("kdstudio") / "assets"
    assert (assets / "studio.css").is_file()
    assert json.loads((assets / "examples.json").read_text(encoding="utf-8"))
    from kdstudio.ui import builder, compare_tab

    pkg = Path(str(resources.files("kdstudio")))
    for mod in (builder, compare_tab):
        assert mod.ASSETS == pkg / "assets"
    (css,) = builder.launch_kwargs()["css_paths"]
    assert ".kd-title" in Path(css).read_text(encoding="utf-8")  # the studio's own rules
    examples = json.loads((pkg / "assets" / "examples.json").read_text(encoding="utf-8"))
    assert compare_tab.example_sentences() == [s for s in examples if isinstance(s, str)]


def _runtime_requirements() -> list[str]:
    lines = (REPO / "requirements.txt").read_text().splitlines()
    reqs = [ln.strip() for ln in lines if ln.strip() and not ln.startswith(("#", "-"))]
    return reqs[:reqs.index("pytest")] if "pytest" in reqs else reqs


def test_pyproject_declares_the_runtime_dependencies_requirements_pins():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    meta = tomllib.loads((REPO / "pyproject.toml").read_text())
    deps = meta["project"]["dependencies"]
    assert "torch==2.13.0" in deps
    extras = [d for group in meta["project"]["optional-dependencies"].values() for d in group]
    assert sorted(deps + extras) == sorted(_runtime_requirements())
    assert "assets/*" in meta["tool"]["setuptools"]["package-data"]["kdstudio"]


def test_wheel_holds_assets_and_presets(tmp_path):
    """Build the wheel from a copy of the sources (no build folders in the checkout)."""
    src = tmp_path / "src"
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    shutil.copytree(REPO / "src", src, ignore=shutil.ignore_patterns("__pycache__",
                                                                       "*.egg-info"))
    p = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps",
                        "--no-build-isolation", "-q", "-w", str(tmp_path / "dist"),
                        str(tmp_path)], capture_output=True, text=True, cwd=tmp_path)
    if p.returncode != 0 and "No module named" in p.stderr:
        pytest.skip(f"cannot build a wheel here: {p.stderr[-300:]}")
    assert p.returncode == 0, p.stderr[-2000:]
    (whl,) = (tmp_path / "dist").glob("kdstudio-*.whl")
    names = set(zipfile.ZipFile(whl).namelist())
    assert {"kdstudio/assets/studio.css", "kdstudio/assets/examples.json",
            "kdstudio/presets/quick.yaml"} <= names
    meta = zipfile.ZipFile(whl).read(
        next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    assert "Requires-Dist: torch==2.13.0" in meta


def test_python_m_kdstudio_help_from_another_folder(tmp_path):
    p = subprocess.run([sys.executable, "-m", "kdstudio", "--help"], capture_output=True,
                       text=True, cwd=tmp_path, timeout=120)
    assert p.returncode == 0, p.stderr[-2000:]
    assert "student" in p.stdout and "ui" in p.stdout
