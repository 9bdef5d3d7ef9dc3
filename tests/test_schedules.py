"""The documented way to serve the flows works: `python -m flows.serve` starts a real local Prefect server
(SQLite under a project-local PREFECT_HOME), a cron schedule fires a run that completes, a manual
`prefect deployment run` completes, and a run killed mid-way blocks nothing.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from conftest import REPO, sh, tiny_repo, train_ids, write_request

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def runs(api: str, deployment: str) -> list:
    """The deployment's runs that left the Scheduled state: a cron of every minute keeps dozens of future
    runs scheduled, which would crowd the ones that ran out of a limited listing."""
    from prefect.client.orchestration import PrefectClient
    from prefect.client.schemas.filters import (
        DeploymentFilter, DeploymentFilterId, FlowRunFilter, FlowRunFilterState, FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType

    async def read():
        async with PrefectClient(api) as client:
            found = await client.read_deployment_by_name(f"process_deletion_requests/{deployment}")
            return await client.read_flow_runs(
                limit=200, deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[found.id])),
                flow_run_filter=FlowRunFilter(state=FlowRunFilterState(
                    type=FlowRunFilterStateType(not_any_=[StateType.SCHEDULED]))))

    return asyncio.run(read())


def registered(api: str, deployment: str) -> bool:
    from prefect.client.orchestration import PrefectClient
    from prefect.exceptions import ObjectNotFound

    async def read():
        async with PrefectClient(api) as client:
            try:
                await client.read_deployment_by_name(f"process_deletion_requests/{deployment}")
                return True
            except ObjectNotFound:
                return False

    return asyncio.run(read())


def kill_tree(process) -> None:
    """Kill a process and every descendant, freezing each first so that none starts a new child unseen (a
    `dvc repro` it ran would otherwise live on, holding DVC's own lock)."""
    import psutil

    frozen, found = [], [process]
    while found:
        for victim in found:
            try:
                victim.suspend()
            except psutil.NoSuchProcess:
                continue
            frozen.append(victim)
        found = [child for victim in found if victim.is_running() for child in victim.children()
                 if child not in frozen]
    for victim in frozen:
        try:
            victim.kill()
        except psutil.NoSuchProcess:
            pass


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(2)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """`python -m flows.serve` on a tiny workspace whose intake runs every minute, with its own server."""
    root = tiny_repo(tmp_path_factory.mktemp("scheduled"))
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["schedule"]["intake_cron"] = "* * * * *"
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    sh("git", "commit", "-qam", "intake every minute", cwd=root)  # an uncommitted params.yaml stops every intake
    port = free_port()
    home = tmp_path_factory.mktemp("prefect-home")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(PYTHONPATH=str(REPO), PREFECT_HOME=str(home), DO_NOT_TRACK="1",
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    log = home / "serve.log"  # a file, not a pipe: a pipe nobody reads fills up and blocks the server's logging
    with open(log, "wb") as out:
        process = subprocess.Popen([sys.executable, "-m", "flows.serve", "--repo", str(root), "--port", str(port)],
                                   cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    api = f"http://127.0.0.1:{port}/api"
    try:
        from flows.server import healthy

        wait_for(lambda: healthy(api) or process.poll() is not None, 180, "the Prefect server")
        assert process.poll() is None, log.read_text()[-3000:]
        # the server answers health checks before `serve` has registered its deployments
        wait_for(lambda: registered(api, "intake") or process.poll() is not None, 120, "the intake deployment")
        assert process.poll() is None, log.read_text()[-3000:]
        yield root, api, env, home, process.pid
    finally:
        os.killpg(process.pid, signal.SIGTERM)  # the serving process only: runner and server have their own sessions
        try:
            code = process.wait(timeout=40)  # it stops the runner (cancelling a run in flight), then the server
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            code = None
    assert code == 0 and log.read_text().strip().splitlines()[-1].startswith("stopped serving in"), \
        log.read_text()[-3000:]
    assert not healthy(api)


def test_the_server_is_real_and_its_home_is_the_projects(served):
    _, api, _, home, _ = served
    assert (home / "prefect.db").exists()  # SQLite in the given PREFECT_HOME, not the user's home


def test_the_cron_schedule_fires_a_run_that_completes(served):
    root, api, _, home, _ = served
    write_request(root, "req-0002", train_ids(root)[10:12], folder="inbox")
    try:
        completed = wait_for(lambda: [r for r in runs(api, "intake") if r.state and r.state.is_completed()],
                             240, "a scheduled intake run to complete")
    except AssertionError as err:
        states = [(r.name, r.state.name if r.state else None) for r in runs(api, "intake")]
        raise AssertionError(f"{err}; runs: {states}; serve log:\n{(home / 'serve.log').read_text()[-4000:]}") from None
    assert completed[0].auto_scheduled
    assert (root / "data/requests/req-0002.json").exists() and not (root / "inbox/req-0002.json").exists()


def test_a_manual_run_completes_and_a_killed_run_blocks_nothing(served):
    root, api, env, _, serve_pid = served
    import psutil

    def flow_run_processes() -> list:
        """The processes of running flow runs (the runner's children; the runner is the serving process's)."""
        return [p for p in psutil.Process(serve_pid).children(recursive=True)
                if "prefect.engine" in " ".join(p.cmdline()) and p.is_running()]

    def deployment_run() -> str:
        out = subprocess.run([sys.executable, "-m", "prefect", "deployment", "run", "process_deletion_requests/intake"],
                             env={**env, "PREFECT_API_URL": api}, capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stdout + out.stderr
        return out.stdout

    before = {r.id for r in runs(api, "intake")}
    write_request(root, "req-0003", train_ids(root)[14:16], folder="inbox")
    deployment_run()
    running = wait_for(flow_run_processes, 120, "a running flow run")
    for process in running:  # a crash of the run's process, and of the stage it was running
        kill_tree(process)
    deployment_run()
    # generous: the every-minute schedule's runs take the workspace lock in turn with the manual one
    wait_for(lambda: [r for r in runs(api, "intake") if r.id not in before and not r.auto_scheduled
                      and r.state and r.state.is_completed()],
             600, "a manual intake run to complete after a killed one")
    assert (root / "data/requests/req-0003.json").exists()
