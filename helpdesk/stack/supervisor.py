"""`make run`: start every part in order, wait until each is ready, watch them, and stop them all together.

Each of DATABASE_URL, REDIS_URL and LLM_BASE_URL replaces the matching embedded server, which is then not
started; EMBEDDINGS_BASE_URL switches embeddings from in-process to that server (checked before start).
Every failure is one line that names the part, the cause and the fix. Until the welcome text, a part that
exits ends the run; after it, the part is restarted with backoff (restart.py).
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from types import FrameType

from helpdesk.env import BASE_DIR, ConfigError, Env, LocalStack, local_stack
from helpdesk.stack import embedded
from helpdesk.stack.embedded import NotReady
from helpdesk.stack.preflight import (
    PreflightError,
    StackLock,
    check_external_database,
    check_external_redis,
    check_openai_compatible,
    check_port,
)
from helpdesk.stack.procs import Child
from helpdesk.stack.restart import Part, RestartPolicy, Watcher, log_says, postgres_clear_leftovers

DEFAULT_LLM_MODEL = "smollm2-135m-instruct"
# What `celery beat` logs once its scheduler runs.
BEAT_READY = "beat: Starting..."


class Shutdown(Exception):
    """Raised from the signal handler to unwind whatever the supervisor is waiting on."""


def say(message: str) -> None:
    print(f"[stack] {message}", flush=True)


@dataclass
class Supervisor:
    env: Env
    local: LocalStack
    children: list[Child] = field(default_factory=list)
    parts: list[Part] = field(default_factory=list)
    restart_policy: RestartPolicy = field(default_factory=RestartPolicy)
    lock: StackLock | None = None
    started_at: float = field(default_factory=time.monotonic)
    stopping: bool = False
    # /healthz shows which part is red only to staff or a token holder: each run makes a token, gives it
    # to its children, and reads the details with it (one the operator set is passed on instead).
    _own_healthz_token: str = field(default_factory=lambda: secrets.token_urlsafe(32), init=False, repr=False)

    # -- configuration ------------------------------------------------------------------------------

    @property
    def external_db(self) -> str | None:
        return self.env.optional("DATABASE_URL")

    @property
    def external_redis(self) -> str | None:
        return self.env.optional("REDIS_URL")

    @property
    def external_llm(self) -> str | None:
        return self.env.optional("LLM_BASE_URL")

    @property
    def healthz_token(self) -> str:
        return self.env.optional("HEALTHZ_TOKEN") or self._own_healthz_token

    def child_env(self) -> dict[str, str]:
        resolved = dict(os.environ)
        resolved.update(
            {
                "DJANGO_SETTINGS_MODULE": resolved.get("DJANGO_SETTINGS_MODULE", "helpdesk.settings.local"),
                "HELPDESK_VAR_DIR": str(self.local.var_dir),
                "DATABASE_URL": self.external_db or self.local.database_url,
                "REDIS_URL": self.external_redis or self.local.redis_url,
                "LLM_BASE_URL": self.external_llm or self.local.llm_base_url,
                **({} if self.external_llm else {"LLM_TOOLS_BASE_URL": self.local.llm_tools_base_url}),
                "LLM_MODEL": self.env.str("LLM_MODEL", DEFAULT_LLM_MODEL),
                "HEALTHZ_TOKEN": self.healthz_token,
                "PYTHONUNBUFFERED": "1",
                "HF_HUB_OFFLINE": "1",
                "TRANSFORMERS_OFFLINE": "1",
            }
        )
        return resolved

    @property
    def web_url(self) -> str:
        return f"http://{self.local.web_host}:{self.local.web_port}"

    # -- lifecycle ----------------------------------------------------------------------------------

    def preflight(self) -> None:
        self.lock = StackLock(self.local.var_dir / "run")
        for note in self.lock.acquire():
            say(note)
        check_port(self.local.web_port, "web server", "HELPDESK_PORT", self.local.web_host)
        if self.external_redis:
            check_external_redis(self.external_redis)
        else:
            check_port(self.local.redis_port, "embedded Valkey", "HELPDESK_REDIS_PORT")
        if self.external_llm:
            check_openai_compatible(self.external_llm, "LLM_BASE_URL", self.env.str("LLM_API_KEY", "none"))
        else:
            check_port(self.local.llm_port, "embedded LLM server", "HELPDESK_LLM_PORT")
            check_port(self.local.llm_tools_port, "embedded LLM server for tools", "HELPDESK_LLM_TOOLS_PORT")
            embedded.local_model_path()
            embedded.llm_server_for(tools=False, prefer=self.env.optional("HELPDESK_LLM_SERVER"))
        embeddings_url = self.env.optional("EMBEDDINGS_BASE_URL")
        if embeddings_url:
            check_openai_compatible(
                embeddings_url, "EMBEDDINGS_BASE_URL", self.env.str("EMBEDDINGS_API_KEY", "none")
            )
        if self.external_db:
            check_external_database(self.external_db)

    def _spawn(
        self,
        child: Child,
        probe: Callable[[], object] | None = None,
        timeout: float = 60,
        prepare: Callable[[Child], None] | None = None,
    ) -> Part:
        """Starts `child`; `probe` (given `timeout`) tells it is ready, at start and after each restart."""
        child.start()
        self.children.append(child)
        part = Part(child, probe, timeout, prepare, policy=self.restart_policy)
        self.parts.append(part)
        self._record()
        return part

    def _record(self, _: Child | None = None) -> None:
        assert self.lock is not None
        self.lock.record({c.name: c.pid for c in self.children if c.pid})

    def _ready(self, part: Part) -> None:
        started, child = time.monotonic(), part.child
        try:
            embedded.wait_until(part.probe, timeout=part.ready_timeout, what=child.name, child=child)
        except NotReady as exc:
            tail = child.log_tail()
            detail = f"\n[stack] last lines of {child.log_path}:\n{tail}" if tail else ""
            raise NotReady(f"{exc}{detail}") from None
        say(f"{child.name} ready in {time.monotonic() - started:.1f}s")

    def manage(self, *args: str, timeout: float = 600) -> str:
        result = subprocess.run(
            [sys.executable, str(BASE_DIR / "manage.py"), *args],
            env=self.child_env(),
            cwd=BASE_DIR,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if result.returncode != 0:
            lines = (result.stderr or result.stdout).strip().splitlines()
            raise NotReady(f"`manage.py {' '.join(args)}` failed: {lines[-1] if lines else 'no output'}")
        return result.stdout

    def start(self) -> None:
        log = self.local.log_dir
        env = self.child_env()
        if not self.external_db:
            say(f"starting embedded PostgreSQL + pgvector (data in {self.local.pg_data_dir})")
            data_dir, socket_dir = self.local.pg_data_dir, self.local.pg_socket_dir
            pg = embedded.postgres_child(
                data_dir=data_dir, socket_dir=socket_dir, log_path=log / "postgres.log", env=env
            )
            self._ready(
                self._spawn(
                    pg,
                    lambda: embedded.postgres_ready(socket_dir, self.local.pg_database),
                    60,
                    # Migrations and the demo load are not run again: the data survived.
                    lambda dead: postgres_clear_leftovers(
                        data_dir=data_dir, socket_dir=socket_dir, dead_pid=dead.pid
                    ),
                )
            )
        if not self.external_redis:
            say(f"starting embedded Valkey on 127.0.0.1:{self.local.redis_port}")
            vk = embedded.valkey_child(
                port=self.local.redis_port,
                data_dir=self.local.redis_data_dir,
                log_path=log / "valkey.log",
                env=env,
            )
            self._ready(self._spawn(vk, lambda: embedded.redis_ready(self.local.redis_url), 20))
        llm = llm_tools = None
        if not self.external_llm:
            prefer = self.env.optional("HELPDESK_LLM_SERVER")
            answers = embedded.llm_server_for(tools=False, prefer=prefer)
            say(
                f"starting the local LLM server on 127.0.0.1:{self.local.llm_port} "
                f"(SmolLM2-135M, bundled; {answers})"
            )
            llm = self._spawn(
                embedded.llm_child(
                    port=self.local.llm_port,
                    model_alias=env["LLM_MODEL"],
                    log_path=log / "llm.log",
                    env=env,
                    cwd=BASE_DIR,
                    server=answers,
                ),
                lambda: embedded.llm_ready(self.local.llm_base_url),
                180,
            )
            tools = embedded.llm_server_for(tools=True, prefer=prefer)
            say(
                f"starting the LLM server for tool decisions on 127.0.0.1:{self.local.llm_tools_port} "
                f"({tools})"
            )
            llm_tools = self._spawn(
                embedded.llm_child(
                    port=self.local.llm_tools_port,
                    model_alias=env["LLM_MODEL"],
                    log_path=log / "llm-tools.log",
                    env=env,
                    cwd=BASE_DIR,
                    chat_format="chatml-function-calling",
                    name="llm-tools",
                    server=tools,
                ),
                lambda: embedded.llm_ready(self.local.llm_tools_base_url),
                180,
            )
        say("applying migrations")
        self.manage("migrate", "--noinput")
        demo = json.loads(
            self.manage(
                "demo_load",
                "--json",
                "--origin",
                self.web_url,
                "--origin",
                f"http://localhost:{self.local.web_port}",
            )
        )
        say(f"demo company {demo['tenant']!r} {'loaded' if demo['created'] else 'already loaded'}")
        say("starting the Celery workers (background work; tools and handoff case files; voice) and beat")
        for child, ready_line in self.celery_children(env):
            self._spawn(child, log_says(child, ready_line), 120)
        say(f"starting Daphne on {self.web_url}")
        web = self._spawn(
            Child(
                "daphne",
                embedded.web_argv(host=self.local.web_host, port=self.local.web_port),
                log_path=log / "daphne.log",
                env=env,
                cwd=BASE_DIR,
                stop_timeout=15,
            ),
            lambda: embedded.http_ready(f"{self.web_url}/accounts/login/"),
            60,
        )
        for model_server in (llm, llm_tools):
            if model_server is not None:
                self._ready(model_server)
        self._ready(web)
        self.wait_healthy(timeout=180)
        self.print_welcome(demo)

    def celery_children(self, env: dict[str, str]) -> list[tuple[Child, str]]:
        """The Celery processes, each with the line its log shows once it is up.

        Two workers: a long ingestion never holds up "where is my order?", whose answer waits for it. A
        third transcribes voice messages, so a recording never waits behind either (apps/voice). Beat sends
        the periodic tasks (CELERY_BEAT_SCHEDULE: the retention run); its schedule file is run state, kept
        beside the stack's lock in var/run, and there is exactly one beat per stack.
        """
        log = self.local.log_dir
        celery = [sys.executable, "-m", "celery", "-A", "helpdesk"]
        children = []
        for name, queue, hostname in (
            ("celery", "celery", "helpdesk"),
            ("celery-tools", "tools,handoff", "tools"),
            ("celery-voice", "voice", "voice"),
        ):
            # One voice process: the Whisper model already uses both cores for one clip.
            concurrency = "1" if queue == "voice" else "2"
            argv = [*celery, "worker", "--loglevel", "INFO", "--queues", queue, "--concurrency", concurrency]
            argv += ["--hostname", f"{hostname}@%h"]
            worker = Child(name, argv, log_path=log / f"{name}.log", env=env, cwd=BASE_DIR, stop_timeout=30)
            children.append((worker, " ready."))
        schedule = self.local.var_dir / "run" / "celerybeat-schedule"
        beat_argv = [*celery, "beat", "--loglevel", "INFO", "--schedule", str(schedule)]
        beat = Child("celery-beat", beat_argv, log_path=log / "celery-beat.log", env=env, cwd=BASE_DIR)
        children.append((beat, BEAT_READY))
        return children

    def wait_healthy(self, *, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        body: dict[str, object] = {}
        request = urllib.request.Request(  # noqa: S310 (loopback URL we built)
            f"{self.web_url}/healthz", headers={"Authorization": f"Bearer {self.healthz_token}"}
        )
        while time.monotonic() < deadline:
            self.check_children()
            try:
                with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
                    body = json.load(response)
                    say(f"/healthz is green ({time.monotonic() - self.started_at:.1f}s after start)")
                    return
            except urllib.error.HTTPError as exc:
                body = json.load(exc)
            except (urllib.error.URLError, OSError, ValueError):
                pass
            time.sleep(1)
        checks = body.get("checks", {})
        down = (
            [f"{n}: {c['detail']}" for n, c in checks.items() if c.get("status") != "ok"]
            if isinstance(checks, dict)
            else []
        )
        raise NotReady("/healthz stayed red: " + ("; ".join(down) or "no answer"))

    def print_welcome(self, demo: dict[str, object]) -> None:
        logins = demo.get("logins", [])
        lines = [
            "",
            f"Helpdesk is running: {self.web_url}/",
            f"  chat widget on the demo company's website   {self.web_url}/demo/",
            f"  ...signed in as a customer (tools)          {self.web_url}/demo/?customer=cust-1001",
            f"  a phone texting the company (SMS)           {self.web_url}/demo/phone/",
            f"  tools and approvals (agents, admins)        {self.web_url}/staff/nimbus/tools/",
            f"  staff sign-in   {self.web_url}/accounts/login/",
            f"  Django admin    {self.web_url}/admin/",
            f"  health          {self.web_url}/healthz   (each part's details: sign in as operator)",
            f"  API schema      {self.web_url}/api/schema/",
            f"  metrics         {self.web_url}/metrics",
            f"Demo logins (password {demo.get('password')}):",
        ]
        if isinstance(logins, list):
            lines += [f"  {entry['username']:<10} {entry['roles']}" for entry in logins]
        lines += [f"Logs: {self.local.log_dir}/   Stop with Ctrl-C.", ""]
        print("\n".join(lines), flush=True)

    def check_children(self) -> None:
        for child in self.children:
            code = child.exit_code()
            if code is not None:
                raise NotReady(
                    f"{child.name} exited unexpectedly with code {code}; last lines of {child.log_path}:\n"
                    f"{child.log_tail()}"
                )

    def watch(self) -> None:
        """From the welcome text on, a part that exits is restarted (restart.py); a crash loop raises."""
        Watcher(self.parts, say=say, on_started=self._record).run()

    def stop(self) -> None:
        self.stopping = True
        for child in reversed(self.children):
            if child.exit_code() is None:
                say(f"stopping {child.name}")
            child.stop()
        if self.lock:
            self.lock.release()
        say("stopped")


def _raise_shutdown(signum: int, frame: FrameType | None) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise Shutdown(signal.Signals(signum).name)


def run() -> int:
    try:
        env = Env()
        supervisor = Supervisor(env=env, local=local_stack(env))
    except ConfigError as exc:
        say(f"error: {exc}")
        return 2
    signal.signal(signal.SIGINT, _raise_shutdown)
    signal.signal(signal.SIGTERM, _raise_shutdown)
    code = 0
    try:
        supervisor.preflight()
        supervisor.start()
        supervisor.watch()
    except Shutdown as exc:
        say(f"received {exc}: stopping every part")
    except (PreflightError, NotReady, ConfigError) as exc:
        say(f"error: {exc}")
        code = 1
    except subprocess.TimeoutExpired as exc:
        say(f"error: {' '.join(map(str, exc.cmd))} took longer than {exc.timeout:.0f}s")
        code = 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        supervisor.stop()
    return code


if __name__ == "__main__":
    sys.exit(run())
