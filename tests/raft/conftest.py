"""Options for the core's tests: --rewrite regenerates scenario golden files."""

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--rewrite", action="store_true",
                     help="rewrite tests/raft/testdata/*.txt from the actual output")
