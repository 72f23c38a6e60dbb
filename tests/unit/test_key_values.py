"""One key=value parser (``cli.state.parse_key_values``) for --where and trigger-dag's -p: the split, the key and
the error are shared; each flag keeps its own values (--where: scalars; -p: JSON, else the text as written)."""

from __future__ import annotations

import pytest

from llmops_cli.cli.airflow_trigger_cmd import build_conf
from llmops_cli.cli.state import parse_key_values
from llmops_cli.errors import UsageError


def test_where_values_are_stripped_scalars():
    assert parse_key_values([" a = 1", "b=x ", "c=TRUE", "d=2.5", "e=x=y", "n=007"]) == {
        "a": 1,
        "b": "x",
        "c": True,
        "d": 2.5,
        "e": "x=y",
        "n": 7,
    }
    with pytest.raises(UsageError) as e:
        parse_key_values(["format"])
    assert e.value.message == "--where 'format' is not key=value" and e.value.hint == "write it as --where key=value"


def test_a_flag_brings_its_own_values_and_hint():
    assert parse_key_values(["k= v", "k=w "], "-x", value=str.upper) == {"k": "W "}  # raw text in, later key wins
    with pytest.raises(UsageError) as e:
        parse_key_values(["k"], "-x", value=str, hint="write it as -x key=value (repeatable)")
    assert e.value.message == "-x 'k' is not key=value" and e.value.hint == "write it as -x key=value (repeatable)"


def test_trigger_params_are_json_else_the_text_as_written():
    # differs from --where on purpose: a run conf takes lists and keeps 007 and spaces as typed
    assert build_conf('{"a": 1}', None, ["n=007", "s= a ", "l=[1, 2]", "a=2", "t=true"]) == {
        "a": 2,
        "n": "007",
        "s": " a ",
        "l": [1, 2],
        "t": True,
    }
    with pytest.raises(UsageError) as e:
        build_conf(None, None, ["novalue"])
    assert (
        e.value.message == "-p 'novalue' is not key=value" and e.value.hint == "write it as -p key=value (repeatable)"
    )
