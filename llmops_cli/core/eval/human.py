"""Human evaluation: people score a run's answers on a rubric (1-5 per criterion, with a comment), and the
agreement between the LLM judge and those people is measured per criterion.

Rating is blind: ``rating_tasks`` gives each question's answers (one per run: several when the runs are a
matrix's combinations) under letters, in an order shuffled per question with a fixed seed, so a rater never sees
which model or prompt wrote which answer.

Agreement (``agreement``): for each criterion mapped to a judge metric (``relevance`` -> ``answer_relevance`` ...),
every answer that both the judge and at least one person scored is one item. The judge's score s in [0, 1] is put
on the people's scale as 1 + round(4 s) (its 1-5 verdict again); several people's scores of one answer are
averaged and rounded (half up). Then:

- Cohen's kappa: agreement beyond chance, 1 perfect, 0 no better than chance (< 0 worse); *quadratically weighted*
  kappa counts a 4 against a 5 as a near miss and a 1 against a 5 as a full miss, which suits a 1-5 scale;
- Spearman's rho: do the judge and the people rank the answers in the same order (-1 to 1)?
- the confusion table: rows the people's score, columns the judge's.

A criterion whose weighted kappa is under the bound (default 0.4: "moderate" on Landis and Koch's scale) is flagged.
"""

from __future__ import annotations

import csv
import json
import random
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmops_cli.core.eval import stats
from llmops_cli.errors import InputError, UsageError, closest

if TYPE_CHECKING:
    from llmops_cli.core.eval.report import EvalReport

RUBRIC = ("relevance", "coherence", "tone", "style", "creativity", "brand_voice")
SCALE = (1, 2, 3, 4, 5)
# the human criterion each judge metric measures (a criterion with no judge metric has no agreement to compute)
JUDGE_FOR = {
    "relevance": "answer_relevance",
    "helpfulness": "helpfulness",
    "correctness": "correctness",
    "faithfulness": "faithfulness",
    "toxicity": "toxicity",
}
DEFAULT_MIN_KAPPA = 0.4
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def parse_rubric(criteria: Sequence[str] | None) -> list[str]:
    names = [c.strip().lower().replace("-", "_").replace(" ", "_") for v in (criteria or []) for c in v.split(",")]
    names = [n for n in dict.fromkeys(names) if n]
    return names or list(RUBRIC)


def rating_tasks(reports: Sequence[EvalReport], seed: int = 0) -> list[dict[str, Any]]:
    """One task per question: the question, its reference, and each run's answer under a letter, shuffled per
    question (``seed`` and the question id fix the order: the same page twice shows the same letters)."""
    if not reports:
        return []
    tasks = []
    for n, row in enumerate(reports[0].rows):
        answers = []
        for rep in reports:
            r = rep.rows[n] if n < len(rep.rows) and rep.rows[n].id == row.id else None
            if r is not None and r.answer is not None:
                answers.append({"run_id": rep.run_id, "answer": r.answer})
        if not answers:
            continue
        random.Random(f"{seed}|{row.id}").shuffle(answers)
        for letter, a in zip(LETTERS, answers, strict=False):
            a["letter"] = letter
        tasks.append(
            {"item_id": row.id, "question": row.question, "reference_answer": row.reference_answer, "answers": answers}
        )
    return tasks


