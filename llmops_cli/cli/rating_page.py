"""The local rating page of `llmops eval rate --web`: one question at a time, the answers side by side under
letters (blind to model and prompt), a 1-5 per rubric criterion, driven by the keyboard.

Keys: 1-5 score the highlighted cell and move on; arrows (or h/j/k/l) move; c writes a comment on the highlighted
answer; Enter saves the question's scores and shows the next; n skips; q (or the Finish button) saves and stops
the server. Served by the standard library on 127.0.0.1, one request at a time in the calling thread (so the
ratings go through the caller's history connection); nothing external is loaded.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>llmops eval rate</title>
<style>
body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:80em}
.answers{display:flex;gap:1em}.answer{flex:1;border:1px solid #ccc;padding:1em;border-radius:6px}
.cell{display:inline-block;min-width:2.5em;padding:2px 6px;margin:2px;border:1px solid #ccc;border-radius:4px}
.cell.cur{outline:3px solid #27a}.cell.set{background:#e4f6ea} small{color:#666}
</style></head><body>
<h1>Rate the answers <small id="progress"></small></h1>
<p><small>Keys: 1-5 score the highlighted cell, arrows move, c comment, Enter save + next, n skip, q finish.
Rater: <b id="rater"></b></small></p>
<h2 id="question"></h2><p><small id="reference"></small></p>
<div class="answers" id="answers"></div>
<p><button id="next">Save and next (Enter)</button> <button id="finish">Finish (q)</button></p>
<p id="status"></p>
<script>
const DATA = __DATA__;
let q = 0, cur = 0, scores = {}, comments = {};
document.getElementById('rater').textContent = DATA.rater;
function cells(){ const t = DATA.tasks[q]; const out = [];
  t.answers.forEach(a => DATA.rubric.forEach(c => out.push([a, c]))); return out; }
function render(){
  const status = document.getElementById('status');
  if (q >= DATA.tasks.length){ document.getElementById('question').textContent = 'All questions rated.';
    document.getElementById('answers').innerHTML = ''; return; }
  const t = DATA.tasks[q];
  document.getElementById('progress').textContent = '(' + (q + 1) + ' of ' + DATA.tasks.length + ')';
  document.getElementById('question').textContent = t.question;
  document.getElementById('reference').textContent = t.reference_answer ? 'reference: ' + t.reference_answer : '';
  const box = document.getElementById('answers'); box.innerHTML = '';
  const all = cells();
  t.answers.forEach(a => {
    const d = document.createElement('div'); d.className = 'answer';
    const h = document.createElement('h3'); h.textContent = 'Answer ' + a.letter; d.appendChild(h);
    const p = document.createElement('p'); p.textContent = a.answer; d.appendChild(p);
    DATA.rubric.forEach(c => {
      const i = all.findIndex(x => x[0] === a && x[1] === c);
      const s = document.createElement('span'); const key = a.letter + '|' + c;
      s.className = 'cell' + (i === cur ? ' cur' : '') + (scores[key] ? ' set' : '');
      s.dataset.key = key; s.textContent = c + ': ' + (scores[key] || '-'); d.appendChild(s);
    });
    if (comments[a.letter]){ const m = document.createElement('p');
      m.innerHTML = '<small></small>'; m.firstChild.textContent = 'comment: ' + comments[a.letter]; d.appendChild(m); }
    box.appendChild(d);
  });
}
async function save(){
  const t = DATA.tasks[q]; const ratings = [];
  t.answers.forEach(a => DATA.rubric.forEach(c => { const s = scores[a.letter + '|' + c];
    if (s) ratings.push({run_id: a.run_id, item_id: t.item_id, rater: DATA.rater, criterion: c, score: s,
      comment: comments[a.letter] || null}); }));
  if (ratings.length){
    const r = await fetch('/rate', {method: 'POST', headers: {'Content-Type': 'application/json'},
      body: JSON.stringify({ratings: ratings})});
    const body = await r.json();
    document.getElementById('status').textContent = r.ok ? 'saved ' + body.stored + ' ratings' : 'error: ' + body.error;
    if (!r.ok) return false;
  }
  return true;
}
async function next(skip){ if (q >= DATA.tasks.length) return;
  if (!skip && !(await save())) return; q += 1; cur = 0; scores = {}; comments = {}; render(); }
async function finish(){ if (q < DATA.tasks.length) await save(); q = DATA.tasks.length; render();
  await fetch('/done', {method: 'POST'});
  document.getElementById('status').textContent = 'finished: you can close this page'; }
document.getElementById('next').onclick = () => next(false);
document.getElementById('finish').onclick = finish;
document.addEventListener('keydown', async e => {
  if (q >= DATA.tasks.length) return;
  const all = cells(); const width = DATA.rubric.length;
  if (e.key >= '1' && e.key <= '5'){ const [a, c] = all[cur]; scores[a.letter + '|' + c] = Number(e.key);
    cur = Math.min(cur + 1, all.length - 1); render(); }
  else if (e.key === 'ArrowRight' || e.key === 'l'){ cur = Math.min(cur + 1, all.length - 1); render(); }
  else if (e.key === 'ArrowLeft' || e.key === 'h'){ cur = Math.max(cur - 1, 0); render(); }
  else if (e.key === 'ArrowDown' || e.key === 'j'){ cur = Math.min(cur + width, all.length - 1); render(); }
  else if (e.key === 'ArrowUp' || e.key === 'k'){ cur = Math.max(cur - width, 0); render(); }
  else if (e.key === 'c'){ e.preventDefault(); const a = all[cur][0];
    const text = prompt('Comment on answer ' + a.letter, comments[a.letter] || '');
    if (text !== null) comments[a.letter] = text;
    render(); }
  else if (e.key === 'Enter'){ e.preventDefault(); await next(false); }
  else if (e.key === 'n'){ await next(true); }
  else if (e.key === 'q'){ await finish(); }
});
render();
</script></body></html>
"""


