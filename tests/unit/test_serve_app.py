"""The serve API in-process (Starlette's test client) on a workspace of fakes: every endpoint's document, errors as JSON
with the CLI's exit codes and matching HTTP statuses, API keys, limits, the answer log shared with the CLI's entry
points (feedback review and promotion run on answers that came in through the API), Slack's signatures."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from pathlib import Path

import pytest

from llmops_cli.core.feedback.log import AnswerLog
from llmops_cli.core.ports import LLM, Completion
from llmops_cli.entry import feedback as feedback_entry
from llmops_cli.entry.ingest import ingest
from llmops_cli.errors import LLMError, UsageError
from llmops_cli.serve.options import ServeOptions, hash_key
from llmops_cli.serve.slack import slack_signature
from llmops_cli.settings import load_settings
from tests.support.fakes import FakeEmbedder, FakeWorkspace, MemoryStore

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient

SECRET_KEY = "sk-live-4f9a8b7c6d5e4f3a2b1c0d9e"
VERDICT = {
    "helpfulness": {"score": 5, "reason": "r"},
    "relevance": {"score": 5, "reason": "r"},
    "publicness": {"public": True, "reason": "r"},
}


class RoutingLLM(LLM):
    model = "fake/llm"

    def __init__(self):
        self.fail: Exception | None = None

    def complete(self, messages, **params) -> Completion:
        if self.fail is not None:
            raise self.fail
        system = messages[0]["content"]
        if system.startswith("You review"):
            text = json.dumps(VERDICT)
        elif system.startswith("You rewrite"):
            text = "rotate secrets frobnicator"
        else:
            text = "Run `frob rotate --all` [1]."
        return Completion(text=text, model=self.model, input_tokens=7, output_tokens=3, cost=0.0)


@pytest.fixture
def parts(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for var in [v for v in os.environ if v.startswith("LLMOPS_")]:
        monkeypatch.delenv(var)
    monkeypatch.setenv("LLMOPS_LLM_MODEL", "fake/llm")
    monkeypatch.setenv("LLMOPS_LLM_API_KEY", SECRET_KEY)
    monkeypatch.setenv("LLMOPS_LLM_REWORDINGS", "1")
    store, emb, llm = MemoryStore(), FakeEmbedder(), RoutingLLM()
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "frob.md").write_text("# Frobnicator\n\n## Credentials\n\nRotate them with frob rotate --all.\n")
    (docs / "widgets.md").write_text("# Widgets\n\nWidgets are configured in widgets.toml.\n")
    settings = load_settings(None).settings
    with FakeWorkspace(settings, store=store, embedder=emb, llm=llm) as ws:
        ingest(ws, [str(docs)])
    return settings, store, emb, llm


def client_for(
    parts, options: ServeOptions | None = None, sent: list | None = None, *, raise_server_exceptions: bool = False
) -> TestClient:
    from llmops_cli.serve.app import create_app

    settings, store, emb, llm = parts

    def slack_post(url, payload, headers, form=False):
        """Slack's Web API as far as the adapter uses it: messages posted (kept in ``sent``) and read back."""
        if url.endswith("/conversations.replies"):
            assert form and headers == {"Authorization": "Bearer xoxb-bot-token"}
            found = [p for u, p, _ in sent or [] if u.endswith("/chat.postMessage") and p.get("ts") == payload["ts"]]
            return {
                "ok": True,
                "messages": [{"ts": payload["ts"], "metadata": found[0].get("metadata")}] if found else [],
            }
        if sent is not None:
            payload = {**payload, "ts": f"1700000000.{len(sent):06d}"}
            sent.append((url, payload, headers))
        return {"ok": True, "ts": payload.get("ts")}

    app = create_app(
        settings,
        options or ServeOptions(),
        lambda s: FakeWorkspace(s, store=store, embedder=emb, llm=llm),
        slack_post=slack_post,
    )
    # a 500 is a response to check, as a client sees it
    return TestClient(app, raise_server_exceptions=raise_server_exceptions)


def err(r, status: int, code: str, exit_code: int) -> dict:
    assert r.status_code == status, r.text
    e = r.json()["error"]
    assert e["code"] == code and e["exit_code"] == exit_code and e["message"], e
    return e


def sse_events(text: str) -> list[tuple[str, dict]]:
    out = []
    for block in text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines())
        out.append((lines["event"], json.loads(lines["data"])))
    return out