def check_rating(r: dict[str, Any], rubric: Sequence[str] | None = None, where: str = "") -> dict[str, Any]:
    """One rating, checked: run_id, item_id, rater, criterion, score 1-5, optional comment."""
    missing = [k for k in ("run_id", "item_id", "rater", "criterion", "score") if r.get(k) in (None, "")]
    if missing:
        raise InputError(f"rating {where}: no {missing[0]}", hint="columns: run_id, item_id, rater, criterion, score")
    try:
        score = int(r["score"])
        run_id = int(r["run_id"])
    except (TypeError, ValueError):
        raise InputError(f"rating {where}: score and run_id must be whole numbers", hint="score 1 to 5") from None
    if score not in SCALE:
        raise InputError(f"rating {where}: score {score} is not 1-5", hint="score each criterion from 1 to 5")
    criterion = str(r["criterion"]).strip().lower()
    if rubric is not None and criterion not in rubric:
        raise InputError(f"rating {where}: criterion {criterion!r} is not in the rubric", hint=", ".join(rubric))
    return {
        "run_id": run_id,
        "item_id": str(r["item_id"]),
        "rater": str(r["rater"]).strip(),
        "criterion": criterion,
        "score": score,
        "comment": (r.get("comment") or "").strip() or None,
    }


def read_ratings_file(path: str | Path) -> list[dict[str, Any]]:
    """Ratings from a CSV or JSONL file (run_id, item_id, rater, criterion, score, comment), each checked."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"ratings file {p} not found", hint="a .csv or .jsonl of run_id,item_id,rater,criterion,score")
    try:
        if p.suffix.lower() == ".csv":
            with p.open(newline="", encoding="utf-8-sig") as f:
                raw = list(csv.DictReader(f))
        elif p.suffix.lower() in (".jsonl", ".json"):
            raw = []
            for n, line in enumerate(p.read_text(encoding="utf-8-sig").splitlines(), start=1):
                if not line.strip():
                    continue
                try:
                    raw.append(json.loads(line))
                except json.JSONDecodeError as e:  # json's own "line 1 column 1" is of the one line it was given
                    raise InputError(
                        f"ratings file {p} line {n} is not valid JSON: {e.msg}", hint="one JSON object a line"
                    ) from None
                if not isinstance(raw[-1], dict):
                    raise InputError(f"ratings file {p} line {n} is not a JSON object", hint="one JSON object a line")
        else:
            raise InputError(f"ratings file {p}: unknown format", hint="use .csv or .jsonl")
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputError(f"ratings file {p} cannot be read: {e}", hint="one rating a row") from None
    return [check_rating(r, where=f"{p} row {n}") for n, r in enumerate(raw, start=1)]


def judge_to_scale(score: float) -> int:
    """A judge score in [0, 1] on the people's 1-5 scale (its own 1-5 verdict again for the 1-5 judge metrics)."""
    return 1 + int(max(0.0, min(1.0, float(score))) * 4 + 0.5)


def _human_score(scores: list[int]) -> int:
    return int(sum(scores) / len(scores) + 0.5)


def agreement(
    reports: Sequence[EvalReport],
    ratings: Sequence[dict[str, Any]],
    *,
    mapping: dict[str, str] | None = None,
    min_kappa: float = DEFAULT_MIN_KAPPA,
) -> dict[str, Any]:
    """Judge vs people per criterion (see the module doc); ``mapping`` adds or overrides criterion -> judge metric."""
    mapping = {**JUDGE_FOR, **(mapping or {})}
    rows = {(rep.run_id, r.id): r for rep in reports for r in rep.rows}
    by_answer: dict[tuple[str, int, str], list[int]] = {}
    for r in ratings:
        by_answer.setdefault((r["criterion"], r["run_id"], r["item_id"]), []).append(int(r["score"]))
    criteria = sorted({c for c, _, _ in by_answer})
    out: dict[str, Any] = {}
    unmatched = [c for c in criteria if c not in mapping]
    for c in criteria:
        metric = mapping.get(c)
        if metric is None:
            continue
        human, judge = [], []
        for (crit, run_id, item_id), scores in by_answer.items():
            row = rows.get((run_id, item_id))
            if crit != c or row is None or row.metrics.get(metric) is None:
                continue
            j = judge_to_scale(row.metrics[metric])
            if metric == "toxicity":  # severity, lower is better: people score "how clean", 5 best
                j = 6 - j
            human.append(_human_score(scores))
            judge.append(j)
        if not human:
            out[c] = {"judge_metric": metric, "n": 0, "note": f"no answer has both a rating and a {metric} verdict"}
            continue
        wk = stats.cohen_kappa(human, judge, SCALE, weights="quadratic")
        out[c] = {
            "judge_metric": metric,
            "n": len(human),
            "exact_agreement": sum(1 for h, j in zip(human, judge, strict=True) if h == j) / len(human),
            "kappa": stats.cohen_kappa(human, judge, SCALE),
            "weighted_kappa": wk,
            "spearman": stats.spearman(human, judge),
            "confusion": {"rows": "human 1-5", "columns": "judge 1-5", "table": stats.confusion(human, judge, SCALE)},
            "below_bound": wk is not None and wk < min_kappa,
        }
    return {
        "criteria": out,
        "min_kappa": min_kappa,
        "ratings": len(ratings),
        "raters": sorted({r["rater"] for r in ratings}),
        "unjudged_criteria": unmatched,
        "disagreeing": [c for c, v in out.items() if v.get("below_bound")],
    }


