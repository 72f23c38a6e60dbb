"""What a collection's metadata records about itself, and the check that keeps one embedder per collection.

Kept apart from ingest so that retrieval-only commands can check a collection without importing the loaders
and chunkers.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

from llmops_cli.errors import UsageError

if TYPE_CHECKING:
    from llmops_cli.core.ports import Embedder
    from llmops_cli.settings import EmbedderSettings

EMBEDDER_KEY = "llmops_embedder"  # identity of the embedder that made the vectors
EMBEDDER_CONFIG_KEY = "llmops_embedder_config"  # JSON {backend, model, precision}: how to build that embedder again
DIMENSION_KEY = "llmops_dimension"
GENERATION_KEY = "llmops_generation"  # bumped by every change; the lexical index rebuilds when it moves
CHUNKING_KEY = "llmops_chunking"  # JSON {strategy, size, overlap} of the last ingest (ingest records it)
INGESTED_AT_KEY = "llmops_ingested_at"  # ISO 8601 UTC time of the last ingest that changed the collection
PRIVACY_KEY = "llmops_privacy"  # ingest.privacy of the last ingest that changed the collection (verify re-ingests so)
MANIFEST_SUFFIX = "__sources"  # each collection's source ledger lives in "<name>__sources"

NAME_RULE = "3-512 characters of a-z A-Z 0-9 . _ -, starting and ending with a letter or digit, no '..'"


def collection_name_problem(name: str) -> str | None:
    """Why ``name`` cannot be a collection name (Chroma's rule, plus our ledger's suffix), or None when it can.
    The one copy of the rule: settings, the CLI, the DAGs and the store adapters all ask here."""
    if len(name) < 3:
        return f"it has {len(name)} character{'s' if len(name) != 1 else ''}; names need at least 3"
    if len(name) > 512:
        return "it is longer than 512 characters"
    if not re.fullmatch(r"[a-zA-Z0-9][a-zA-Z0-9._-]*[a-zA-Z0-9]", name):
        return "use only a-z A-Z 0-9 . _ - and start and end with a letter or digit"
    if ".." in name:
        return "it contains '..'"
    if re.fullmatch(r"\d{1,3}(\.\d{1,3}){3}", name):
        return "it looks like an IPv4 address"
    if name.endswith(MANIFEST_SUFFIX):
        return f"names ending in {MANIFEST_SUFFIX!r} are reserved for llmops's source records"
    return None


def suggest_collection_name(name: str) -> str:
    """A valid name close to ``name`` (for hints): 'so' -> 'so-docs', 'my docs!' -> 'my-docs'."""
    fixed = re.sub(r"[^a-zA-Z0-9._-]+", "-", name).replace("..", ".").strip("._-")
    if fixed.endswith(MANIFEST_SUFFIX):
        fixed = fixed[: -len(MANIFEST_SUFFIX)].strip("._-")
    if len(fixed) < 3:
        fixed = f"{fixed}-docs" if fixed else "docs"
    fixed = fixed[:500].rstrip("._-")
    return fixed if collection_name_problem(fixed) is None else f"{fixed}-docs"


def check_collection_name(name: str, *, flag: str = "--collection") -> str:
    """``name`` when valid; otherwise a usage error that says why and suggests a valid name."""
    problem = collection_name_problem(name)
    if problem is None:
        return name
    raise UsageError(
        f"collection name {name!r} is invalid: {problem} ({NAME_RULE})",
        hint=f"pick another name, e.g. {flag} {suggest_collection_name(name)}",
    )


def embedder_config(es: EmbedderSettings) -> str:
    """What a collection records about its embedder so that searches build the same one (no endpoint, no key)."""
    return json.dumps({"backend": es.backend, "model": es.model, "precision": es.precision}, sort_keys=True)


def chunking_record(strategy: str, size: int, overlap: int) -> str:
    """What a collection records about how its chunks were cut (CHUNKING_KEY)."""
    return json.dumps({"strategy": strategy, "size": size, "overlap": overlap}, sort_keys=True)


def _json_record(raw: Any) -> dict[str, Any] | None:
    if not isinstance(raw, str):
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def describe_metadata(meta: dict[str, Any]) -> dict[str, Any]:
    """What a collection's metadata says about it, for people (``collections show``): the embedder (identity and the
    backend/model/precision to build it again), its dimension, the chunking and the time of the last ingest. A value
    the collection does not record (one made by an older version) is None."""
    dimension = meta.get(DIMENSION_KEY)
    return {
        "embedder": meta.get(EMBEDDER_KEY),
        "embedder_config": _json_record(meta.get(EMBEDDER_CONFIG_KEY)),
        "dimension": int(dimension) if isinstance(dimension, (int, float)) else None,
        "chunking": _json_record(meta.get(CHUNKING_KEY)),
        "last_ingest": meta.get(INGESTED_AT_KEY) if isinstance(meta.get(INGESTED_AT_KEY), str) else None,
        "generation": meta.get(GENERATION_KEY),
    }


def embedder_settings_for(meta: dict[str, Any] | None, configured: EmbedderSettings) -> EmbedderSettings:
    """The embedder settings to search a collection with: the ones it was ingested with (a collection remembers
    its embedder), with the configured endpoint, key and batch size. ``configured`` when the collection does not
    exist or records nothing usable."""
    if not meta:
        return configured
    recorded: dict[str, Any] | None = None
    raw = meta.get(EMBEDDER_CONFIG_KEY)
    if isinstance(raw, str):
        try:
            recorded = {k: v for k, v in json.loads(raw).items() if k in ("backend", "model", "precision")}
        except (ValueError, AttributeError):
            recorded = None
    if recorded is None:
        recorded = _config_from_identity(meta.get(EMBEDDER_KEY), configured)
    if not recorded:
        return configured
    if recorded.get("backend") == "litellm" and recorded.get("model") != configured.model:
        # an embedding API needs its endpoint and key, which are not recorded (secrets): the configured settings are
        # another embedder's, so say which one to configure (check_embedder) instead of calling the API without them
        return configured
    try:
        return type(configured).model_validate({**configured.model_dump(), **recorded})
    except Exception:  # noqa: BLE001 - a record this version cannot read: fall back to the configured embedder
        return configured


def _config_from_identity(identity: Any, configured: EmbedderSettings) -> dict[str, Any] | None:
    """Collections made before EMBEDDER_CONFIG_KEY existed: their identity ('st:NAME[:PRECISION]', 'litellm:MODEL')
    says enough when NAME is the configured model's (a model given by path records only its folder name)."""
    if not isinstance(identity, str):
        return None
    if identity.startswith("litellm:"):
        return {"backend": "litellm", "model": identity[len("litellm:") :]}
    if identity.startswith("st:"):
        name, _, precision = identity[3:].partition(":")
        from pathlib import PurePath

        if name not in (configured.model, PurePath(configured.model).name):
            return None
        return {"precision": precision or "fp32", **({"backend": "auto"} if configured.backend == "litellm" else {})}
    return None


