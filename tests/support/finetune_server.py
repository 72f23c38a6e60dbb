"""A small OpenAI-compatible fine-tuning server for tests: ``POST /v1/files`` (multipart), ``POST
/v1/fine_tuning/jobs``, ``GET /v1/fine_tuning/jobs/{id}``. A job runs ``polls_to_finish`` polls (validating_files ->
running -> succeeded, or ``fail`` -> failed); every upload and submission is counted, so a test can hold that a retry
submitted nothing new. Binds 127.0.0.1 on a free port; ``with FineTuningServer() as s: s.url``."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class FineTuningServer:
    def __init__(self, *, polls_to_finish: int = 2, fail: bool = False, api_key: str | None = None):
        self.polls_to_finish = polls_to_finish
        self.fail = fail
        self.api_key = api_key
        self.files: dict[str, bytes] = {}
        self.jobs: dict[str, dict[str, Any]] = {}
        self.polls: dict[str, int] = {}
        self.submissions: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._httpd is not None
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def __enter__(self) -> FineTuningServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a: Any) -> None:
                pass

            def _send(self, code: int, doc: dict[str, Any]) -> None:
                body = json.dumps(doc).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _authorised(self) -> bool:
                if server.api_key and self.headers.get("Authorization") != f"Bearer {server.api_key}":
                    self._send(401, {"error": {"message": "bad key"}})
                    return False
                return True

            def do_POST(self) -> None:
                if not self._authorised():
                    return
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with server.lock:
                    if self.path == "/v1/files":
                        fid = f"file-{len(server.files) + 1}"
                        server.files[fid] = body
                        return self._send(200, {"id": fid, "object": "file", "purpose": "fine-tune"})
                    if self.path == "/v1/fine_tuning/jobs":
                        req = json.loads(body)
                        if req.get("training_file") not in server.files:
                            return self._send(400, {"error": {"message": "no such file"}})
                        jid = f"ftjob-{len(server.jobs) + 1}"
                        server.submissions.append(req)
                        server.jobs[jid] = {
                            "id": jid,
                            "object": "fine_tuning.job",
                            "model": req["model"],
                            "status": "validating_files",
                            "training_file": req["training_file"],
                            "fine_tuned_model": None,
                            "trained_tokens": None,
                        }
                        server.polls[jid] = 0
                        return self._send(200, server.jobs[jid])
                self._send(404, {"error": {"message": f"no route {self.path}"}})

            def do_GET(self) -> None:
                if not self._authorised():
                    return
                prefix = "/v1/fine_tuning/jobs/"
                with server.lock:
                    jid = self.path[len(prefix) :] if self.path.startswith(prefix) else None
                    job = server.jobs.get(jid or "")
                    if job is None:
                        return self._send(404, {"error": {"message": "no such job"}})
                    server.polls[jid] += 1
                    n = server.polls[jid]
                    if n >= server.polls_to_finish and job["status"] not in ("succeeded", "failed"):
                        if server.fail:
                            job.update(status="failed", error={"message": "training loss diverged"})
                        else:
                            size = len(server.files[job["training_file"]])
                            job.update(
                                status="succeeded",
                                fine_tuned_model=f"ft:{job['model']}:llmops:{jid}",
                                trained_tokens=size // 4,
                            )
                    elif job["status"] == "validating_files":
                        job["status"] = "running"
                    return self._send(200, job)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
