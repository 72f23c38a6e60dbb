"""Test-only DAGs for the Airflow control-plane tests (loaded from an extra DAG bundle by the test server)."""

from __future__ import annotations

import time
from datetime import datetime

from airflow.sdk import Asset, Param, dag, task

FAIL_MARKER = "LLMOPS-TEST-FAILURE-MARKER"


@dag(dag_id="llmops_test_quick", schedule=None, catchup=False, tags=["llmops-test"])
def quick():
    @task
    def numbers() -> list[int]:
        return [1, 2, 3, 4]

    @task
    def square(n: int) -> int:
        print(f"squaring {n}")
        return n * n

    @task
    def total(values) -> int:
        s = sum(values)
        print(f"total {s}")
        return s

    total(square.expand(n=numbers()))


@dag(dag_id="llmops_test_fail", schedule=None, catchup=False, tags=["llmops-test"])
def fail():
    @task
    def items() -> list[int]:
        return [0, 1, 2]

    @task(retries=0)
    def work(i: int) -> int:
        if i == 1:
            print(f"{FAIL_MARKER}: item {i} is bad")
            raise ValueError(f"item {i} cannot be processed")
        return i

    @task
    def after(values) -> int:
        return len(list(values))

    after(work.expand(i=items()))


@dag(
    dag_id="llmops_test_params",
    schedule=None,
    catchup=False,
    tags=["llmops-test"],
    params={"n": Param(3, type="integer", minimum=1, maximum=10, description="how many")},
)
def params_dag():
    @task
    def echo(params=None) -> int:
        print(f"n = {params['n']}")
        return params["n"]

    echo()


@dag(
    dag_id="llmops_test_slow",
    schedule=None,
    catchup=False,
    tags=["llmops-test"],
    params={"seconds": Param(8, type="integer", minimum=0, maximum=600)},
)
def slow():
    @task
    def sleep(params=None) -> None:
        for i in range(params["seconds"]):
            print(f"tick {i}")
            time.sleep(1)

    sleep()


@dag(
    dag_id="llmops_test_asset_consumer", schedule=Asset("llmops://test/ci-signal"), catchup=False, tags=["llmops-test"]
)
def asset_consumer():
    @task
    def react(triggering_asset_events=None) -> str:
        print("started by an asset event")
        return "ok"

    react()


def daily(dag_id: str, seconds: int = 0):
    """A scheduled DAG for backfills: one task that reports its logical date after ``seconds``. (Two of them:
    Airflow runs one backfill of a DAG at a time, and marks one completed up to 30 s after its last run ended.)"""

    @dag(dag_id=dag_id, schedule="@daily", start_date=datetime(2026, 1, 1), catchup=False, tags=["llmops-test"])
    def daily_dag():
        @task
        def stamp(logical_date=None) -> str:
            time.sleep(seconds)
            print(f"logical date {logical_date}")
            return str(logical_date)[:10]

        stamp()

    return daily_dag()


quick()
fail()
params_dag()
slow()
asset_consumer()
daily("llmops_test_daily")
daily("llmops_test_daily_b", seconds=20)  # runs long enough to be paused and cancelled
