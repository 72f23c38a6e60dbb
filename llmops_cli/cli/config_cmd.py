"""`llmops config`: the effective settings and where each came from (secrets masked).

`config show` and `config path` are how people debug a broken config, so they work when it is broken: `path` never
reads the file, and `show` prints what is valid (each broken value left at what the layers below give) before the
error line and its exit code.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from llmops_cli.cli.options import JsonOpt
from llmops_cli.cli.output import Output
from llmops_cli.cli.state import state
from llmops_cli.errors import ConfigError, UsageError

if TYPE_CHECKING:
    from llmops_cli.settings import LoadedSettings

config_app = typer.Typer(help="Effective settings: show, get one, and which file is in use.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(config_app, name="config")


@config_app.command(
    "show",
    help="Every setting, its effective value and its source: default, file, env (LLMOPS_<SECTION>_<KEY>) or flag. "
    "A file value equal to the built-in default shows as 'default (file)'. Works on a broken config: the valid "
    "settings, then the error.",
    epilog="Examples:\n\n  llmops config show\n\n  LLMOPS_LLM_MODEL=openai/gpt-4o-mini llmops config show --json",
)
def show(json_out: JsonOpt = False) -> None:
    from llmops_cli.settings import effective_items  # pydantic: loaded by the command, not by --help

    loaded, problem = _load_despite_errors()
    rows = effective_items(loaded)
    out = Output(json_out)
    if out.json_mode:
        doc: dict[str, Any] = {
            "config_file": str(loaded.config_file) if loaded.config_file else None,
            "profile": loaded.profile,
            "settings": [{"key": k, "value": v, "source": src} for k, v, src in rows],
        }
        if problem:
            doc["error"] = {"error": problem.message, "hint": problem.hint, "exit_code": int(problem.exit_code)}
        out.json(doc)
    else:
        defaults = _default_values()
        out.print(f"config file: {loaded.config_file or 'none (built-in defaults)'}", soft_wrap=True)
        if loaded.profile:
            out.print(f"Airflow profile: {loaded.profile}")
        out.table(
            ["key", "value", "source"],
            [(k, v, _short_source(src, v == defaults.get(k, object()))) for k, v, src in rows],
        )
        out.print("env var of a key: LLMOPS_<KEY> with dots as _ (llm.model: LLMOPS_LLM_MODEL)")
    if problem:
        raise problem


@config_app.command(
    "get",
    help="Print one setting's effective value (secrets masked); empty when unset.",
    epilog="Example:\n\n  llmops config get llm.model",
)
def get(key: Annotated[str, typer.Argument(help="Dotted key, e.g. llm.model.")], json_out: JsonOpt = False) -> None:
    from llmops_cli.settings import effective_items  # pydantic: loaded by the command, not by --help

    loaded = state().load()
    for k, v, src in effective_items(loaded):
        if k == key:
            if json_out:
                Output(True).json({"key": k, "value": v, "source": src})
            else:
                typer.echo("" if v is None else v)
            return
    from llmops_cli.config_check import setting_keys
    from llmops_cli.errors import closest

    guess = closest(key, setting_keys())
    raise UsageError(
        f"unknown setting {key!r}" + (f"; did you mean {guess!r}?" if guess else ""),
        hint="list them with llmops config show",
    )


@config_app.command(
    "path",
    help="The config file in effect (empty: built-in defaults). Never reads the file, so it works on a broken one.",
    epilog='Example:\n\n  $EDITOR "$(llmops config path)"',
)
def path() -> None:
    from llmops_cli.settings import find_config_file

    found = find_config_file(state().config)
    typer.echo(str(found) if found else "")


def _short_source(src: str, equals_default: bool) -> str:
    """``file:/long/path/llmops.yaml`` -> ``file``, ``env:LLMOPS_X`` -> ``env``: the table fits 80 columns (the file
    is named above it; the variable is the key's). A file value that is the built-in default says so."""
    if src.startswith("file:"):
        word = "profile" if "(profile " in src else "file"
        return f"default ({word})" if equals_default else word
    return src.split(":", 1)[0]


def _default_values() -> dict[str, Any]:
    from llmops_cli.settings import LoadedSettings, Settings, effective_items

    return {k: v for k, v, _ in effective_items(LoadedSettings(settings=Settings()))}


_KEY_IN_ERROR = re.compile(r"config key '([^']+)'")
_ENV_IN_ERROR = re.compile(r"\(environment variable (LLMOPS_[A-Z0-9_]+)\)")


def _load_despite_errors() -> tuple[LoadedSettings, ConfigError | None]:
    """The settings, and None; or, when the config is broken, the settings without each broken value (dropped from
    the file or the environment one at a time, as the errors name them) and the first error."""
    try:
        return state().load(), None
    except ConfigError as e:
        first = e
    import tempfile

    import yaml

    from llmops_cli.settings import find_config_file, load_settings

    try:
        config_file = find_config_file(state().config)
    except ConfigError:
        config_file = None
    data: dict[str, Any] = {}
    if config_file is not None:
        try:
            loaded_yaml = yaml.safe_load(config_file.read_text(encoding="utf-8"))
            data = loaded_yaml if isinstance(loaded_yaml, dict) else {}
        except (OSError, UnicodeDecodeError, yaml.YAMLError):
            data = {}
    environ = dict(os.environ)
    profile = state().profile
    with tempfile.TemporaryDirectory() as tmp:
        tmp_file = Path(tmp) / "llmops.yaml"
        for _ in range(100):  # each pass drops one broken value
            tmp_file.write_text(yaml.safe_dump(data), encoding="utf-8")
            try:
                loaded = load_settings(tmp_file, profile=profile, environ=environ)
                break
            except ConfigError as e:
                if not _drop_broken(e.message, data, environ) and (profile or data or environ):
                    # not attributable: give up on the file and the environment, show the defaults
                    data, profile = {}, None
                    environ = {k: v for k, v in environ.items() if not k.startswith("LLMOPS_")}
        else:  # pragma: no cover - more broken values than settings
            raise first
    if config_file is not None:  # the sources name the user's file, not the copy
        loaded.sources = {k: v.replace(str(tmp_file.resolve()), str(config_file)) for k, v in loaded.sources.items()}
    loaded.config_file = config_file  # never the temporary copy (there may be no file at all)
    return loaded, first


def _drop_broken(message: str, data: dict[str, Any], environ: dict[str, str]) -> bool:
    """Remove the value an error message names from the file's data or the environment; False if it names none."""
    env = _ENV_IN_ERROR.search(message)
    if env and env.group(1) in environ:
        del environ[env.group(1)]
        return True
    key = _KEY_IN_ERROR.search(message)
    if key is None:
        if "profile" in message and isinstance(data.get("airflow"), dict):
            data["airflow"].pop("profile", None)
            environ.pop("LLMOPS_AIRFLOW_PROFILE", None)
            return True
        return False
    parts = key.group(1).split(".")
    node: Any = data
    for p in parts[:-1]:
        node = node.get(p) if isinstance(node, dict) else None
    if isinstance(node, dict) and parts[-1] in node:
        del node[parts[-1]]
        return True
    return False
