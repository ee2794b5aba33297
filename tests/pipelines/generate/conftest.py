"""Fixtures for the generator tests."""
from __future__ import annotations

import pytest


@pytest.fixture
def openai_server():
    """A factory of scripted OpenAI-compatible servers on 127.0.0.1
    (:class:`tests.pipelines.generate.openai_server.ScriptedOpenAIServer` arguments; the
    script defaults to ``helpers.SI_SCRIPT``); each is shut down when the test ends."""
    from .helpers import SI_SCRIPT
    from .openai_server import ScriptedOpenAIServer
    started = []

    def make(script: dict | None = None, **kw):
        s = ScriptedOpenAIServer(script or SI_SCRIPT, **kw)
        started.append(s)
        return s
    yield make
    for s in started:
        s.stop()
