"""Promotion rule, redaction before promotion, reconcile against a store, the semantic cache and the export (fakes)."""

from __future__ import annotations

import time

import pytest

from llmops_cli.core.collection_meta import EMBEDDER_KEY, GENERATION_KEY
from llmops_cli.core.feedback import AnswerLog
from llmops_cli.core.feedback.cache import find_cached
from llmops_cli.core.feedback.export import openai_chat_rows
from llmops_cli.core.feedback.log import AnswerRecord, Rating, Review
from llmops_cli.core.feedback.promotion import PROMOTED_KIND, Promoter, Thresholds, chunk_id_for, decide, promoted_parts
from tests.support.fakes import FakeEmbedder, MemoryStore

T = Thresholds(min_helpfulness=0.75, min_relevance=0.5)


def answer(**kw) -> AnswerRecord:
    base = dict(
        id="a1",
        created_at=0.0,
        kind="ask",
        question="How do I rotate keys?",
        answer="Run rotate [1].",
        collection="docs",
        chunks=[{"id": "c1", "source": "guide.md", "heading": "Keys"}],
    )
    return AnswerRecord(**{**base, **kw})


def review(**kw) -> Review:
    return Review(**{**dict(answer_id="a1", status="ok", helpfulness=1.0, relevance=1.0, public=True), **kw})


UP, DOWN = Rating(1, None, 0.0), Rating(-1, "wrong", 1.0)


@pytest.mark.parametrize(
    "a, rv, ratings, t, promote, reason",
    [
        (answer(), review(), [], T, True, "passed review"),
        (answer(), review(), [UP, DOWN], T, False, "rated down"),
        # one vote per rater, the latest wins
        (
            answer(),
            review(),
            [Rating(-1, None, 0.0, rater="ann"), Rating(1, None, 1.0, rater="ann")],
            T,
            True,
            "passed review",
        ),
        (
            answer(),
            review(),
            [Rating(1, None, 0.0, rater="ann"), Rating(-1, None, 1.0, rater="ann")],
            T,
            False,
            "rated down",
        ),
        (
            answer(),
            review(),
            [Rating(-1, None, 0.0, rater="bob"), Rating(1, None, 1.0, rater="ann")],
            T,
            False,
            "rated down",
        ),
        (
            answer(),
            review(),
            [Rating(1, None, 0.0, rater="ann"), Rating(-1, None, 1.0, rater="ann")],
            Thresholds(require_rating_up=True),
            False,
            "rated down",
        ),
        (
            answer(),
            review(),
            [Rating(-1, None, 0.0, rater="ann"), Rating(1, None, 1.0, rater="ann")],
            Thresholds(require_rating_up=True),
            True,
            "passed review",
        ),
        (answer(), review(public=False), [UP], T, False, "judged not public"),
        (answer(), review(helpfulness=0.5), [], T, False, "helpfulness 0.50 < 0.75"),
        (answer(), review(relevance=0.25), [], T, False, "relevance 0.25 < 0.50"),
        (answer(), review(status="error", helpfulness=None), [], T, False, "review error"),
        (answer(), None, [UP], T, False, "not reviewed"),
        (
            answer(),
            review(),
            [],
            Thresholds(require_rating_up=True),
            False,
            "not rated up (feedback.require_rating_up)",
        ),
        (answer(), review(), [UP], Thresholds(require_rating_up=True), True, "passed review"),
        (answer(kind="batch"), review(), [], T, False, "not an answer from a collection"),
        (answer(cached_from="a0"), review(), [], T, False, "not an answer from a collection"),
        (answer(answer="  "), review(), [], T, False, "empty answer"),
    ],
)
def test_decide(a, rv, ratings, t, promote, reason):
    d = decide(a, rv, ratings, t)
    assert (d.promote, d.reason) == (promote, reason)


def test_promoted_parts_redact_and_replace_citations_by_sources():
    a = answer(
        question="Key for jane@corp.example?",
        answer="Use sk-live-ABCDEFGHIJKLMNOPQRST [1][2], or call +44 20 7946 0958. Token: abcdef123456 [9].",
        chunks=[{"id": "c1", "source": "guide.md"}, {"id": "c2", "source": "faq.md"}],
    )
    q, body, text = promoted_parts(a)
    assert q == "Key for [REDACTED_EMAIL]?"
    assert (
        "sk-live" not in body
        and "[REDACTED_API_KEY]" in body
        and "[REDACTED_PHONE]" in body
        and "abcdef123456" not in body
    )
    assert "[1]" not in body and "[9]" not in body and body.endswith("Sources: guide.md, faq.md")
    assert text == f"Question: {q}\n\nAnswer: {body}"


