"""Settings: precedence, provenance, one-line errors naming key + file + allowed values, masked secrets."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from llmops_cli.errors import ConfigError, ExitCode
from llmops_cli.settings import Settings, effective_items, load_settings

REPO = Path(__file__).resolve().parents[2]


def test_documented_config_equals_builtin_defaults():
    data = yaml.safe_load((REPO / "configs" / "llmops.yaml").read_text())
    assert Settings.model_validate(data).model_dump() == Settings().model_dump()


def test_precedence_flags_over_env_over_file_over_defaults(tmp_path):
    cfg = tmp_path / "llmops.yaml"
    cfg.write_text("chunking: {size: 120, overlap: 10}\nllm: {model: file/model}\nretrieval: {k: 7}\n")
    env = {"LLMOPS_CHUNKING_SIZE": "150", "LLMOPS_LLM_MODEL": "env/model"}
    loaded = load_settings(cfg, flags={"chunking.size": 180, "retrieval.k": None}, environ=env)
    s = loaded.settings
    assert (s.chunking.size, s.llm.model, s.retrieval.k, s.chunking.overlap, s.retrieval.mode) == (
        180,
        "env/model",
        7,
        10,
        "hybrid",
    )
    assert loaded.source_of("chunking.size") == "flag"
    assert loaded.source_of("llm.model") == "env:LLMOPS_LLM_MODEL"
    assert loaded.source_of("retrieval.k") == f"file:{cfg.resolve()}"
    assert loaded.source_of("retrieval.mode") == "default"


def test_config_file_discovery_order(tmp_path, monkeypatch):
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "llmops.yaml").write_text("retrieval: {k: 3}\n")
    assert load_settings(environ={}, cwd=tmp_path).settings.retrieval.k == 3
    (tmp_path / "llmops.yaml").write_text("retrieval: {k: 4}\n")
    assert load_settings(environ={}, cwd=tmp_path).settings.retrieval.k == 4
    other = tmp_path / "other.yaml"
    other.write_text("retrieval: {k: 9}\n")
    monkeypatch.setenv("LLMOPS_CONFIG", str(other))
    assert load_settings(cwd=tmp_path).settings.retrieval.k == 9


@pytest.mark.parametrize(
    "text, needles",
    [
        ("chunking: {strategy: sentences}\n", ["chunking.strategy", "'auto'", "'tokens'", "sentences"]),
        ("chunking: {size: lots}\n", ["chunking.size", "integer"]),
        ("chunking: {size: 100, overlap: 100}\n", ["chunking", "overlap (100) must be smaller than size (100)"]),
        ("retrieval: {kk: 3}\n", ["retrieval.kk", "unknown key", "k, mode, candidates, rrf_k"]),
        ("- just\n- a list\n", ["must hold a mapping"]),
        ("store: {collection: 'a b'}\n", ["store.collection", "3-512"]),
    ],
)
def test_bad_config_names_key_file_and_allowed_values(tmp_path, text, needles):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(text)
    with pytest.raises(ConfigError) as ei:
        load_settings(cfg, environ={})
    msg = ei.value.message
    assert ei.value.exit_code == ExitCode.USAGE and "\n" not in msg
    assert str(cfg.resolve()) in msg or "must hold" in msg
    for n in needles:
        assert n in msg, (n, msg)


def test_an_unknown_key_is_named_with_its_closest_allowed_key_in_a_section_and_in_a_profile(tmp_path):
    from llmops_cli import config_check

    cfg = tmp_path / "llmops.yaml"
    cfg.write_text("retrieval: {kk: 3}\n")
    with pytest.raises(ConfigError) as ei:
        load_settings(cfg, environ={})
    assert ei.value.hint.startswith("did you mean 'retrieval.k'?")
    # a typo inside an Airflow profile: the warning check crashed (internal error, exit 1) and the error listed no keys
    cfg.write_text("airflow:\n  profiles:\n    prod:\n      urll: http://x:8080\n")
    assert config_check.problems(cfg, environ={}) == [
        f"unknown config key 'airflow.profiles.prod.urll' in {cfg}; did you mean 'url'?"
    ]
    with pytest.raises(ConfigError) as ei:
        load_settings(cfg, environ={})
    assert "allowed keys in airflow.profiles.prod: url, username" in ei.value.message
    assert ei.value.hint.startswith("did you mean 'airflow.profiles.prod.url'?")


def test_a_config_file_that_is_not_utf8_is_an_error_with_a_hint(tmp_path):
    cfg = tmp_path / "llmops.yaml"
    cfg.write_bytes(b"\xff\xfe llm: {}")
    with pytest.raises(ConfigError, match="is not UTF-8 text") as ei:
        load_settings(cfg, environ={})
    assert ei.value.exit_code == ExitCode.USAGE and ei.value.hint == "save it as UTF-8 YAML"


def test_a_config_path_that_is_a_folder_is_named_as_one(tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match="is a folder, not a file"):
        load_settings(tmp_path, environ={})
    with pytest.raises(ConfigError, match=r"\(from LLMOPS_CONFIG\) is a folder, not a file"):
        monkeypatch.setenv("LLMOPS_CONFIG", str(tmp_path))
        load_settings(environ={}, cwd=tmp_path)


def test_a_data_dir_or_store_path_that_is_a_file_is_a_config_error(tmp_path):
    (tmp_path / "notes.md").write_text("x")
    with pytest.raises(ConfigError, match=r"'data_dir' \(environment variable LLMOPS_DATA_DIR\): .* is a file") as ei:
        load_settings(environ={"LLMOPS_DATA_DIR": str(tmp_path / "notes.md")}, cwd=tmp_path)
    assert ei.value.exit_code == ExitCode.USAGE and "LLMOPS_DATA_DIR" in ei.value.hint
    with pytest.raises(ConfigError, match="'store.path'.* is a file, not a folder"):
        load_settings(environ={"LLMOPS_STORE_PATH": str(tmp_path / "notes.md")}, cwd=tmp_path)
    # a server store does not use store.path
    env = {"LLMOPS_STORE_PATH": str(tmp_path / "notes.md"), "LLMOPS_STORE_HOST": "127.0.0.1"}
    assert load_settings(environ=env, cwd=tmp_path).settings.store.host == "127.0.0.1"


def test_invalid_yaml_names_the_line(tmp_path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("llm:\n  model: [unclosed\n")
    with pytest.raises(ConfigError, match=r"line \d+"):
        load_settings(cfg, environ={})


def test_secrets_are_masked_and_not_echoed_in_errors(tmp_path):
    loaded = load_settings(
        environ={"LLMOPS_LLM_API_KEY": "sk-very-secret-123456789", "LLMOPS_AIRFLOW_PASSWORD": "hunter2hunter2"}
    )
    rows = {k: v for k, v, _ in effective_items(loaded)}
    assert rows["llm.api_key"] == "********" and rows["airflow.password"] == "********"
    assert "sk-very-secret" not in repr(loaded.settings) and "hunter2" not in repr(loaded.settings)
    cfg = tmp_path / "c.yaml"
    cfg.write_text("llm: {api_key: [not, a, string]}\n")
    with pytest.raises(ConfigError) as ei:
        load_settings(cfg, environ={})
    assert "llm.api_key" in ei.value.message and "got" not in ei.value.message and "'a'" not in ei.value.message


def test_airflow_profiles(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        "airflow:\n  url: http://default:8080\n  profiles:\n"
        "    prod: {url: 'https://prod.example:443', username: bot}\n"
    )
    assert load_settings(cfg, environ={}).settings.airflow.url == "http://default:8080"
    prod = load_settings(cfg, profile="prod", environ={"LLMOPS_AIRFLOW_PASSWORD": "pw-secret"})
    assert prod.settings.airflow.url == "https://prod.example:443" and prod.settings.airflow.username == "bot"
    assert prod.settings.airflow.password.get_secret_value() == "pw-secret"
    with pytest.raises(ConfigError, match="profile 'nope'.*prod"):
        load_settings(cfg, profile="nope", environ={})


def test_a_section_rule_broken_by_a_flag_names_the_flag_not_the_file(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("chunking: {size: 200, overlap: 30}\n")
    with pytest.raises(ConfigError) as ei:
        load_settings(cfg, flags={"chunking.overlap": 300}, environ={})
    assert "(command-line flag)" in ei.value.message and str(cfg) not in ei.value.message


def test_relative_paths_resolve_against_the_project_folder_not_the_working_directory(tmp_path, monkeypatch):
    """A task whose working directory is Airflow's (or a command run from a subfolder with the project's config)
    uses the project's store and data dir."""
    from llmops_cli.settings import load_settings

    project, elsewhere = tmp_path / "project", tmp_path / "airflow-home"
    (project / "configs").mkdir(parents=True)
    elsewhere.mkdir()
    (project / "configs" / "llmops.yaml").write_text("store:\n  path: .llmops/chroma\ndata_dir: state\n")
    monkeypatch.chdir(elsewhere)
    monkeypatch.delenv("LLMOPS_PROJECT_DIR", raising=False)
    s = load_settings(project / "configs" / "llmops.yaml", environ={}).settings
    assert (s.store_path, s.data_path) == (project / ".llmops" / "chroma", project / "state")
    from llmops_cli.entry.store import source_root

    assert source_root(s) == project  # source ids too: relative to the project of --config
    s = load_settings(project / "configs" / "llmops.yaml", environ={"LLMOPS_PROJECT_DIR": str(tmp_path)}).settings
    assert s.store_path == tmp_path / ".llmops" / "chroma"
    s = load_settings(None, environ={}).settings  # no config file: the working directory, as before
    assert s.store_path == elsewhere / ".llmops" / "chroma"


