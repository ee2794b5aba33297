"""The openai backend against a scripted OpenAI-compatible server on 127.0.0.1: it backs
off and lowers its concurrency on 429s and timeouts, and still completes every request."""
from __future__ import annotations

import logging

import pytest

from pipelines.generate.backends import SamplingConfig, get_backend


SCRIPT = {"responses": ["answer {uid}"]}


def test_429s_lower_concurrency_and_every_request_completes(openai_server, caplog):
    # the first wave of 8 requests is answered 429 (after 0.5 s, so all 8 are in flight together)
    srv = openai_server(SCRIPT, status_for={i: 429 for i in range(8)}, sleep_s=0.1, sleep_for={i: 0.4 for i in range(8)})
    be = get_backend("openai", model="scripted", base_url=srv.base_url, max_concurrency=8)
    s = SamplingConfig(max_tokens=8, seed=0)
    with caplog.at_level(logging.INFO, logger="pipelines.generate.openai"):
        outs = be.chat([[{"role": "user", "content": f"question {i}"}] for i in range(16)], s)
    assert len(outs) == 16 and all(o.text.startswith("answer ") for o in outs)
    ok = [r for r in srv.requests if r["status"] == 200]
    assert len(ok) == 16 and sum(r["status"] == 429 for r in srv.requests) == 8
    before = max(r["in_flight"] for r in srv.requests[:8])
    after = max(r["in_flight"] for r in srv.requests[8:])
    assert before == 8 and after < before  # halved, then raised by one per `limit` successes
    assert be.limit.limit < 8
    text = caplog.text
    assert "server answered 429; concurrency 8 -> 4" in text
    assert "retry 1 of 5 in 0.05 s" in text  # the server's Retry-After: 0.05


def test_a_timeout_is_retried_and_halves_concurrency(openai_server, caplog):
    srv = openai_server(SCRIPT, sleep_for={0: 1.5})
    be = get_backend("openai", model="scripted", base_url=srv.base_url, max_concurrency=2, timeout_s=0.5,
                     backoff_base_s=0.05)
    with caplog.at_level(logging.WARNING, logger="pipelines.generate.openai"):
        outs = be.complete(["prompt one", "prompt two"], SamplingConfig(max_tokens=8, seed=0))
    assert [o.text.startswith("answer ") for o in outs] == [True, True]
    assert "request timed out; concurrency 2 -> 1" in caplog.text
    assert len(srv.requests) == 3  # the timed-out request was sent again


def test_persistent_429_fails_with_one_clear_error(openai_server):
    from datastore.errors import WorkbenchError
    srv = openai_server(SCRIPT, status_for={i: 429 for i in range(10)})
    be = get_backend("openai", model="scripted", base_url=srv.base_url, max_concurrency=1, max_retries=2)
    with pytest.raises(WorkbenchError, match="answered 429"):
        be.chat([[{"role": "user", "content": "q"}]], SamplingConfig(max_tokens=8))
    assert len(srv.requests) == 3