@pytest.fixture
def world(tmp_path):
    store = MemoryStore()
    emb = FakeEmbedder()
    store.ensure_collection("docs", metadata={EMBEDDER_KEY: emb.identity, GENERATION_KEY: 3})
    # the ingested chunk the answers were given (an answer whose chunks are gone is stale: see test_stale_...)
    store.upsert(
        "docs",
        ["c1"],
        emb.embed(["Rotate keys with rotate --all."]),
        ["Rotate keys with rotate --all."],
        [{"source": "guide.md"}],
    )
    log = AnswerLog(tmp_path / "l.sqlite")
    rebuilt: list[str] = []
    built: list[int] = []

    def embedder(collection):
        built.append(1)
        return emb

    promoter = Promoter(log, store, embedder, T, after_write=rebuilt.append)
    yield log, store, promoter, rebuilt, built
    log.close()


def add(log, question="How do I rotate keys?", text="Run `rotate --all` [1].", **rv) -> str:
    i = log.record(
        kind="ask", question=question, answer=text, collection="docs", chunks=[{"id": "c1", "source": "guide.md"}]
    )
    log.save_review(review(answer_id=i, reviewed_at=time.time(), **rv))
    return i


def test_reconcile_promotes_then_keeps_then_removes(world):
    log, store, promoter, rebuilt, built = world
    good, bad = add(log), add(log, question="other", public=False)

    r = promoter.reconcile([good, bad])
    assert r.promoted == [good] and r.not_promoted == [{"id": bad, "reason": "judged not public"}]
    hit = store.get("docs", ids=[chunk_id_for(good)])[0]
    assert (
        hit.metadata["kind"] == PROMOTED_KIND
        and hit.metadata["answer_id"] == good
        and hit.metadata["source"] == f"answer:{good}"
    )
    assert hit.text.startswith("Question: How do I rotate keys?") and "Sources: guide.md" in hit.text
    assert store.collection_metadata("docs")[GENERATION_KEY] == 4 and rebuilt == ["docs"]

    writes = store.writes
    assert promoter.reconcile([good, bad]).kept == [good]  # idempotent: nothing written, index not rebuilt
    assert store.writes == writes and rebuilt == ["docs"]

    log.rate(good, -1)
    r = promoter.reconcile([good])
    assert r.removed == [{"id": good, "reason": "rated down"}]
    assert store.get("docs", ids=[chunk_id_for(good)]) == [] and store.collection_metadata("docs")[GENERATION_KEY] == 5
    p = log.promotion_of(good)
    assert not p.active and p.removed_reason == "rated down"


def test_reconcile_writes_again_what_the_store_lost_and_skips_what_it_cannot_write(world):
    log, store, promoter, _rebuilt, _built = world
    a = add(log)
    promoter.reconcile([a])
    store.delete("docs", [chunk_id_for(a)])  # e.g. the store was rebuilt
    assert promoter.reconcile([a]).promoted == [a] and store.get("docs", ids=[chunk_id_for(a)])

    other = log.record(kind="ask", question="q", answer="x", collection="gone")
    log.save_review(review(answer_id=other))
    assert "does not exist" in promoter.reconcile([other]).not_promoted[0]["reason"]

    store.ensure_collection("alien", metadata={EMBEDDER_KEY: "another:model"})
    alien = log.record(kind="ask", question="q", answer="x", collection="alien")
    log.save_review(review(answer_id=alien))
    assert "another embedder" in promoter.reconcile([alien]).not_promoted[0]["reason"]


def test_dry_run_changes_nothing_and_no_embedder_is_built_for_nothing(world):
    log, store, promoter, rebuilt, built = world
    not_public = add(log, public=False)
    promoter.reconcile([not_public])
    assert built == []  # nothing to write: the (costly) embedder is never loaded
    a = add(log)
    assert promoter.reconcile([a], dry_run=True).promoted == [a]
    assert store.count("docs") == 1 and rebuilt == [] and log.promotion_of(a) is None  # the ingested chunk alone


