"""The machine contract (docs/json.md) and the help that teaches, run through app.main() as the console script does:
--format json|yaml|jsonl for every command, schema_version, errors and usage errors as one line (and a document under
--json), warnings for unknown LLMOPS_* variables and config keys, config show / path on a broken config, init,
doctor, completion, -V."""

from __future__ import annotations

import io
import json
import os
import sys
from pathlib import Path

import pytest
import yaml

from llmops_cli.cli.app import main
from llmops_cli.cli.output import render


@pytest.fixture(autouse=True)
def _sigint_restored():
    """main() after Ctrl-C makes a second one exit at once and silences asyncio's logger (it is about to exit):
    not for the rest of this test process."""
    import logging
    import signal

    before = signal.getsignal(signal.SIGINT)
    yield
    signal.signal(signal.SIGINT, before)
    logging.getLogger("asyncio").disabled = False


@pytest.fixture(autouse=True)
def _project(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for k in list(os.environ):
        if k.startswith("LLMOPS_"):
            monkeypatch.delenv(k)
    monkeypatch.delenv("COLUMNS", raising=False)
    monkeypatch.setenv("NO_COLOR", "1")


def run(monkeypatch, capsys, *args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """``llmops ARGS`` in this process through main(): (exit code, stdout, stderr)."""
    monkeypatch.setattr(sys, "argv", ["llmops", *args])
    for k, v in (env or {}).items():
        monkeypatch.setenv(k, v)
    with pytest.raises(SystemExit) as e:
        main()
    for k in env or {}:
        monkeypatch.delenv(k)
    out, err = capsys.readouterr()
    return int(e.value.code or 0), out, err


K = {"schema_version": 1, "key": "retrieval.k", "value": 5, "source": "default"}


def test_format_renders_every_command_document_as_json_yaml_or_jsonl(monkeypatch, capsys):
    code, out, _ = run(monkeypatch, capsys, "--format", "yaml", "config", "get", "retrieval.k")
    assert code == 0 and yaml.safe_load(out) == K and not out.lstrip().startswith("{")
    code, out, _ = run(monkeypatch, capsys, "config", "get", "retrieval.k", env={"LLMOPS_FORMAT": "json"})
    assert code == 0 and json.loads(out) == K
    # a typed --json means JSON whatever the environment says
    code, out, _ = run(monkeypatch, capsys, "config", "get", "retrieval.k", "--json", env={"LLMOPS_FORMAT": "yaml"})
    assert json.loads(out) == K
    code, out, _ = run(monkeypatch, capsys, "--format", "jsonl", "config", "get", "retrieval.k")
    assert out.count("\n") == 1 and json.loads(out) == K
    # a row stream with no rows: zero lines; nothing created by the read
    code, out, _ = run(monkeypatch, capsys, "--format", "jsonl", "history")
    assert (code, out) == (0, "") and not Path(".llmops").exists()
    code, _, err = run(monkeypatch, capsys, "--format", "xml", "config", "show")
    assert code == 2 and err.startswith("error: Invalid value for '--format'")
    assert "Value error" not in err and "'xml' is not one of 'table', 'json', 'yaml', 'jsonl'" in err


def test_jsonl_rows_and_schema_version():
    doc = {"answers": [{"id": "a"}, {"id": "b"}]}
    assert render(doc, "jsonl", "history").splitlines() == ['{"id": "a"}', '{"id": "b"}']
    assert render([{"run_id": 1}, {"run_id": 2}], "jsonl", "runs list").count("\n") == 2
    assert json.loads(render({"deleted": "x"}, "jsonl", "collections delete")) == {"schema_version": 1, "deleted": "x"}
    assert json.loads(render([1, 2], "json")) == [1, 2]  # an array stays an array
    assert list(json.loads(render({"a": 1}, "json"))) == ["schema_version", "a"]


def test_errors_are_one_line_and_a_document_under_json(monkeypatch, capsys):
    code, out, err = run(monkeypatch, capsys, "history", "show", "nope", "--json")
    doc = json.loads(out)
    assert code == 9 and doc == {
        "schema_version": 1,
        "error": "no answer with id 'nope'",
        "hint": doc["hint"],
        "exit_code": 9,
    }
    assert doc["hint"] and err.splitlines()[0] == "error: no answer with id 'nope'"
    code, out, err = run(monkeypatch, capsys, "--format", "yaml", "history", "show", "nope")
    assert code == 9 and yaml.safe_load(out)["exit_code"] == 9
    code, out, err = run(monkeypatch, capsys, "history", "show", "nope")
    assert code == 9 and out == ""


def test_ctrl_c_inside_a_command_is_exit_130_and_an_error_document_under_json(monkeypatch, capsys):
    # before: `batch --json` interrupted printed nothing on stdout (a script had no document to read)
    def interrupted(*a, **kw):
        raise KeyboardInterrupt

    monkeypatch.setattr("llmops_cli.settings.effective_items", interrupted)
    code, out, err = run(monkeypatch, capsys, "config", "get", "retrieval.k", "--json")
    assert code == 130 and json.loads(out) == {
        "schema_version": 1,
        "error": "interrupted; work already written is kept",
        "hint": None,
        "exit_code": 130,
    }
    assert err.strip().splitlines()[-1] == "error: interrupted; work already written is kept"
    code, out, err = run(monkeypatch, capsys, "config", "get", "retrieval.k")
    assert code == 130 and out == "" and err.strip().splitlines()[-1].startswith("error: interrupted")


def test_after_ctrl_c_a_second_one_while_python_shuts_down_exits_130_at_once(monkeypatch, capsys):
    # before: a second Ctrl-C during the atexit trace flush printed a KeyboardInterrupt traceback from an atexit hook,
    # or asyncio's "Unclosed client session" lines after the error line
    import logging
    import signal

    def interrupted(*a, **kw):
        raise KeyboardInterrupt

    exits: list[int] = []
    monkeypatch.setattr("llmops_cli.settings.effective_items", interrupted)
    monkeypatch.setattr(os, "_exit", exits.append)
    code, _, _ = run(monkeypatch, capsys, "config", "get", "retrieval.k")
    assert code == 130 and logging.getLogger("asyncio").disabled
    signal.getsignal(signal.SIGINT)(signal.SIGINT, None)  # the second Ctrl-C
    assert exits == [130]


def test_ctrl_c_at_a_prompt_is_exit_130_and_end_of_input_exit_1(monkeypatch, capsys):
    # before: Ctrl-C at a prompt (init, auth login, a confirmation) was "aborted", exit 1, unlike Ctrl-C anywhere else
    def answer(raised):
        def read(prompt=""):
            raise raised

        return read

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.setattr(sys, "stdin", Terminal())
    monkeypatch.setattr("typer._click.termui.visible_prompt_func", answer(KeyboardInterrupt()))
    code, out, err = run(monkeypatch, capsys, "init")
    assert code == 130 and err.strip().splitlines()[-1].startswith("error: interrupted")
    monkeypatch.setattr("typer._click.termui.visible_prompt_func", answer(EOFError()))
    code, out, err = run(monkeypatch, capsys, "init")
    assert code == 1 and "error: aborted: a prompt got no answer" in err and "Traceback" not in err
    assert not Path("llmops.yaml").exists()
    # a confirmation answered no is the plain "aborted" it was
    monkeypatch.setattr("typer._click.termui.visible_prompt_func", lambda prompt="": "n")
    code, out, err = run(monkeypatch, capsys, "collections", "delete", "docs")
    assert code == 1 and err.strip().splitlines()[-1] == "error: aborted"


def test_usage_errors_are_one_line_and_a_hint_exit_2(monkeypatch, capsys):
    code, out, err = run(monkeypatch, capsys, "config", "show", "--jsn")
    assert code == 2 and out == ""
    assert err.splitlines() == [
        "error: No such option: --jsn (Possible options: --json)",
        "hint: see llmops config show --help",
    ]
    code, out, err = run(monkeypatch, capsys, "injest")
    assert code == 2 and "Did you mean 'ingest'" in err and len(err.splitlines()) == 2
    # a command one level down, typed at the top: it was "No such command 'verify'." and no more
    code, out, err = run(monkeypatch, capsys, "verify")
    assert code == 2 and "Did you mean 'collections verify'?" in err and len(err.splitlines()) == 2
    code, out, _ = run(monkeypatch, capsys, "config", "show", "--json", "--jsn")
    assert code == 2 and json.loads(out)["exit_code"] == 2


def test_version(monkeypatch, capsys):
    from llmops_cli import __version__

    for flag in ("-V", "--version"):
        assert run(monkeypatch, capsys, flag)[:2] == (0, f"llmops {__version__}\n")


def test_unknown_env_vars_and_config_keys_are_warned_with_did_you_mean(monkeypatch, capsys, tmp_path):
    code, out, err = run(monkeypatch, capsys, "config", "get", "llm.model", env={"LLMOPS_LLM_MODLE": "x"})
    assert code == 0 and out == "\n"
    assert "warning: unknown environment variable LLMOPS_LLM_MODLE (ignored); did you mean LLMOPS_LLM_MODEL?" in err
    (tmp_path / "llmops.yaml").write_text("retrieval:\n  kk: 3\n")
    code, out, err = run(monkeypatch, capsys, "config", "get", "retrieval.k")
    assert code == 2 and "unknown config key 'retrieval.kk'" in err and "did you mean 'retrieval.k'?" in err
    assert err.index("warning:") < err.index("error:")  # before the work (here: the load that refuses it)


def test_every_llmops_variable_the_package_reads_is_known():
    import re

    from llmops_cli import config_check

    known = config_check.known_env_vars()
    root = Path(config_check.__file__).parent
    names = {
        n
        for p in root.rglob("*.py")
        # the names in string literals: what the code reads (docstrings and comments also name examples)
        for n in re.findall(r"[\"'](LLMOPS_[A-Z0-9_]*[A-Z0-9])[\"']", p.read_text(encoding="utf-8"))
    }
    unknown = sorted(
        n
        for n in names
        if n not in known
        and not n.startswith(config_check.ENV_PREFIXES_NOT_SETTINGS)
        and not any(k.startswith(n + "_") for k in known)  # a prefix the code builds names from
    )
    assert not unknown, f"add to config_check.ENV_NOT_SETTINGS (or make them settings): {unknown}"


def test_config_show_and_path_work_on_a_broken_config(monkeypatch, capsys, tmp_path):
    cfg = tmp_path / "llmops.yaml"
    cfg.write_text("chunking:\n  strategy: sentences\n  size: 120\nretrieval:\n  k: 5\n  mode: vector\n")
    code, out, err = run(monkeypatch, capsys, "config", "show")
    rows = {ln.split("│")[1].strip(): [c.strip() for c in ln.split("│")[2:4]] for ln in out.splitlines() if "│" in ln}
    assert code == 2 and rows["chunking.size"] == ["120", "file"] and rows["chunking.strategy"] == ["auto", "default"]
    assert rows["retrieval.k"] == ["5", "default (file)"] and rows["retrieval.mode"] == ["vector", "file"]
    assert max(len(ln) for ln in out.splitlines() if ln[0] in "┏┃┡│└") <= 80  # the table; a path stays whole
    assert err.strip().splitlines()[-2].startswith("error: config key 'chunking.strategy'")
    code, out, _ = run(monkeypatch, capsys, "config", "show", "--json")
    doc = json.loads(out)  # one document: the valid settings and the error inside it
    assert code == 2 and doc["error"]["exit_code"] == 2 and doc["config_file"] == str(cfg.resolve())
    assert {r["key"]: r["source"] for r in doc["settings"]}["chunking.size"] == f"file:{cfg.resolve()}"
    cfg.write_text("chunking: [\n")
    assert run(monkeypatch, capsys, "config", "path")[:2] == (0, f"{cfg.resolve()}\n")
    code, out, err = run(monkeypatch, capsys, "config", "show")
    assert code == 2 and "data_dir" in out and "not valid YAML" in err
    # a broken variable and no config file: the file shown is none, not the temporary copy made to load the rest
    cfg.unlink()
    code, out, _ = run(monkeypatch, capsys, "config", "show", "--json", env={"LLMOPS_RETRIEVAL_K": "abc"})
    doc = json.loads(out)
    assert code == 2 and doc["config_file"] is None and "LLMOPS_RETRIEVAL_K" in doc["error"]["error"]


def test_init_writes_only_what_was_chosen_and_never_overwrites(monkeypatch, capsys, tmp_path):
    code, out, _ = run(
        monkeypatch, capsys, "init", "--yes", "--llm-model", "openai/gpt-4o-mini", "--collection", "handbook", "--json"
    )
    assert code == 0 and json.loads(out)["settings"] == {
        "llm": {"model": "openai/gpt-4o-mini"},
        "store": {"collection": "handbook"},
    }
    assert yaml.safe_load((tmp_path / "llmops.yaml").read_text()) == json.loads(out)["settings"]
    code, out, _ = run(monkeypatch, capsys, "config", "show", "--json")
    sources = {r["key"]: r["source"].split(":")[0] for r in json.loads(out)["settings"]}
    assert sources["llm.model"] == sources["store.collection"] == "file" and sources["retrieval.k"] == "default"
    before = (tmp_path / "llmops.yaml").read_text()
    code, _, err = run(monkeypatch, capsys, "init", "--yes")
    assert code == 10 and "never overwrites" in err and (tmp_path / "llmops.yaml").read_text() == before
    # nothing chosen: a valid empty file that shows how to set the usual first keys
    code, _, _ = run(monkeypatch, capsys, "init", "--yes", "--path", "empty.yaml")
    assert code == 0 and yaml.safe_load((tmp_path / "empty.yaml").read_text()) == {}
    assert "#   model: openai/gpt-4o-mini" in (tmp_path / "empty.yaml").read_text()
    code, _, err = run(monkeypatch, capsys, "init", "--yes", "--collection", "a b", "--path", "other.yaml")
    assert code == 2 and "--collection" in err and not (tmp_path / "other.yaml").exists()


def test_doctor_one_line_per_part_and_exit_1_when_broken(monkeypatch, capsys, tmp_path):
    from tests.support.fakes import use_fake_workspaces

    use_fake_workspaces(monkeypatch)
    env = {"LLMOPS_LLM_MODEL": "openai/x", "LLMOPS_LLM_API_BASE": "http://127.0.0.1:9/v1"}  # port 9: nothing listens
    code, out, err = run(monkeypatch, capsys, "doctor", "--timeout", "2", "--json", env=env)
    doc = json.loads(out)
    checks = {c["name"]: c for c in doc["checks"]}
    assert code == 1 and doc["ok"] is False
    assert list(checks) == ["config", "store", "embedder", "llm", "airflow", "state database"]
    assert checks["llm"]["status"] == "fail" and "LLMOPS_LLM_API_BASE" in checks["llm"]["fix"]
    assert checks["store"]["status"] == checks["embedder"]["status"] == checks["state database"]["status"] == "ok"
    assert not (tmp_path / ".llmops").exists()  # a doctor creates nothing
    code, out, _ = run(monkeypatch, capsys, "doctor", "--timeout", "2", "--json")
    llm = {c["name"]: c for c in json.loads(out)["checks"]}["llm"]
    assert llm["status"] == "skip" and "LLMOPS_LLM_MODEL" in llm["fix"]


def test_completion_of_dag_ids_and_collections_creates_nothing(tmp_path):
    from llmops_cli.cli.completion import collection_names, dag_ids

    assert dag_ids("llmops_ing") == ["llmops_ingest"]
    assert dag_ids("llmops_in") == ["llmops_ingest", "llmops_insights"]
    assert collection_names("") == [] and list(tmp_path.iterdir()) == []


def test_init_keeps_a_urls_password_out_of_the_file_and_says_where_it_goes(monkeypatch, capsys, tmp_path):
    # `init --store-url postgresql://app:pw@db/x` wrote the password into llmops.yaml (0644, often committed) under a
    # header that says secrets belong in the environment
    url = "postgresql://app:pw-Secret9@db:5432/x"
    code, out, err = run(monkeypatch, capsys, "init", "--yes", "--store-url", url, "--json")
    written = (tmp_path / "llmops.yaml").read_text()
    assert code == 0 and "pw-Secret9" not in written + out + err
    assert yaml.safe_load(written)["store"]["url"] == "postgresql://app@db:5432/x"
    assert "LLMOPS_STORE_URL" in err and "PGPASSWORD" in err
    code, _, err = run(monkeypatch, capsys, "init", "--yes", "--store-url", "http://chroma:8000", "--path", "b.yaml")
    assert code == 0 and "warning" not in err and "http://chroma:8000" in (tmp_path / "b.yaml").read_text()


@pytest.mark.parametrize("command", [["init"], ["doctor"], ["config", "show"], []])
def test_help_has_examples(monkeypatch, capsys, command):
    code, out, _ = run(monkeypatch, capsys, *command, "--help")
    assert code == 0 and "Example" in out


def test_every_command_with_json_is_in_docs_json_md():
    from typer.main import get_command

    from llmops_cli.cli.app import app

    doc = [
        ln
        for ln in (Path(__file__).resolve().parents[2] / "docs" / "json.md").read_text().splitlines()
        if ln[:1] == "|"
    ]
    missing = []

    def walk(cmd, path):
        names = cmd.list_commands(None) if hasattr(cmd, "list_commands") else []
        for name, sub in ((n, cmd.get_command(None, n)) for n in names):
            p = [*path, name]
            if any("--json" in getattr(x, "opts", ()) for x in sub.params):
                # a table row names the command (`group sub` or `group a` / `b`)
                if not any(f"`{p[0]}" in ln and (len(p) == 1 or p[-1] in ln) for ln in doc):
                    missing.append(" ".join(p))
            walk(sub, p)

    walk(get_command(app), [])
    assert not missing, f"document these commands' --json in docs/json.md: {missing}"


def test_the_ingest_document_in_docs_json_md_has_the_report_s_keys_and_shapes():
    import re

    from llmops_cli.core.ingest import IngestReport

    (row,) = [
        ln
        for ln in (Path(__file__).resolve().parents[2] / "docs" / "json.md").read_text().splitlines()
        if ln.startswith("| `ingest` |")
    ]
    doc = IngestReport("docs", new=["a.md"], skipped=[{"source": "b.md", "reason": "empty"}]).to_dict()
    named = set(re.findall(r"`(\w+)(?::[^`]*)?`", row.split("|")[2]))
    assert named - {"store"} <= set(doc), named - set(doc)
    # the lists are the top-level keys, their counts under sources (the docs once said the reverse)
    assert doc["new"] == ["a.md"] and doc["skipped"][0]["source"] == "b.md" and isinstance(doc["unchanged"], int)
    assert (
        doc["sources"]["new"] == 1
        and "`sources: {new, changed, unchanged, removed, skipped, renamed}` (the counts)" in row
    )


def test_the_batch_document_in_docs_json_md_names_only_the_report_s_keys():
    import dataclasses
    import re

    from llmops_cli.core.batch.run import BatchReport

    (row,) = [
        ln
        for ln in (Path(__file__).resolve().parents[2] / "docs" / "json.md").read_text().splitlines()
        if ln.startswith("| `batch` |")
    ]
    keys = {f.name for f in dataclasses.fields(BatchReport)} | {"exit_code"}
    named = set(re.findall(r"`(\w+)(?::[^`]*)?`", row.split("|")[2].split("; the run's settings")[0]))
    assert named <= keys, named - keys  # the docs once promised model, template, schema... that it never had


@pytest.mark.parametrize(("status", "expected"), [(200, "ok"), (404, "warn"), (500, "warn")])
def test_doctor_does_not_call_an_llm_base_url_that_answers_404_ok(monkeypatch, capsys, status, expected):
    # llm.api_base without /v1 (or pointing at some other web server): GET /models answered 404 and doctor said
    # "ok ... answers (HTTP 404)", then every ask failed
    from llmops_cli.cli import doctor_cmd
    from tests.support.fakes import use_fake_workspaces

    use_fake_workspaces(monkeypatch)
    monkeypatch.setattr(doctor_cmd, "_get", lambda url, timeout, key: (status, ""))
    env = {"LLMOPS_LLM_MODEL": "openai/x", "LLMOPS_LLM_API_BASE": "http://127.0.0.1:9"}
    code, out, _ = run(monkeypatch, capsys, "doctor", "--timeout", "2", "--json", env=env)
    llm = {c["name"]: c for c in json.loads(out)["checks"]}["llm"]
    assert llm["status"] == expected
    if status == 404:
        assert "/v1" in llm["fix"] and "LLMOPS_LLM_API_BASE" in llm["fix"]


def test_the_verify_document_in_docs_json_md_has_the_report_s_keys_and_shapes():
    import re

    from llmops_cli.core.verify import VerifyReport

    (row,) = [
        ln
        for ln in (Path(__file__).resolve().parents[2] / "docs" / "json.md").read_text().splitlines()
        if ln.startswith("| `collections verify NAME` |")
    ]
    doc = VerifyReport("docs", missing_chunks={"a.md": ["c1"]}, orphan_chunks=["c2"]).to_dict()
    named = set(re.findall(r"`(\w+)(?::[^`]*)?`", row.split("|")[2]))
    assert named - {"store", "source"} <= set(doc), named - set(doc)
    # the findings are ids, not counts (the docs once listed them among "the counts")
    assert doc["missing_chunks"] == {"a.md": ["c1"]} and doc["orphan_chunks"] == ["c2"]
    assert "`missing_chunks`, `altered_chunks`: `{source: [chunk ids]}`" in row and "lists of ids" in row


def test_init_into_a_path_that_cannot_be_written_is_one_line_exit_2(monkeypatch, capsys, tmp_path):
    # was "internal error: FileNotFoundError ... report it" (exit 1)
    blocker = tmp_path / "file"
    blocker.write_text("")
    code, out, err = run(monkeypatch, capsys, "init", "--yes", "--path", str(blocker / "sub" / "llmops.yaml"))
    assert code == 2 and err.startswith(f"error: cannot write {blocker / 'sub' / 'llmops.yaml'}: ")
    assert "internal error" not in err and "--path" in err
