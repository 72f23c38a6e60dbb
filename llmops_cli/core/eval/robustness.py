"""Robustness: the same questions, perturbed, evaluated again; the report gives the score deltas.

Perturbations:
- typos: in about one word in four (words of 4+ letters), one deterministic edit: swap two neighbouring
  letters, drop a letter or double one (seeded by the question, so runs are repeatable).
- casing: the question in lower case with its first letter kept, then every other word upper-cased
  ("how DO i SET ..."), which tests case-sensitive lexical matching.
- paraphrase: the LLM rewrites the question with different words, same meaning (needs an LLM).
"""

from __future__ import annotations

import hashlib
import random
import re

PERTURBATIONS = ("typos", "casing", "paraphrase")
LLM_PERTURBATIONS = {"paraphrase"}

_WORD = re.compile(r"[A-Za-z]{4,}")


def _rng(text: str, salt: str) -> random.Random:
    return random.Random(int(hashlib.sha256(f"{salt}:{text}".encode()).hexdigest()[:16], 16))


def add_typos(text: str, rate: float = 0.25) -> str:
    rng = _rng(text, "typos")
    words = list(_WORD.finditer(text))
    if not words:
        return text
    n = max(1, round(len(words) * rate))
    chosen = sorted(rng.sample(range(len(words)), min(n, len(words))))
    out, last = [], 0
    for idx in chosen:
        m = words[idx]
        w = m.group(0)
        i = rng.randrange(1, len(w) - 1)
        kind = rng.choice(("swap", "drop", "double"))
        if kind == "swap":
            w2 = w[:i] + w[i + 1] + w[i] + w[i + 2 :]
            if w2 == w:  # swapping equal letters changes nothing: drop one instead
                w2 = w[:i] + w[i + 1 :]
        elif kind == "drop":
            w2 = w[:i] + w[i + 1 :]
        else:
            w2 = w[:i] + w[i] + w[i:]
        out.append(text[last : m.start()] + w2)
        last = m.end()
    out.append(text[last:])
    return "".join(out)


def change_casing(text: str) -> str:
    words = text.lower().split(" ")
    return " ".join(w.upper() if i % 2 else w for i, w in enumerate(words))


PARAPHRASE_PARAMS = {"temperature": 0.0}


def paraphrase_messages(question: str) -> list[dict[str, str]]:
    return [
        {"role": "system", "content": "You rewrite questions. Reply with the rewritten question only."},
        {
            "role": "user",
            "content": "Rewrite this question with different words and the same meaning. Keep technical "
            f"names (APIs, options, products) unchanged.\n\nQUESTION: {question}",
        },
    ]


async def paraphrase(llm, question: str) -> str:
    c = await llm.acomplete(paraphrase_messages(question), **PARAPHRASE_PARAMS)
    text = c.text.strip().strip('"').strip()
    if text.lower().startswith("question:"):
        text = text[len("question:") :].strip()
    return text or question


def perturb(kind: str, question: str) -> str:
    """The non-LLM perturbations."""
    if kind == "typos":
        return add_typos(question)
    if kind == "casing":
        return change_casing(question)
    raise ValueError(f"{kind} needs the LLM")
