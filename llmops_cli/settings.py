"""Settings: pydantic models, loaded with a fixed precedence and a record of where each value came from.

Precedence (highest first): command-line flags > environment (``LLMOPS_<SECTION>_<KEY>``) > config file
(``--config``, ``$LLMOPS_CONFIG``, else the project's ``llmops.yaml`` or ``configs/llmops.yaml``) > built-in defaults.
``configs/llmops.yaml`` documents the defaults; a test keeps the two identical.

The project is found the way git finds a repository: from the working directory up, the nearest folder holding
``llmops.yaml``, ``configs/llmops.yaml`` or a ``.llmops`` folder (``find_project``; $LLMOPS_CEILING_DIRECTORIES stops
the walk, like $GIT_CEILING_DIRECTORIES). Relative paths (store, data dir, source root) resolve against the project
folder: $LLMOPS_PROJECT_DIR, else the folder of the config file in effect (the folder above ``configs/`` for
``configs/llmops.yaml``), else the folder found holding ``.llmops``, else the current directory. So a command run from a
subfolder, or from anywhere with the project's config, and an Airflow task whose working directory is Airflow's, use
the project's store.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from llmops_cli.errors import ConfigError

CONFIG_SEARCH = ("llmops.yaml", "configs/llmops.yaml")
PROJECT_MARKER = ".llmops"  # the default data_dir: a folder holding one is a project even without a config file
ENV_PREFIX = "LLMOPS_"
PROJECT_DIR_ENV = "LLMOPS_PROJECT_DIR"
CEILING_ENV = "LLMOPS_CEILING_DIRECTORIES"
DEFAULT_EMBEDDING_MODEL = "all-MiniLM-L6-v2"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


STORE_URL_SCHEMES = ("http", "https", "postgresql", "postgres")
STATE_URL_SCHEMES = ("postgresql", "postgres")


def _url_scheme_problem(v: str, schemes: tuple[str, ...]) -> str | None:
    scheme = v.split("://", 1)[0].lower() if "://" in v else ""
    if scheme.split("+", 1)[0] not in schemes:  # postgresql+psycopg:// is SQLAlchemy's spelling of the same
        return f"must start with {', '.join(s + '://' for s in schemes)}"
    return None


def _chroma_url_problem(v: str) -> str | None:
    """What is wrong with a Chroma server's http(s) URL that has no host or no valid port (the client would fail
    with an internal error, or quietly try localhost:8000). urllib's own message is not shown: it may quote a piece
    of an unencoded password."""
    from urllib.parse import urlsplit

    if v.split("://", 1)[0].lower() not in ("http", "https"):
        return None
    try:
        u = urlsplit(v)
        host, port = u.hostname, u.port
    except ValueError:
        port = 0
    if port == 0:
        return (
            "is not a valid http(s)://HOST:PORT URL: the port must be a number from 1 to 65535 "
            "(percent-encode a / ? or # in a password)"
        )
    if not host:
        return "names no host, e.g. http://chroma.example.com:8000"
    return None


class StoreSettings(_Section):
    url: str | None = Field(
        None,
        description="unset = embedded Chroma at store.path; http(s)://host:port = a Chroma server; "
        "postgresql://user:password@host/db = PostgreSQL with pgvector",
    )
    path: str = Field(".llmops/chroma", description="embedded Chroma folder (project-local)")
    host: str | None = Field(None, description="Chroma server host (the long form of store.url=http://host:port)")
    port: int = Field(8000, ge=1, le=65535)
    ssl: bool = False
    collection: str = Field("docs", description="default collection")

    @field_validator("url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        if v is None or not v.strip():
            return None
        problem = _url_scheme_problem(v.strip(), STORE_URL_SCHEMES) or _chroma_url_problem(v.strip())
        if problem:
            raise ValueError(problem)
        return v.strip()

    @field_validator("host")
    @classmethod
    def _host(cls, v: str | None) -> str | None:
        # a scheme or port in it made "Chroma server at http://http://h:8000 is not reachable" (exit 7)
        if v is None or not v.strip():
            return None
        v = v.strip()
        if "://" in v or "/" in v or "@" in v:
            raise ValueError("is a host name only; a whole URL goes in store.url, e.g. http://chroma.example.com:8000")
        if v.count(":") == 1:  # host:port (an IPv6 address has more than one ':')
            raise ValueError("is a host name only; the port goes in store.port")
        return v

    @model_validator(mode="after")
    def _one_server(self) -> StoreSettings:
        if self.url and self.host:
            raise ValueError("store.url and store.host are both set: keep one (store.url=http://HOST:PORT)")
        return self

    @property
    def backend(self) -> Literal["chroma", "chroma-server", "pgvector"]:
        """Which store the settings point at: the embedded Chroma, a Chroma server, or PostgreSQL with pgvector."""
        if self.url and self.url.split("://", 1)[0].lower().split("+", 1)[0] in ("postgresql", "postgres"):
            return "pgvector"
        return "chroma-server" if (self.url or self.host) else "chroma"

    def chroma_server(self) -> tuple[str, int, bool]:
        """(host, port, ssl) of the Chroma server, from store.url or its long form store.host/port/ssl."""
        if not self.url:
            return self.host or "localhost", self.port, self.ssl
        from urllib.parse import urlsplit

        u = urlsplit(self.url)
        ssl = u.scheme.lower() == "https"
        return u.hostname or "localhost", u.port or (443 if ssl else 8000), ssl

    @field_validator("collection")
    @classmethod
    def _collection_name(cls, v: str) -> str:
        from llmops_cli.core.collection_meta import NAME_RULE, collection_name_problem

        problem = collection_name_problem(v)
        if problem:
            raise ValueError(f"invalid collection name: {problem} ({NAME_RULE})")
        return v


class ChunkingSettings(_Section):
    strategy: Literal["auto", "recursive", "headings", "tokens"] = Field(
        "auto", description="auto = headings for Markdown/reST, recursive for the rest"
    )
    size: int = Field(200, ge=16, le=8192, description="chunk size in the embedder's own tokens")
    overlap: int = Field(30, ge=0, description="overlap in the embedder's own tokens")

    @model_validator(mode="after")
    def _overlap_below_size(self) -> ChunkingSettings:
        if self.overlap >= self.size:
            raise ValueError(f"overlap ({self.overlap}) must be smaller than size ({self.size})")
        return self


class EmbedderSettings(_Section):
    backend: Literal["auto", "onnx", "sentence-transformers", "litellm"] = Field(
        "auto", description="auto = onnx when the model can be exported, else sentence-transformers"
    )
    model: str = Field(
        DEFAULT_EMBEDDING_MODEL,
        description="sentence-transformers model path or name (the default is bundled), or a litellm embedding model",
    )
    precision: Literal["fp32", "int8"] = "fp32"
    batch_size: int | None = Field(
        None,
        ge=1,
        le=1024,
        description="texts per model call; null = the backend's best (onnx 8, sentence-transformers 32, litellm 64)",
    )
    api_base: str | None = None
    api_key: SecretStr | None = None


class LLMSettings(_Section):
    model: str | None = Field(None, description="any litellm model string, e.g. openai/gpt-4o-mini")
    api_base: str | None = None
    api_key: SecretStr | None = None
    temperature: float = Field(0.0, ge=0.0, le=2.0)
    max_tokens: int | None = Field(512, ge=1)
    timeout: float = Field(60.0, gt=0)
    max_retries: int = Field(2, ge=0, le=10)
    rewordings: int = Field(3, ge=0, le=10, description="how many rewordings of a question ask retrieves with")
    input_cost_per_token: float | None = Field(None, ge=0, description="price for models litellm does not know")
    output_cost_per_token: float | None = Field(None, ge=0)
    client: Literal["auto", "litellm"] = Field(
        "auto",
        description="auto: openai/<name> with an api_base is called by llmops's own HTTP client (under 1 ms of CPU a "
        "call), every other model through litellm; litellm: every call through litellm",
    )


class RetrievalSettings(_Section):
    k: int = Field(5, ge=1, le=200)
    mode: Literal["hybrid", "vector", "lexical"] = "hybrid"
    candidates: int = Field(20, ge=1, le=1000, description="results per list before fusion")
    rrf_k: int = Field(60, ge=1, description="reciprocal rank fusion constant")
    fusion: Literal["rrf", "minmax", "zscore"] = Field(
        "rrf",
        description="how the vector and BM25 lists are fused: by rank (rrf) or by their normalised scores (minmax, "
        "zscore: pair with candidates 50; see docs/retrieval.md)",
    )
    vector_weight: float = Field(
        0.5, ge=0.0, le=1.0, description="the vector lists' share in score fusion (BM25's: 1 - this); not used by rrf"
    )
    source_prior: bool = Field(
        False, description="scale fused scores by each source's accuracy from ratings (llmops insights sources)"
    )
    source_prior_weight: float = Field(
        0.2, ge=0.0, le=1.0, description="how far the source prior moves a score: at most this fraction up or down"
    )


class IngestSettings(_Section):
    max_file_mb: float = Field(20.0, gt=0, description="files over this size are skipped")
    exclude: list[str] = Field(
        default_factory=lambda: [
            ".git/**",
            "**/.git/**",
            "**/__pycache__/**",
            "**/.venv*/**",
            "**/node_modules/**",
            "**/.llmops/**",
        ]
    )
    source_root: str | None = Field(
        None,
        description="source ids are file paths relative to this folder (absolute outside "
        "it); default: the project folder (see docs/ingest.md)",
    )
    privacy: Literal["off", "redact", "skip"] = Field(
        "off",
        description="secrets and personal data in sources: off (stored as they are), redact (replaced by "
        "[REDACTED_<KIND>] before anything is embedded or stored) or skip (the source is left out); see docs/ingest.md",
    )


class AirflowConnection(_Section):
    url: str = Field("http://127.0.0.1:8080", description="Airflow API server base URL")
    username: str | None = None
    password: SecretStr | None = None
    token: SecretStr | None = None
    verify_tls: bool = True
    ca_bundle: str | None = None
    timeout: float = Field(10.0, gt=0, description="seconds to wait for an API answer (a hung server exits 7 after it)")

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        problem = _url_scheme_problem(v.strip(), ("http", "https"))
        if problem:  # without a scheme the HTTP client fails as "cannot reach" (exit 7), hiding the typo
            raise ValueError(f"{problem}, e.g. http://127.0.0.1:8080")
        if v.strip().rstrip("/").endswith(("/api/v1", "/api/v2")):  # the client adds /api/v2 itself
            raise ValueError("is the API server's base URL, without /api/v1 or /api/v2 (e.g. http://host:8080)")
        return v.strip()


class AirflowSettings(AirflowConnection):
    profile: str | None = Field(None, description="profile used when --profile is not given")
    profiles: dict[str, AirflowConnection] = Field(default_factory=dict)


class FeedbackSettings(_Section):
    min_helpfulness: float = Field(0.75, ge=0.0, le=1.0, description="judge score (0-1) an answer needs for promotion")
    min_relevance: float = Field(
        0.75, ge=0.0, le=1.0, description="judge score (0-1) for being on topic for the collection"
    )
    require_rating_up: bool = Field(False, description="promote only answers someone rated up")
    cache: bool = Field(True, description="ask serves promoted answers to near-identical questions (--no-cache skips)")
    cache_threshold: float = Field(
        0.92, gt=0.0, le=1.0, description="cosine similarity a question needs to hit the cache"
    )
    judge_model: str | None = Field(None, description="litellm model that reviews answers (default: llm.model)")
    judge_api_base: str | None = Field(None, description="the judge's endpoint when it is not llm.api_base")
    judge_api_key: SecretStr | None = Field(None, description="the judge's key when it is not llm.api_key")
    review_concurrency: int = Field(4, ge=1, le=64, description="concurrent judge calls")
    review_batch_size: int = Field(20, ge=1, le=1000, description="answers per mapped review task (Airflow)")


class EvalSettings(_Section):
    metrics: str = Field(
        "auto", description="metrics or groups (comma-separated) when --metrics is not given; see docs/eval-metrics.md"
    )
    judge_model: str | None = Field(None, description="litellm model for the LLM judge (default: llm.model)")
    concurrency: int = Field(8, ge=1, le=512, description="concurrent LLM calls")
    perturbations: str = Field("typos,casing", description="robustness perturbations: typos, casing, paraphrase")
    regression_tolerance: float = Field(
        0.01, ge=0.0, le=1.0, description="absolute change below which a metric counts as unchanged"
    )


class StateSettings(_Section):
    url: str | None = Field(
        None,
        description="unset = SQLite files under data_dir; postgresql://user:password@host/db = one database shared "
        "by every machine (answer log, ratings, eval runs, LLM cache)",
    )

    @field_validator("url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        if v is None or not v.strip():
            return None
        problem = _url_scheme_problem(v.strip(), STATE_URL_SCHEMES)
        if problem:
            raise ValueError(problem)
        return v.strip()


class TracingSettings(_Section):
    enabled: bool = Field(
        True,
        description="trace every command (ask, query, eval, batch, feedback, serve) with OpenTelemetry: spans kept in "
        "the state database (`llmops trace show`), and exported when an OTLP endpoint is set",
    )
    otlp_endpoint: str | None = Field(
        None,
        description="OTLP/HTTP collector base URL, e.g. http://127.0.0.1:4318 (default: the standard "
        "OTEL_EXPORTER_OTLP_ENDPOINT / OTEL_EXPORTER_OTLP_TRACES_ENDPOINT variables; none: local only)",
    )
    store: bool = Field(True, description="keep spans in the state database for `llmops trace show`")


class Settings(_Section):
    data_dir: str = Field(".llmops", description="project-local state: logs, caches, eval runs")
    store: StoreSettings = Field(default_factory=StoreSettings)
    state: StateSettings = Field(default_factory=StateSettings)
    chunking: ChunkingSettings = Field(default_factory=ChunkingSettings)
    embedder: EmbedderSettings = Field(default_factory=EmbedderSettings)
    llm: LLMSettings = Field(default_factory=LLMSettings)
    retrieval: RetrievalSettings = Field(default_factory=RetrievalSettings)
    ingest: IngestSettings = Field(default_factory=IngestSettings)
    airflow: AirflowSettings = Field(default_factory=AirflowSettings)
    feedback: FeedbackSettings = Field(default_factory=FeedbackSettings)
    eval: EvalSettings = Field(default_factory=EvalSettings)
    tracing: TracingSettings = Field(default_factory=TracingSettings)

    _root: Path | None = PrivateAttr(None)  # the project folder (load_settings sets it; see the module docstring)

    @property
    def project_dir(self) -> Path:
        return self._root or Path.cwd()

    def resolve_path(self, value: str | os.PathLike[str]) -> Path:
        """A setting's path made absolute against the project folder."""
        p = Path(value).expanduser()
        return (p if p.is_absolute() else self.project_dir / p).resolve()

    @property
    def data_path(self) -> Path:
        return self.resolve_path(self.data_dir)

    @property
    def store_path(self) -> Path:
        return self.resolve_path(self.store.path)


