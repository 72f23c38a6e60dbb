"""`llmops insights questions|sources` as a user runs them, on a planted answer log with known groups (the real
bundled embedding model): the groups found agree with the planted ones (adjusted Rand index, printed), the group the
sources do not answer comes first as a gap, the HTML page holds its charts, and sources are ranked by their votes."""

from __future__ import annotations

import json

import pytest

from tests.integration.conftest import llmops_env, run_llmops

pytestmark = pytest.mark.integration

TOPICS = {
    "pools": [
        "How do I limit how many tasks run at once with an Airflow pool?",
        "What does a pool slot mean in Airflow?",
        "Can two DAGs share one pool to cap concurrency?",
        "How do I create a pool with five slots?",
        "Why are my tasks queued waiting for pool slots?",
        "How to assign a task to a specific pool?",
    ],
    "schedule": [
        "How do I schedule a DAG to run every day at midnight?",
        "What cron expression runs a DAG hourly?",
        "How do I change the schedule interval of my DAG?",
        "Why did my daily scheduled DAG not run yesterday?",
        "How do I set a DAG schedule with a cron string?",
        "Can a DAG run on weekdays only using its schedule?",
    ],
    "xcom": [
        "How do I pass data between tasks with XCom?",
        "What is the size limit of an XCom value?",
        "How do I pull an XCom pushed by another task?",
        "Can TaskFlow return values be read as XComs?",
        "Where are XCom values stored?",
        "How do I push a custom key to XCom?",
    ],
    "kubernetes": [
        "How do I set CPU limits on the KubernetesPodOperator?",
        "Which pod template does the Kubernetes executor use?",
        "How do I mount a volume into a Kubernetes pod task?",
        "Why is my Kubernetes worker pod evicted?",
        "How to run each task in its own Kubernetes pod?",
        "How do I pass secrets to a KubernetesPodOperator pod?",
    ],
}


def test_insights_find_the_planted_groups_and_rank_the_sources(tmp_path):
    from sklearn.metrics import adjusted_rand_score

    from llmops_cli.settings import load_settings
    from llmops_cli.wiring import Workspace

    env = llmops_env(tmp_path, HF_HUB_OFFLINE="1")
    truth: dict[str, str] = {}
    with Workspace(load_settings(environ=env, flags={}).settings) as ws:
        log = ws.answer_log()
        for topic, questions in TOPICS.items():
            for i, q in enumerate(questions):
                gap = topic == "kubernetes"  # the docs say nothing about it
                aid = log.record(
                    kind="ask",
                    question=q,
                    answer="I don't know: the context does not mention Kubernetes." if gap else f"About {topic}.",
                    collection="kb",
                    chunks=[{"id": f"{topic}-c", "source": f"docs/{topic}.md", "heading": topic}],
                )
                truth[aid] = topic
                if i < 3:
                    log.rate(aid, -1 if gap else 1, rater=f"user{i}")

    r = run_llmops("insights", "questions", "--json", "--html", str(tmp_path / "insights.html"), env=env)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["questions"] == 24
    found = {qid: c["id"] for c in doc["clusters"] for qid in c["question_ids"]}
    ids = sorted(truth)
    ari = adjusted_rand_score([truth[i] for i in ids], [found[i] for i in ids])
    print(f"adjusted Rand index of the groups found vs planted: {ari:.2f} (k chosen: {doc['chosen_k']})")
    assert ari >= 0.6, doc["clusters"]
    gap = doc["clusters"][0]
    assert gap["gap"] and gap["answer_rate"] < 0.5
    assert sum(truth[q] == "kubernetes" for q in gap["question_ids"]) >= 5, gap
    page = (tmp_path / "insights.html").read_text()
    assert page.count('class="bar"') == len(doc["clusters"]) and "<polyline" in page

    human = run_llmops("insights", "questions", "--clusters", "4", env=env)
    assert human.returncode == 0 and "GAP" in human.stdout, human.stdout + human.stderr

    r = run_llmops("insights", "sources", "--json", env=env)
    assert r.returncode == 0, r.stderr
    ranked = [s["source"] for s in json.loads(r.stdout)["sources"]]
    assert ranked[-1] == "docs/kubernetes.md" and len(ranked) == 4, ranked
    again = run_llmops("insights", "questions", "--html", str(tmp_path / "insights.html"), env=env)
    assert again.returncode == 10 and "already exists" in again.stderr  # never over an earlier page
