"""The benchmark scripts under bench/, loaded as modules for their tests."""

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", ROOT / "bench" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def sst2():
    return _load("sst2")


@pytest.fixture(scope="module")
def quick():
    return _load("quick")


@pytest.fixture(scope="module")
def teacher_sweep():
    return _load("teacher_sweep")


@pytest.fixture(scope="module")
def speed_range():
    return _load("speed_range")


@pytest.fixture(scope="module")
def baselines():
    return _load("baselines")


@pytest.fixture(scope="module")
def work():
    return _load("work")