SECRET_KEYS = {"api_key", "password", "token"}

# The flags that set settings keys, for hints ("fix --chunk-size", not "see configs/llmops.yaml"). A command
# whose flag for a key is spelled otherwise passes its own names to load_settings(flag_names=...).
FLAG_NAMES = {
    "store.collection": "--collection",
    "chunking.strategy": "--chunker",
    "chunking.size": "--chunk-size",
    "chunking.overlap": "--chunk-overlap",
    "embedder.backend": "--embed-backend",
    "embedder.precision": "--embed-precision",
    "embedder.model": "--embed-model",
    "retrieval.k": "-k",
    "retrieval.mode": "--mode",
    "llm.model": "--model",
}


@dataclass
class LoadedSettings:
    """Effective settings plus where each leaf value came from (``default``, ``file:...``, ``env:...``, ``flag``)."""

    settings: Settings
    sources: dict[str, str] = field(default_factory=dict)
    config_file: Path | None = None
    profile: str | None = None

    def source_of(self, key: str) -> str:
        return self.sources.get(key, "default")


def find_project(cwd: Path | None = None, *, environ: dict[str, str] | None = None) -> tuple[Path | None, Path | None]:
    """(project folder, its config file) found the way git finds a repository: from ``cwd`` (default: the working
    directory) up to the filesystem root, the nearest folder that holds ``llmops.yaml``, ``configs/llmops.yaml``
    (checked in that order) or a ``.llmops`` folder; (None, None) when none does. The walk never enters a folder
    listed in $LLMOPS_CEILING_DIRECTORIES (``os.pathsep``-separated), though it starts in one."""
    environ = os.environ if environ is None else environ
    start = (cwd or Path.cwd()).absolute()
    ceilings = {Path(c).expanduser().absolute() for c in environ.get(CEILING_ENV, "").split(os.pathsep) if c.strip()}
    for folder in (start, *start.parents):
        if folder != start and folder in ceilings:
            break
        for name in CONFIG_SEARCH:
            p = folder / name
            if p.is_file():
                return folder.resolve(), p.resolve()
        if (folder / PROJECT_MARKER).is_dir():
            return folder.resolve(), None
    return None, None


