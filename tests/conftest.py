"""Shared fixtures. Others add fixtures here too: keep edits minimal."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _source_root_is_the_test_folder(tmp_path, monkeypatch):
    """Source ids are paths relative to the project folder, which is the repository when tests run: make each test
    its own project instead, so a file under tmp_path/docs gets the id docs/... as it would in a user's project."""
    monkeypatch.setenv("LLMOPS_INGEST_SOURCE_ROOT", str(tmp_path))


@pytest.fixture
def openai_server():
    """A fresh local OpenAI-compatible server (tests/support/openai_server.py) for one test."""
    from tests.support.openai_server import OpenAIServer

    with OpenAIServer() as srv:
        yield srv


@pytest.fixture
def spans(monkeypatch):
    """The finished spans of one test, recorded in memory (tests/support/spans.py): ``spans.get_finished_spans()``."""
    from tests.support.spans import recorded_spans

    yield from recorded_spans(monkeypatch)


@pytest.fixture(scope="session")
def openai_server_session():
    """One server for the session; call ``.reset()`` before scripting it."""
    from tests.support.openai_server import OpenAIServer

    with OpenAIServer() as srv:
        yield srv


@pytest.fixture(scope="session")
def airflow_server(tmp_path_factory):
    """A real Airflow 3 on 127.0.0.1 (llmops_cli/devstack/airflow.py), started once per session for tests marked
    `airflow`: shipped + test DAGs, test credentials. ``.env`` is the environment for `llmops` subprocesses (the
    connection, and the same store / data dir as the Airflow tasks)."""
    from tests.support.airflow_servers import airflow_for_tests

    with airflow_for_tests(tmp_path_factory.mktemp("airflow")) as srv:
        yield srv
