"""A test-only DAG for the multi-worker (Celery) Airflow: map indexes that each take a while, so that several run at
once and the Celery workers share them. Each reports where it ran (the task instance's hostname is the worker's)."""

from __future__ import annotations

import os
import time

from airflow.sdk import Param, dag, task


@dag(
    dag_id="llmops_test_spread",
    schedule=None,
    catchup=False,
    tags=["llmops-test"],
    params={
        "n": Param(4, type="integer", minimum=1, maximum=16, description="map indexes"),
        "seconds": Param(2.0, type="number", minimum=0, maximum=60, description="time each one takes"),
    },
)
def spread():
    @task
    def items(params=None) -> list[int]:
        return list(range(int(params["n"])))

    @task
    def work(i: int, params=None) -> dict:
        print(f"LLMOPS-SPREAD item {i} on {os.environ.get('LLMOPS_DEV_WORKER_ADDRESS', '?')}")
        time.sleep(float(params["seconds"]))
        # the worker's own HOME and working directory: nothing on disk shared with the other workers
        return {"i": i, "home": os.environ.get("HOME", ""), "cwd": os.getcwd()}

    work.expand(i=items())


spread()
