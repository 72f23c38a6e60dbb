"""Slack on the same API: ``POST /slack/events`` (mentions answered in their thread, thumbs reactions on an answer
recorded as feedback) and ``POST /slack/commands`` (a slash command answered through its response_url).

Every request is checked the way Slack signs it: ``v0=`` HMAC-SHA256 of ``v0:{timestamp}:{raw body}`` with the app's
signing secret, a timestamp within five minutes, and a signature not seen before in that window (a replay). Answers
go through ``Service.ask`` like any other, so they are in the answer log and the feedback loop reviews and promotes
them as it does the CLI's.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from llmops_cli.core.redaction import redact_secrets
from llmops_cli.errors import ExitCode, LlmopsError

if TYPE_CHECKING:
    from llmops_cli.serve.options import ServeOptions
    from llmops_cli.serve.service import Service

log = logging.getLogger("llmops_cli.serve")

MAX_AGE_S = 300  # Slack's advice: refuse requests older than five minutes
UP = {"+1", "thumbsup"}
DOWN = {"-1", "thumbsdown"}
MENTION = re.compile(r"<@[A-Z0-9]+>\s*")
METADATA_TYPE = "llmops_answer"  # the message metadata an answer is posted with: {"answer_id": ...}


def slack_signature(secret: str, timestamp: str, body: bytes) -> str:
    """The ``X-Slack-Signature`` Slack sends with this body and timestamp."""
    base = b"v0:" + timestamp.encode() + b":" + body
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


class _Bounded(OrderedDict):
    """A small LRU map (seen signatures and event ids, the answers posted: message ts -> answer id)."""

    def __init__(self, size: int):
        super().__init__()
        self.size = size
        self.lock = threading.Lock()

    def put(self, key: Any, value: Any) -> bool:
        """Store ``key``; False when it was already there."""
        with self.lock:
            fresh = key not in self
            self[key] = value
            self.move_to_end(key)
            while len(self) > self.size:
                self.popitem(last=False)
            return fresh


class SlackVerifier:
    def __init__(self, secret: str, clock: Callable[[], float] = time.time):
        self.secret = secret
        self.clock = clock
        self.seen = _Bounded(10_000)

    def check(self, timestamp: str | None, signature: str | None, body: bytes) -> str | None:
        """None when the request is Slack's, else why not."""
        if not timestamp or not signature:
            return "the request is not signed (no X-Slack-Signature / X-Slack-Request-Timestamp)"
        try:
            age = abs(self.clock() - int(timestamp))
        except ValueError:
            return "X-Slack-Request-Timestamp is not a number"
        if age > MAX_AGE_S:
            return "the request's timestamp is more than five minutes away (a replay, or a wrong clock)"
        if not hmac.compare_digest(slack_signature(self.secret, timestamp, body), signature):
            return "the signature does not match the body (check the signing secret)"
        if not self.seen.put(signature, True):
            return "the request was seen before (a replay)"
        return None


def _refused(message: str) -> JSONResponse:
    return JSONResponse(
        {"error": {"code": "UNAUTHORIZED", "exit_code": int(ExitCode.AUTH), "message": message, "hint": None}},
        status_code=401,
    )


def format_answer(res: Any) -> str:
    """An answer as Slack text: the answer, its cited sources, its id (to rate it from the CLI too)."""
    lines = [res.answer.strip() or "(no answer)"]
    cited = res.cited() or list(range(1, min(3, len(res.hits)) + 1))
    if cited:
        lines.append("")
        for n in cited:
            h = res.hits[n - 1]
            lines.append(f"[{n}] {h.source}" + (f" › {h.heading}" if h.heading else ""))
    if res.answer_id:
        lines.append(f"_answer {res.answer_id}: react :+1: or :-1:_")
    return "\n".join(lines)


def http_post(url: str, payload: dict[str, Any], headers: dict[str, str], form: bool = False) -> dict[str, Any]:
    """POST to Slack (JSON, or a form for its read methods); its JSON reply ({} when there is none or it failed:
    logged without secrets)."""
    import httpx

    try:
        if form:
            r = httpx.post(url, data={k: str(v) for k, v in payload.items()}, headers=headers, timeout=15)
        else:
            r = httpx.post(url, json=payload, headers=headers, timeout=15)
        return r.json() if r.headers.get("content-type", "").startswith("application/json") else {}
    except (httpx.HTTPError, ValueError) as e:
        log.warning("slack: posting to %s failed: %s", urlsplit(url).netloc, redact_secrets(str(e)))
        return {}


