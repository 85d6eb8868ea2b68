"""Shared pytest setup: the `slow` flag, and the real datasets in ../shared/data (skipped when absent)."""
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("SCNOTEBOOK_PROGRESS", "0")
os.environ.setdefault("MPLBACKEND", "Agg")


def pytest_addoption(parser):
    parser.addoption("--runslow", action="store_true", default=False, help="also run tests marked slow (minutes)")


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: takes minutes; skipped unless --runslow")
    config.addinivalue_line("markers", "gpu: needs a CUDA GPU")
    config.addinivalue_line("markers", "tpu: needs torch-xla and a TPU")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--runslow"): return
    skip = pytest.mark.skip(reason="slow (minutes): run with --runslow")
    for item in items:
        if "slow" in item.keywords: item.add_marker(skip)


def shared_data(name: str) -> Path:
    "Path of ../shared/data/<name> (or $SCNOTEBOOK_DATA/<name>); skip the test when it is absent."
    cands = [Path(os.environ["SCNOTEBOOK_DATA"])] if os.environ.get("SCNOTEBOOK_DATA") else []
    cands.append(ROOT.parent / "shared" / "data")
    for c in cands:
        if (c / name).exists(): return c / name
    pytest.skip(f"real dataset {name!r} not found in ../shared/data or $SCNOTEBOOK_DATA")


@pytest.fixture
def shared():
    return shared_data
