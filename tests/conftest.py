"""Shared fixtures. Others add fixtures here too: keep edits minimal."""

from __future__ import annotations

import pytest


@pytest.fixture
def openai_server():
    """A fresh local OpenAI-compatible server (tests/support/openai_server.py) for one test."""
    from tests.support.openai_server import OpenAIServer

    with OpenAIServer() as srv:
        yield srv


@pytest.fixture(scope="session")
def openai_server_session():
    """One server for the session; call ``.reset()`` before scripting it."""
    from tests.support.openai_server import OpenAIServer

    with OpenAIServer() as srv:
        yield srv
