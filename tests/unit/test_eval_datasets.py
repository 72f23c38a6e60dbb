import json

import pytest

from llmops_cli.core.eval.datasets import load_dataset, write_dataset
from llmops_cli.errors import ExitCode, InputError


def test_jsonl_with_lists_and_default_ids(tmp_path):
    p = tmp_path / "q.jsonl"
    p.write_text(
        json.dumps({"question": " What is X? ", "relevant_sources": ["a.md", "b.md"]})
        + "\n\n"
        + json.dumps({"id": "q2", "question": "Y?", "reference_answer": "y", "tags": "t1"})
        + "\n"
    )
    ds = load_dataset(p)
    assert [i.id for i in ds.items] == ["1", "q2"]
    assert ds.items[0].question == "What is X?"
    assert ds.items[0].relevant_sources == ["a.md", "b.md"]
    assert ds.items[1].tags == ["t1"]
    assert ds.has_sources and ds.has_references and not ds.has_chunks
    assert len(ds.sha256) == 64


def test_csv_pipe_lists_and_json_lists(tmp_path):
    p = tmp_path / "q.csv"
    p.write_text('question,relevant_sources,relevant_chunks\nA?,a.md|b.md,"[""c1""]"\nB?,,\n')
    ds = load_dataset(p)
    assert ds.items[0].relevant_sources == ["a.md", "b.md"]
    assert ds.items[0].relevant_chunks == ["c1"]
    assert ds.items[1].relevant_sources == []


def test_parquet_roundtrip(tmp_path):
    ds = load_dataset(_jsonl(tmp_path, [{"question": "A?", "relevant_sources": ["s"], "reference_answer": "r"}]))
    out = write_dataset(ds.items, tmp_path / "q.parquet")
    back = load_dataset(out)
    assert back.items[0].relevant_sources == ["s"] and back.items[0].reference_answer == "r"


def _jsonl(tmp_path, rows):
    p = tmp_path / "in.jsonl"
    p.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return p


@pytest.mark.parametrize(
    "content,needle",
    [
        ('{"q": "x"}\n', "no 'question' column"),
        ('{"question": ""}\n', "row 1: 'question' is empty"),
        ('{"question": "a"}\nnot json\n', "line 2 is not valid JSON"),
        ('{"question": "a", "id": 1}\n{"question": "b", "id": 1}\n', "duplicate id '1'"),
        ('{"question": "a", "relevant_sources": 5}\n', "must be a list"),
        ("", "has no rows"),
    ],
)
def test_bad_rows_are_input_errors(tmp_path, content, needle):
    p = tmp_path / "bad.jsonl"
    p.write_text(content)
    with pytest.raises(InputError) as e:
        load_dataset(p)
    assert needle in e.value.message
    assert e.value.exit_code == ExitCode.USAGE


def test_missing_file_and_unknown_format(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        load_dataset(tmp_path / "nope.jsonl")
    (tmp_path / "q.txt").write_text("x")
    with pytest.raises(InputError, match="unknown format"):
        load_dataset(tmp_path / "q.txt")


def test_limit(tmp_path):
    ds = load_dataset(_jsonl(tmp_path, [{"question": f"q{i}"} for i in range(10)]), limit=3)
    assert len(ds.items) == 3


def test_an_empty_answer_is_given_and_a_null_or_missing_one_is_not(tmp_path):
    ds = load_dataset(
        _jsonl(
            tmp_path,
            [
                {"question": "a", "answer": ""},
                {"question": "b", "answer": None},
                {"question": "c"},
                {"question": "d", "answer": "  x "},
            ],
        )
    )
    assert [i.answer for i in ds.items] == ["", None, None, "x"]
    assert ds.has_answers
    out = write_dataset(ds.items, tmp_path / "q.parquet")  # parquet keeps "" apart from null
    assert [i.answer for i in load_dataset(out).items] == ["", None, None, "x"]


@pytest.mark.parametrize(
    "name,content",
    [
        ("q.csv", "question,relevant_sources\r\nA?,a.md\r\n"),  # Excel's "CSV UTF-8": a BOM and CRLF
        ("q.jsonl", json.dumps({"question": "A?", "relevant_sources": ["a.md"]}) + "\n"),
    ],
)
def test_a_byte_order_mark_is_not_part_of_the_first_column(tmp_path, name, content):
    """A CSV saved by Excel starts with a BOM: "no 'question' column (columns: \\ufeffquestion)"; a JSONL file with
    one: "line 1 is not valid JSON"."""
    p = tmp_path / name
    p.write_bytes(b"\xef\xbb\xbf" + content.encode())
    ds = load_dataset(p)
    assert [(i.question, i.relevant_sources) for i in ds.items] == [("A?", ["a.md"])]


def test_a_ratings_file_and_a_models_file_with_a_byte_order_mark(tmp_path):
    from llmops_cli.core.eval.human import read_ratings_file
    from llmops_cli.core.eval.matrix import read_models_file

    r = tmp_path / "r.csv"
    r.write_bytes(b"\xef\xbb\xbfrun_id,item_id,rater,criterion,score\r\n1,a,ana,relevance,4\r\n")
    assert read_ratings_file(r)[0]["run_id"] == 1
    m = tmp_path / "models.txt"
    m.write_bytes(b"\xef\xbb\xbfopenai/a\nopenai/b\n")
    assert read_models_file(m) == ["openai/a", "openai/b"]


@pytest.mark.parametrize(
    "content,needle",
    [
        ('{"run_id": 1}\nnot json\n', "line 2 is not valid JSON"),  # was "line 1 column 1 (char 0)"
        ('{"run_id": 1}\n\n[1, 2]\n', "line 3 is not a JSON object"),  # was an AttributeError (internal error)
    ],
)
def test_a_bad_line_of_a_ratings_file_is_named(tmp_path, content, needle):
    from llmops_cli.core.eval.human import read_ratings_file

    p = tmp_path / "r.jsonl"
    p.write_text(content)
    with pytest.raises(InputError, match=needle) as e:
        read_ratings_file(p)
    assert e.value.exit_code == ExitCode.USAGE


def test_agreement_map_names_a_judge_metric():
    """--map tone=helpfulnes (a typo) was accepted: the criterion then had "no answer with a helpfulnes verdict"."""
    from llmops_cli.core.eval.human import parse_mapping
    from llmops_cli.errors import UsageError

    assert parse_mapping(["Tone = Helpfulness"]) == {"tone": "helpfulness"}
    with pytest.raises(UsageError, match="'helpfulnes' is not a judge metric") as e:
        parse_mapping(["tone=helpfulnes"])
    assert "did you mean tone=helpfulness?" in e.value.hint
    with pytest.raises(UsageError, match="no criterion"):
        parse_mapping(["=helpfulness"])