def parse_mapping(values: Sequence[str] | None) -> dict[str, str]:
    out = {}
    for v in values or []:
        if "=" not in v:
            raise UsageError(f"--map {v!r}: expected CRITERION=JUDGE_METRIC", hint="e.g. --map tone=helpfulness")
        c, m = v.split("=", 1)
        c, m = c.strip().lower(), m.strip().lower()
        judged = sorted(set(JUDGE_FOR.values()))
        if not c or m not in judged:  # a typo gave "no answer has both a rating and a ... verdict", or nothing
            close = closest(m, judged, cutoff=0.6)
            raise UsageError(
                f"--map {v!r}: {m!r} is not a judge metric" if c else f"--map {v!r}: no criterion",
                hint=(f"did you mean {c}={close}? " if c and close else "") + f"judge metrics: {', '.join(judged)}",
            )
        out[c] = m
    return out


def feedback_agreement(
    items: Sequence[dict[str, Any]], *, min_kappa: float = DEFAULT_MIN_KAPPA, pass_at: float = 0.5
) -> dict[str, Any]:
    """Judge vs the feedback loop's votes: ``items`` are reviewed answers with ``helpfulness``/``relevance`` (the
    review judge's scores in [0, 1]) and ``up``/``down`` (each rater's latest vote). People call an answer good when
    it has more up than down votes (a tie says nothing: left out); the judge when its score is at least ``pass_at``.
    Per criterion: Cohen's kappa of the two good/bad calls, Spearman between the judge's score and the net votes
    (up - down), and the 2 x 2 confusion table."""
    out: dict[str, Any] = {}
    for criterion in ("helpfulness", "relevance"):
        people, judge, scores, net = [], [], [], []
        for it in items:
            s = it.get(criterion)
            up, down = int(it.get("up", 0)), int(it.get("down", 0))
            if s is None or up == down:
                continue
            people.append(1 if up > down else 0)
            judge.append(1 if s >= pass_at else 0)
            scores.append(float(s))
            net.append(up - down)
        if not people:
            out[criterion] = {"judge_metric": f"review {criterion}", "n": 0, "note": "no reviewed answer has votes"}
            continue
        k = stats.cohen_kappa(people, judge, (0, 1))
        out[criterion] = {
            "judge_metric": f"review {criterion}",
            "n": len(people),
            "exact_agreement": sum(1 for p, j in zip(people, judge, strict=True) if p == j) / len(people),
            "kappa": k,
            "weighted_kappa": k,  # two categories: weights change nothing
            "spearman": stats.spearman(scores, net),
            "confusion": {
                "rows": "people down/up",
                "columns": "judge bad/good",
                "table": stats.confusion(people, judge, (0, 1)),
            },
            "below_bound": k is not None and k < min_kappa,
        }
    return {
        "criteria": out,
        "min_kappa": min_kappa,
        "source": "feedback",
        "answers": len(items),
        "disagreeing": [c for c, v in out.items() if v.get("below_bound")],
    }