def test_ask_feedback_review_promotion_and_homepage_through_the_api(parts):
    settings = parts[0]
    with client_for(parts) as c:
        assert c.get("/healthz").json()["status"] == "ok"
        assert c.get("/readyz").json() == {"status": "ready", "collection": "docs"}
        spec = c.get("/openapi.json").json()
        assert {"/v1/ask", "/v1/query", "/v1/answers/{answer_id}/feedback", "/v1/answers/recent-good"} <= set(
            spec["paths"]
        )
        assert "<form" in c.get("/").text

        hits = c.post("/v1/query", json={"text": "rotate credentials", "k": 2}).json()
        assert hits["collection"] == "docs" and hits["hits"][0]["source"].endswith("frob.md")
        assert c.get("/v1/collections").json()["collections"][0]["name"] == "docs"

        doc = c.post("/v1/ask", json={"question": "How do I rotate credentials?"}).json()
        aid = doc["answer_id"]
        assert doc["answer"] == "Run `frob rotate --all` [1]." and doc["cited"] == [1]
        assert doc["sources"][0]["source"].endswith("frob.md") and doc["hits"][0]["text"]
        assert doc["rewordings"] == ["rotate secrets frobnicator"] and doc["collection"] == "docs"

        # streamed: rewordings and sources, tokens, then the whole document (with the id); the same answer log
        r = c.post("/v1/ask", json={"question": "Where are widgets configured?", "stream": True, "use_cache": False})
        assert r.headers["content-type"].startswith("text/event-stream")
        events = sse_events(r.text)
        kinds = [k for k, _ in events]
        # what was searched and the sources first (retrieval is done), then the tokens, then the document
        assert kinds[:3] == ["rewordings", "sources", "token"] and kinds[-1] == "answer", kinds
        assert [h["id"] for h in events[1][1]["sources"]] == [h["id"] for h in events[-1][1]["hits"]]
        assert "".join(d["text"] for k, d in events if k == "token") == events[-1][1]["answer"]
        wid = events[-1][1]["answer_id"]
        assert wid and wid != aid

        got = c.get(f"/v1/answers/{aid}").json()
        assert got["question"] == "How do I rotate credentials?" and got["votes"] == {"up": 0, "down": 0}
        rated = c.post(f"/v1/answers/{aid}/feedback", json={"rating": "up", "comment": "right", "rater": "b1"}).json()
        assert rated["rater"] == "anonymous:b1"
        assert c.get(f"/v1/answers/{aid}").json()["votes"] == {"up": 1, "down": 0}
        assert c.get("/v1/answers/recent-good").json() == {"answers": []}  # rated, not yet reviewed

        # the feedback loop (CLI / DAG entry points) reviews and promotes answers that came in through the API
        with FakeWorkspace(settings, store=parts[1], embedder=parts[2], llm=parts[3]) as ws:
            out = feedback_entry.review(ws, limit=10)
        assert aid in out["promotion"]["promoted"]
        good = c.get("/v1/answers/recent-good").json()["answers"]
        assert [g["id"] for g in good] == [wid, aid] and good[1]["sources"][0].endswith("frob.md")

        # a down vote from the same rater replaces theirs and removes the promotion at once
        down = c.post(f"/v1/answers/{aid}/feedback", json={"rating": "down", "rater": "b1"}).json()
        assert down["promotion"]["removed"]
        assert [g["id"] for g in c.get("/v1/answers/recent-good").json()["answers"]] == [wid]
    with AnswerLog.for_data_dir(settings.data_path) as log:
        assert log.summary_flags([aid])[aid]["votes"] == {"up": 0, "down": 1}


