"""``llmops finetune``: tune the embedding model on what the project knows is relevant, measure base vs tuned on
held-out questions, and re-embed a collection with the tuned model (shared by the CLI and the ``llmops_finetune``
DAG).

The tuned model is a versioned folder under ``<data_dir>/models/`` (``<base>-ft<run id>-<hash>``): name it in
``embedder.model`` (a path) to use it; ``finetune promote`` writes a NEW collection with it, so the two
collections can be compared with ``llmops eval`` before anything switches."""

from __future__ import annotations

import hashlib
import re
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmops_cli.core.collection_meta import (
    DIMENSION_KEY,
    EMBEDDER_CONFIG_KEY,
    EMBEDDER_KEY,
    check_collection_name,
    embedder_config,
    embedder_settings_for,
)
from llmops_cli.entry.store import collection_meta, collection_name
from llmops_cli.errors import ConflictError, InputError, UsageError

if TYPE_CHECKING:
    from llmops_cli.core.finetune.pairs import Chunk, Example
    from llmops_cli.core.finetune.runs import FinetuneRuns
    from llmops_cli.wiring import Workspace

# core.finetune.measure loads numpy and the training adapter torch: imported where they run (`llmops --help`).

Progress = Callable[[str], None]


def finetune_runs(ws: Workspace, *, read_only: bool = False) -> FinetuneRuns:
    """The fine-tuning run history of this workspace's state (SQLite under data_dir, or the shared database).
    ``read_only``: where there is no file yet, an empty history in memory, so `finetune runs` (or a promote with
    nothing to promote) creates no ``.llmops`` folder, which would make the current folder a project."""
    from llmops_cli.core.finetune.runs import FinetuneRuns, default_runs_path
    from llmops_cli.core.state import MEMORY

    st = ws.state()
    if st.shared:
        return FinetuneRuns(st.db())
    path = default_runs_path(ws.settings.data_path)
    return FinetuneRuns(MEMORY if read_only and not path.is_file() else path)


def collection_chunks(ws: Workspace, collection: str) -> list[Chunk]:
    from llmops_cli.core.finetune.pairs import Chunk
    from llmops_cli.entry.store import _chunks

    return [Chunk(h.id, h.text, h.source) for h in _chunks(ws.store(read_only=True), collection)]


def gather_examples(
    ws: Workspace, collection: str, datasets: Sequence[str | Path] = (), *, use_answer_log: bool = True
) -> tuple[list[Example], dict[str, int]]:
    """(question, relevant chunks/sources) from the eval datasets given (``eval generate`` writes such files too) and
    from the answer log: answers of this collection that pass the promotion rule, or that were rated up and never
    down. Returns the examples (one per question) and how many each origin gave."""
    from llmops_cli.core.eval.datasets import load_dataset
    from llmops_cli.core.finetune.pairs import dedupe, examples_from_answers, examples_from_dataset

    found: list[Example] = []
    counts: dict[str, int] = {}
    for path in datasets:
        got = examples_from_dataset(load_dataset(path).items)
        counts[f"dataset:{Path(path).name}"] = len(got)
        found.extend(got)
    if use_answer_log and ws.answer_log_exists():
        got = examples_from_answers(_good_answers(ws, collection))
        counts["answer-log"] = len(got)
        found.extend(got)
    return dedupe(found), counts


def _good_answers(ws: Workspace, collection: str):
    from llmops_cli.core.feedback.log import vote_counts
    from llmops_cli.core.feedback.promotion import decide
    from llmops_cli.entry.feedback import thresholds

    log = ws.answer_log(read_only=True)
    t = thresholds(ws.settings)
    for a in log.recent(limit=1_000_000, collection=collection):
        if a.kind != "ask" or not a.chunks:
            continue
        ratings = log.ratings(a.id, with_cached_copies=True)
        votes = vote_counts(ratings)
        good = votes["up"] > 0 and votes["down"] == 0
        if not good:
            review = log.review_of(a.id)
            good = review is not None and decide(a, review, ratings, t).promote
        if good:
            yield a.question, a.chunks


