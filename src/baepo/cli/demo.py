"""``baepo demo``: the sample app taken through a release, under live traffic, in under a minute.

It copies ``examples/sample`` to a temporary folder, deploys 1.0.0, rolls to 2.0.0 while the
built-in load generator sends requests through the router, shows the history, undoes to 1.0.0,
then releases a bad 2.1.0 (30 % errors) as a canary with an analysis step and watches it
caught and rolled back on its own. It prints a summary (requests sent and failed, time per
step, what the bad canary cost) and removes everything it made.
It talks to a real server through the real API, exactly as the other commands do.
Callers: ``cli.main`` registers it; ``make demo`` runs it.
"""

from __future__ import annotations

import os
import shutil
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from baepo.cli.follow import follow, rollout_finished, settled
from baepo.cli.render import history_table
from baepo.errors import ConfigError, ExternalError, RolloutFailed

if TYPE_CHECKING:
    from baepo.cli.client import Client
    from baepo.cli.loadgen import LoadReport

out = Console(highlight=False, markup=False)

SPEC = """\
app: sample
version: "{version}"
run:
  command: ["{python}", "app.py", "--port", "{{port}}"]
  env:
    SAMPLE_VERSION: "{version}"
    SAMPLE_START_DELAY: "0.2"
replicas: 3
health:
  readiness: {{path: /health/ready, interval: 100ms, timeout: 1s, failure_threshold: 2}}
  liveness: {{path: /health, interval: 1s, failure_threshold: 3, initial_delay: 2s}}
router:
  listen: "127.0.0.1:{port}"
strategy:
{strategy}
"""

ROLLING = "  rolling: {max_surge: 1, max_unavailable: 0}"
CANARY = """\
  canary:
    steps:
      - set_weight: 20
      - analysis: {templates: [errors]}
      - set_weight: 50
      - analysis: {templates: [errors]}
analysis:
  errors:
    metrics:
      - name: error_rate
        query: error_rate
        interval: 1s
        count: 3
        failure_condition: canary.error_rate > baseline.error_rate * 1.1 + 0.01"""


def sample_dir() -> Path:
    """The sample app's folder: in a source checkout, or shipped inside the package."""
    here = Path(__file__).resolve()
    for candidate in (
        here.parents[3] / "examples" / "sample",
        here.parents[1] / "examples" / "sample",
    ):
        if (candidate / "app.py").is_file():
            return candidate
    raise ConfigError("the sample app is not installed (examples/sample/app.py is missing)")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Demo:
    def __init__(self, workdir: Path, rate: float) -> None:
        self.workdir = workdir
        self.spec_path = workdir / "baepo.yaml"
        self.state_dir = workdir / ".baepo"
        self.port = _free_port()
        self.rate = rate
        self.steps: list[tuple[str, float, str]] = []
        self.client: Client | None = None
        self.live = sys.stdout.isatty()
        self.python = interpreter()

    def write_spec(self, version: str, *, strategy: str = ROLLING, errors: float = 0) -> None:
        text = SPEC.format(version=version, python=self.python, port=self.port,
                           strategy=strategy)  # fmt: skip
        if errors:
            text = text.replace(
                '    SAMPLE_START_DELAY: "0.2"',
                f'    SAMPLE_START_DELAY: "0.2"\n    SAMPLE_ERROR_RATE: "{errors}"',
            )
        self.spec_path.write_text(text)

    def api(self) -> Client:
        if self.client is None:
            from baepo.cli.client import connect

            self.client = connect(self.state_dir)
        return self.client

    def release(
        self, title: str, path: str, body: dict[str, Any], *, expect: str = "healthy"
    ) -> dict[str, Any]:
        out.rule(title)
        started = time.monotonic()
        result: dict[str, Any] = self.api().post(path, body)
        out.print(result["message"])
        done = (
            rollout_finished(self.api(), result["rollout_id"])
            if result.get("rollout_id")
            else settled
        )
        follow(
            self.api(),
            "sample",
            "default",
            out,
            done=done,
            timeout=120,
            live=self.live,
            rollout_id=result.get("rollout_id"),
        )
        outcome = "done"
        if result.get("rollout_id"):
            rollout = self.api().get(f"/api/v1/rollouts/{result['rollout_id']}")
            outcome = rollout["phase"]
            if outcome != expect:
                raise RolloutFailed(f"{title}: rollout {outcome}: {rollout['message']}")
            if outcome != "healthy":
                out.print(
                    f"[bold]{escape(outcome.replace('_', ' '))}[/]: {escape(rollout['message'])}",
                    markup=True,
                )
        self.steps.append((title, time.monotonic() - started, outcome))
        return result

    def deploy(self, version: str, *, title: str = "", expect: str = "healthy") -> None:
        self.release(
            title or f"deploy {version}",
            "/api/v1/deploy",
            {"spec_yaml": self.spec_path.read_text(), "spec_name": self.spec_path.name,
             "message": f"demo: release {version}"},
            expect=expect,
        )  # fmt: skip

    def bad_canary(self) -> LoadReport:
        """Release 2.1.0, which fails 30 % of its requests, as a canary; it must roll back."""
        self.write_spec("2.1.0", strategy=CANARY, errors=0.3)
        from baepo.cli.loadgen import LoadGenerator

        load = LoadGenerator("127.0.0.1", self.port, rate=self.rate, max_seconds=120).start()
        try:
            self.deploy("2.1.0", title="bad canary 2.1.0 (30% errors)", expect="rolled_back")
        finally:
            report = load.stop()
        runs = self.api().get("/api/v1/apps/sample/analysis")
        if runs:
            from baepo.cli.render import analysis_view

            out.print(analysis_view(runs))
        return report

    def run(self) -> int:
        self.workdir.chmod(0o755)  # the app may run as another account (run.user)
        shutil.copy(sample_dir() / "app.py", self.workdir / "app.py")
        out.print(f"sample app in {self.workdir}, router on http://127.0.0.1:{self.port}")
        self.write_spec("1.0.0")
        self.deploy("1.0.0")
        from baepo.cli.loadgen import LoadGenerator

        load = LoadGenerator("127.0.0.1", self.port, rate=self.rate, max_seconds=120).start()
        try:
            self.write_spec("2.0.0")
            self.deploy("2.0.0")
            out.rule("history")
            out.print(history_table(self.api().get("/api/v1/apps/sample/revisions")))
            self.release(
                "undo to 1.0.0", "/api/v1/apps/sample/undo",
                {"message": "demo: back to 1.0.0"},
            )  # fmt: skip
        finally:
            report = load.stop()
        bad = self.bad_canary()
        self.summary(report, bad)
        return 0 if report.failed == 0 else 1

    def summary(self, report: LoadReport, bad: LoadReport) -> None:
        out.rule("summary")
        table = Table(box=None, header_style="bold")
        table.add_column("step")
        table.add_column("time", justify="right")
        table.add_column("outcome")
        for title, seconds, outcome in self.steps:
            table.add_row(title, f"{seconds:.1f}s", outcome)
        out.print(table)
        versions = ", ".join(f"{v}: {n}" for v, n in sorted(report.versions.items()))
        style = "green" if report.failed == 0 else "bold red"
        out.print(
            f"requests sent through the router: {report.sent} in {report.seconds:.1f}s "
            f"({escape(versions)}); [{style}]failed: {report.failed}[/]",
            markup=True,
        )
        if report.errors:
            out.print(f"errors: {dict(report.errors)}")
        served = ", ".join(f"{v}: {n}" for v, n in sorted(bad.versions.items()))
        out.print(
            f"during the bad canary: {bad.sent} requests ({served}); {bad.failed} failed "
            f"{dict(bad.statuses)}"
        )

    def clean_up(self) -> None:
        out.rule("clean up")
        try:
            if self.client is not None:
                self.client.post("/api/v1/apps/sample/down", {})
                follow(self.client, "sample", "default", out, done=settled, timeout=60, live=False)
                info = self.client.get("/api/v1/server")
                import os
                import signal

                from baepo.shell.process import pid_alive

                os.kill(int(info["pid"]), signal.SIGTERM)
                deadline = time.monotonic() + 30
                while pid_alive(int(info["pid"])) and time.monotonic() < deadline:
                    time.sleep(0.05)
                self.client.close()
        finally:
            shutil.rmtree(self.workdir, ignore_errors=True)
        out.print("stopped the app, its router and the server; removed the demo folder")


