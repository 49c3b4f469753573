"""Fixtures of the tests that run the course in Colab's own environment (helpers in colabvm.py)."""

from pathlib import Path

import pytest
from colabvm import make_github

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items):
    for item in items:
        if HERE in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.colab_env)


@pytest.fixture(scope="session")
def github(tmp_path_factory) -> dict:
    """This working tree as GitHub would serve it to the install cell (see colabvm.make_github)."""
    return make_github(tmp_path_factory.mktemp("github"))
