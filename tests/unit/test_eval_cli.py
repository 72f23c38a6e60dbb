"""`llmops eval` in-process on question sets that carry their own answers (no retriever, no LLM needed)."""

import json
import re
import sqlite3

import click
import pytest

from llmops_cli.errors import LlmopsError

ROWS = [
    {
        "id": "a",
        "question": "Which executor runs tasks locally?",
        "reference_answer": "LocalExecutor",
        "answer": "the LocalExecutor",
        "tags": ["core"],
    },
    {
        "id": "b",
        "question": "What schedules DAG runs?",
        "reference_answer": "the scheduler process",
        "answer": "the scheduler",
        "tags": ["core", "sched"],
    },
    {
        "id": "c",
        "question": "Where are DAG files read from?",
        "reference_answer": "the dags folder",
        "answer": "the plugins folder",
    },
]
# token F1 by hand: a: "localexecutor" vs "localexecutor" = 1; b: "scheduler" vs "scheduler process": P=1, R=1/2 -> 2/3;
# c: "plugins folder" vs "dags folder": 1 common, P=R=1/2 -> 1/2. Mean = (1 + 2/3 + 1/2) / 3 = 0.7222...
F1_MEAN = (1 + 2 / 3 + 0.5) / 3


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for var in [v for v in __import__("os").environ if v.startswith("LLMOPS_")]:
        monkeypatch.delenv(var)
    p = tmp_path / "qs.jsonl"
    p.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    return tmp_path


def invoke(capsys, *args):
    """Run the eval group the way app.main() does: LlmopsError -> its exit code, click usage errors -> 2."""
    import typer

    from llmops_cli.cli import eval_cmd
    from llmops_cli.cli.state import AppState, set_state

    set_state(AppState())
    app = typer.Typer()

    @app.callback()
    def _root() -> None:
        pass

    eval_cmd.register(app)
    code, message = 0, ""
    try:
        rv = typer.main.get_command(app).main(["eval", *args], prog_name="llmops", standalone_mode=False)
        code = rv if isinstance(rv, int) else 0  # Output.finish's exit comes back as its code without standalone mode
    except LlmopsError as e:
        code, message = int(e.exit_code), e.message + (f"\nhint: {e.hint}" if e.hint else "")
    except click.exceptions.UsageError as e:
        code, message = 2, e.format_message()
    cap = capsys.readouterr()
    return code, cap.out, cap.err + message