def add_slack_routes(app: FastAPI, options: ServeOptions, send: Callable[..., dict[str, Any]] | None = None) -> None:
    send = send or http_post
    verifier = SlackVerifier(options.slack_signing_secret) if options.slack_signing_secret else None
    events_seen = _Bounded(10_000)
    # a reaction names the message it is on (channel, ts): the answers this process posted are remembered here;
    # another serve process (behind a load balancer) reads the answer id from the message's metadata in Slack
    posted = _Bounded(50_000)

    async def verified(request: Request) -> tuple[bytes, JSONResponse | None]:
        body = await request.body()
        if verifier is None:
            return body, JSONResponse(
                {
                    "error": {
                        "code": "NOT_FOUND",
                        "exit_code": int(ExitCode.NOT_FOUND),
                        "message": "Slack is not configured on this server",
                        "hint": "set LLMOPS_SERVE_SLACK_SIGNING_SECRET and LLMOPS_SERVE_SLACK_BOT_TOKEN",
                    }
                },
                status_code=404,
            )
        why = verifier.check(
            request.headers.get("x-slack-request-timestamp"), request.headers.get("x-slack-signature"), body
        )
        return body, (_refused(why) if why else None)

    def post(url: str, payload: dict[str, Any], *, token: bool, form: bool = False) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {options.slack_bot_token}"} if token and options.slack_bot_token else {}
        return send(url, payload, headers, form) if form else send(url, payload, headers)

    def answer_of_message(channel: str | None, ts: str | None) -> str | None:
        """The answer id a message carries in its metadata (posted by any serve process), read from Slack."""
        if not channel or not ts:
            return None
        reply = post(
            f"{options.slack_api_base}/conversations.replies",
            {
                "channel": channel,
                "ts": ts,
                "oldest": ts,
                "latest": ts,
                "inclusive": "true",
                "limit": 1,
                "include_all_metadata": "true",
            },
            token=True,
            form=True,
        )
        for m in reply.get("messages") or []:
            md = m.get("metadata") or {}
            if m.get("ts") == ts and md.get("event_type") == METADATA_TYPE:
                return (md.get("event_payload") or {}).get("answer_id")
        return None

    def answer_in_thread(service: Service, event: dict[str, Any]) -> None:
        question = MENTION.sub("", event.get("text", "")).strip()
        channel = event.get("channel")
        thread = event.get("thread_ts") or event.get("ts")
        try:
            _, res = service.ask(question, collection=None, k=None, mode=None, where=None, use_cache=True)
            text = format_answer(res)
        except LlmopsError as e:
            res, text = None, f"Sorry, I could not answer: {redact_secrets(e.message)}"
        reply = post(
            f"{options.slack_api_base}/chat.postMessage",
            {
                "channel": channel,
                "thread_ts": thread,
                "text": text,
                **(
                    {"metadata": {"event_type": METADATA_TYPE, "event_payload": {"answer_id": res.answer_id}}}
                    if res is not None and res.answer_id
                    else {}
                ),
            },
            token=True,
        )
        if res is not None and res.answer_id and reply.get("ok") and reply.get("ts"):
            posted.put((channel, reply["ts"]), res.answer_id)

    def record_reaction(service: Service, event: dict[str, Any]) -> None:
        name = event.get("reaction", "").split("::")[0]  # skin tones: "+1::skin-tone-2"
        rating = "up" if name in UP else "down" if name in DOWN else None
        item = event.get("item") or {}
        if rating is None:
            return
        answer_id = posted.get((item.get("channel"), item.get("ts"))) or answer_of_message(
            item.get("channel"), item.get("ts")
        )
        if answer_id is None:
            return  # a reaction on a message that is not an answer
        try:
            service.rate(answer_id, rating, None, f"slack:{event.get('user', 'unknown')}")
        except LlmopsError as e:
            log.warning("slack: rating %s failed: %s", answer_id, redact_secrets(e.message))

    def answer_command(service: Service, form: dict[str, str]) -> None:
        try:
            _, res = service.ask(form.get("text", ""), collection=None, k=None, mode=None, where=None, use_cache=True)
            payload = {"response_type": "in_channel", "text": f"*{form.get('text', '')}*\n" + format_answer(res)}
        except LlmopsError as e:
            payload = {"response_type": "ephemeral", "text": f"Sorry, I could not answer: {redact_secrets(e.message)}"}
        post(form["response_url"], payload, token=False)

    def response_url_allowed(url: str) -> bool:
        # only Slack's own hooks (or the Slack API base this server is told of): a forged form cannot make the
        # server post elsewhere (the signature check already refuses forged forms; this is a second fence)
        parts, api = urlsplit(url), urlsplit(options.slack_api_base)
        return (parts.scheme == "https" and parts.netloc == "hooks.slack.com") or (
            parts.scheme == api.scheme and parts.netloc == api.netloc
        )

    @app.post("/slack/events", tags=["slack"])
    async def slack_events(request: Request) -> Any:
        """Slack's Events API: url_verification, app_mention (answered in its thread), reaction_added (+1/-1 on an
        answer: feedback)."""
        body, refused = await verified(request)
        if refused is not None:
            return refused
        try:
            doc = json.loads(body)
        except ValueError:
            doc = None
        if not isinstance(doc, dict):
            return JSONResponse(
                {"error": {"code": "USAGE", "exit_code": 2, "message": "not a JSON object"}}, status_code=400
            )
        if doc.get("type") == "url_verification":
            return {"challenge": doc.get("challenge")}
        event = doc.get("event") or {}
        # Slack retries an event it thinks was missed: answer each one once
        if doc.get("event_id") and not events_seen.put(doc["event_id"], True):
            return {"ok": True, "duplicate": True}
        service: Service = request.app.state.service
        if event.get("type") in ("app_mention", "message") and not event.get("bot_id") and event.get("text"):
            request.app.state.pool.submit(answer_in_thread, service, event)
        elif event.get("type") == "reaction_added":
            request.app.state.pool.submit(record_reaction, service, event)
        return {"ok": True}

    @app.post("/slack/commands", tags=["slack"])
    async def slack_command(request: Request) -> Any:
        """A slash command (``/ask QUESTION``): acknowledged at once, answered through its response_url."""
        body, refused = await verified(request)
        if refused is not None:
            return refused
        form = {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}
        if not form.get("text", "").strip():
            return {"response_type": "ephemeral", "text": "Usage: /ask QUESTION"}
        if not response_url_allowed(form.get("response_url", "")):
            return JSONResponse(
                {"error": {"code": "USAGE", "exit_code": 2, "message": "response_url is not Slack's"}}, status_code=400
            )
        request.app.state.pool.submit(answer_command, request.app.state.service, form)
        return {"response_type": "ephemeral", "text": "Looking that up…"}