def interpreter() -> str:
    """A Python the demo's app can run with: this one, or, when a root server runs the app as
    an account that may not run this one (a virtualenv under /root), a ``python3`` on PATH
    that account may run (the sample app needs only the standard library)."""
    if os.geteuid() != 0:
        return sys.executable
    from baepo.shell import accounts

    name = os.environ.get("BAEPO_RUN_USER") or accounts.DEFAULT_USER
    try:
        account = accounts.run_as(name, accounts.Settings(default_user=name, allow_root=True))
    except ConfigError:
        return sys.executable  # the server refuses to start, and says why
    if account is None or accounts.may_run(account, sys.executable):
        return sys.executable
    folders = [*os.environ.get("PATH", os.defpath).split(os.pathsep), "/usr/bin", "/bin"]
    for folder in folders:
        candidate = os.path.join(folder, "python3")
        if accounts.may_run(account, candidate):
            return candidate
    raise ExternalError(
        f"the demo's app runs as {account.name!r} (run.user), who may run neither "
        f"{sys.executable} nor a python3 on PATH",
        hint="install python3 where every account may run it, or run the demo as another user",
    )


def demo(
    rate: Annotated[
        float, typer.Option(help="Requests per second the load generator sends.", min=1, max=2000)
    ] = 100.0,
    keep: Annotated[bool, typer.Option("--keep", help="Leave the demo app running.")] = False,
) -> None:
    """Show a release end to end with the sample app: deploy, roll under load, undo, and a bad
    canary caught by analysis and rolled back on its own.

    Needs nothing else: it uses a temporary folder, a free port and its own server, and cleans
    up after itself. Example: `baepo demo`
    """
    workdir = Path(tempfile.mkdtemp(prefix="baepo-demo-"))
    runner = Demo(workdir, rate)
    code = 1
    try:
        code = runner.run()
    finally:
        if keep:
            out.print(f"left running: cd {workdir} && baepo status")
        else:
            runner.clean_up()
    raise typer.Exit(code)


def register(app: typer.Typer) -> None:
    app.command(rich_help_panel="Try it")(demo)