def test_dataset_routes_to_run_and_prints_one_json_document(project, capsys):
    code, out, err = invoke(capsys, "qs.jsonl", "--metrics", "exact_match,token_f1", "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["metrics"]["token_f1"] == pytest.approx(F1_MEAN)
    assert doc["metrics"]["exact_match"] == pytest.approx(1 / 3)
    assert doc["run_id"] == 1 and len(doc["rows"]) == 3
    assert doc["dataset"]["rows"] == 3 and len(doc["config_hash"]) == 16
    assert doc["by_tag"]["core"]["token_f1"] == pytest.approx((1 + 2 / 3) / 2)  # rows a and b
    assert doc["by_tag"]["sched"]["token_f1"] == pytest.approx(2 / 3)
    # docs/json.md names the document's keys (it promised a "report location" there is not)
    from pathlib import Path

    row = next(
        ln
        for ln in (Path(__file__).resolve().parents[2] / "docs" / "json.md").read_text().splitlines()
        if ln.startswith("| `eval run` | the report")
    )
    named = re.findall(r"`([a-z_]+)`", row.split(";")[0])
    assert named and not [k for k in named if k not in doc], named


def test_gate_failure_exits_4_after_printing(project, capsys):
    code, out, err = invoke(
        capsys,
        "qs.jsonl",
        "-m",
        "token_f1,exact_match",
        "--fail-under",
        "token_f1=0.9",
        "--fail-under",
        "exact_match=0.1",
        "--json",
    )
    assert code == 4
    doc = json.loads(out)
    gates = {g["metric"]: g for g in doc["gates"]}
    assert gates["token_f1"]["passed"] is False and gates["exact_match"]["passed"] is True
    assert "quality gate failed" in err
    code, _, _ = invoke(capsys, "qs.jsonl", "-m", "token_f1", "--fail-under", "token_f1=0.7", "--json")
    assert code == 0


def test_human_output_has_summary_and_worst_questions(project, capsys):
    code, out, err = invoke(capsys, "run", "qs.jsonl", "-m", "exact_match,token_f1", "--no-record", "--worst", "2")
    assert code == 0, err
    assert "token_f1" in out and "0.722" in out
    assert "Worst questions by token_f1" in out and "Where are DAG files read from?" in out


def test_runs_compare_and_baseline(project, capsys):
    assert invoke(capsys, "qs.jsonl", "-m", "token_f1", "--json", "-o", "first.json")[0] == 0
    worse = [dict(r, answer="no idea") for r in ROWS]
    (project / "qs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in worse))
    code, out, _ = invoke(
        capsys, "qs.jsonl", "-m", "token_f1", "--baseline", "latest", "--fail-on-regression", "--json"
    )
    assert code == 4
    doc = json.loads(out)
    assert doc["comparison"]["regressions"] == ["token_f1"] and doc["comparison"]["base"]["run_id"] == 1
    assert doc["comparison"]["same_dataset"] is False

    code, out, _ = invoke(capsys, "runs", "--json")
    runs = json.loads(out)["runs"]
    assert [r["id"] for r in runs] == [2, 1]
    code, out, _ = invoke(capsys, "compare", "1", "2", "--json")
    assert code == 0
    c = json.loads(out)
    (m,) = c["metrics"]
    assert m["metric"] == "token_f1" and m["status"] == "regressed" and m["delta"] == pytest.approx(-F1_MEAN)
    assert {q["id"] for q in c["questions_worse"]} == {"a", "b", "c"}
    # a report file works as either side
    code, out, _ = invoke(capsys, "compare", "2", "first.json", "--fail-on-regression")
    assert code == 0 and "improved" in out
    code, out, err = invoke(capsys, "qs.jsonl", "-m", "token_f1", "--baseline", "first.json", "--no-record")
    # the file changed since the baseline: said, as `eval compare` says it (it was silent)
    assert "the baseline's question set differs from this one" in err
    assert code == 0 and "3/3/3" in next(
        line for line in out.splitlines() if "token_f1" in line and "regressed" in line
    )
    code, _, err = invoke(capsys, "compare", "1", "99")
    assert code == 9 and "no eval run 99" in err
    code, _, err = invoke(capsys, "export", "latest~1", "-o", "again.json", "-o", "again.html")
    assert code == 0, err
    again = json.loads((project / "again.json").read_text())
    first = json.loads((project / "first.json").read_text())
    assert again["run_id"] == 1 and again["metrics"] == first["metrics"] and again["rows"] == first["rows"]
    assert again["by_tag"] == first["by_tag"] and "core" in again["by_tag"]
    assert 'class="metric-chart"' in (project / "again.html").read_text()


def test_output_files(project, capsys):
    code, _, err = invoke(
        capsys, "qs.jsonl", "-m", "token_f1", "-o", "r.csv", "-o", "r.parquet", "-o", "r.jsonl", "-o", "r.html"
    )
    assert code == 0, err
    import pandas as pd

    df = pd.read_parquet(project / "r.parquet")
    assert list(df["id"]) == ["a", "b", "c"] and df["token_f1"].tolist() == pytest.approx([1, 2 / 3, 0.5])
    assert "token_f1" in (project / "r.csv").read_text().splitlines()[0]
    assert len((project / "r.jsonl").read_text().splitlines()) == 3
    html = (project / "r.html").read_text()
    assert html.count('class="metric-chart"') == 1 and "http" not in html.split("<body>")[1].split("<table")[0]


@pytest.mark.parametrize(
    "args,code,needle",
    [
        (["missing.jsonl"], 2, "does not exist"),
        (["qs.jsonl", "-m", "bleu"], 2, "unknown metric 'bleu'"),
        (["qs.jsonl", "-m", "token_f1", "--fail-under", "token_f1"], 2, "is not METRIC=VALUE"),
        (["qs.jsonl", "-m", "token_f1", "-o", "r.xlsx"], 2, "unknown format"),
        (["qs.jsonl", "-m", "correctness"], 2, "need an LLM judge"),
        (["qs.jsonl", "-m", "retrieval"], 2, "needs relevant_sources"),
        (["qs.jsonl", "--perturb", "shouting", "-m", "token_f1"], 2, "unknown perturbation"),
        # no LLM: paraphrase was dropped without a word (no deltas, exit 0)
        (
            ["qs.jsonl", "-m", "token_f1,robustness", "--perturb", "paraphrase"],
            2,
            "paraphrase perturbation needs an LLM",
        ),
    ],
)
def test_bad_input_is_one_line_and_exit_2(project, capsys, args, code, needle):
    got, _, err = invoke(capsys, *args)
    assert got == code and needle in err
    assert not (project / ".llmops" / "eval" / "runs.sqlite").exists() or needle != "unknown format"


def test_history_migrations_upgrade_an_old_store(tmp_path):
    from llmops_cli.core.eval.history import MIGRATIONS, RunHistory, migrations

    db = sqlite3.connect(tmp_path / "runs.sqlite")
    db.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT)")
    db.executescript(MIGRATIONS[0])
    db.execute("INSERT INTO schema_migrations (version) VALUES (1)")
    db.commit()
    db.close()
    h = RunHistory(tmp_path / "runs.sqlite")
    # the three numbered versions adopted, the named ones after them (matrix id, blessed runs, ratings) applied
    assert h.schema_version == len(migrations.items) == len(MIGRATIONS) + 3 == 6
    columns = [r[1] for r in h.db.execute("PRAGMA table_info(runs)")]
    assert "label" in columns and "matrix_id" in columns
    h.close()


def test_group_help_lists_subcommands(project, capsys):
    code, out, _ = invoke(capsys, "--help")
    assert code == 0
    for name in ("run", "runs", "compare", "export", "generate", "sweep"):
        assert name in out


def test_sweep_sources_expansion():
    from llmops_cli.cli.eval_cmd import _expand_multi

    assert _expand_multi(["sweep", "d.jsonl", "--sources", "a", "b", "--size", "64"], "--sources") == [
        "sweep",
        "d.jsonl",
        "--sources",
        "a",
        "--sources",
        "b",
        "--size",
        "64",
    ]


def test_metrics_from_config_file(project, capsys):
    (project / "llmops.yaml").write_text("eval:\n  metrics: exact_match\n")
    code, out, err = invoke(capsys, "qs.jsonl", "--json", "--no-record")
    assert code == 0, err
    assert list(json.loads(out)["metrics"]) == ["exact_match"]
    code, out, _ = invoke(capsys, "qs.jsonl", "--json", "--no-record", "-m", "token_f1")  # the flag wins
    assert list(json.loads(out)["metrics"]) == ["token_f1"]


def test_wrong_baseline_fails_before_the_run(project, capsys):
    code, _, err = invoke(capsys, "qs.jsonl", "-m", "token_f1", "--baseline", "42")
    assert code == 9 and "no eval run 42" in err
    code, out, _ = invoke(capsys, "runs", "--json")
    assert json.loads(out)["runs"] == []  # nothing was evaluated or recorded


def test_an_empty_given_answer_is_scored_not_generated(project, capsys):
    """`"answer": ""` is a given (empty) answer: scored as is, with no LLM configured; `null` would mean none given."""
    rows = [dict(ROWS[0]), dict(ROWS[1], answer="")]
    (project / "qs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    code, out, err = invoke(capsys, "qs.jsonl", "-m", "exact_match,token_f1", "--json", "--no-record")
    assert code == 0, err
    doc = json.loads(out)
    b = doc["rows"][1]
    assert b["answer"] == "" and b["metrics"] == {"exact_match": 0.0, "token_f1": 0.0} and not b["errors"]
    assert doc["metrics"]["token_f1"] == pytest.approx(0.5) and doc["usage"].get("calls", 0) == 0


@pytest.mark.parametrize(
    "gate,needles",
    [
        ("tokn_f1=0.5", ["unknown metric 'tokn_f1'", "did you mean token_f1?", "exact_match, token_f1"]),
        ("token_f1=1.5", ["token_f1=1.5", "between 0 and 1"]),
        ("token_f1=-0.1", ["between 0 and 1"]),
        ("faithfulness=0.5", ["does not compute faithfulness", "--metrics"]),
    ],
)
def test_gates_are_checked_before_any_work(project, capsys, monkeypatch, gate, needles):
    """A gate the run cannot meet or check is a usage error (exit 2) before the evaluation, not exit 4 after it."""
    from llmops_cli.core.eval import runner

    monkeypatch.setattr(runner, "run_eval", lambda *a, **k: pytest.fail("the evaluation ran"))
    code, _, err = invoke(capsys, "qs.jsonl", "-m", "exact_match,token_f1", "--fail-under", gate)
    assert code == 2, err
    assert all(n in err for n in needles), err


def test_gate_on_retrieval_names_the_runs_k(tmp_path):
    from llmops_cli.core.eval.gates import parse_gates, validate_gates
    from llmops_cli.errors import UsageError

    assert validate_gates(parse_gates(["hit@k=0.8", "ndcg@5=0.5", "chunk_mrr=0.2"]), ["retrieval", "chunk"], 5) == [
        ("hit@5", 0.8),
        ("ndcg@5", 0.5),
        ("chunk_mrr", 0.2),
    ]
    with pytest.raises(UsageError, match=r"hitt@5.*did you mean hit@5\?") as e:
        validate_gates(parse_gates(["hitt@5=0.5"]), ["retrieval"], 5)
    assert "mrr" in e.value.hint and "ndcg@5" in e.value.hint  # the valid names are listed
    with pytest.raises(UsageError, match=r"mrr=1.5 .*between 0 and 1"):
        validate_gates(parse_gates(["mrr=1.5"]), ["retrieval"], 5)
    with pytest.raises(UsageError, match=r"hit@10: this run computes hit@5") as e:
        validate_gates(parse_gates(["hit@10=0.5"]), ["retrieval"], 5)
    assert "-k 10" in e.value.hint
    # semantic similarity is a cosine: -1 to 1
    assert validate_gates(parse_gates(["semantic_similarity=-0.2"]), ["semantic_similarity"], 5) == [
        ("semantic_similarity", -0.2)
    ]


def test_a_failed_gate_is_shown_below_its_threshold(project, capsys):
    """exact_match here is 2/3 = 0.66667: against a 0.667 gate it fails, and must not print as "0.667 FAIL"."""
    rows = [dict(ROWS[0]), dict(ROWS[1], answer="the scheduler process"), dict(ROWS[2])]
    (project / "qs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    code, out, err = invoke(
        capsys, "qs.jsonl", "-m", "exact_match", "--no-record", "--fail-under", "exact_match=0.667", "-o", "r.html"
    )
    assert code == 4
    assert '<td class="num">0.6667</td>' in (project / "r.html").read_text()
    row = next(line for line in out.splitlines() if "exact_match" in line)
    assert "0.6667" in row and "FAIL" in row, row
    assert "exact_match = 0.6667, needs >= 0.667" in err
    code, out, _ = invoke(capsys, "qs.jsonl", "-m", "exact_match", "--no-record", "--fail-under", "exact_match=0.6")
    assert code == 0 and "0.667 " in next(line for line in out.splitlines() if "exact_match" in line)


def _report_file(path, values, errors=()):
    """A report file whose rows have these faithfulness values (None: that row's judge call errored)."""
    from llmops_cli.core.eval.report import EvalReport, RowResult, mean_metrics

    rows = [
        RowResult(
            id=i,
            question=f"q{i}",
            metrics={} if v is None else {"faithfulness": v},
            errors={"faithfulness": "judge reply is not JSON"} if v is None else {},
        )
        for i, v in values.items()
    ]
    means, counts = mean_metrics(rows)
    rep = EvalReport(
        dataset={"path": "qs.jsonl", "sha256": "x" * 64, "rows": len(rows)},
        config={"k": 5},
        config_hash="c",
        metrics=means,
        counts=counts,
        rows=rows,
    )
    path.write_text(json.dumps(rep.to_dict()))
    return str(path)


def test_comparison_is_over_the_rows_both_runs_scored(project, capsys):
    """The new run's judge call for row a errored; its other rows scored exactly as before. A mean over b, c
    against a mean over a, b, c would call that a regression."""
    base = _report_file(project / "base.json", {"a": 1.0, "b": 0.5, "c": 0.0})
    new = _report_file(project / "new.json", {"a": None, "b": 0.5, "c": 0.0})
    code, out, err = invoke(capsys, "compare", base, new, "--fail-on-regression", "--json")
    assert code == 0, err
    (m,) = json.loads(out)["metrics"]
    assert m["status"] == "same" and m["base"] == m["new"] == 0.25 and m["delta"] == 0.0
    assert (m["n_base"], m["n_new"], m["n_paired"]) == (3, 2, 2)
    code, out, _ = invoke(capsys, "compare", base, new)
    assert "3/2/2" in next(line for line in out.splitlines() if "faithfulness" in line)
    # a real drop on the paired rows is still a regression
    worse = _report_file(project / "worse.json", {"a": None, "b": 0.0, "c": 0.0})
    code, out, _ = invoke(capsys, "compare", base, worse, "--fail-on-regression", "--json")
    assert code == 4 and json.loads(out)["regressions"] == ["faithfulness"]


def test_runs_chart_draws_the_planted_runs_trends(project, capsys):
    """Three recorded runs whose token_f1 falls then rises: the terminal chart has its title, axes, a legend entry per
    metric, the run ids as x ticks and a y axis spanning the planted values."""
    answers = [None, "no idea", "the scheduler"]
    for answer in answers:
        rows = ROWS if answer is None else [dict(r, answer=answer) for r in ROWS]
        (project / "qs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        assert invoke(capsys, "qs.jsonl", "--metrics", "token_f1,exact_match", "--json")[0] == 0
    code, out, err = invoke(capsys, "runs", "--chart", "--metrics", "token_f1,exact_match")
    assert code == 0, err
    assert "metric trends across runs" in out
    lines = out.splitlines()
    assert any(line.strip().startswith("score") and "run" in line for line in lines)  # y and x axis labels
    assert "token_f1" in out and "exact_match" in out
    ticks = next(line for line in lines if line.split() == ["1", "2", "3"])
    assert ticks
    y_labels = [float(t.split("┤")[0]) for t in lines if "┤" in t and t.split("┤")[0].strip()]
    assert min(y_labels) <= 0.0 + 1e-9 and max(y_labels) == pytest.approx(F1_MEAN, abs=0.01)
    assert "\x1b[" not in out  # no colour codes off a terminal
    # a metric no run has drew an empty chart (exit 0)
    code, _, err = invoke(capsys, "runs", "--chart", "--metrics", "token_f2")
    assert code == 2 and "--metrics token_f2: no run of these 3 has it; did you mean token_f1?" in err, err


def test_an_html_report_draws_the_question_sets_recorded_runs_as_trends(project, capsys):
    code, _, err = invoke(capsys, "qs.jsonl", "--metrics", "token_f1", "-o", "one.html")
    assert code == 0, err
    assert "Metric trends across runs" not in (project / "one.html").read_text()  # one run: no trend yet
    code, _, err = invoke(capsys, "qs.jsonl", "--metrics", "token_f1", "-o", "two.html")
    assert code == 0, err
    html = (project / "two.html").read_text()
    assert "Metric trends across runs (2)" in html and "<svg" in html and "token_f1" in html


def test_an_output_that_is_a_folder_fails_before_the_run_and_a_write_error_is_one_line(project, capsys):
    """`-o out.json` where out.json is a folder was an internal error (IsADirectoryError) after the whole run."""
    (project / "out.json").mkdir()
    code, _, err = invoke(capsys, "qs.jsonl", "-m", "token_f1", "-o", "out.json")
    assert code == 2 and "--output out.json is a folder" in err, err
    assert not (project / ".llmops" / "eval" / "runs.sqlite").exists()  # before any work: nothing recorded
    assert invoke(capsys, "qs.jsonl", "-m", "token_f1")[0] == 0
    code, _, err = invoke(capsys, "export", "latest", "-o", "out.json")
    assert code == 2 and "is a folder" in err, err
    from llmops_cli.core.eval.report import EvalReport
    from llmops_cli.core.eval.results_files import write_results

    (project / "file").write_text("")  # a file where a folder of the path should be
    with pytest.raises(LlmopsError, match="cannot write") as e:
        write_results(EvalReport(dataset={}, config={}, config_hash="", metrics={}, counts={}, rows=[]), "file/r.json")
    assert e.value.exit_code == 1 and not list(project.glob("**/.r.json.*.tmp"))


def test_a_mistyped_subcommand_is_named_not_read_as_a_question_set(project, capsys):
    """`eval comapre 1 2` said "Got unexpected extra argument(s) (1 2)"; `eval rnus` "question set rnus does not
    exist"."""
    code, _, err = invoke(capsys, "comapre", "1", "2")
    assert code == 2 and "no eval command 'comapre'; did you mean compare?" in err, err
    code, _, err = invoke(capsys, "rnus")
    assert code == 2 and "did you mean runs?" in err, err
    code, _, err = invoke(capsys, "questions")  # no file, not close to a command: the dataset error as before
    assert code == 2 and "question set questions does not exist" in err, err