def find_config_file(
    explicit: str | os.PathLike[str] | None, cwd: Path | None = None, *, environ: dict[str, str] | None = None
) -> Path | None:
    """The config file in effect: --config, $LLMOPS_CONFIG, else the project's (``find_project``), or none."""
    if explicit:
        p = Path(explicit).expanduser()
        if not p.is_file():
            raise ConfigError(f"config file {p} {_not_a_file(p)}", hint="pass an existing YAML file to --config")
        return p.resolve()
    env = os.environ.get("LLMOPS_CONFIG")
    if env:
        p = Path(env).expanduser()
        if not p.is_file():
            raise ConfigError(
                f"config file {p} (from LLMOPS_CONFIG) {_not_a_file(p)}", hint="unset LLMOPS_CONFIG or fix the path"
            )
        return p.resolve()
    return find_project(cwd, environ=environ)[1]


def _not_a_file(p: Path) -> str:
    return "is a folder, not a file" if p.is_dir() else "does not exist"


def _read_yaml(path: Path) -> dict[str, Any]:
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(
            f"config file {path}{where} is not valid YAML: {getattr(e, 'problem', e)}", hint="fix the YAML syntax"
        ) from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"config file {path} is not UTF-8 text: {e}", hint="save it as UTF-8 YAML") from None
    except OSError as e:
        raise ConfigError(
            f"config file {path} cannot be read: {e.strerror or e}", hint="check the file's permissions"
        ) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"config file {path} must hold a mapping of sections (store, chunking, ...)", hint="see configs/llmops.yaml"
        )
    return data


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and k != "profiles":
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def _register_url_passwords(tree: Any) -> None:
    """Every password inside a configured URL (store.url, state.url, llm.api_base, a profile's url...) is masked in
    every message from now on, even where a driver echoes it without its URL or it is not URL-encoded."""
    if isinstance(tree, dict):
        for v in tree.values():
            _register_url_passwords(v)
    elif isinstance(tree, str) and "://" in tree:
        from llmops_cli.core.redaction import register_url_password

        register_url_password(tree)