def test_store_url_picks_the_backend_and_host_port_stay_its_long_form():
    from llmops_cli.settings import StoreSettings

    assert StoreSettings().backend == "chroma"
    assert StoreSettings(url="http://chroma.internal:8001").backend == "chroma-server"
    assert StoreSettings(url="http://chroma.internal:8001").chroma_server() == ("chroma.internal", 8001, False)
    assert StoreSettings(url="https://chroma.example").chroma_server() == ("chroma.example", 443, True)
    assert StoreSettings(host="h", port=9000).chroma_server() == ("h", 9000, False)
    assert StoreSettings(url="postgresql://u:pw@db/llmops").backend == "pgvector"
    assert StoreSettings(url="postgresql+psycopg://u@db/llmops").backend == "pgvector"


def test_store_and_state_urls_are_checked_and_their_passwords_never_shown():
    with pytest.raises(ConfigError) as e:
        load_settings(None, environ={"LLMOPS_STORE_URL": "ftp://bob:hunter2@db/x"})
    assert "store.url" in str(e.value) and "LLMOPS_STORE_URL" in str(e.value) and "hunter2" not in str(e.value)
    with pytest.raises(ConfigError) as e:
        load_settings(None, environ={"LLMOPS_STATE_URL": "http://bob:hunter2@db/x"})
    assert "state.url" in str(e.value) and "hunter2" not in str(e.value)
    with pytest.raises(ConfigError, match="both set"):
        load_settings(None, environ={"LLMOPS_STORE_URL": "http://a:1", "LLMOPS_STORE_HOST": "b"})
    s = load_settings(None, environ={"LLMOPS_STATE_URL": "postgresql://bob:hunter2@db/x"}).settings
    assert s.state.url == "postgresql://bob:hunter2@db/x"


