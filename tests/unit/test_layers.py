"""The packages are layered: cli > ingest | workers > domain > events > core; none imports upward.

import-linter checks pyproject.toml's `[tool.importlinter]` contract on the source (nothing of the
project is run, no cache is written); on failure the message lists every offending import chain.
"""

from pathlib import Path

import pytest
from importlinter.cli import EXIT_STATUS_SUCCESS, lint_imports

pytestmark = pytest.mark.unit

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def test_no_package_imports_a_layer_above_it(capsys: pytest.CaptureFixture[str]) -> None:
    """Each layer imports only the layers below it, and ingest and workers never import each other."""
    status = lint_imports(config_filename=str(PYPROJECT), no_cache=True, no_logo=True)  # what `lint-imports` runs
    report = capsys.readouterr().out
    assert status == EXIT_STATUS_SUCCESS, f"imports against the layers (or an invalid contract):\n{report}"
