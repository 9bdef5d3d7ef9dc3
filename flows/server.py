"""A real local Prefect server for the flows: reuse the one at PREFECT_API_URL, or start one for the run.

Prefect's temporary in-process server runs no scheduler, so deployments served
against it never fire; a real server (`prefect server start`: API, UI and
scheduler, SQLite under the project's PREFECT_HOME) does. `local_server` starts
one when none answers, waits until it is healthy, points this process and its
children at it, and stops it again on exit.

    python -m flows.server [--port 4200]       # just the server, until Ctrl-C (UI at http://127.0.0.1:4200)
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from bayesunlearn.errors import UserError

DEFAULT_PORT = 4200


class ServerUnavailable(UserError):
    """The Prefect server did not come up."""


def healthy(api_url: str, timeout: float = 2.0) -> bool:
    try:
        return httpx.get(f"{api_url}/health", timeout=timeout).status_code == 200
    except httpx.HTTPError:
        return False


@contextmanager
def local_server(port: int = DEFAULT_PORT, startup_timeout: float = 180.0) -> Iterator[str]:
    """The API URL of a running Prefect server: PREFECT_API_URL if it answers, else a server started here."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    configured = os.environ.get("PREFECT_API_URL") or PREFECT_API_URL.value()
    if configured and healthy(configured):
        yield configured
        return
    url = f"http://127.0.0.1:{port}/api"
    process = None
    if not healthy(url):
        home = Path(os.environ["PREFECT_HOME"])
        home.mkdir(parents=True, exist_ok=True)
        log = open(home / "server.log", "ab")  # noqa: SIM115 - open for the server's lifetime
        process = subprocess.Popen([sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1",
                                    "--port", str(port)], stdout=log, stderr=subprocess.STDOUT,
                                   env={**os.environ, "PREFECT_API_URL": url})
        deadline = time.monotonic() + startup_timeout
        while not healthy(url):
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise ServerUnavailable(f"the Prefect server on port {port} did not start; see {home / 'server.log'} "
                                        "(is the port taken? choose another with --port / PREFECT_PORT)")
            time.sleep(0.5)
    previous = os.environ.get("PREFECT_API_URL")
    os.environ["PREFECT_API_URL"] = url  # for the flow runs the runner starts as subprocesses
    try:
        with temporary_settings({PREFECT_API_URL: url}):
            yield url
    finally:
        if previous is None:
            os.environ.pop("PREFECT_API_URL", None)
        else:
            os.environ["PREFECT_API_URL"] = previous
        if process is not None:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m flows.server", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    args = parser.parse_args()
    with local_server(args.port) as url:
        print(f"Prefect server at {url} (UI: {url.removesuffix('/api')}); Ctrl-C stops it")
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