def _set_dotted(d: dict[str, Any], key: str, value: Any) -> None:
    parts = key.split(".")
    for p in parts[:-1]:
        nxt = d.get(p)
        if not isinstance(nxt, dict):
            nxt = {}
            d[p] = nxt
        d = nxt
    d[parts[-1]] = value


def env_var_for(key: str) -> str:
    """``llm.api_key`` -> ``LLMOPS_LLM_API_KEY``; ``data_dir`` -> ``LLMOPS_DATA_DIR``."""
    return ENV_PREFIX + key.replace(".", "_").upper()


def _leaf_keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    keys: list[str] = []
    for name, f in model.model_fields.items():
        ann = f.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            keys.extend(_leaf_keys(ann, f"{prefix}{name}."))
        elif name != "profiles":
            keys.append(f"{prefix}{name}")
    return keys


def _env_layer(environ: dict[str, str]) -> dict[str, tuple[Any, str]]:
    import json

    layer: dict[str, tuple[Any, str]] = {}
    for key in _leaf_keys(Settings):
        var = env_var_for(key)
        if var in environ:
            raw = environ[var]
            value: Any = raw
            if key.endswith("exclude"):
                value = [s.strip() for s in raw.split(",") if s.strip()]
                if raw.strip().startswith("["):
                    value = json.loads(raw)
            layer[key] = (value, f"env:{var}")
    return layer


