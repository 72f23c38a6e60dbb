"""An OpenAI-compatible fine-tuning API (``/v1/files`` with purpose ``fine-tune``, ``/v1/fine_tuning/jobs``) over
plain HTTP, with the batch client's transport, retries and error translation (``OpenAIBatchHTTP``)."""

from __future__ import annotations

from typing import Any

from llmops_cli.adapters.llm.batch_api import OpenAIBatchHTTP


class OpenAIFineTuningHTTP(OpenAIBatchHTTP):
    api_name = "fine-tuning API"  # its errors said "batch API at ..."

    def upload_training_file(self, data: bytes, filename: str) -> str:
        doc = self._call("POST", "/files", data={"purpose": "fine-tune"}, files={"file": (filename, data)})
        return str(doc["id"])

    def create_job(
        self,
        model: str,
        training_file: str,
        *,
        hyperparameters: dict[str, Any] | None = None,
        suffix: str | None = None,
        metadata: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"model": model, "training_file": training_file}
        if hyperparameters:
            body["hyperparameters"] = hyperparameters
        if suffix:
            body["suffix"] = suffix
        if metadata:
            body["metadata"] = metadata
        return self._call("POST", "/fine_tuning/jobs", json=body)

    def retrieve_job(self, job_id: str) -> dict[str, Any]:
        return self._call("GET", f"/fine_tuning/jobs/{job_id}")
