"""`llmops serve` as users run it: a real process (two uvicorn workers) on loopback over an embedded Chroma with the
bundled embedding model, answers from the local OpenAI-compatible server; the API over real HTTP (server-sent
events parsed as they arrive, concurrent requests across both workers, chunks ingested while it runs), the web page
in a real headless Chromium (ask, streamed answer and sources, thumbs up), and the rating then seen by `llmops
history`. (Review and promotion of answers that came in through the API: tests/unit/test_serve_app.py, on the same
entry points.)"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from llmops_cli.entry import ingest as ingest_entry
from tests.support.browser import Browser
from tests.support.fakes import run_step
from tests.support.openai_server import TEST_API_KEY, TEST_MODEL, last_user_text

pytestmark = [pytest.mark.integration, pytest.mark.browser]

REPO = Path(__file__).resolve().parents[2]
LLMOPS = REPO / ".venv" / "bin" / "llmops"

CORPUS = {
    "frobnicator.md": "# Frobnicator\n\n## Rotating credentials\n\nThe frobnicator keeps its credentials in the vault. "
    "Rotate them with `frob rotate --all`; the old ones stop working after ten minutes.\n\n"
    "## Scaling\n\nAdd workers with `frob scale N`. Each worker handles forty requests per second.\n",
    "backups.md": "# Backups\n\nNightly backups run at 02:00 UTC and are kept for thirty days. "
    "Restore one with `frob restore DATE`.\n",
}
Q_ROTATE = "How do I rotate the frobnicator credentials?"
Q_BACKUP = "When do the nightly backups run?"
ANSWERS = {
    Q_ROTATE: "Run `frob rotate --all` [1]; the old credentials stop working after ten minutes [1].",
    Q_BACKUP: "Backups run nightly at 02:00 UTC [1].",
}


def responder(body: dict) -> str:
    system = body["messages"][0]["content"] if body["messages"][0]["role"] == "system" else ""
    user = last_user_text(body)
    if system.startswith("You rewrite"):
        return "frobnicator credential rotation"
    return ANSWERS.get(user.rsplit("Question: ", 1)[-1].strip(), "I do not know.")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sse(response: httpx.Response) -> list[tuple[str, dict]]:
    """Events as they arrive (a real client's parse of text/event-stream)."""
    events, kind = [], None
    for line in response.iter_lines():
        if line.startswith("event: "):
            kind = line[7:]
        elif line.startswith("data: "):
            events.append((kind, json.loads(line[6:])))
    return events


def llmops(env: dict, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(LLMOPS), *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=300)


def test_serve_api_web_page_and_feedback_loop(tmp_path, openai_server, monkeypatch):
    openai_server.responder = responder
    env_vars = {
        "LLMOPS_LLM_MODEL": TEST_MODEL,
        "LLMOPS_LLM_API_BASE": openai_server.base_url,
        "LLMOPS_LLM_API_KEY": TEST_API_KEY,
        "LLMOPS_STORE_PATH": str(tmp_path / "chroma"),
        "LLMOPS_DATA_DIR": str(tmp_path / "state"),
        "LLMOPS_LLM_REWORDINGS": "1",
        "LLMOPS_STORE_COLLECTION": "docs",
    }
    for k, v in env_vars.items():
        monkeypatch.setenv(k, v)
    docs = tmp_path / "docs"
    docs.mkdir()
    for name, text in CORPUS.items():
        (docs / name).write_text(text, encoding="utf-8")
    from llmops_cli.settings import load_settings

    settings = load_settings(None, cwd=tmp_path).settings
    run_step(ingest_entry.ingest, settings, [str(docs)])

    env = {**os.environ, **env_vars}
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = (tmp_path / "serve.log").open("w")
    proc = subprocess.Popen(
        [str(LLMOPS), "serve", "--port", str(port), "--workers", "2"],
        env=env,
        cwd=tmp_path,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.time() + 180
        while True:
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()[-3000:]
            try:
                if httpx.get(f"{base}/readyz", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.time() < deadline, "serve never became ready"
            time.sleep(0.3)

        with httpx.Client(base_url=base, timeout=60) as c:
            # streamed: token events as the LLM server streams, then the document with sources and the answer id
            with c.stream("POST", "/v1/ask", json={"question": Q_ROTATE, "stream": True}) as r:
                assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
                events = sse(r)
            kinds = [k for k, _ in events]
            assert kinds[-1] == "answer" and kinds.count("token") >= 2, kinds
            # what was searched and the sources come as soon as retrieval is done, before the answer's first token
            assert kinds.index("rewordings") < kinds.index("sources") < kinds.index("token"), kinds
            doc = events[-1][1]
            assert "".join(d["text"] for k, d in events if k == "token") == doc["answer"] == ANSWERS[Q_ROTATE]
            early = dict(events[: kinds.index("token")])
            assert early["rewordings"]["rewordings"] == doc["rewordings"]
            assert [h["id"] for h in early["sources"]["sources"]] == [h["id"] for h in doc["hits"]]
            assert doc["hits"][doc["cited"][0] - 1]["source"].endswith("frobnicator.md") and doc["answer_id"]

            # concurrent requests land on both workers (each its own workspace) and all succeed
            def query(i: int) -> int:
                return c.post("/v1/query", json={"text": f"nightly backups {i}"}).status_code

            def ask(i: int) -> str:
                r = c.post("/v1/ask", json={"question": Q_BACKUP, "use_cache": False})
                assert r.status_code == 200, r.text
                return r.json()["answer_id"]

            with ThreadPoolExecutor(16) as pool:
                assert set(pool.map(query, range(16))) == {200}
                asked = list(pool.map(ask, range(4)))
            assert len(set(asked)) == 4

            # the rate limit (120 a minute by default) is one for the service, not per worker: a caller from another
            # address, new connections spread over both workers, gets exactly 120 answers, then 429s
            def collections(_: int) -> httpx.Response:
                return other.get("/v1/collections")

            if time.time() % 60 > 52:  # a burst across a minute's end would also test the window's arithmetic
                time.sleep(60 - time.time() % 60 + 0.1)
            limits = httpx.Limits(max_keepalive_connections=0)
            transport = httpx.HTTPTransport(local_address="127.0.0.2", limits=limits)
            with httpx.Client(base_url=base, timeout=60, transport=transport) as other, ThreadPoolExecutor(8) as pool:
                got = list(pool.map(collections, range(130)))
            codes = [r.status_code for r in got]
            assert codes.count(200) == 120 and codes.count(429) == 10, codes
            refused = next(r for r in got if r.status_code == 429)
            assert refused.json()["error"]["code"] == "RATE_LIMITED" and int(refused.headers["retry-after"]) >= 1
            # a long-running server sees what an ingest wrote after it started (vector and BM25), on every worker
            (docs / "zebras.md").write_text("# Zebras\n\nThe zebra migration schedule is every spring.\n")
            run_step(ingest_entry.ingest, settings, [str(docs)])
            for mode in ("vector", "lexical", "hybrid", "hybrid"):
                hits = c.post("/v1/query", json={"text": "zebra migration schedule", "k": 1, "mode": mode}).json()
                assert hits["hits"][0]["source"].endswith("zebras.md"), (mode, hits)
            err = c.post("/v1/ask", json={"question": "q", "collection": "nope"})
            assert err.status_code == 404 and err.json()["error"]["exit_code"] == 9

        # the web page in a real browser: ask, the streamed answer with its sources, thumbs up with a comment
        with Browser(tmp_path / "chromium") as b:
            b.goto(f"{base}/")
            b.eval(f"document.getElementById('question').value = {json.dumps(Q_ROTATE)}")
            b.eval("document.getElementById('ask').click()")
            answer_id = b.wait("document.getElementById('result').dataset.answerId")
            assert b.eval("document.getElementById('answer').textContent") == ANSWERS[Q_ROTATE]
            sources = b.eval("[...document.querySelectorAll('#sources li')].map(li => li.textContent)")
            assert any("frobnicator.md" in s and "✓" in s for s in sources), sources
            b.eval("document.getElementById('comment').value = 'clear and right'")
            b.eval("document.getElementById('rate-up').click()")
            assert b.wait("document.getElementById('rated').textContent") == "Thanks: rated up."
            assert b.eval("JSON.parse(localStorage.getItem('llmops.history'))[0].answer_id") == answer_id
            assert not [line for line in b.console if line.startswith("exception")], b.console

        # a key put in a query string by mistake is masked in the access log (checked on the log below)
        assert httpx.get(f"{base}/v1/answers/recent-good?limit=1&api_key={TEST_API_KEY}").status_code == 200

        # the CLI sees the rating given in the browser
        hist = llmops(env, tmp_path, "history", "--json")
        assert hist.returncode == 0, hist.stderr
        row = next(a for a in json.loads(hist.stdout)["answers"] if a["id"] == answer_id)
        assert row["votes"] == {"up": 1, "down": 0} and row["question"] == Q_ROTATE

        # the last answer before the server stops: its trace is written at shutdown (checked below)
        last = httpx.post(f"{base}/v1/ask", json={"question": Q_BACKUP, "use_cache": False}, timeout=60).json()
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = proc.wait()
        log.close()
    served = (tmp_path / "serve.log").read_text()
    assert code == 0, served[-3000:]
    assert TEST_API_KEY not in served and "Traceback" not in served
    assert "/v1/answers/recent-good?limit=1&api_key=" in served  # the request was logged, its key masked
    # every trace is rooted at the step it ran: FastAPI's own request spans, were they recorded, would be a second
    # trace per request, linked to nothing (the test's ingests write their traces to the same state)
    listed = llmops(env, tmp_path, "trace", "list", "--json", "-n", "500")
    roots = [t["name"] for t in json.loads(listed.stdout)["traces"]]
    assert "llmops ask" in roots and all(name.startswith("llmops ") for name in roots), sorted(set(roots))
    # a uvicorn worker exits without running atexit: what its span processor still held is written on shutdown
    shown = llmops(env, tmp_path, "trace", "show", last["answer_id"], "--json")
    assert shown.returncode == 0 and json.loads(shown.stdout)["spans"][0]["name"] == "llmops ask", shown.stderr