def test_airflow_url_without_a_scheme_or_with_the_api_path_is_a_config_error_not_unreachable():
    # before: "cannot reach ... (UnsupportedProtocol)" exit 7, or "resource not found" / a 405 for .../api/v2
    for url, needle in (("airflow.internal:8080", "http://"), ("http://airflow.internal:8080/api/v2/", "/api/v2")):
        with pytest.raises(ConfigError) as e:
            load_settings(None, environ={"LLMOPS_AIRFLOW_URL": url})
        assert e.value.exit_code == ExitCode.USAGE
        assert "airflow.url" in str(e.value) and "LLMOPS_AIRFLOW_URL" in str(e.value) and needle in str(e.value)
    with pytest.raises(ConfigError) as e:  # user:password@host without a scheme: the password is not echoed
        load_settings(None, environ={"LLMOPS_AIRFLOW_URL": "admin:hunter2@airflow.internal:8080"})
    assert "hunter2" not in str(e.value) and "airflow.internal:8080" in str(e.value)
    s = load_settings(None, environ={"LLMOPS_AIRFLOW_URL": "https://airflow.internal/team-a"}).settings
    assert s.airflow.url == "https://airflow.internal/team-a"  # a path in front of the API stays allowed


def test_the_project_is_found_like_git_finds_a_repository(tmp_path, monkeypatch):
    """From a subfolder, the nearest folder above holding llmops.yaml, configs/llmops.yaml or .llmops is the project:
    its config applies and its store and data dir are used; a ceiling stops the walk."""
    from llmops_cli.settings import find_project

    monkeypatch.delenv("LLMOPS_CONFIG", raising=False)
    proj = tmp_path / "proj"
    deep = proj / "docs" / "guides" / "deep"
    deep.mkdir(parents=True)
    assert find_project(deep, environ={}) == (None, None)
    s = load_settings(environ={}, cwd=deep).settings
    assert s.project_dir == Path.cwd()  # no project anywhere above: the working directory, as before

    (proj / ".llmops").mkdir()  # a project made by a first ingest, without a config file
    assert find_project(deep, environ={}) == (proj.resolve(), None)
    loaded = load_settings(environ={}, cwd=deep)
    assert loaded.config_file is None
    assert (loaded.settings.store_path, loaded.settings.data_path) == (proj / ".llmops" / "chroma", proj / ".llmops")

    (proj / "configs").mkdir()
    (proj / "configs" / "llmops.yaml").write_text("retrieval: {k: 3}\n")
    loaded = load_settings(environ={}, cwd=deep)
    assert (loaded.config_file, loaded.settings.retrieval.k) == ((proj / "configs" / "llmops.yaml").resolve(), 3)
    assert loaded.settings.store_path == proj.resolve() / ".llmops" / "chroma"
    (proj / "llmops.yaml").write_text("retrieval: {k: 4}\n")  # in one folder, llmops.yaml before configs/
    assert load_settings(environ={}, cwd=deep).settings.retrieval.k == 4

    (deep.parent / "llmops.yaml").write_text("retrieval: {k: 6}\n")  # the nearest project wins, as in git
    loaded = load_settings(environ={}, cwd=deep)
    assert (loaded.settings.retrieval.k, loaded.settings.data_path) == (6, deep.parent.resolve() / ".llmops")

    # a ceiling is never entered (the walk may start in it)
    ceiling = {"LLMOPS_CEILING_DIRECTORIES": str(deep.parent)}
    assert find_project(deep, environ=ceiling) == (None, None)
    assert find_project(deep.parent, environ=ceiling)[0] == deep.parent.resolve()
    assert load_settings(environ=ceiling, cwd=deep).settings.retrieval.k == Settings().retrieval.k  # the default
    # $LLMOPS_PROJECT_DIR still names the folder paths resolve against
    s = load_settings(environ={"LLMOPS_PROJECT_DIR": str(tmp_path)}, cwd=deep).settings
    assert (s.retrieval.k, s.data_path) == (6, tmp_path / ".llmops")