def test_errors_are_json_with_the_cli_exit_codes(parts):
    opts = ServeOptions(max_question_chars=50, max_body_bytes=1000)
    with client_for(parts, opts) as c:
        e = err(c.post("/v1/ask", json={"question": "x", "collection": "nope"}), 404, "NOT_FOUND", 9)
        assert "docs" in e["message"] and e["hint"]
        err(c.post("/v1/ask", json={"question": "  "}), 400, "USAGE", 2)
        # streamed, what refuses an ask before it starts is still an HTTP status, not an event
        err(c.post("/v1/ask", json={"question": "x", "collection": "nope", "stream": True}), 404, "NOT_FOUND", 9)
        err(c.post("/v1/ask", json={"question": "q", "where": {"$or": "x"}}), 400, "USAGE", 2)
        err(c.post("/v1/ask", json={}), 400, "USAGE", 2)
        err(c.post("/v1/ask", json={"question": "q", "bogus": 1}), 400, "USAGE", 2)
        err(c.post("/v1/query", json={"text": "q", "mode": "fuzzy"}), 400, "USAGE", 2)
        err(c.post("/v1/ask", json={"question": "a" * 51}), 400, "USAGE", 2)
        err(c.post("/v1/ask", content=b'{"question": "' + b"a" * 2000 + b'"}'), 413, "PAYLOAD_TOO_LARGE", 2)
        err(c.get("/v1/answers/0123456789abcdef"), 404, "NOT_FOUND", 9)
        err(c.get("/v1/answers/not-an-id"), 404, "NOT_FOUND", 9)
        # a prefix too short to look up is hexadecimal too: the hint says what is missing
        assert "at least 4" in err(c.get("/v1/answers/05"), 404, "NOT_FOUND", 9)["hint"]
        err(c.post("/v1/answers/abcd1234/feedback", json={"rating": "sideways"}), 400, "USAGE", 2)
        err(c.get("/no/such/page"), 404, "NOT_FOUND", 9)
        # the homepage list of a collection that does not exist is the same 404 as a search of it, not an empty list
        assert "docs" in err(c.get("/v1/answers/recent-good?collection=nope"), 404, "NOT_FOUND", 9)["message"]
        assert c.get("/v1/answers/recent-good?collection=docs").json() == {"answers": []}
        # the LLM endpoint down: 502 and the CLI's code 7; a secret in a message never leaves the server
        parts[3].fail = LLMError(f"cannot reach the LLM with key {SECRET_KEY}", exit_code=7)
        e = err(c.post("/v1/ask", json={"question": "rotate?", "use_cache": False}), 502, "UNREACHABLE", 7)
        assert SECRET_KEY not in json.dumps(e)
        r = c.post("/v1/ask", json={"question": "rotate?", "stream": True, "use_cache": False})
        assert r.status_code == 200 and sse_events(r.text)[-1][0] == "error"
        assert SECRET_KEY not in r.text and sse_events(r.text)[-1][1]["error"]["exit_code"] == 7
        parts[3].fail = RuntimeError(f"boom {SECRET_KEY}")
        e = err(c.post("/v1/ask", json={"question": "rotate?", "use_cache": False}), 500, "FAILURE", 1)
        assert SECRET_KEY not in json.dumps(e) and "RuntimeError" in e["message"]


def test_a_chunked_body_over_the_limit_is_413_and_a_body_not_json_says_so(parts):
    """A body without Content-Length (chunked) over --max-body-bytes is the documented 413, not FastAPI's 400 "error
    parsing the body"; a body that is not JSON, or is sent as a form (curl -d), is named as such."""
    with client_for(parts, ServeOptions(max_body_bytes=1000)) as c:

        def chunks():
            yield b'{"question": "'
            for _ in range(5):
                yield b"a" * 500
            yield b'"}'

        r = c.post("/v1/ask", content=chunks(), headers={"Content-Type": "application/json"})
        assert "content-length" not in r.request.headers
        err(r, 413, "PAYLOAD_TOO_LARGE", 2)
        e = err(c.post("/v1/ask", content=b"{not json", headers={"Content-Type": "application/json"}), 400, "USAGE", 2)
        assert "not JSON" in e["message"], e
        e = err(
            c.post("/v1/ask", content=b'{"question": "widgets?"}', headers={"Content-Type": "text/plain"}),
            400,
            "USAGE",
            2,
        )
        assert "must be JSON" in e["message"] and "application/json" in e["hint"], e
        e = err(c.post("/v1/ask", data={"question": "widgets?"}), 400, "USAGE", 2)
        assert "application/x-www-form-urlencoded" in e["message"], e


