"""The workspace's own local Prefect server: started on first use, shared, stopped after its last user.

Prefect's temporary in-process server runs no scheduler, so deployments served
against it never fire; a real server (`prefect server start`: API, UI and
scheduler, SQLite under the project's PREFECT_HOME) does.

- Ownership. A server belongs to the workspace whose PREFECT_HOME it uses (it
  reports its home at /api/admin/settings). `local_server` reuses a healthy
  server of its own workspace on the port and refuses, in one line, a port that
  serves anything else.
- Start-up. It starts a server under the exclusive lock PREFECT_HOME/server.lock,
  so two first runs at the same instant start one server between them (two
  would race on the database migration and on the port).
- Lifetime. Every user holds a shared lock on PREFECT_HOME/server.users. The
  server runs in its own session (a terminal's Ctrl-C reaches only its users)
  and checks five times a second whether any process still holds that lock;
  when none does (the last user left, or was killed with SIGKILL) it stops
  itself. The last user to leave waits for it to be gone.

    python -m flows.server [--port 4200]       # just the server, until Ctrl-C (UI at http://127.0.0.1:4200)
"""

from __future__ import annotations

import argparse
import fcntl
import os
import runpy
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from bayesunlearn.errors import Exit, UserError

DEFAULT_PORT = 4200
START_LOCK, USERS_LOCK, PID_FILE, LOG = "server.lock", "server.users", "server.pid", "server.log"
STOP_WAIT = 20.0  # seconds the last user waits for the server to exit


class ServerUnavailable(UserError):
    """The workspace's Prefect server cannot be had (it did not start, or the port serves something else)."""

    exit_code = Exit.SERVER


def prefect_home() -> Path:
    """The workspace's Prefect home: PREFECT_HOME (importing `flows` defaults it to the project's .prefect/)."""
    return Path(os.environ.get("PREFECT_HOME") or Path.home() / ".prefect").expanduser().resolve()


def healthy(api_url: str, timeout: float = 2.0) -> bool:
    try:
        return httpx.get(f"{api_url}/health", timeout=timeout).status_code == 200
    except httpx.HTTPError:
        return False


def served_home(api_url: str) -> Path | None:
    """The PREFECT_HOME of the Prefect server at `api_url`, None when it does not say."""
    try:
        home = httpx.get(f"{api_url}/admin/settings", timeout=5.0).json().get("home")
    except (httpx.HTTPError, ValueError, AttributeError):
        return None
    return Path(home).resolve() if isinstance(home, str) else None


def port_in_use(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1.0)
        return s.connect_ex(("127.0.0.1", port)) == 0


