"""The feedback loop: every answer logged, rated, reviewed by an LLM judge, and good ones promoted into the store.

- ``log``: the SQLite answer log (numbered migrations), ratings, reviews, promotions;
- ``recording``: ``record_ask``, ``record_llm_call`` (eval and batch calls) and ``RecordingLLM``;
- ``review``: the judge (helpfulness, relevance, publicness) with pydantic-validated JSON verdicts;
- ``promotion``: the promotion rule and ``Promoter.reconcile`` (write qualifying answers, remove the others);
- ``cache``: the semantic cache over promoted questions;
- ``export``: good answers as fine-tuning JSONL.

Settings-to-adapter wiring is in ``llmops_cli.pipelines`` (``feedback_*`` functions), shared by the CLI and the DAG.
"""

from llmops_cli.core.feedback.log import LOG_FILE, AnswerLog, AnswerLogError, AnswerRecord, config_hash
from llmops_cli.core.feedback.recording import RecordingLLM, record_ask, record_llm_call

__all__ = [
    "LOG_FILE",
    "AnswerLog",
    "AnswerLogError",
    "AnswerRecord",
    "RecordingLLM",
    "config_hash",
    "record_ask",
    "record_llm_call",
]