def finetune_embedder(
    ws: Workspace,
    collection: str | None = None,
    *,
    datasets: Sequence[str | Path] = (),
    use_answer_log: bool = True,
    held_out: float = 0.3,
    epochs: int = 1,
    batch_size: int = 16,
    learning_rate: float = 2e-5,
    max_seq_length: int = 256,
    lora: bool = False,
    lora_r: int = 8,
    seed: int = 0,
    job_key: str | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Gather, split, train, measure, record. ``job_key``: a retry of the same job (a DAG task's run) finds the run
    that finished and returns it instead of training again. Returns the run's record."""
    from llmops_cli.adapters.embedders.model_files import resolve_model_dir
    from llmops_cli.adapters.embedders.training import train_embedder
    from llmops_cli.core.finetune.pairs import split_by_group, training_pairs

    say = progress or (lambda _m: None)
    settings = ws.settings
    name = collection_name(settings, collection)
    meta = collection_meta(ws.store(read_only=True), name)
    base_es = embedder_settings_for(meta, settings.embedder)
    if base_es.backend == "litellm":
        raise UsageError(
            f"collection {name!r} is embedded by a hosted model ({base_es.model}); only a local sentence-transformers "
            "model can be fine-tuned here",
            hint="ingest the collection with a local embedder (embedder.backend auto)",
        )
    base_dir = resolve_model_dir(base_es.model)
    runs = finetune_runs(ws)
    try:
        if job_key:
            prior = runs.by_job_key(job_key)
            if prior is not None and prior["status"] == "done":
                say(f"run {prior['id']} of job {job_key} is done: not training again")
                return {**prior, "resumed": True}
        examples, origins = gather_examples(ws, name, datasets, use_answer_log=use_answer_log)
        split = split_by_group(examples, held_out, seed=seed)
        if not split.train or not split.held_out:
            raise InputError(
                f"{len(examples)} question(s) with something relevant to find: too few to train and hold out "
                f"(train {len(split.train)}, held out {len(split.held_out)})",
                hint="pass --dataset with questions that name relevant_sources or relevant_chunks "
                "(llmops eval generate writes one), or rate more answers up",
            )
        chunks = collection_chunks(ws, name)
        lexical = ws.lexical_index(name)
        pairs = training_pairs(split.train, chunks, lambda q, k: [cid for cid, _ in lexical.search(q, k)])
        params = {
            "epochs": epochs,
            "batch_size": batch_size,
            "learning_rate": learning_rate,
            "max_seq_length": max_seq_length,
            "lora": lora,
            "lora_r": lora_r if lora else None,
            "held_out": held_out,
            "seed": seed,
            "datasets": [str(Path(d).resolve()) for d in datasets],
        }
        run_id = runs.start("embedder", str(base_dir), collection=name, params=params, job_key=job_key)
        data = {"origins": origins, "pairs": len(pairs), "chunks": len(chunks), **split.to_dict()}
        runs.update(run_id, data=data)
        models = settings.data_path / "models"
        label = model_label(base_es.model, base_dir)
        tmp = models / f".{label}-ft{run_id}.partial"
        shutil.rmtree(tmp, ignore_errors=True)
        say(f"training on {len(pairs)} pair(s) from {len(split.train)} question(s), {epochs} epoch(s)")
        try:
            cost = train_embedder(
                base_dir,
                pairs,
                tmp,
                epochs=epochs,
                batch_size=batch_size,
                learning_rate=learning_rate,
                max_seq_length=max_seq_length,
                lora=lora,
                lora_r=lora_r,
                seed=seed,
            )
            out = models / f"{label}-ft{run_id}-{_weights_hash(tmp)}"
            shutil.rmtree(out, ignore_errors=True)
            tmp.rename(out)  # a folder that exists is whole
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            runs.update(run_id, status="failed")
            raise
        runs.update(run_id, output=str(out), cost={"train": cost})
        say(f"measuring base vs tuned on {len(split.held_out)} held-out question(s)")
        comparison, eval_cost = measure(ws, split.held_out, chunks, str(base_dir), str(out))
        runs.update(run_id, status="done", metrics=comparison.to_dict(), cost={"train": cost, "evaluate": eval_cost})
        return {**runs.get(run_id), "resumed": False}
    finally:
        runs.close()


def measure(
    ws: Workspace, examples: Sequence[Example], chunks: Sequence[Chunk], base_model: str, tuned_model: str
) -> tuple[Any, dict[str, float]]:
    """hit@5 and MRR@10 of both models on ``examples`` over every chunk of the collection, with bootstrap intervals.
    Both through the torch backend, so the comparison is of the models and nothing else."""
    from llmops_cli.core.finetune.measure import compare, per_question

    wall0, cpu0 = time.perf_counter(), time.process_time()
    scores = []
    questions = [e.question for e in examples]
    texts = [c.text for c in chunks]
    for model in (base_model, tuned_model):
        emb = ws.embedder(_torch_settings(ws, model))
        scores.append(per_question(examples, chunks, emb.embed(questions), emb.embed(texts)))
    cost = {"wall_s": round(time.perf_counter() - wall0, 2), "cpu_s": round(time.process_time() - cpu0, 2)}
    return compare(*scores), cost


def _torch_settings(ws: Workspace, model: str):
    return ws.settings.embedder.model_copy(update={"backend": "sentence-transformers", "model": model})


def model_label(model: str, model_dir: Path) -> str:
    """The ``<base>`` of a tuned model's folder name: the model's own name (``all-MiniLM-L6-v2`` for the bundled
    model, whose folder is called ``model``, or for one in the Hugging Face cache, whose folder is a commit hash), or
    a local folder's name."""
    if Path(model).expanduser().exists():
        return model_dir.name
    return re.sub(r"[^A-Za-z0-9._-]+", "-", model.rstrip("/").rsplit("/", 1)[-1]).strip(".-") or model_dir.name


def _weights_hash(folder: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*.safetensors")) or sorted(folder.rglob("*.bin")):
        with p.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()[:8]


def gate(run: dict[str, Any], *, metric: str = "mrr@10", min_gain: float = 0.0, require_ci: bool = False) -> bool:
    """Whether a run's tuned model is better enough to promote: its gain on ``metric`` above ``min_gain`` (and, with
    ``require_ci``, the lower end of the gain's 95% interval above 0 too)."""
    m = run.get("metrics") or {}
    if run.get("status") != "done" or metric not in (m.get("gain") or {}):
        return False
    ok = m["gain"][metric] > min_gain
    if require_ci:
        ok = ok and m["ci95"][metric]["gain"][0] > 0
    return ok


def promote_embedder(
    ws: Workspace,
    run_id: int | None = None,
    *,
    collection: str | None = None,
    into: str | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Re-embed ``collection`` (default: the run's) with run ``run_id``'s tuned model (default: the latest done
    embedder run) into a new collection ``into`` (default ``<collection>-ft<run id>``): chunks, metadata and the
    source ledger copied, vectors made by the tuned model, the collection recording that embedder. Re-running it
    after an interruption finishes the copy."""
    say = progress or (lambda _m: None)
    settings = ws.settings
    runs = finetune_runs(ws, read_only=True)  # nothing recorded: nothing to promote, no file made
    try:
        run = runs.get(run_id) if run_id is not None else runs.latest("embedder", status="done")
        if run is None:
            raise UsageError(
                "no finished embedder fine-tuning run", hint="run: llmops finetune embedder --collection C"
            )
        if run["kind"] != "embedder" or run["status"] != "done" or not run["output"]:
            raise UsageError(f"run {run['id']} is not a finished embedder run ({run['kind']}, {run['status']})")
        src = collection_name(settings, collection or run["collection"])
        dst = check_collection_name(into or f"{src}-ft{run['id']}", flag="--into")
        if dst == src:
            raise UsageError("--into names the collection being copied", hint="pick a new collection name")
        with ws.write_lock():
            store = ws.store()
            meta = collection_meta(store, src)
            es = embedder_settings_for(meta, settings.embedder).model_copy(update={"model": run["output"]})
            emb = ws.embedder(es)
            existing = store.collection_metadata(dst)
            if existing is not None and existing.get(EMBEDDER_KEY) != emb.identity:
                raise ConflictError(
                    f"collection {dst!r} exists and holds another embedder's vectors ({existing.get(EMBEDDER_KEY)})",
                    hint="pick another --into, or delete it: llmops collections delete " + dst,
                )
            copied = {k: v for k, v in meta.items() if not k.startswith("hnsw:")}
            copied.update({EMBEDDER_KEY: emb.identity, DIMENSION_KEY: emb.dimension})
            copied[EMBEDDER_CONFIG_KEY] = embedder_config(es)
            store.ensure_collection(dst, metadata=copied)
            wall0, cpu0 = time.perf_counter(), time.process_time()
            done = set(store.ids(dst))
            from llmops_cli.entry.store import _chunks

            n = 0
            batch: list[Any] = []
            for h in _chunks(store, src):
                if h.id in done:
                    continue
                batch.append(h)
                if len(batch) >= 64:
                    n += _write(store, dst, emb, batch)
                    batch = []
                    say(f"re-embedded {n} chunk(s)")
            n += _write(store, dst, emb, batch)
            store.write_manifest(dst, list(store.read_manifest(src).values()))
            ws.after_store_write(dst)
        cost = {"wall_s": round(time.perf_counter() - wall0, 2), "cpu_s": round(time.process_time() - cpu0, 2)}
        before = (run.get("cost") or {}).get("promote")
        recorded = cost
        if before and run.get("promoted_to") == dst:
            # a re-run finishing (or re-checking) the same copy: the re-embedding cost is the sum of the runs, not
            # the last one's (a re-run of a finished copy took ~1 s and replaced the copy's real cost)
            recorded = {k: round(float(before.get(k) or 0) + cost[k], 2) for k in cost}
        runs.update(run["id"], promoted_to=dst, cost={**(run.get("cost") or {}), "promote": recorded})
        return {
            "run": run["id"],
            "model": run["output"],
            "from": src,
            "collection": dst,
            "embedder": emb.identity,
            "embedded": n,
            "chunks": store.count(dst),
            "cost": cost,
        }
    finally:
        runs.close()


def _write(store, name: str, emb, hits: list[Any]) -> int:
    if not hits:
        return 0
    store.upsert(
        name,
        [h.id for h in hits],
        emb.embed([h.text for h in hits]),
        [h.text for h in hits],
        [h.metadata for h in hits],
    )
    return len(hits)


def read_ft_rows(path: str | Path) -> list[dict[str, Any]]:
    import json

    p = Path(path).expanduser()
    if not p.is_file():
        raise InputError(f"fine-tuning dataset {p} does not exist", hint="llmops feedback export writes one")
    rows = []
    for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except ValueError:
                raise InputError(f"{p}:{n} is not JSON", hint="one JSON object per line") from None
    if not rows:
        raise InputError(f"fine-tuning dataset {p} is empty")
    return rows


def finetune_llm(
    ws: Workspace,
    base: str,
    dataset: str | Path,
    *,
    lora_r: int = 8,
    epochs: int = 1,
    batch_size: int = 4,
    learning_rate: float = 2e-4,
    held_out: float = 0.2,
    max_len: int = 512,
    seed: int = 0,
    job_key: str | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """LoRA-tune the local causal LM at ``base`` on ``dataset`` (chat or prompt/completion rows); score base and
    base + adapters on the held-out rows (answer-token loss, perplexity). The adapters are saved under
    ``<data_dir>/models/<base>-lora<run id>/adapter``."""
    from llmops_cli.adapters.llm.lora_training import evaluate_causal_lm, split_row, train_lora

    say = progress or (lambda _m: None)
    base_dir = Path(base).expanduser()
    if not (base_dir / "config.json").is_file():
        raise UsageError(
            f"--base {base} is not a local Hugging Face model folder (no config.json)",
            hint="download the model first (it is loaded offline), or use --provider for a hosted model",
        )
    rows = []
    for n, r in enumerate(read_ft_rows(dataset), 1):
        try:
            rows.append(split_row(r))
        except InputError as e:  # which row: the file may hold thousands
            raise InputError(f"fine-tuning dataset {dataset} row {n}: {e.message}", hint=e.hint) from None
    n_held = max(1, round(len(rows) * held_out)) if len(rows) > 1 else 0
    order = sorted(range(len(rows)), key=lambda i: hashlib.sha256(f"{seed}:{rows[i][0]}".encode()).hexdigest())
    held = [rows[i] for i in order[:n_held]]
    train = [rows[i] for i in order[n_held:]]
    if not held or not train:
        raise InputError(f"{len(rows)} row(s): too few to train and hold out", hint="give at least 2 rows")
    runs = finetune_runs(ws)
    try:
        if job_key:
            prior = runs.by_job_key(job_key)
            if prior is not None and prior["status"] == "done":
                return {**prior, "resumed": True}
        params = {
            "lora_r": lora_r,
            "epochs": epochs,
            "batch_size": batch_size,
            "learning_rate": learning_rate,
            "held_out": held_out,
            "dataset": str(Path(dataset).resolve()),
        }
        run_id = runs.start("llm", str(base_dir.resolve()), params=params, job_key=job_key)
        runs.update(run_id, data={"train_rows": len(train), "held_out_rows": len(held)})
        out = ws.settings.data_path / "models" / f"{base_dir.name}-lora{run_id}"
        say(f"training LoRA adapters (r={lora_r}) on {len(train)} row(s)")
        try:
            cost = train_lora(
                base_dir,
                train,
                out,
                lora_r=lora_r,
                epochs=epochs,
                batch_size=batch_size,
                learning_rate=learning_rate,
                max_len=max_len,
                seed=seed,
            )
        except BaseException:
            runs.update(run_id, status="failed")
            raise
        runs.update(run_id, output=str(out / "adapter"), cost={"train": cost})
        say(f"scoring base and tuned on {len(held)} held-out row(s)")
        wall0, cpu0 = time.perf_counter(), time.process_time()
        b = evaluate_causal_lm(base_dir, held, max_len=max_len)
        t = evaluate_causal_lm(base_dir, held, adapter=out / "adapter", max_len=max_len)
        eval_cost = {"wall_s": round(time.perf_counter() - wall0, 2), "cpu_s": round(time.process_time() - cpu0, 2)}
        metrics = {"held_out_rows": len(held), "base": b, "tuned": t, "gain": {"loss": round(b["loss"] - t["loss"], 4)}}
        runs.update(run_id, status="done", metrics=metrics, cost={"train": cost, "evaluate": eval_cost})
        return {**runs.get(run_id), "resumed": False}
    finally:
        runs.close()


def finetune_provider(
    ws: Workspace,
    model: str,
    dataset: str | Path,
    *,
    api_base: str | None = None,
    hyperparameters: dict[str, Any] | None = None,
    label: str = "",
    poll_s: float = 10.0,
    timeout_s: float | None = None,
    cost_per_token: float | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Submit ``dataset`` to an OpenAI-compatible fine-tuning API (``api_base``, default llm.api_base) for ``model``
    and wait for the job; a retry with the same inputs (and ``label``) resumes the recorded job. ``cost_per_token``:
    the provider's training price per token, recorded with the run's cost (None: tokens only, price unknown)."""
    from llmops_cli.adapters.llm.finetune_jobs import OpenAIFineTuningHTTP
    from llmops_cli.core.finetune.provider import run_provider_job

    read_ft_rows(dataset)  # one clear error for a bad file before anything is uploaded
    ls = ws.settings.llm
    api = OpenAIFineTuningHTTP(
        api_base=api_base or ls.api_base,
        api_key=ls.api_key.get_secret_value() if ls.api_key else None,
        timeout=ls.timeout,
        max_retries=ls.max_retries,
    )
    runs = finetune_runs(ws)
    try:
        return run_provider_job(
            api,
            runs,
            model=model,
            data=Path(dataset).read_bytes(),
            filename=Path(dataset).name,
            hyperparameters=hyperparameters,
            label=label,
            poll_s=poll_s,
            timeout_s=timeout_s,
            cost_per_token=cost_per_token,
            progress=progress,
        )
    finally:
        runs.close()
        api.close()