def lock_file(path: Path, operation: int, timeout: float) -> int | None:
    """A descriptor of `path` holding flock `operation` (LOCK_SH or LOCK_EX), or None after `timeout` seconds."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(fd, operation | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            if time.monotonic() >= deadline:
                os.close(fd)
                return None
            time.sleep(0.1)


def check_ours(url: str, home: Path, port: int) -> None:
    """Refuse a server that answers on the port but belongs to another workspace (or is not a Prefect server)."""
    other = served_home(url)
    if other != home:
        whose = f"the Prefect server of another workspace ({other})" if other else "a server of another program"
        raise ServerUnavailable(f"port {port} serves {whose}; choose another port: --port N, or make serve "
                                "PREFECT_PORT=N")


def start(url: str, port: int, home: Path, timeout: float) -> subprocess.Popen:
    """Start the server in its own session and wait until it answers; the caller holds the start lock."""
    if port_in_use(port):
        raise ServerUnavailable(f"port {port} is taken by another program; choose another port: --port N, or "
                                "make serve PREFECT_PORT=N")
    with open(home / LOG, "ab") as log:
        process = subprocess.Popen([sys.executable, "-m", "flows.server", "--serve-home", str(home),
                                    "--port", str(port)], stdout=log, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True,
                                   env={**os.environ, "PREFECT_API_URL": url, "PYTHONPATH": python_path()})
    deadline = time.monotonic() + timeout
    while not healthy(url):
        if process.poll() is not None:
            raise ServerUnavailable(f"the Prefect server on port {port} exited while starting; see {home / LOG}")
        if time.monotonic() > deadline:
            process.kill()
            raise ServerUnavailable(f"the Prefect server on port {port} did not answer within {timeout:.0f} s; "
                                    f"see {home / LOG}")
        time.sleep(0.5)
    return process


def python_path() -> str:
    """PYTHONPATH with this project first, so that the server process imports these flows from any folder."""
    return os.pathsep.join([str(Path(__file__).resolve().parents[1]), *filter(None, [os.environ.get("PYTHONPATH")])])


@contextmanager
def local_server(port: int = DEFAULT_PORT, startup_timeout: float = 180.0) -> Iterator[str]:
    """The API URL of this workspace's Prefect server on `port`, started here unless it is already running.

    Points this process and its children at it while in use. ServerUnavailable (one line, with the
    remedy) when it cannot start or the port serves another workspace.
    """
    from prefect.logging.handlers import APILogWorker
    from prefect.settings import PREFECT_API_URL, temporary_settings

    home, url = prefect_home(), f"http://127.0.0.1:{port}/api"
    home.mkdir(parents=True, exist_ok=True)
    start_fd = lock_file(home / START_LOCK, fcntl.LOCK_EX, startup_timeout)
    if start_fd is None:
        raise ServerUnavailable(f"another process has been starting the Prefect server of {home} for "
                                f"{startup_timeout:.0f} s; see {home / LOG}")
    try:
        # A user before the server starts, so that the server never sees itself without one.
        users_fd = lock_file(home / USERS_LOCK, fcntl.LOCK_SH, 5.0)
        if users_fd is None:  # only a server stopping itself holds it exclusively, and it holds the start lock too
            raise ServerUnavailable(f"the Prefect server of {home} does not stop; see {home / LOG}")
        try:
            if healthy(url):
                check_ours(url, home, port)
            else:
                process = start(url, port, home, startup_timeout)
                (home / PID_FILE).write_text(f"{process.pid}\n")
        except BaseException:
            os.close(users_fd)
            raise
    finally:
        os.close(start_fd)
    previous = os.environ.get("PREFECT_API_URL")
    os.environ["PREFECT_API_URL"] = url  # for the flow runs the runner starts as subprocesses
    try:
        with temporary_settings({PREFECT_API_URL: url}):
            yield url
    finally:
        APILogWorker.drain_all(timeout=5)  # this process's last logs reach the server while it is there
        if previous is None:
            os.environ.pop("PREFECT_API_URL", None)
        else:
            os.environ["PREFECT_API_URL"] = previous
        leave(home, users_fd)


def leave(home: Path, users_fd: int) -> None:
    """Stop using the server; the last user waits until the server has stopped itself."""
    start_fd = lock_file(home / START_LOCK, fcntl.LOCK_EX, STOP_WAIT)
    try:
        fcntl.flock(users_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        pid_file = home / PID_FILE  # read under the locks: the server removes it when it stops
        pid = int(pid_file.read_text()) if pid_file.exists() else None  # none: not started by a user
    except BlockingIOError:
        pid = None  # other users remain
    finally:
        os.close(users_fd)
        if start_fd is not None:
            os.close(start_fd)
    deadline = time.monotonic() + STOP_WAIT
    while pid is not None and time.monotonic() < deadline and alive(pid):  # a user arriving meanwhile keeps it
        time.sleep(0.1)


def alive(pid: int) -> bool:
    try:
        os.waitpid(pid, os.WNOHANG)  # reaps it when it is this process's child
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def serve_home(home: Path, port: int) -> None:
    """The server process: Prefect's own `prefect server start`, plus a watch that stops it without users."""
    threading.Thread(target=stop_without_users, args=(home,), daemon=True).start()
    sys.argv = ["prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)]
    runpy.run_module("prefect", run_name="__main__", alter_sys=True)


def stop_without_users(home: Path) -> None:
    """Stop this server (SIGTERM: uvicorn's clean shutdown) once no process holds the users lock."""
    while True:
        time.sleep(0.2)
        start_fd = lock_file(home / START_LOCK, fcntl.LOCK_EX, 0)
        if start_fd is None:  # a user is arriving or leaving
            continue
        users_fd = lock_file(home / USERS_LOCK, fcntl.LOCK_EX, 0)
        if users_fd is None:
            os.close(start_fd)
            continue
        # Both locks stay held until this process exits: a new user waits, then starts a fresh server.
        (home / PID_FILE).unlink(missing_ok=True)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(STOP_WAIT)
        os._exit(1)  # the clean shutdown hung


def run_with_server(port: int, body: Callable[[], None]) -> None:
    """Run `body` with the workspace's server; ServerUnavailable is one line on stderr and its exit code."""
    try:
        with local_server(port):
            body()
    except ServerUnavailable as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(err.exit_code)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m flows.server", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--serve-home", type=Path, help=argparse.SUPPRESS)  # the server process itself
    args = parser.parse_args()
    if args.serve_home:
        serve_home(args.serve_home, args.port)
        return

    def interrupt(*_) -> None:
        raise KeyboardInterrupt

    def wait() -> None:
        print(f"Prefect server of {prefect_home()} at http://127.0.0.1:{args.port} (API: /api); Ctrl-C stops it",
              flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass

    for signum in (signal.SIGINT, signal.SIGTERM):  # also when started with SIGINT ignored (a background job)
        signal.signal(signum, interrupt)

    run_with_server(args.port, wait)


if __name__ == "__main__":
    main()