def check_unrecorded_dimension(store: Any, meta: dict[str, Any] | None, embedder: Embedder, collection: str) -> None:
    """A collection that records no embedder (made by another tool on a shared Chroma server, say) is written only
    with vectors of the dimension it holds: Chroma refuses others half-way, after the ledger was written, as an
    internal error. One stored vector is read (the store's ``read_embeddings``); nothing for an empty collection."""
    read = getattr(store, "read_embeddings", None)
    if meta is None or EMBEDDER_KEY in meta or read is None:
        return
    first = store.get(collection, limit=1, include_documents=False)
    vec = read(collection, [first[0].id]).get(first[0].id) if first else None
    if vec is not None and len(vec) != embedder.dimension:
        raise UsageError(
            f"collection {collection!r} holds vectors of {len(vec)} dimensions from an embedder it does not record; "
            f"{embedder.identity} makes {embedder.dimension}",
            hint="ingest into another --collection (a collection llmops did not make is best left to its tool)",
        )


def check_embedder(
    meta: dict[str, Any] | None, embedder: Embedder, collection: str, *, searching: bool = False
) -> None:
    """Refuse to mix vectors of two embedders in one collection (``meta``: the collection's metadata), or to search
    it with another embedder's query vectors (``searching``)."""
    if meta is None or EMBEDDER_KEY not in meta:
        return
    if meta[EMBEDDER_KEY] != embedder.identity:
        if searching:
            raise UsageError(
                f"collection {collection!r} holds vectors of embedder {meta[EMBEDDER_KEY]}, not {embedder.identity}; "
                "its vectors cannot be searched with another embedder's",
                hint="configure the embedder it was ingested with "
                "(embedder.backend, embedder.model, embedder.precision)",
            )
        raise UsageError(
            f"collection {collection!r} holds vectors of embedder {meta[EMBEDDER_KEY]}, not {embedder.identity}; "
            "mixing them breaks search",
            hint="ingest into another --collection, or delete this one first (llmops collections delete NAME)",
        )