def test_api_keys_hashed_and_rate_limited(parts):
    key = "team-key-123"
    opts = ServeOptions(host="0.0.0.0", api_key_hashes=[hash_key(key)], rate_limit_per_minute=3)
    assert hash_key(key) == "sha256:" + hashlib.sha256(key.encode()).hexdigest()
    with client_for(parts, opts) as c:
        assert c.get("/healthz").status_code == 200  # probes need no key
        r = c.post("/v1/query", json={"text": "widgets"})
        e = err(r, 401, "UNAUTHORIZED", 8)
        assert r.headers["www-authenticate"] == "Bearer"
        # the hint passes the secret filter whole: both ways of sending a key are named
        assert "REDACTED" not in e["hint"] and "Bearer" in e["hint"] and "X-API-Key" in e["hint"], e
        err(
            c.post("/v1/query", json={"text": "widgets"}, headers={"Authorization": "Bearer wrong"}),
            401,
            "UNAUTHORIZED",
            8,
        )
        # the stored hash is not a key
        err(c.post("/v1/query", json={"text": "w"}, headers={"X-API-Key": hash_key(key)}), 401, "UNAUTHORIZED", 8)
        ok = {"Authorization": f"Bearer {key}"}
        assert c.post("/v1/query", json={"text": "widgets"}, headers=ok).status_code == 200
        assert c.post("/v1/query", json={"text": "widgets"}, headers={"X-API-Key": key}).status_code == 200
        aid = c.post("/v1/ask", json={"question": "widgets?"}, headers=ok).json()["answer_id"]
        r = c.get(f"/v1/answers/{aid}", headers=ok)
        err(r, 429, "RATE_LIMITED", 1)
        assert int(r.headers["retry-after"]) >= 1
    with pytest.raises(UsageError, match="needs API keys"):
        client_for(parts, ServeOptions(host="0.0.0.0"))


