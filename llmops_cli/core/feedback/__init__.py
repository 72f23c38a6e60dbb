"""The feedback loop: every answer logged, rated, reviewed by an LLM judge, and good ones promoted into the store.

- ``log``: the answer log in the state database (named migrations), ratings, reviews, promotions;
- ``recording``: ``record_ask``, ``record_llm_call`` (eval and batch calls) and ``RecordingLLM``;
- ``review``: the judge (helpfulness, relevance, publicness) with pydantic-validated JSON verdicts;
- ``promotion``: the promotion rule and ``Promoter.reconcile`` (write qualifying answers, remove the others);
- ``cache``: the semantic cache over promoted questions;
- ``export``: good answers as fine-tuning JSONL.

The steps that run these with a workspace's parts are ``llmops_cli.entry.feedback`` (``rate``, ``review``,
``promote``, ``export``), shared by the CLI and the DAG.
"""

from llmops_cli.core.feedback.log import LOG_FILE, AnswerLog, AnswerLogError, AnswerRecord, answer_config_hash
from llmops_cli.core.feedback.recording import RecordingLLM, record_ask, record_llm_call

__all__ = [
    "LOG_FILE",
    "AnswerLog",
    "AnswerLogError",
    "AnswerRecord",
    "RecordingLLM",
    "answer_config_hash",
    "record_ask",
    "record_llm_call",
]
