"""Chunking memory is bounded by the tokenizer block, not the file: the real tokenizer on a 2 MB single line.

The tokenizer holds ~200 bytes per character of its input while it runs; a 2 MB line in one call took ~530 MB."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]

CHILD = r"""
import json, random, resource, sys
from llmops_cli.adapters.embedders.hf_tokens import HFTokenCounter
from llmops_cli.adapters.embedders.model_files import bundled_model_path
from llmops_cli.core.chunking.select import ChunkerSet
from llmops_cli.core.documents import Document

rnd = random.Random(5)
words = ["".join(rnd.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rnd.randint(2, 9))) for _ in range(3000)]
text = " ".join(rnd.choice(words) + ("." if rnd.random() < 0.03 else "") for _ in range(340_000))[:2_000_000]
md = "".join(f"## Part {i}\n\n" + text[i * 250_000:(i + 1) * 250_000] + "\n\n" for i in range(4))
tok = HFTokenCounter(bundled_model_path())
cs = ChunkerSet("auto", tok, 200, 30)
cs.split(Document("warm", "# a\n\nwarm up the tokenizer"))
def status_kb(field):
    return int([l for l in open("/proc/self/status") if l.startswith(field + ":")][0].split()[1])
# the peak is this process's own high-water mark (VmHWM), reset here; not getrusage's ru_maxrss, which Linux keeps
# across fork+exec, so that a child of a large pytest process starts with its parent's peak
open("/proc/self/clear_refs", "w").write("5")
base = status_kb("VmRSS")
line = cs.split(Document("line", text, format="text"))
peak = status_kb("VmHWM")
# a long heading section cut into blocks gives the chunks of the same section tokenized whole
import llmops_cli.core.chunking.base as b
blocked = cs.split(Document("md", md, format="markdown"))
b.TOKENIZE_BLOCK = 1 << 30
whole = cs.split(Document("md", md, format="markdown"))
print(json.dumps({"extra_mb": (peak - base) / 1024, "chunks": len(line),
                  "max_tokens": max(tok.count([p.text for p in line])),
                  "same": [(p.heading, p.text) for p in blocked] == [(p.heading, p.text) for p in whole]}))
"""


def test_a_2mb_single_line_chunks_in_bounded_memory():
    out = subprocess.run([sys.executable, "-c", CHILD], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    res = json.loads(out.stdout)
    assert res["chunks"] > 1000 and res["max_tokens"] <= 200
    assert res["extra_mb"] < 100, res  # was ~530 MB with the whole line in one tokenizer call
    assert res["same"]