def test_cors_allow_list(parts):
    with client_for(parts, ServeOptions(cors_origins=["https://docs.example"])) as c:
        pre = {"Origin": "https://docs.example", "Access-Control-Request-Method": "POST"}
        assert c.options("/v1/ask", headers=pre).headers["access-control-allow-origin"] == "https://docs.example"
        other = c.get("/healthz", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in other.headers
        # a page from an allowed origin can read a 429's Retry-After (CORS hides other headers from scripts)
        exposed = c.get("/healthz", headers={"Origin": "https://docs.example"}).headers
        assert "retry-after" in exposed["access-control-expose-headers"].lower()


def signed(secret: str, body: bytes, ts: int | None = None) -> dict[str, str]:
    ts = int(time.time()) if ts is None else ts
    return {"X-Slack-Request-Timestamp": str(ts), "X-Slack-Signature": slack_signature(secret, str(ts), body)}


def test_slack_signatures_mentions_reactions_and_slash_commands(parts):
    secret = "slack-signing-secret"
    sent: list = []
    opts = ServeOptions(
        slack_signing_secret=secret, slack_bot_token="xoxb-bot-token", slack_api_base="http://slack.test/api"
    )
    with client_for(parts, opts, sent) as c:
        body = json.dumps({"type": "url_verification", "challenge": "c-123"}).encode()
        assert c.post("/slack/events", content=body, headers=signed(secret, body)).json() == {"challenge": "c-123"}
        err(c.post("/slack/events", content=body, headers=signed("wrong", body)), 401, "UNAUTHORIZED", 8)
        err(
            c.post("/slack/events", content=body, headers=signed(secret, body, int(time.time()) - 600)),
            401,
            "UNAUTHORIZED",
            8,
        )
        replay = signed(secret, body, int(time.time()) - 30)  # a timestamp no other request here used
        assert c.post("/slack/events", content=body, headers=replay).status_code == 200
        e = err(c.post("/slack/events", content=body, headers=replay), 401, "UNAUTHORIZED", 8)
        assert "replay" in e["message"]
        err(c.post("/slack/events", content=body), 401, "UNAUTHORIZED", 8)

        mention = {
            "type": "event_callback",
            "event_id": "Ev1",
            "event": {
                "type": "app_mention",
                "text": "<@U0BOT> how do I rotate credentials?",
                "channel": "C1",
                "ts": "1.5",
            },
        }
        body = json.dumps(mention).encode()
        assert c.post("/slack/events", content=body, headers=signed(secret, body)).json() == {"ok": True}
        deadline = time.time() + 10
        while not sent and time.time() < deadline:
            time.sleep(0.02)
        url, payload, headers = sent[0]
        assert url == "http://slack.test/api/chat.postMessage" and headers == {"Authorization": "Bearer xoxb-bot-token"}
        assert payload["thread_ts"] == "1.5" and "frob rotate --all" in payload["text"] and "frob.md" in payload["text"]
        aid = payload["text"].rsplit("_answer ", 1)[1].split(":")[0]

        reaction = {
            "type": "event_callback",
            "event_id": "Ev2",
            "event": {
                "type": "reaction_added",
                "reaction": "+1",
                "user": "U42",
                "item": {"channel": "C1", "ts": "1700000000.000000"},
            },
        }
        body = json.dumps(reaction).encode()
        assert c.post("/slack/events", content=body, headers=signed(secret, body)).status_code == 200
        deadline = time.time() + 10
        while c.get(f"/v1/answers/{aid}").json()["votes"]["up"] != 1 and time.time() < deadline:
            time.sleep(0.02)
        assert c.get(f"/v1/answers/{aid}").json()["votes"] == {"up": 1, "down": 0}

        # another serve process behind the same load balancer gets the next reaction: it reads the answer id from
        # the message's metadata in Slack (the answers share the answer log)
        with client_for(parts, opts, sent) as other:
            reaction["event_id"] = "Ev3"
            reaction["event"] = {**reaction["event"], "reaction": "-1", "user": "U43"}
            body = json.dumps(reaction).encode()
            assert other.post("/slack/events", content=body, headers=signed(secret, body)).status_code == 200
            deadline = time.time() + 10
            while other.get(f"/v1/answers/{aid}").json()["votes"]["down"] != 1 and time.time() < deadline:
                time.sleep(0.02)
            assert other.get(f"/v1/answers/{aid}").json()["votes"] == {"up": 1, "down": 1}

        form = b"text=where+are+widgets+configured&response_url=http%3A%2F%2Fslack.test%2Fapi%2Fhook%2F1&user_id=U42"
        ack = c.post("/slack/commands", content=form, headers=signed(secret, form)).json()
        assert ack["response_type"] == "ephemeral"
        deadline = time.time() + 10
        while len(sent) < 2 and time.time() < deadline:
            time.sleep(0.02)
        assert sent[1][0] == "http://slack.test/api/hook/1" and "widgets" in sent[1][1]["text"] and sent[1][2] == {}
        evil = b"text=q&response_url=https%3A%2F%2Fevil.example%2Fx"
        err(c.post("/slack/commands", content=evil, headers=signed(secret, evil)), 400, "USAGE", 2)


def test_no_llm_configured_is_503_and_query_still_works(parts):
    settings, store, emb, llm = parts
    bare = settings.model_copy(update={"llm": settings.llm.model_copy(update={"model": None})})
    with client_for((bare, store, emb, llm)) as c:
        assert c.get("/readyz").status_code == 200  # search works without an LLM
        e = err(c.post("/v1/ask", json={"question": "widgets?"}), 503, "USAGE", 2)
        assert "llm.model" in e["hint"]
        assert c.post("/v1/query", json={"text": "widgets"}).status_code == 200


def test_readyz_is_503_until_the_default_collection_exists(parts):
    """Not ready is 503 with the error document, as documented (a missing collection is the error's own 404
    elsewhere); ingesting the collection makes the next probe ready."""
    settings, store, emb, llm = parts
    later = settings.model_copy(update={"store": settings.store.model_copy(update={"collection": "later"})})
    with client_for((later, store, emb, llm)) as c:
        r = c.get("/readyz")
        assert r.status_code == 503, r.text
        assert r.json()["error"]["exit_code"] == 9 and "later" in r.json()["error"]["message"]
        docs = Path.cwd() / "docs"
        with FakeWorkspace(later, store=store, embedder=emb, llm=llm) as ws:
            ingest(ws, [str(docs)])
        assert c.get("/readyz").json() == {"status": "ready", "collection": "later"}


def test_an_internal_error_is_answered_and_logged_redacted_not_raised_to_the_server(parts, caplog):
    """An unexpected exception ends at the app: its 500 document and one redacted log line, no traceback (without
    LLMOPS_DEBUG). Raised on to uvicorn, it printed "Exception in ASGI application", the traceback and the
    unredacted message; the test client raises what would reach the server."""
    with client_for(parts, raise_server_exceptions=True) as c:
        parts[3].fail = RuntimeError(f"boom {SECRET_KEY}")
        with caplog.at_level(logging.INFO):
            e = err(c.post("/v1/ask", json={"question": "rotate?", "use_cache": False}), 500, "FAILURE", 1)
        assert "RuntimeError" in e["message"] and SECRET_KEY not in json.dumps(e)
        logged = "\n".join(r.getMessage() for r in caplog.records)
        assert "internal error" in logged and SECRET_KEY not in logged and "Traceback" not in logged, logged


def test_a_signed_slack_event_that_is_not_a_json_object_is_400(parts):
    opts = ServeOptions(slack_signing_secret="shh", slack_bot_token="xoxb-bot-token")
    with client_for(parts, opts) as c:
        for body in (b'["x"]', b"7", b"not json"):
            err(c.post("/slack/events", content=body, headers=signed("shh", body)), 400, "USAGE", 2)


MALFORMED = [
    {},
    [],
    "x",
    None,
    {"question": None},
    {"question": 5, "text": 5},
    {"question": "q", "text": "q", "k": 0},
    {"question": "q", "text": "q", "k": 10**20},
    {"question": "q", "text": "q", "where": {"a": {"b": 1}}},
    {"question": "q", "text": "q", "where": []},
    {"question": "q", "text": "q", "where": {"nokey": "v"}},
    {"question": "\x00", "text": "\x00"},
    {"question": "q", "text": "q", "collection": "../../etc"},
    {"rating": None},
    {"rating": "up", "comment": 7},
    {"rating": "up", "rater": "x" * 500},
]


def test_malformed_requests_get_a_4xx_never_a_500(parts):
    """Every operation of the OpenAPI document with wrong types, nulls, bounds and odd ids: a 4xx error document."""
    with client_for(parts, ServeOptions(rate_limit_per_minute=0)) as c:
        aid = c.post("/v1/ask", json={"question": "widgets?"}).json()["answer_id"]
        spec = c.get("/openapi.json").json()
        for path, ops in spec["paths"].items():
            if path.startswith("/slack"):
                continue
            for ident in (aid, "zz", "0" * 64, "%2e%2e", "a" * 300):
                url = path.replace("{answer_id}", ident)
                for method in ops:
                    bodies = MALFORMED if method == "post" else [None]
                    for body in bodies:
                        r = (
                            c.request(method.upper(), url, json=body)
                            if body is not None
                            else c.request(method.upper(), url)
                        )
                        assert r.status_code < 500, (method, url, body, r.text)
                        if r.status_code >= 400:
                            assert r.json()["error"]["exit_code"] in (2, 8, 9), (url, body, r.text)
                if "{answer_id}" not in path:
                    break


def test_a_write_to_the_embedded_store_gives_requests_a_fresh_workspace(parts):
    """An embedded Chroma's reader keeps the store as it opened it: after another process writes the store's database
    file, the service answers from a fresh workspace (the replaced ones closed a few replacements later)."""
    from llmops_cli.serve.service import RETIRED_KEPT, Service

    settings, store, emb, llm = parts
    built: list[FakeWorkspace] = []

    def factory(s):
        built.append(FakeWorkspace(s, store=store, embedder=emb, llm=llm))
        return built[-1]

    db = settings.store_path / "chroma.sqlite3"
    db.parent.mkdir(parents=True, exist_ok=True)
    db.write_bytes(b"v1")
    service = Service(settings, factory)
    first = service.workspace()
    assert service.workspace() is first and service.query("widgets", collection=None, k=1, mode=None, where=None)[1]
    db.write_bytes(b"v2 longer")  # another process wrote the store
    second = service.workspace()
    assert second is not first and service.workspace() is second and len(built) == 2
    assert service.query("widgets", collection=None, k=1, mode=None, where=None)[1]
    for i in range(RETIRED_KEPT + 1):
        db.write_bytes(b"v" * (i + 10))
        service.workspace()
    assert first._answer_log is None and first._state is None  # closed
    service.close()


def test_the_access_log_masks_a_key_in_a_query_string():
    import logging

    from llmops_cli.serve.app import _redact_access_log

    _redact_access_log()
    _redact_access_log()  # idempotent: a second worker start adds no second filter
    access = logging.getLogger("uvicorn.access")
    assert sum(type(f).__name__ == "AccessLogRedaction" for f in access.filters) == 1

    def logged(target: str) -> str:
        record = access.makeRecord(
            "uvicorn.access",
            logging.INFO,
            __file__,
            1,
            '%s - "%s %s HTTP/%s" %d',
            ("1.2.3.4:5", "GET", target, "1.1", 200),
            None,
        )
        assert access.filter(record)
        return record.getMessage()

    assert SECRET_KEY not in logged(f"/v1/answers/recent-good?limit=3&api_key={SECRET_KEY}")
    assert logged("/v1/query").endswith('"GET /v1/query HTTP/1.1" 200')
