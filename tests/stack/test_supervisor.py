"""`make run`'s supervisor: the whole stack comes up green, stops with no process left, and reuses its data;
misconfigurations end in one line that names the cause and the fix."""

from __future__ import annotations

import fcntl
import json
import os
import queue
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import psutil
import pytest

from helpdesk.env import Env, local_stack
from helpdesk.stack.embedded import NotReady, free_port, llama_server_binary
from helpdesk.stack.supervisor import Supervisor
from tests.fakes.openai_server import FakeOpenAI

ROOT = Path(__file__).resolve().parents[2]
HARNESS_VARS = ("DATABASE_URL", "REDIS_URL", "LLM_BASE_URL", "EMBEDDINGS_BASE_URL", "DJANGO_SETTINGS_MODULE")


@pytest.fixture
def var_dir():
    path = Path(tempfile.mkdtemp(prefix="hds-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def stack_env(var_dir: Path, **overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in HARNESS_VARS}
    env.update(
        HELPDESK_VAR_DIR=str(var_dir),
        HELPDESK_PORT=str(free_port()),
        HELPDESK_REDIS_PORT=str(free_port()),
        HELPDESK_LLM_PORT=str(free_port()),
        HELPDESK_LLM_TOOLS_PORT=str(free_port()),
    )
    env.update(overrides)
    return env


def command_lines(processes: list[psutil.Process]) -> str:
    """The command lines of `processes` that still exist (a short-lived helper may have just exited)."""
    lines = []
    for process in processes:
        try:
            lines.append(" ".join(process.cmdline()))
        except psutil.Error:
            continue
    return " ".join(lines)


class Stack:
    """`python -m helpdesk.stack` (what `make run` runs), with its output read line by line."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "helpdesk.stack"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def wait_for(self, needle: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self._queue.get(timeout=1)
            except queue.Empty:
                continue
            if line is None:
                raise AssertionError(f"stack exited before {needle!r}:\n" + "\n".join(self.lines))
            self.lines.append(line)
            if needle in line:
                return
        raise AssertionError(f"no {needle!r} within {timeout}s:\n" + "\n".join(self.lines))

    def finish(self, timeout: float = 90) -> int:
        code = self.proc.wait(timeout=timeout)
        while True:
            try:
                line = self._queue.get(timeout=2)
            except queue.Empty:
                break
            if line is None:
                break
            self.lines.append(line)
        return code

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    @property
    def web_url(self) -> str:
        return f"http://127.0.0.1:{self.env['HELPDESK_PORT']}"


def run_to_failure(env: dict[str, str]) -> tuple[int, str]:
    result = subprocess.run(
        [sys.executable, "-m", "helpdesk.stack"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return result.returncode, result.stdout + result.stderr


def the_error(output: str) -> str:
    errors = [line for line in output.splitlines() if line.startswith("[stack] error:")]
    assert len(errors) == 1, output
    assert "Traceback" not in output, output
    return errors[0]


@pytest.mark.slow
def test_stack_comes_up_green_stops_cleanly_and_reuses_its_data(var_dir):
    env = stack_env(var_dir, HEALTHZ_TOKEN="operator-chosen-healthz-token")
    stack = Stack(env)
    try:
        stack.wait_for("/healthz is green", timeout=300)
        stack.wait_for("Stop with Ctrl-C", timeout=10)
        with urllib.request.urlopen(f"{stack.web_url}/healthz", timeout=10) as response:
            assert (response.status, json.load(response)) == (200, {"status": "ok"})
        # A token set in the supervisor's environment is the one the children accept.
        request = urllib.request.Request(
            f"{stack.web_url}/healthz", headers={"Authorization": "Bearer operator-chosen-healthz-token"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200
            body = json.load(response)
        assert {name: c["status"] for name, c in body["checks"].items()} == {
            "database": "ok",
            "pgvector": "ok",
            "redis": "ok",
            "celery": "ok",
            "llm": "ok",
            "embeddings": "ok",
            "pii": "ok",
        }
        assert body["checks"]["llm"]["detail"] == "smollm2-135m-instruct"
        descendants = psutil.Process(stack.proc.pid).children(recursive=True)
        commands = command_lines(descendants)
        for part in ("pginstall/bin/postgres", "valkey-server", "llama_cpp.server", "celery", "daphne"):
            assert part in commands, part
        # Answers and tool decisions each have their own model server (docs/adr/0005): answers on
        # llama-server when its binary is installed, tool decisions on llama_cpp.server; neither cuts off
        # an answer for another request.
        answers_on_llama_server = llama_server_binary() is not None
        assert commands.count("llama_cpp.server") == (1 if answers_on_llama_server else 2)
        assert commands.count("llama-server --model") == (1 if answers_on_llama_server else 0)
        assert commands.count("--chat_format chatml-function-calling") == 1
        assert commands.count("--interrupt_requests False") == commands.count("llama_cpp.server")
        assert (var_dir / "run" / "stack.json").exists()
        assert "demo company 'nimbus' loaded" in stack.output
        assert "nina       Admin" in stack.output
        # Nothing public: the demo password and SECRET_KEY were made for this install, readable by its
        # owner only, and the password printed is the one kept.
        password = (var_dir / "demo_password").read_text()
        assert password != "helpdesk-demo"
        assert f"Demo logins (password {password}):" in stack.output
        for secret in ("demo_password", "secret_key"):
            assert stat.S_IMODE((var_dir / secret).stat().st_mode) == 0o600, secret
    finally:
        stack.proc.send_signal(signal.SIGINT)  # what Ctrl-C sends
    assert stack.finish() == 0, stack.output
    assert "received SIGINT: stopping every part" in stack.output
    assert stack.output.rstrip().endswith("[stack] stopped")
    time.sleep(0.5)
    left = [p for p in descendants if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert left == [], [p.cmdline() for p in left]
    assert not (var_dir / "run" / "stack.json").exists()

    # A second run with an external Redis starts no Valkey of its own; then it is killed outright.
    external = Stack({**env, "HELPDESK_PORT": str(free_port()), "REDIS_URL": os.environ["REDIS_URL"]})
    try:
        external.wait_for("/healthz is green", timeout=300)
        killed = psutil.Process(external.proc.pid).children(recursive=True)
        commands = command_lines(killed)
        assert "valkey-server" not in commands
        assert "pginstall/bin/postgres" in commands
        assert "starting embedded Valkey" not in external.output
    finally:
        external.proc.send_signal(signal.SIGKILL)
    external.finish()
    # Its children notice their parent died (PDEATHSIG) and stop by themselves.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and any(
        p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in killed
    ):
        time.sleep(0.5)
    left = [p.cmdline() for p in killed if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert left == []
    assert (var_dir / "run" / "stack.json").exists()  # the killed run could not clean up after itself

    # A third run recovers from the killed one and reuses the data: the demo company is found, not created.
    third = Stack({**env, "HELPDESK_PORT": str(free_port())})
    try:
        third.wait_for("/healthz is green", timeout=300)
    finally:
        third.proc.send_signal(signal.SIGTERM)
    assert third.finish() == 0, third.output
    assert "removed the stale state file of a previous run that did not stop cleanly" in third.output
    assert "demo company 'nimbus' already loaded" in third.output


def test_port_taken_is_one_line_with_the_fix(var_dir):
    env = stack_env(var_dir)
    with FakeOpenAI() as holder_llm:
        env["LLM_BASE_URL"] = holder_llm.base_url
        blocker = __import__("socket").socket()
        blocker.bind(("127.0.0.1", int(env["HELPDESK_PORT"])))
        blocker.listen()
        try:
            code, output = run_to_failure(env)
        finally:
            blocker.close()
    assert code == 1
    error = the_error(output)
    assert f"port {env['HELPDESK_PORT']} (web server) is already in use by" in error
    assert "set HELPDESK_PORT to a free port" in error
    assert not (var_dir / "pgdata").exists()  # nothing was started


def test_unreachable_llm_base_url(var_dir):
    dead = free_port()
    code, output = run_to_failure(stack_env(var_dir, LLM_BASE_URL=f"http://127.0.0.1:{dead}/v1"))
    assert code == 1
    error = the_error(output)
    assert error.startswith(f"[stack] error: LLM_BASE_URL http://127.0.0.1:{dead}/v1 is unreachable (")
    assert error.endswith("start that server, or unset LLM_BASE_URL to use the embedded one")


def test_database_url_without_pgvector(var_dir):
    system_pg = "postgresql://postgres@127.0.0.1:5432/postgres"
    try:
        import psycopg

        with psycopg.connect(system_pg, connect_timeout=2) as conn:
            has_vector = conn.execute(
                "SELECT count(*) FROM pg_available_extensions WHERE name='vector'"
            ).fetchone()
    except Exception:
        pytest.skip("needs a PostgreSQL without pgvector on 127.0.0.1:5432 (the machine's system PostgreSQL)")
    if has_vector and has_vector[0]:
        pytest.skip("the PostgreSQL on 127.0.0.1:5432 has pgvector")
    with FakeOpenAI() as llm:
        env = stack_env(
            var_dir, DATABASE_URL=system_pg, REDIS_URL=os.environ["REDIS_URL"], LLM_BASE_URL=llm.base_url
        )
        code, output = run_to_failure(env)
    assert code == 1
    assert the_error(output) == (
        "[stack] error: DATABASE_URL points at a PostgreSQL without the pgvector extension: install "
        "pgvector on that server (package postgresql-NN-pgvector), or unset DATABASE_URL to use the "
        "embedded PostgreSQL"
    )


def test_unreachable_database_url(var_dir):
    dead = free_port()
    with FakeOpenAI() as llm:
        env = stack_env(
            var_dir,
            DATABASE_URL=f"postgresql://postgres@127.0.0.1:{dead}/helpdesk",
            REDIS_URL=os.environ["REDIS_URL"],
            LLM_BASE_URL=llm.base_url,
        )
        code, output = run_to_failure(env)
    assert code == 1
    error = the_error(output)
    assert error.startswith("[stack] error: DATABASE_URL: cannot connect (")
    assert error.endswith("check the URL, or unset it to use the embedded PostgreSQL")


def test_a_second_supervisor_is_refused(var_dir):
    run_dir = var_dir / "run"
    run_dir.mkdir(parents=True)
    (run_dir / "stack.json").write_text(json.dumps({"supervisor": 4242, "children": {}}))
    with (run_dir / "stack.lock").open("a+") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        code, output = run_to_failure(stack_env(var_dir))
    assert code == 1
    assert the_error(output) == (
        f"[stack] error: another `make run` is already running (pid 4242) on {var_dir}: "
        "stop it first (Ctrl-C in its terminal, or kill 4242)"
    )
    assert (run_dir / "stack.json").exists()  # the live run's state is left alone


def test_stale_state_of_a_killed_run_is_cleaned_up(var_dir):
    leftover = subprocess.Popen(["sleep", "600"], start_new_session=True)
    try:
        run_dir = var_dir / "run"
        run_dir.mkdir(parents=True)
        started = psutil.Process(leftover.pid).create_time()
        (run_dir / "stack.json").write_text(
            json.dumps(
                {"supervisor": 999999, "children": {"valkey": {"pid": leftover.pid, "started": started}}}
            )
        )
        (run_dir / "stack.lock").touch()  # no process holds the lock: its supervisor is gone
        dead = free_port()
        code, output = run_to_failure(stack_env(var_dir, LLM_BASE_URL=f"http://127.0.0.1:{dead}/v1"))
        assert leftover.wait(timeout=10) == -signal.SIGTERM
    finally:
        if leftover.poll() is None:
            leftover.kill()
    assert (
        f"[stack] stopped valkey (pid {leftover.pid}) left running by a previous run that was killed"
        in output
    )
    assert "[stack] removed the stale state file of a previous run that did not stop cleanly" in output
    assert code == 1  # then it went on, and stopped at the next problem: the unreachable LLM
    assert "LLM_BASE_URL" in the_error(output)


def test_a_recorded_pid_now_owned_by_another_process_is_left_alone(var_dir):
    bystander = subprocess.Popen(["sleep", "600"], start_new_session=True)
    try:
        run_dir = var_dir / "run"
        run_dir.mkdir(parents=True)
        (run_dir / "stack.json").write_text(
            json.dumps({"supervisor": 1, "children": {"valkey": {"pid": bystander.pid, "started": 12.0}}})
        )
        dead = free_port()
        run_to_failure(stack_env(var_dir, LLM_BASE_URL=f"http://127.0.0.1:{dead}/v1"))
        assert bystander.poll() is None
    finally:
        bystander.kill()


class FakeHealthz:
    """A web server whose /healthz is red, and shows which parts only to a caller with the right token."""

    RED = {
        "celery": {"status": "down", "detail": "no Celery worker answered a ping"},
        "llm": {"status": "down", "detail": "LLM_MODEL 'x' is not served at http://127.0.0.1:9/v1"},
        "redis": {"status": "ok", "detail": "redis-compatible 8.0"},
    }

    def __init__(self) -> None:
        self.token = ""
        self.authorizations: list[str | None] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                authorization = self.headers.get("Authorization")
                fake.authorizations.append(authorization)
                body: dict[str, object] = {"status": "down"}
                if fake.token and authorization == f"Bearer {fake.token}":
                    body["checks"] = fake.RED
                payload = json.dumps(body).encode()
                self.send_response(503)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fake_healthz() -> Iterator[FakeHealthz]:
    fake = FakeHealthz()
    yield fake
    fake.close()


def supervisor_for(var_dir: Path, port: int, **environ: str) -> Supervisor:
    env = Env({"HELPDESK_VAR_DIR": str(var_dir), "HELPDESK_PORT": str(port), **environ})
    return Supervisor(env=env, local=local_stack(env))


def test_each_run_gives_its_children_a_healthz_token_of_its_own(var_dir):
    supervisor = supervisor_for(var_dir, free_port())
    token = supervisor.child_env()["HEALTHZ_TOKEN"]
    assert len(token) >= 32
    assert supervisor.child_env()["HEALTHZ_TOKEN"] == token  # every child gets the same one
    assert supervisor_for(var_dir, free_port()).child_env()["HEALTHZ_TOKEN"] != token
    # One the operator chose is passed on instead, so their monitoring keeps working under `make run`.
    chosen = supervisor_for(var_dir, free_port(), HEALTHZ_TOKEN="operator-chosen")
    assert chosen.child_env()["HEALTHZ_TOKEN"] == "operator-chosen"


def test_a_red_healthz_names_the_red_parts_read_with_the_childrens_token(var_dir, fake_healthz):
    supervisor = supervisor_for(var_dir, fake_healthz.port)
    token = supervisor.child_env()["HEALTHZ_TOKEN"]
    fake_healthz.token = token
    with pytest.raises(NotReady) as raised:
        supervisor.wait_healthy(timeout=1.5)
    assert str(raised.value) == (
        "/healthz stayed red: celery: no Celery worker answered a ping; "
        "llm: LLM_MODEL 'x' is not served at http://127.0.0.1:9/v1"
    )
    assert set(fake_healthz.authorizations) == {f"Bearer {token}"}
