"""`llmops init`: a starter llmops.yaml, from flags or from a few questions. Never overwrites a file.

It writes only what differs from the built-in defaults (so `llmops config show` says "file" exactly for what was
chosen here), validated by the settings before the file exists.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from llmops_cli.cli.options import JsonOpt
from llmops_cli.cli.output import Output
from llmops_cli.errors import ConfigError, ConflictError, UsageError

HELP = (
    "Write a starter llmops.yaml here: the LLM, the store and the default collection, from flags or (on a terminal, "
    "without --yes) from questions. Never overwrites a file."
)
EPILOG = (
    "Examples:\n\n"
    "  llmops init\n\n"
    "  llmops init --yes --llm-model openai/gpt-4o-mini --collection handbook\n\n"
    "  llmops init --yes --store-url postgresql://llmops@db.internal/llmops --path team/llmops.yaml"
)


def register(app: typer.Typer) -> None:
    app.command("init", help=HELP, short_help="Write a starter llmops.yaml (never overwrites one).", epilog=EPILOG)(
        init
    )


def init(
    path: Annotated[Path, typer.Option("--path", help="Where to write it.", metavar="PATH")] = Path("llmops.yaml"),
    llm_model: Annotated[
        str | None, typer.Option("--llm-model", help="litellm model string, e.g. openai/gpt-4o-mini (none: no LLM).")
    ] = None,
    llm_api_base: Annotated[
        str | None, typer.Option("--llm-api-base", help="An OpenAI-compatible server, e.g. http://127.0.0.1:8000/v1.")
    ] = None,
    store_url: Annotated[
        str | None,
        typer.Option(
            "--store-url",
            help="http://host:8000 (a Chroma server) or postgresql://user@host/db (pgvector); none: embedded Chroma.",
        ),
    ] = None,
    collection: Annotated[str | None, typer.Option("--collection", help="The default collection.")] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Ask nothing: flags, else the defaults.")] = False,
    json_out: JsonOpt = False,
) -> None:
    out = Output(json_out)
    if path.exists():
        raise ConflictError(f"{path} already exists; llmops init never overwrites", hint="edit it, or pass --path")
    if not yes and not out.json_mode and sys.stdin.isatty():
        llm_model = llm_model or typer.prompt("LLM model (litellm string; empty: none)", default="", show_default=False)
        if llm_model and not llm_api_base:
            llm_api_base = typer.prompt("LLM API base (empty: the provider's own)", default="", show_default=False)
        store_url = store_url or typer.prompt(
            "Store URL (empty: embedded Chroma under .llmops/)", default="", show_default=False
        )
        collection = collection or typer.prompt("Default collection", default="docs")
    data = starter_config(llm_model=llm_model, llm_api_base=llm_api_base, store_url=store_url, collection=collection)
    data, kept_out = without_url_passwords(data)
    text = render_config(data)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("x", encoding="utf-8") as f:  # "x": a file that appeared meanwhile is not overwritten either
            f.write(text)
    except FileExistsError:
        raise ConflictError(
            f"{path} already exists; llmops init never overwrites", hint="edit it, or pass --path"
        ) from None
    except OSError as e:  # a folder that cannot be made or written: it was "internal error: FileNotFoundError"
        raise UsageError(
            f"cannot write {path}: {e.strerror or e}", hint="pass --path in a folder you can write"
        ) from None
    from llmops_cli.settings import env_var_for

    for key in kept_out:
        section, name = key.split(".")
        libpq = str(data[section][name]).startswith("postgres")  # libpq reads the password from these too
        out.warn(
            f"{path} has {key} without its password (the file is shared, often committed): set the whole URL in "
            f"{env_var_for(key)}, which wins over the file"
            + (", or the password in PGPASSWORD or ~/.pgpass" if libpq else "")
        )
    if out.json_mode:
        out.json({"path": str(path.resolve()), "created": True, "settings": _masked(data)})
    else:
        out.info(f"wrote {path}; next: llmops doctor, then llmops ingest PATH")


def starter_config(**chosen: str | None) -> dict[str, Any]:
    """The nested settings that differ from the defaults, validated (ConfigError names the flag to fix)."""
    from pydantic import ValidationError

    from llmops_cli.settings import Settings

    flags = {
        "llm.model": ("--llm-model", chosen.get("llm_model")),
        "llm.api_base": ("--llm-api-base", chosen.get("llm_api_base")),
        "store.url": ("--store-url", chosen.get("store_url")),
        "store.collection": ("--collection", chosen.get("collection")),
    }
    data: dict[str, Any] = {}
    for key, (_flag, value) in flags.items():
        if value:
            section, name = key.split(".")
            data.setdefault(section, {})[name] = value.strip()
    try:
        s = Settings.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        key = ".".join(str(p) for p in err["loc"])
        flag = flags.get(key, (key,))[0]
        raise ConfigError(f"{flag}: {err['msg'].removeprefix('Value error, ')}", hint=f"fix {flag}") from None
    defaults = Settings().model_dump()
    dump = s.model_dump()
    return {
        sec: {k: v for k, v in vals.items() if dump[sec][k] != defaults[sec][k]}
        for sec, vals in data.items()
        if any(dump[sec][k] != defaults[sec][k] for k in vals)
    }


def without_url_passwords(data: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """``data`` with the password taken out of each URL (``postgresql://user:pw@host/db`` -> ``postgresql://user@host/db``),
    and the dotted keys it was taken from: the header of the file says secrets belong in the environment."""
    from llmops_cli.core.redaction import url_password

    kept_out: list[str] = []
    clean: dict[str, Any] = {}
    for sec, vals in data.items():
        clean[sec] = {}
        for k, v in vals.items():
            if isinstance(v, str) and url_password(v) is not None:
                scheme, _, rest = v.partition("://")
                userinfo, _, host = rest.rpartition("@")
                user = userinfo.partition(":")[0]
                v = f"{scheme}://{user + '@' if user else ''}{host}"
                kept_out.append(f"{sec}.{k}")
            clean[sec][k] = v
    return clean, kept_out


def _masked(data: dict[str, Any]) -> dict[str, Any]:
    """The chosen settings for output: a password inside a URL (postgresql://user:pw@host) masked."""
    from llmops_cli.core.redaction import mask_url_password

    return {
        sec: {k: mask_url_password(v) if isinstance(v, str) and "://" in v else v for k, v in vals.items()}
        for sec, vals in data.items()
    }


def render_config(data: dict[str, Any]) -> str:
    import yaml

    head = (
        "# llmops settings for this project (found by llmops in this folder; see `llmops config show`).\n"
        "# Only what differs from the built-in defaults; configs/llmops.yaml in the llmops repository documents\n"
        "# every key. Secrets belong in the environment: LLMOPS_LLM_API_KEY, LLMOPS_STORE_URL with a password...\n"
    )
    if not data:  # everything at its default: say how to set the usual first keys
        return head + (
            "{}  # nothing set yet; the usual first keys, e.g.:\n"
            "# llm:\n#   model: openai/gpt-4o-mini\n# store:\n#   collection: handbook\n"
        )
    return head + yaml.safe_dump(data, sort_keys=False)
