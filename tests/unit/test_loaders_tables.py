"""Tables (CSV/TSV/parquet): one Document per row with text; TableOptions; missing columns are usage errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmops_cli.core.loaders import SkipSource, TableOptions, discover, load_source
from llmops_cli.errors import ExitCode, InputError

MAX = 1 << 20
CSV = (
    "id,question,answer,score,tags,accepted\n"
    "q1,How to retry?,Set retries.,4,retry,true\n"
    "q2,Empty one,,1,,false\n"
    "q3,Sensors?,Use a sensor.,2.5,sensor,false\n"
)


def load(path: Path, options: TableOptions | None = None):
    files, _ = discover([path], None, [])
    return load_source(files[0], max_bytes=MAX, table=options)


def test_csv_rows_become_documents(tmp_path: Path):
    path = tmp_path / "faq.csv"
    path.write_text(CSV)
    docs = load(path, TableOptions(text_column="answer", id_column="id"))
    assert [d.source_id for d in docs] == ["faq.csv#q1", "faq.csv#q3"]  # the row without text is left out
    first = docs[0]
    assert first.text == "Set retries." and first.format == "table"
    assert first.metadata == {
        "id": "q1",
        "question": "How to retry?",
        "score": 4.0,
        "tags": "retry",
        "accepted": True,
        "source": "faq.csv#q1",
        "path": str(path),
        "format": "table",
    }


def test_a_csv_separated_by_semicolons_is_read(tmp_path: Path):
    # Excel where the decimal mark is a comma saves ".csv" with ";": it failed the whole ingest ("no text column
    # 'content'; its columns are: id;content")
    path = tmp_path / "eu.csv"
    path.write_text("id;content;price\nr1;Retries, then backoff;3,5\nr2;Pools;1\n")
    docs = load(path, TableOptions(id_column="id"))
    assert [(d.source_id, d.text) for d in docs] == [("eu.csv#r1", "Retries, then backoff"), ("eu.csv#r2", "Pools")]
    # a comma CSV whose header has a ";" inside a name stays a comma CSV
    path.write_text('id,"a;b",content\n1,x,hello\n')
    assert [d.text for d in load(path)] == ["hello"]


def test_default_text_column_row_numbers_and_chosen_metadata(tmp_path: Path):
    path = tmp_path / "notes.csv"
    path.write_text("Title,Content,n\nFirst,alpha,1\nSecond,,2\nThird,gamma,\n")
    docs = load(path, TableOptions(metadata_columns=["n"]))
    assert [(d.source_id, d.text) for d in docs] == [("notes.csv#1", "alpha"), ("notes.csv#3", "gamma")]
    assert docs[0].metadata["n"] == 1 and "n" not in docs[1].metadata  # missing values are dropped
    assert "Title" not in docs[0].metadata


def test_title_column_becomes_the_title(tmp_path: Path):
    path = tmp_path / "t.tsv"
    path.write_text("title\ttext\nA page\tbody words\n")
    [doc] = load(path)
    assert doc.metadata["title"] == "A page" and doc.text == "body words"


def test_parquet_with_non_scalar_columns(tmp_path: Path):
    import pandas as pd

    path = tmp_path / "rows.parquet"
    pd.DataFrame(
        {
            "body": ["one", "two"],
            "num": [1, 2],
            "when": pd.to_datetime(["2024-01-02", None]),
            "labels": [["a", "b"], ["c"]],
        }
    ).to_parquet(path)
    docs = load(path)
    assert [d.source_id for d in docs] == ["rows.parquet#1", "rows.parquet#2"]
    assert docs[1].metadata["num"] == 2 and isinstance(docs[1].metadata["num"], int)
    assert docs[0].metadata["when"].startswith("2024-01-02")
    assert "when" not in docs[1].metadata  # NaT is a missing value, not the string "NaT"
    assert "labels" not in docs[0].metadata  # lists are not Chroma metadata


@pytest.mark.parametrize(
    ("options", "names"),
    [
        (TableOptions(text_column="missing"), ["'missing'", "id, question, answer"]),
        (TableOptions(), ["text, content or body", "id, question, answer"]),
        (TableOptions(text_column="answer", id_column="nope"), ["'nope'"]),
        (TableOptions(text_column="answer", metadata_columns=["score", "zzz"]), ["'zzz'"]),
    ],
)
def test_missing_columns_are_usage_errors(tmp_path: Path, options: TableOptions, names: list[str]):
    path = tmp_path / "faq.csv"
    path.write_text(CSV)
    with pytest.raises(InputError) as raised:
        load(path, options)
    error = raised.value
    assert error.exit_code == ExitCode.USAGE and str(path) in error.message and error.hint
    for name in names:
        assert name in error.message


def test_duplicate_or_empty_ids_are_usage_errors(tmp_path: Path):
    path = tmp_path / "dup.csv"
    path.write_text("k,text\na,x\na,y\n")
    with pytest.raises(InputError, match="repeats 'a'"):
        load(path, TableOptions(id_column="k"))
    path.write_text("k,text\n,x\n")
    with pytest.raises(InputError, match="row 1 has no value"):
        load(path, TableOptions(id_column="k"))


def test_integer_ids_with_gaps_stay_integers(tmp_path: Path):
    path = tmp_path / "ids.csv"
    path.write_text("k,text\n10,x\n,\n12,z\n")
    assert [d.source_id for d in load(path, TableOptions(id_column="k"))] == ["ids.csv#10", "ids.csv#12"]


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("blank.csv", "text\n\n  \n", "empty: no row has text in column 'text'"),
        ("header.csv", "\n\n", "empty"),
        ("ragged.csv", 'text,b\n"unterminated,1\n', "malformed CSV"),
        ("broken.parquet", "PAR1 not really parquet PAR1", "corrupt parquet"),
    ],
)
def test_bad_tables_are_skipped(tmp_path: Path, name: str, content: str, reason: str):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(SkipSource) as raised:
        load(path)
    assert raised.value.reason.startswith(reason)