def load_settings(
    config: str | os.PathLike[str] | None = None,
    *,
    flags: dict[str, Any] | None = None,
    profile: str | None = None,
    environ: dict[str, str] | None = None,
    cwd: Path | None = None,
    flag_names: dict[str, str] | None = None,
) -> LoadedSettings:
    """Build the effective settings. ``flags`` maps dotted keys to values given on the command line (None = not
    given)."""
    environ = dict(os.environ) if environ is None else environ
    path = find_config_file(config, cwd, environ=environ)
    merged: dict[str, Any] = {}
    sources: dict[str, str] = {}

    if path is not None:
        data = _read_yaml(path)
        for key, value in _flatten(data).items():
            _set_dotted(merged, key, value)
            sources[key] = f"file:{path}"

    # The profile: --profile > LLMOPS_AIRFLOW_PROFILE > airflow.profile in the file.
    chosen = profile or environ.get("LLMOPS_AIRFLOW_PROFILE") or (merged.get("airflow") or {}).get("profile")
    if chosen:
        profiles = (merged.get("airflow") or {}).get("profiles") or {}
        if chosen not in profiles:
            names = ", ".join(sorted(profiles)) or "none defined"
            raise ConfigError(
                f"Airflow profile {chosen!r} is not defined in {path or 'any config file'} (profiles: {names})",
                hint="add it under airflow.profiles in the config file, or pick another with --profile",
            )
        if not isinstance(profiles[chosen], dict):
            raise ConfigError(
                f"config key 'airflow.profiles.{chosen}' in {path}: must be a mapping of url, username, ..."
            )
        for k, v in profiles[chosen].items():
            _set_dotted(merged, f"airflow.{k}", v)
            sources[f"airflow.{k}"] = f"file:{path} (profile {chosen})"

    for key, (value, src) in _env_layer(environ).items():
        _set_dotted(merged, key, value)
        sources[key] = src

    for key, value in (flags or {}).items():
        if value is None:
            continue
        _set_dotted(merged, key, value)
        sources[key] = "flag"

    _register_url_passwords(merged)
    try:
        settings = Settings.model_validate(merged)
    except ValidationError as e:
        err = e.errors()[0]
        loc = [str(p) for p in err["loc"]]
        key = ".".join(loc)
        # find the most specific key that has a recorded source
        src = None
        for i in range(len(loc), 0, -1):
            src = sources.get(".".join(loc[:i]))
            if src:
                break
        if not src:  # a section-level rule (e.g. overlap < size): the highest-precedence source inside it
            inside = [v for k, v in sources.items() if k.startswith(key + ".")]
            src = (
                next((v for v in inside if v == "flag"), None)
                or next((v for v in inside if v.startswith("env:")), None)
                or next(iter(inside), None)
            )
        where = _where(src)
        msg = err["msg"].removeprefix("Value error, ")
        flag = {**FLAG_NAMES, **(flag_names or {})}.get(key) if src == "flag" else None
        if flag:
            where = f" (command-line flag {flag})"
        if err["type"] == "extra_forbidden":
            parent = ".".join(loc[:-1])
            allowed = _allowed_keys(parent)
            msg = f"unknown key; allowed keys{' in ' + parent if parent else ''}: {', '.join(allowed)}"
        elif "input" in err and not isinstance(err["input"], (dict, list)) and loc[-1] not in SECRET_KEYS:
            shown = err["input"]
            if isinstance(shown, str) and "://" in shown:  # a password inside a URL never reaches the message
                from llmops_cli.core.redaction import mask_url_password

                shown = mask_url_password(shown)
            elif isinstance(shown, str) and "@" in shown:  # user:password@host without a scheme: the host only
                shown = "********@" + shown.rsplit("@", 1)[1]
            msg = f"{msg} (got {shown!r})"
        hint = _hint(key, src, flag, err.get("input"), path)
        if err["type"] == "extra_forbidden":
            from llmops_cli.errors import closest  # the same guess as the typo warning's

            parent = ".".join(loc[:-1])
            guess = closest(key, [f"{parent}.{k}" for k in _allowed_keys(parent)])
            if guess:
                hint = f"did you mean '{guess}'? {hint}"
        raise ConfigError(f"config key '{key}'{where}: {msg}", hint=hint) from None
    settings._root, _why = project_root(path, environ=environ, cwd=cwd)
    folders = [("data_dir", settings.data_path)]
    if not settings.store.url and not settings.store.host:
        folders.append(("store.path", settings.store_path))
    for key, folder in folders:  # a file there would fail deep inside a step, as an internal error
        if folder.exists() and not folder.is_dir():
            src = sources.get(key)
            raise ConfigError(
                f"config key '{key}'{_where(src)}: {folder} is a file, not a folder",
                hint=_hint(key, src, None, None, path),
            )
    return LoadedSettings(settings=settings, sources=sources, config_file=path, profile=chosen)


