"""Tasks execute through the CeleryExecutor: a real `airflow celery worker` on the local Redis.

The production stack runs Celery workers (docker-compose.yml); no Docker engine runs here, so this
test starts the same pieces as processes on this machine: a Postgres metadata database (Celery
refuses SQLite), the api-server (Airflow 3 workers report through its execution API), one Celery
worker (broker: Redis database 13, so nothing else on that Redis is touched), and a tiny DAG run
with `dag.test(use_executor=True)`, which sends each task to the executor. The task writes the pid
of the process that ran it: it must be a child of the worker, not the test. Skipped, with the
reason, when Redis does not answer on 127.0.0.1:6379 or the Celery provider is not installed.
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

REDIS = ("127.0.0.1", 6379)
REDIS_DB = 13  # a database of its own on a Redis others may use; emptied of our keys afterwards
BIN = Path(sys.executable).parent


def _redis_answers() -> bool:
    try:
        with socket.create_connection(REDIS, timeout=1) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


DAG_FILE = textwrap.dedent('''
    import os
    from datetime import datetime

    from airflow.sdk import DAG, task

    with DAG(dag_id="celery_probe", schedule=None, start_date=datetime(2026, 1, 1), catchup=False,
             tags=["test"], default_args={"owner": "test", "retries": 0}):

        @task
        def where_am_i() -> int:
            out = os.environ["CELERY_PROBE_OUT"]
            with open(out, "a") as f:
                f.write(f"{os.getpid()} {os.getppid()}\\n")
            return os.getpid()

        where_am_i()
''')

DRIVER = textwrap.dedent('''
    import sys
    from airflow.dag_processing.dagbag import DagBag

    dag = DagBag(dag_folder=sys.argv[1]).dags["celery_probe"]
    run = dag.test(use_executor=True)
    print("STATE", run.state)
''')


@pytest.mark.slow
def test_task_runs_on_a_celery_worker(pg_admin_dsn, tmp_path):
    if not _redis_answers():
        pytest.skip("no Redis answers on 127.0.0.1:6379: cannot run a real Celery worker")
    try:
        import airflow.providers.celery  # noqa: F401
    except ImportError:
        pytest.skip("apache-airflow-providers-celery is not installed")

    database = f"airflow_celery_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_admin_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(database)))
    base = pg_admin_dsn.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg2://")
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "celery_probe.py").write_text(DAG_FILE)
    out = tmp_path / "ran_in.txt"
    port = _free_port()
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(tmp_path / "home"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"{base}/{database}",
        "AIRFLOW__CELERY__BROKER_URL": f"redis://{REDIS[0]}:{REDIS[1]}/{REDIS_DB}",
        "AIRFLOW__CELERY__RESULT_BACKEND": f"db+{base.replace('+psycopg2', '')}/{database}",
        "AIRFLOW__CELERY__WORKER_CONCURRENCY": "1",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
        "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(tmp_path / "logs"),
        "CELERY_PROBE_OUT": str(out),
    }
    _flush_redis_db()  # a run killed earlier may have left messages behind
    started = time.monotonic()
    migrate = subprocess.run([str(BIN / "airflow"), "db", "migrate"], env=env, capture_output=True, text=True,
                             timeout=600)
    assert migrate.returncode == 0, migrate.stderr[-3000:]
    print(f"\nmetadata DB migrated on Postgres in {time.monotonic() - started:.1f} s")

    logs = {name: (tmp_path / f"{name}.log").open("w") for name in ("api", "worker")}
    procs = {
        "api": subprocess.Popen([str(BIN / "airflow"), "api-server", "--port", str(port), "--host", "127.0.0.1"],
                                env=env, stdout=logs["api"], stderr=subprocess.STDOUT, start_new_session=True),
        "worker": subprocess.Popen([str(BIN / "airflow"), "celery", "worker",
                                    "--concurrency", "1", "--without-mingle", "--without-gossip"],
                                   env=env, stdout=logs["worker"], stderr=subprocess.STDOUT, start_new_session=True),
    }
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                assert procs["api"].poll() is None, (tmp_path / "api.log").read_text()[-3000:]
                time.sleep(1)
        else:
            pytest.fail("api-server did not listen within 180 s")
        driver = tmp_path / "driver.py"
        driver.write_text(DRIVER)
        run = subprocess.run([sys.executable, str(driver), str(dags)], env=env, capture_output=True, text=True,
                             timeout=300)
        worker_log = (tmp_path / "worker.log").read_text()
        assert "STATE success" in run.stdout, (run.stdout[-2000:], run.stderr[-3000:], worker_log[-3000:])
        pid, parent = (int(x) for x in out.read_text().split()[:2])
        family = {procs["worker"].pid, *_descendants(procs["worker"].pid)}
        assert pid != os.getpid()
        assert pid in family or parent in family, f"task ran in pid {pid}, not under the Celery worker"
        assert "execute_workload" in worker_log or "celery" in worker_log.lower()
        print(f"task ran in pid {pid} under the Celery worker {procs['worker'].pid}; "
              f"total {time.monotonic() - started:.1f} s")
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, 15)
        for proc in procs.values():
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, 9)
        for f in logs.values():
            f.close()
        _flush_redis_db()
        with psycopg.connect(pg_admin_dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(database)))


def _flush_redis_db() -> None:
    """FLUSHDB on our own Redis database number (the broker's queues and bindings of this test)."""
    try:
        with socket.create_connection(REDIS, timeout=2) as s:
            s.sendall(f"SELECT {REDIS_DB}\r\nFLUSHDB\r\n".encode())
            s.recv(64)
    except OSError:
        pass


def _descendants(pid: int) -> set[int]:
    """All processes below `pid` (from /proc), gathered while they are still alive."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    out, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in out:
                out.add(child)
                todo.append(child)
    return out