def page_html(tasks: list[dict[str, Any]], rubric: list[str], rater: str) -> str:
    # the answers carry their run ids for the POST; the page shows letters only (blind)
    data = json.dumps({"tasks": tasks, "rubric": rubric, "rater": rater}).replace("</", "<\\/")
    return PAGE.replace("__DATA__", data)


def serve_rating_page(
    tasks: list[dict[str, Any]],
    rubric: list[str],
    rater: str,
    *,
    store: Callable[[list[dict[str, Any]]], int],
    port: int = 0,
    announce: Callable[[str], None] = print,
    on_ready: Callable[[str], None] | None = None,
) -> int:
    """Serve the page until the rater finishes (or Ctrl-C); returns how many ratings were stored."""
    stored = 0
    done = False
    html = page_html(tasks, rubric, rater).encode()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # the terminal shows what was stored, not every request
            pass

        def _send(self, status: int, body: bytes, kind: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            if self.path in ("/", "/index.html"):
                self._send(200, html, "text/html; charset=utf-8")
            else:
                self._send(404, b"not found", "text/plain")

        def do_POST(self) -> None:
            nonlocal stored, done
            if self.path == "/done":
                done = True
                self._send(200, b"{}", "application/json")
                return
            if self.path != "/rate":
                self._send(404, b"{}", "application/json")
                return
            try:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
                n = store(list(body.get("ratings") or []))
            except Exception as e:  # noqa: BLE001 - the page shows the one-line reason and the rater can go on
                msg = getattr(e, "message", None) or str(e)
                self._send(400, json.dumps({"error": msg}).encode(), "application/json")
                return
            stored += n
            self._send(200, json.dumps({"stored": n}).encode(), "application/json")

    try:
        server = HTTPServer(("127.0.0.1", port), Handler)
    except OSError as e:  # it was an internal error
        from llmops_cli.errors import listen_error

        raise listen_error(
            e,
            f"cannot serve the rating page on 127.0.0.1:{port}",
            in_use_hint="pass another --port, or --port 0 for a free one",
            other_hint="pass another --port",
        ) from None
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    announce(f"rating page: {url} ({len(tasks)} questions; press q on the page to finish)")
    if on_ready is not None:
        on_ready(url)
    try:
        while not done:
            server.handle_request()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return stored
