"""Real worker processes (``cspdesk worker`` on RQ) against the test's own PostgreSQL database and a Redis
database of their own. Skipped when PostgreSQL or Redis is not reachable, except under CI=true."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import pytest
from django.db import connection

ROOT = Path(__file__).resolve().parents[2]
REDIS_URL = os.environ.get("CSPDESK_TEST_REDIS_URL", "redis://127.0.0.1:6379/14")
WORKER_APP = "cspdesk-scale-worker"


def _redis() -> Any:
    import redis

    try:
        client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3)
        client.ping()
    except Exception as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"Redis at {REDIS_URL} is unreachable, and CI requires it: {exc}")
        pytest.skip(f"needs Redis at {REDIS_URL} (set CSPDESK_TEST_REDIS_URL): {exc}")
    return client


@dataclass
class Cluster:
    """Workers, and the commands that start runs on them, sharing one environment."""

    env: dict[str, str]
    logs: Path
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    started: int = 0

    def start_worker(self) -> subprocess.Popen[bytes]:
        self.started += 1
        log = (self.logs / f"worker-{self.started}.log").open("wb")
        name = f"scale-{os.getpid()}-{self.started}"
        args = [sys.executable, "-m", "cspdesk", "worker", "--name", name]
        proc = subprocess.Popen(args, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        self.workers.append(proc)
        return proc

    def command(self, *args: str) -> subprocess.Popen[bytes]:
        log = (self.logs / f"{args[0]}-{time.monotonic_ns()}.log").open("wb")
        env = {**self.env, "DATABASE_URL": self.env["DATABASE_URL"].replace(WORKER_APP, "cspdesk-scale-command")}
        return subprocess.Popen([sys.executable, "-m", "cspdesk", *args], cwd=ROOT, env=env, stdout=log,
                                stderr=subprocess.STDOUT)  # fmt: skip

    def kill(self, proc: subprocess.Popen[bytes]) -> None:
        """SIGKILL the worker and its work horse (RQ forks one per job, in its own process group)."""
        family = [proc.pid] + [c.pid for c in psutil.Process(proc.pid).children(recursive=True)]
        for pid in family:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        proc.wait(timeout=10)
        self.workers.remove(proc)

    def stop(self) -> None:
        for proc in list(self.workers):
            self.kill(proc)

    def log_text(self) -> str:
        return "\n".join(f"== {p.name}\n{p.read_text(errors='replace')[-3000:]}" for p in sorted(self.logs.iterdir()))


@pytest.fixture
def cluster(transactional_db: None, tmp_path: Path, settings: Any) -> Iterator[Cluster]:
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL: worker processes share the test database")
    client = _redis()
    client.flushdb()  # this Redis database is the tests' own
    db = connection.settings_dict
    var = tmp_path / "worker-var"
    var.mkdir()
    (var / "secret_key").write_text(settings.SECRET_KEY)
    logs = tmp_path / "logs"
    logs.mkdir()
    pc = settings.PARTNER_CENTER
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}?application_name={WORKER_APP}",
        "CSPDESK_TASKS_BACKEND": "rq",
        "REDIS_URL": REDIS_URL,
        "CSPDESK_VAR_DIR": str(var),
        "EMAIL_BACKEND": "django.core.mail.backends.filebased.EmailBackend",
        "CSPDESK_WORK_LEASE_SECONDS": "3",
        "CSPDESK_WORK_RETRY_SECONDS": "1",
        "CSPDESK_MAIL_CLAIM_SECONDS": "3",  # a killed worker's e-mail is taken over soon
        "CSPDESK_BILLING_BUYERS_PER_PART": "1",  # many small parts, so a worker can be killed holding one
        "CSPDESK_IMPORT_CUSTOMERS_PER_PART": "1",
        "PARTNER_CENTER_BASE_URL": pc["BASE_URL"],
        "PARTNER_CENTER_AUTHORITY": pc["AUTHORITY"],
        "PARTNER_CENTER_AUTHORITY_USGOV": pc["AUTHORITY_USGOV"],
        "PARTNER_CENTER_REFRESH_TOKEN": pc.get("REFRESH_TOKEN") or "scale-tests",
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("CSPDESK_REQUIRE_POSTGRES", None)
    c = Cluster(env, logs)
    try:
        yield c
    finally:
        c.stop()
        client.flushdb()
