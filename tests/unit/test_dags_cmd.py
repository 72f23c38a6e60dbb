"""`llmops dags show`'s task table: what Airflow sends as numbers is shown as a user reads them."""

from __future__ import annotations

from llmops_cli.cli.dags_cmd import _whole


def test_a_whole_count_sent_as_a_float_is_shown_as_an_integer():
    assert [_whole(v) for v in (2.0, 0.0, 3, None, 1.5)] == [2, 0, 3, None, 1.5]
    assert str(_whole(2.0)) == "2"  # the table showed "2.0" retries