def project_folder_of(config_file: Path) -> Path:
    """The project a config file belongs to: its folder, or the folder above ``configs/`` for configs/llmops.yaml."""
    folder = config_file.parent
    return folder.parent if folder.name == "configs" and config_file.name == "llmops.yaml" else folder


def project_root(
    config_file: Path | None = None, *, environ: dict[str, str] | None = None, cwd: Path | None = None
) -> tuple[Path | None, str]:
    """The project folder relative paths resolve against, and where that choice came from (for messages):
    $LLMOPS_PROJECT_DIR, else the folder of ``config_file`` (default: the config file that would be found now), else
    the nearest folder above ``cwd`` holding ``.llmops`` (``find_project``), else None (the caller uses the current
    directory)."""
    environ = os.environ if environ is None else environ
    env = environ.get(PROJECT_DIR_ENV)
    if env:
        return Path(env).expanduser().resolve(), f"${PROJECT_DIR_ENV}"
    if config_file is None:
        try:
            config_file = find_config_file(None, cwd, environ=environ)
        except ConfigError:  # a bad LLMOPS_CONFIG is reported by load_settings, not here
            config_file = None
    if config_file is not None:
        return project_folder_of(Path(config_file)), f"the folder of the config file {config_file}"
    folder, _ = find_project(cwd, environ=environ)
    if folder is None:
        return None, ""
    return folder, f"the nearest folder holding {PROJECT_MARKER}/ ({folder})"