@pytest.mark.parametrize(
    "url",
    [
        "http://admin:hunter2@127.0.0.1:abc",
        "http://",
        "http://[::1",
        "http://h:99999",
        "http://h:0",
        "http://a:hu/nter2@h:1",
    ],
)
def test_a_chroma_server_url_without_a_host_or_a_valid_port_is_a_config_error(url, monkeypatch):
    from llmops_cli.core import redaction

    monkeypatch.setattr(redaction, "_KNOWN_PASSWORDS", set())
    # before: an internal error (exit 1) quoting urllib ("Port could not be cast to integer value as 'hu'"), or a
    # quiet fallback to localhost:8000 for http:// and port 0
    with pytest.raises(ConfigError) as e:
        load_settings(None, environ={"LLMOPS_STORE_URL": url})
    assert e.value.exit_code == ExitCode.USAGE and "store.url" in str(e.value) and "LLMOPS_STORE_URL" in str(e.value)
    assert "hunter2" not in str(e.value) and "'hu'" not in str(e.value) and "nter2" not in str(e.value)


def test_every_configured_url_password_is_masked_in_messages_even_when_not_url_shaped(monkeypatch):
    from llmops_cli.core import redaction

    monkeypatch.setattr(redaction, "_KNOWN_PASSWORDS", set())
    env = {"LLMOPS_STORE_URL": "postgresql://u:pa ss-word@db/x", "LLMOPS_STATE_URL": "postgresql://u:p%q-9@db/s"}
    load_settings(None, environ=env)
    echoed = 'unexpected spaces found in "pa ss-word"; invalid percent-encoded token: "p%q-9"'
    assert "pa ss" not in redaction.mask_url_password(echoed) and "p%q" not in redaction.redact_secrets(echoed)


@pytest.mark.parametrize(
    "host, needle", [("http://h", "store.url"), ("h:8001", "store.port"), ("u:pw1@h", "store.url")]
)
def test_store_host_with_a_scheme_or_port_is_a_config_error(host, needle):
    # before: "Chroma server at http://http://h:8000 is not reachable" (exit 7) hid the typo
    with pytest.raises(ConfigError) as e:
        load_settings(None, environ={"LLMOPS_STORE_HOST": host})
    assert e.value.exit_code == ExitCode.USAGE and "store.host" in str(e.value) and needle in str(e.value)
    assert "pw1" not in str(e.value)
    from llmops_cli.settings import StoreSettings

    assert StoreSettings(host=" chroma.internal ").host == "chroma.internal" and StoreSettings(host="::1").host == "::1"
