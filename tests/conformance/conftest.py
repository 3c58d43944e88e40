"""Finds the Zammad mail corpus beside the repository; without it, this folder collects nothing."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


def _repository_root() -> Path:
    here = Path(__file__).resolve()
    for folder in here.parents:
        if (folder / "pyproject.toml").is_file() or (folder / ".git").exists():
            return folder
    return here.parents[2]


def corpus_dir() -> Path:
    """MAILDESK_CORPUS (the zammad folder or its parent), else ../shared/corpus/zammad from the root."""
    configured = os.environ.get("MAILDESK_CORPUS")
    if configured:
        path = Path(configured)
        return path / "zammad" if (path / "zammad").is_dir() else path
    return _repository_root().parent / "shared" / "corpus" / "zammad"


CORPUS = corpus_dir()
BOXES = sorted(CORPUS.glob("*.box")) if CORPUS.is_dir() else []

# The project's own suite must pass where the corpus is not installed: collect nothing.
# A folder that exists is tested, even an empty one (test_the_whole_corpus_is_there fails).
collect_ignore_glob = [] if CORPUS.is_dir() else ["test_*.py"]


@pytest.fixture(scope="session")
def corpus() -> Path:
    return CORPUS


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "box" in metafunc.fixturenames:
        metafunc.parametrize("box", BOXES, ids=[b.stem for b in BOXES])