def _hint(key: str, src: str | None, flag: str | None, value: Any, path: Path | None) -> str:
    """The fix, where the bad value came from: the flag, the environment variable or the config file."""
    fix = ""
    if key == "store.collection" and isinstance(value, str):
        from llmops_cli.core.collection_meta import suggest_collection_name

        fix = f" (e.g. {suggest_collection_name(value)})"
        if flag:
            return f"fix {flag}, e.g. {flag} {suggest_collection_name(value)}"
    if flag:
        return f"fix {flag}; configs/llmops.yaml documents '{key}'"
    if src and src.startswith("env:"):
        return f"fix or unset {src[4:]}{fix}; configs/llmops.yaml documents '{key}'"
    if src and src.startswith("file:"):
        return f"fix '{key}' in {src[5:].split(' (profile')[0]}{fix}; configs/llmops.yaml documents the allowed values"
    return "see configs/llmops.yaml for the allowed values"


def _where(src: str | None) -> str:
    """Where a setting's value came from, as an error line says it: a flag, a variable or a config file."""
    if not src:
        return ""
    if src == "flag":
        return " (command-line flag)"
    if src.startswith("env:"):
        return f" (environment variable {src[4:]})"
    return f" ({src.removeprefix('file:')})"


def _allowed_keys(section: str) -> list[str]:
    model: type[BaseModel] = Settings
    parts = [p for p in section.split(".") if p]
    while parts:
        part = parts.pop(0)
        if model is AirflowSettings and part == "profiles":  # airflow.profiles.NAME: an Airflow connection's keys
            model = AirflowConnection
            parts = parts[1:]
            continue
        f = model.model_fields.get(part)
        if f is None or not (isinstance(f.annotation, type) and issubclass(f.annotation, BaseModel)):
            return []
        model = f.annotation
    return list(model.model_fields)


def effective_items(loaded: LoadedSettings) -> list[tuple[str, Any, str]]:
    """(key, display value, source) for every leaf setting, secrets masked."""
    rows: list[tuple[str, Any, str]] = []
    dump = loaded.settings.model_dump()
    for key in _leaf_keys(Settings):
        value: Any = dump
        for part in key.split("."):
            value = value[part]
        if key.split(".")[-1] in SECRET_KEYS:
            value = mask_secret(value)
        elif isinstance(value, str) and "://" in value:  # a password inside a URL (http://user:pw@host) is a secret too
            from llmops_cli.core.redaction import mask_url_password

            value = mask_url_password(value)
        rows.append((key, value, loaded.source_of(key)))
    profiles = loaded.settings.airflow.profiles
    if profiles:
        rows.append(("airflow.profiles", ", ".join(sorted(profiles)), loaded.source_of("airflow.profiles")))
    return rows


def mask_secret(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    return "********" if value else ""