def test_semantic_cache_hits_near_identical_questions_only(world):
    log, store, promoter, _rebuilt, _built = world
    emb = promoter.embedder("docs")
    a = add(log, question="How do I rotate the frobnicator keys?")
    assert find_cached(log, emb, "docs", "How do I rotate the frobnicator keys?", 0.92) is None  # nothing promoted yet
    assert not log.has_active_promotions("docs")
    promoter.reconcile([a])
    assert log.has_active_promotions("docs") and not log.has_active_promotions("other")

    hit = find_cached(log, emb, "docs", "how do I rotate the frobnicator keys", 0.92)
    assert hit is not None and hit.answer_id == a and hit.similarity > 0.99
    assert hit.promotion.answer_text.startswith("Run `rotate --all`")
    assert find_cached(log, emb, "docs", "What colour are the widgets in the backup report?", 0.92) is None
    assert find_cached(log, emb, "other", "How do I rotate the frobnicator keys?", 0.92) is None
    assert (
        find_cached(log, FakeEmbedder(identity="fake:other"), "docs", "How do I rotate the frobnicator keys?", 0.92)
        is None
    )

    log.rate(a, -1)
    promoter.reconcile([a])
    assert find_cached(log, emb, "docs", "How do I rotate the frobnicator keys?", 0.92) is None
    assert not log.has_active_promotions("docs")  # removed promotions do not count


def test_export_openai_chat_has_only_good_answers_redacted(world):
    log, _store, _promoter, _rebuilt, _built = world
    good = add(log, question="Who to mail?", text="Mail ops@corp.example [1].")
    add(log, question="low", helpfulness=0.25)
    down = add(log, question="down")
    log.rate(down, -1)
    rows = list(openai_chat_rows(log, T, system="sys"))
    assert rows == [
        {
            "messages": [
                {"role": "system", "content": "sys"},
                {"role": "user", "content": "Who to mail?"},
                {"role": "assistant", "content": "Mail [REDACTED_EMAIL].\n\nSources: guide.md"},
            ]
        }
    ]
    assert list(openai_chat_rows(log, T, system=None))[0]["messages"][0]["role"] == "user"
    assert good


# issue 11 item 12: config-style secrets, env variables and URL passwords reached promoted chunks and the export
SECRET_FORMS = {
    "hunter2secret": "Set `smtp_password = hunter2secret` in airflow.cfg.",
    "envsmtppw99": "Or export AIRFLOW__SMTP__SMTP_PASSWORD=envsmtppw99 before starting.",
    "yamlpw1234": "In the YAML: db_passwd: yamlpw1234",
    "urlpw77": "Connect with postgres://airflow:urlpw77@db/airflow [1].",
    "8Wk1ZcpQ1yXc0g5vYb4H": "fernet_key = 8Wk1ZcpQ1yXc0g5vYb4HnA5fSg0=",
}


def test_promoted_chunks_and_the_export_carry_no_config_secrets(world):
    log, store, promoter, _rebuilt, _built = world
    i = add(
        log,
        question="How do I configure SMTP for user:pw postgres://a:qpw123@db/x?",
        text="\n".join(SECRET_FORMS.values()),
    )
    promoter.reconcile([i])
    chunk = store.get("docs", ids=[chunk_id_for(i)])[0].text
    exported = str(list(openai_chat_rows(log, T, system=None)))
    for secret in [*SECRET_FORMS, "qpw123"]:
        assert (
            secret not in chunk
            and secret not in exported
            and secret not in log.promotion_of(i).answer_text + log.promotion_of(i).question
        )
    # what the reader needs stays: the key names, users and hosts
    for kept in (
        "smtp_password = ",
        "AIRFLOW__SMTP__SMTP_PASSWORD=",
        "db_passwd: ",
        "postgres://airflow:[REDACTED_SECRET]@db/airflow",
    ):
        assert kept in chunk and kept in exported


def test_an_answer_whose_source_changed_is_taken_out_and_not_promoted_again(world):
    """A chunk's id is a hash of its text: when the source the answer was built on changes (or is removed), its
    chunks leave the store, and the answer must stop being served from the store and the semantic cache."""
    log, store, promoter, rebuilt, built = world
    good = add(log)
    assert promoter.reconcile([good]).promoted == [good]
    assert log.active_promotion_ids("docs") == [good]
    store.delete("docs", ["c1"])  # the next ingest of a changed guide.md
    r = promoter.reconcile(log.active_promotion_ids("docs"))
    assert r.removed == [{"id": good, "reason": "stale: guide.md changed or removed since"}]
    assert not store.get("docs", ids=[chunk_id_for(good)]) and log.active_promotion_ids("docs") == []
    assert log.promotion_of(good).removed_reason.startswith("stale")
    # a vote or a scheduled review later does not bring it back, nor promote a new answer built on the old chunk
    assert promoter.reconcile([good]).not_promoted == [{"id": good, "reason": r.removed[0]["reason"]}]
    fresh = add(log, question="And how often?")
    assert promoter.reconcile([fresh]).not_promoted[0]["reason"].startswith("stale: guide.md")
    assert [a.id for a in log.citing("guide.md")] == [good, fresh] and log.citing("guide") == []
