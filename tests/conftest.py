"""Fixtures shared by the test files: the synthetic corpus is built once per session."""

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def corpus(tmp_path_factory) -> Path:
    """A 6-clip synthetic corpus at 64x64 (train, val and test: 2 clips each) with landmarks and
    ground truth. Shared by every test that asks for it: read it, never change it."""
    from talking.corpus.build import CorpusConfig, build_corpus

    out = tmp_path_factory.mktemp("corpus")
    build_corpus(CorpusConfig(out=str(out), clips=6, resolution=64, seed=3))
    return out
