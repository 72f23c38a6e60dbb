import pytest

from llmops_cli.core.eval.judge import JudgeInput, JudgeParseError, build_messages, needs, parse_verdict
from llmops_cli.core.eval.robustness import add_typos, change_casing


def test_faithfulness_is_share_of_supported_claims():
    text = (
        '{"claims": [{"claim": "a", "supported": true}, {"claim": "b", "supported": false}, '
        '{"claim": "c", "supported": true}], "reason": "r"}'
    )
    score, reason = parse_verdict("faithfulness", text)
    assert score == pytest.approx(2 / 3) and reason == "r"
    assert parse_verdict("faithfulness", '{"claims": []}')[0] == 1.0


@pytest.mark.parametrize("s,expected", [(1, 0.0), (3, 0.5), (5, 1.0)])
def test_scores_1_to_5_map_to_unit_interval(s, expected):
    assert parse_verdict("correctness", f'{{"score": {s}, "reason": "x"}}')[0] == expected


def test_code_fences_and_surrounding_prose_are_tolerated():
    assert parse_verdict("helpfulness", '```json\n{"score": 4}\n```')[0] == 0.75
    assert parse_verdict("answer_relevance", 'Sure! {"score": 2} hope that helps')[0] == 0.25
    assert parse_verdict("toxicity", '{"toxic": true, "score": 0.9}')[0] == 0.9


@pytest.mark.parametrize(
    "metric,text,needle",
    [
        ("correctness", "I think it is good", "not JSON"),
        ("correctness", '{"score": 9}', "score"),
        ("correctness", '{"grade": 3}', "score"),
        ("faithfulness", '{"claims": [{"claim": "a"}]}', "supported"),
        ("toxicity", '{"toxic": "maybe", "score": 0.1}', "toxic"),
    ],
)
def test_unparseable_verdicts_raise_parse_error(metric, text, needle):
    with pytest.raises(JudgeParseError) as e:
        parse_verdict(metric, text)
    assert needle in e.value.message


def test_messages_carry_the_right_parts():
    item = JudgeInput("Q?", "A.", ["ctx one", "ctx two"], "REF")
    faith = build_messages("faithfulness", item)[1]["content"]
    assert "ctx one" in faith and "[2] ctx two" in faith and "REF" not in faith
    corr = build_messages("correctness", item)[1]["content"]
    assert "REF" in corr and "ctx one" not in corr
    assert "Q?" not in build_messages("toxicity", item)[1]["content"]
    assert needs("correctness", JudgeInput("q", "a", [], None)) == "no reference answer"
    assert needs("faithfulness", JudgeInput("q", "a", [], None)) == "no retrieved context"
    assert needs("helpfulness", JudgeInput("q", "a", [], None)) is None


def test_perturbations_are_deterministic_and_change_the_text():
    q = "How do I configure the scheduler heartbeat interval in Airflow?"
    t = add_typos(q)
    assert t != q and t == add_typos(q)
    assert abs(len(t) - len(q)) <= 3
    c = change_casing(q)
    assert c.lower() == q.lower() and c != q
    assert add_typos("a b c") == "a b c"  # nothing long enough to misspell
