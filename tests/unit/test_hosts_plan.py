"""The hosts platform's plan: remote actions as values, rendered as exactly what runs where."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

from baepo.core.ports import HostConfig, HostsTarget, InstanceSpec, ProbeConfig
from baepo.platforms.hosts import commands, plan

HOSTS = (HostConfig("10.0.0.11"), HostConfig("10.0.0.12", port=2222, user="deploy"))


def spec(secrets: dict[str, str] | None = None) -> InstanceSpec:
    return InstanceSpec(
        app="shop",
        env="prod",
        revision=3,
        command=["python3", "app.py", "--port", "{port}"],
        cwd="/src/shop",
        env_vars={"MODE": "fast"},
        stop_grace_period=5.0,
        backoff_initial=0.2,
        backoff_max=10.0,
        crash_loop_restarts=3,
        crash_loop_window=60.0,
        log_max_bytes=1 << 20,
        log_backups=3,
        readiness=ProbeConfig("/health", 1.0, 1.0, 3, 1, 0.0),
        secret_env=secrets or {},
        target=HostsTarget(HOSTS, "/srv/baepo", 0, "/src/shop", workdir="web"),
    )


def test_release_plan_renders_every_action_on_its_host() -> None:
    actions = plan.release_plan(spec(), 3, agent_source=b"agent", payload=b"x" * 10)
    assert commands.render_plan(actions) == (
        "root@10.0.0.11  $ mkdir -p /srv/baepo/.baepo\n"
        "root@10.0.0.11  upload the baepo agent (5 bytes) -> /srv/baepo/.baepo/agent.py\n"
        "root@10.0.0.11  $ mkdir -p /srv/baepo/shop/prod/instances\n"
        "root@10.0.0.11  upload /src/shop as a tar archive (10 bytes) -> "
        "/srv/baepo/shop/prod/r3.tar\n"
        "root@10.0.0.11  $ python3 /srv/baepo/.baepo/agent.py unpack /srv/baepo/shop/prod/r3.tar "
        "/srv/baepo/shop/prod/r3\n"
        "deploy@10.0.0.12:2222  $ mkdir -p /srv/baepo/.baepo\n"
        "deploy@10.0.0.12:2222  upload the baepo agent (5 bytes) -> /srv/baepo/.baepo/agent.py\n"
        "deploy@10.0.0.12:2222  $ mkdir -p /srv/baepo/shop/prod/instances\n"
        "deploy@10.0.0.12:2222  upload /src/shop as a tar archive (10 bytes) -> "
        "/srv/baepo/shop/prod/r3.tar\n"
        "deploy@10.0.0.12:2222  $ python3 /srv/baepo/.baepo/agent.py unpack "
        "/srv/baepo/shop/prod/r3.tar /srv/baepo/shop/prod/r3\n"
        "root@10.0.0.11  $ python3 /srv/baepo/.baepo/agent.py start "
        "'/srv/baepo/shop/prod/instances/<id-1>'  < (instance JSON)\n"
        "deploy@10.0.0.12:2222  $ python3 /srv/baepo/.baepo/agent.py start "
        "'/srv/baepo/shop/prod/instances/<id-2>'  < (instance JSON)\n"
        "root@10.0.0.11  $ python3 /srv/baepo/.baepo/agent.py start "
        "'/srv/baepo/shop/prod/instances/<id-3>'  < (instance JSON)\n"
    )


def test_secrets_never_show_in_a_rendered_plan() -> None:
    actions = plan.release_plan(spec({"TOKEN": "s3cret"}), 1, agent_source=b"", payload=b"")
    start = actions[-1]
    assert isinstance(start, commands.Exec)
    assert start.stdin is not None and "s3cret" in start.stdin  # the agent gets it on stdin
    text = commands.render_plan(actions)
    assert "s3cret" not in text and "secrets redacted" in text
    assert "s3cret" not in repr(start)


def test_instance_request_runs_in_the_release_folder() -> None:
    request = plan.instance_request(spec(), spec().target or HostsTarget((), "", 0, ""), HOSTS[1])
    assert request["cwd"] == "/srv/baepo/shop/prod/r3/web"
    assert request["host"] == "10.0.0.12"
    assert request["command"] == ["python3", "app.py", "--port", "{port}"]
    assert request["env"] == {"MODE": "fast"} and request["environment"] == "prod"


def test_remote_commands_are_quoted_argv() -> None:
    host = HOSTS[0]
    stop = commands.stop(host, "/srv/my apps", "shop", "prod", "h-r3-abcdef", 2.5)
    assert stop.argv == (
        "python3",
        "/srv/my apps/.baepo/agent.py",
        "stop",
        "/srv/my apps/shop/prod/instances/h-r3-abcdef",
        "2.5",
    )
    assert stop.command.startswith("python3 '/srv/my apps/.baepo/agent.py' stop ")
    probe = commands.Probe("10.0.0.11", 8000, "/health", 1.0)
    assert commands.render(probe) == "controller  GET http://10.0.0.11:8000/health (timeout 1s)"


def test_choose_host_spreads_and_breaks_ties_in_order() -> None:
    assert plan.choose_host(HOSTS, {}) is HOSTS[0]
    assert plan.choose_host(HOSTS, {"10.0.0.11": 1}) is HOSTS[1]
    assert plan.choose_host(HOSTS, {"10.0.0.11": 1, "10.0.0.12": 1}) is HOSTS[0]


def test_archive_leaves_out_state_and_caches(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text("print(1)\n")
    (tmp_path / "web").mkdir()
    (tmp_path / "web" / "index.html").write_text("hi")
    for skipped in (".baepo", ".git", "__pycache__"):
        (tmp_path / skipped).mkdir()
        (tmp_path / skipped / "junk").write_text("x")
    with tarfile.open(fileobj=io.BytesIO(plan.archive_folder(tmp_path))) as tar:
        assert sorted(tar.getnames()) == ["app.py", "web", "web/index.html"]
