"""The local Airflow launcher and dev stack without servers: what gets installed into Airflow's venv (checkout or
wheel), that printed shell lines carry no secret, and that a Celery worker's hostname is its own address."""

from __future__ import annotations

import importlib
import json
import subprocess
from pathlib import Path

from llmops_cli.devstack import airflow as local_airflow
from llmops_cli.devstack.stack import Stack

REPO = Path(__file__).resolve().parents[2]


def test_a_checkout_is_installed_editable_and_reinstalled_when_its_requirements_change():
    spec, key = local_airflow.project_requirement()
    assert spec == ["-e", str(REPO)]
    assert (REPO / "pyproject.toml").read_bytes() in key


class _Dist:
    version = "9.8.7"

    def __init__(self, direct: dict | None):
        self.direct = direct

    def read_text(self, name: str) -> str | None:
        return json.dumps(self.direct) if name == "direct_url.json" and self.direct is not None else None


def test_an_installed_wheel_installs_the_same_wheel_or_version(monkeypatch, tmp_path):
    monkeypatch.setattr(local_airflow, "source_checkout", lambda: None)
    wheel = tmp_path / "llmops_cli-9.8.7-py3-none-any.whl"
    wheel.write_bytes(b"PK")
    dists = {"direct": _Dist({"url": wheel.as_uri(), "archive_info": {}})}
    monkeypatch.setattr(local_airflow.importlib.metadata, "distribution", lambda name: dists["direct"])
    assert local_airflow.project_requirement()[0] == [str(wheel)]
    dists["direct"] = _Dist({"url": (tmp_path / "gone.whl").as_uri(), "archive_info": {}})
    assert local_airflow.project_requirement()[0] == ["llmops-cli==9.8.7"]  # the wheel file is gone: the index
    dists["direct"] = _Dist(None)
    assert local_airflow.project_requirement()[0] == ["llmops-cli==9.8.7"]


def test_the_dags_come_from_the_package_itself():
    assert (local_airflow.PACKAGE_DAGS / "llmops_ingest.py").exists()
    assert local_airflow.PACKAGE_DAGS.parent.name == "llmops_cli"


def test_env_lines_read_the_passwords_from_their_files(tmp_path):
    home = tmp_path / "airflow"
    home.mkdir()
    af = local_airflow.LocalAirflow(home=home, port=8123)
    local_airflow.secret_file(af.passwords_file, lambda: json.dumps({"admin": "s3cret-airflow"}))
    af.save()
    lines = "\n".join(local_airflow.shell_env_lines(af))
    assert "s3cret-airflow" not in lines and str(af.passwords_file) in lines
    r = subprocess.run(["bash", "-c", lines + '\nprintf %s "$LLMOPS_AIRFLOW_PASSWORD"'], capture_output=True, text=True)
    assert r.stdout == "s3cret-airflow"

    (tmp_path / "postgres.password").write_text("s3cret-pg\n")
    stack = Stack(str(tmp_path), "pgvector", "local", 0, 5544)
    lines = "\n".join(stack.env_lines())
    assert "s3cret" not in lines
    r = subprocess.run(
        ["bash", "-c", lines + '\nprintf "%s|%s" "$LLMOPS_STORE_URL" "$LLMOPS_AIRFLOW_PASSWORD"'],
        capture_output=True,
        text=True,
    )
    assert r.stdout == "postgresql://postgres:s3cret-pg@127.0.0.1:5544/llmops|s3cret-airflow"
    assert stack.urls()["LLMOPS_STATE_URL"] == "postgresql://postgres:s3cret-pg@127.0.0.1:5544/llmops"


def test_a_secret_file_is_private_and_kept(tmp_path):
    p = tmp_path / "jwt_secret"
    first = local_airflow.secret_file(p, lambda: "one")
    assert local_airflow.secret_file(p, lambda: "two") == first == "one"
    assert p.stat().st_mode & 0o077 == 0


def test_a_workers_hostname_callable_is_its_own_address(monkeypatch, tmp_path):
    af = local_airflow.LocalAirflow(home=tmp_path)
    w = local_airflow.Worker("worker-2", "127.0.0.3", str(tmp_path / "w2"))
    # the dotted path Airflow imports (AIRFLOW__CORE__HOSTNAME_CALLABLE) in the worker's environment
    env = af.worker_env(w)
    module, _, name = env["AIRFLOW__CORE__HOSTNAME_CALLABLE"].rpartition(".")
    monkeypatch.setenv(local_airflow.WORKER_ADDRESS_ENV, env[local_airflow.WORKER_ADDRESS_ENV])
    assert getattr(importlib.import_module(module), name)() == "127.0.0.3"
    assert env["HOME"] == str(w.home) and env["AIRFLOW_HOME"] == str(w.airflow_home)
    assert env["AIRFLOW__LOGGING__BASE_LOG_FOLDER"] == str(w.log_folder)


def test_state_round_trip_keeps_the_workers(tmp_path):
    af = local_airflow.LocalAirflow(
        home=tmp_path,
        port=1,
        log_server_port=2,
        executor="celery",
        workers=[local_airflow.Worker("worker-1", "127.0.0.2", str(tmp_path / "w1"))],
        postgres_folder="/x",
    )
    af.save()
    back = local_airflow.LocalAirflow.load(tmp_path)
    assert back is not None and back.same_setup(af) and back.worker("127.0.0.2").home == tmp_path / "w1" / "home"
    assert back.components() == ["api-server", "scheduler", "dag-processor", "worker-1", "worker-1-logs"]
    assert (tmp_path / local_airflow.STATE_FILE).stat().st_mode & 0o077 == 0


def test_a_servers_recorded_state_is_private_it_may_hold_the_postgres_password(tmp_path):
    # postgres.start records its password in devstack.json; the file was world-readable (0644) beside the 0600
    # postgres.password it copies
    from llmops_cli.devstack import read_state, write_state

    (tmp_path / "devstack.json").write_text("{}")
    (tmp_path / "devstack.json").chmod(0o644)  # one written before: replaced by a private one
    write_state(tmp_path, {"kind": "postgres", "password": "pw-secret", "port": 5})
    assert (tmp_path / "devstack.json").stat().st_mode & 0o777 == 0o600
    assert read_state(tmp_path) == {"kind": "postgres", "password": "pw-secret", "port": 5}
    write_state(tmp_path, {"kind": "postgres", "port": 6})
    assert read_state(tmp_path)["port"] == 6 and (tmp_path / "devstack.json").stat().st_mode & 0o777 == 0o600


def test_dev_status_without_a_stack_says_so_and_a_stopped_airflow_reads_down(monkeypatch, capsys, tmp_path):
    # it printed a table of "down" servers for a folder that holds no stack, and " down" (a blank URL) for Airflow
    from llmops_cli.devstack import stack as dev
    from tests.unit.test_machine_contract import run

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LLMOPS_DEV_HOME", raising=False)
    code, out, err = run(monkeypatch, capsys, "dev", "status")
    assert code == 1 and "no dev stack in" in err and "llmops dev up" in err and "postgres" not in out
    st = {"root": str(tmp_path), "store": "pgvector", "postgres": True, "chroma": None, "airflow": {}, "running": False}
    monkeypatch.setattr(dev, "status", lambda root=None: st)
    code, out, _ = run(monkeypatch, capsys, "dev", "status")
    rows = {line.split("│")[1].strip(): line.split("│")[2] for line in out.splitlines() if line.count("│") == 3}
    assert code == 1 and rows["postgres"].strip() == "up" and rows["airflow"].startswith(" down")
