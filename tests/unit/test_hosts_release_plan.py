"""``target.release``: the spec section and its errors, the actions it adds to a hosts plan
(compared as rendered text), and the agent's side run here on a temporary folder: archives
unpacked safely, downloads checked against their SHA-256, builds run once per release."""

from __future__ import annotations

import hashlib
import http.server
import io
import re
import tarfile
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from baepo.controller import preview
from baepo.controller.desired import check_release, hosts_target
from baepo.core.model import Revision, config_hash
from baepo.core.ports import HostConfig, HostsRelease, HostsTarget, InstanceSpec, ProbeConfig
from baepo.errors import ConfigError
from baepo.platforms.hosts import agent, commands, plan
from baepo.spec.loader import parse_spec

BASE = (
    'app: shop\nversion: "1.4.0"\nrun: {command: ["python3", "app.py", "--port", "{port}"]}\n'
    "target:\n  kind: hosts\n  hosts: [{address: 10.0.0.11}]\n"
)
SHA = "ab" * 32
HOST = HostConfig("10.0.0.11")
AT = datetime(2026, 1, 1, tzinfo=UTC)


def problems(text: str) -> list[tuple[str, str]]:
    with pytest.raises(ConfigError) as caught:
        parse_spec(text)
    return [(p.path, p.message) for p in caught.value.problems]


def test_release_fields_reach_the_platform() -> None:
    spec = parse_spec(
        BASE + "  release:\n"
        "    url: https://example.com/shop-{version}.tgz\n"
        f"    sha256: {SHA.upper()}\n"
        "    build: {command: [make, build], timeout: 2m}\n"
    )
    target = hosts_target(spec, "/src/shop", "1.4.0")
    assert target is not None
    assert target.release == HostsRelease(
        url="https://example.com/shop-1.4.0.tgz",
        sha256=SHA,
        build=("make", "build"),
        build_timeout=120.0,
    )
    archived = parse_spec(BASE + "  release: {archive: 'dist/shop-{version}.tar.gz'}\n")
    target = hosts_target(archived, "/src/shop", "1.4.0")
    assert target is not None
    assert target.release.archive == "/src/shop/dist/shop-1.4.0.tar.gz"
    plain = hosts_target(parse_spec(BASE), "/src/shop", "1.4.0")
    assert plain is not None and plain.release == HostsRelease()


@pytest.mark.parametrize(
    ("release", "path", "words"),
    [
        ("{url: https://e.com/a.tgz, sha256: abc}", "target.release.sha256", "64 hex digits"),
        ("{archive: dist/shop.zip}", "target.release.archive", ".tar, .tar.gz or .tgz"),
        ("{url: 'ftp://e.com/a.tgz'}", "target.release.url", "http:// or https://"),
        ("{url: 'https://'}", "target.release.url", "http:// or https://"),
        ("{archive: a.tar, url: 'https://e.com/a.tar'}", "target.release", "not both"),
        (f"{{archive: a.tar, sha256: {SHA}}}", "target.release", "needs `url`"),
        ("{build: {command: []}}", "target.release.build.command", ""),
        ("{build: {command: [make], timeout: soon}}", "target.release.build.timeout", ""),
        ("{artifact: a.tar}", "target.release.artifact", ""),
    ],
)
def test_bad_releases_name_the_key(release: str, path: str, words: str) -> None:
    found = problems(BASE + f"  release: {release}\n")
    assert any(p == path and words in m for p, m in found), found


def test_only_hosts_take_a_release() -> None:
    text = "app: shop\nrun: {command: [a]}\ntarget: {release: {archive: a.tar}}\n"
    assert any(p == "target" and "only `kind: hosts`" in m for p, m in problems(text))


def test_a_missing_archive_is_refused_before_a_deploy(tmp_path: Path) -> None:
    spec = parse_spec(BASE + "  release: {archive: 'dist/shop-{version}.tgz'}\n")
    with pytest.raises(ConfigError) as caught:
        check_release(spec, str(tmp_path), "1.4.0")
    assert caught.value.problems[0].path == "target.release.archive"
    assert f"{tmp_path}/dist/shop-1.4.0.tgz" in caught.value.problems[0].message
    target = hosts_target(spec, str(tmp_path), "1.4.0")
    assert target is not None
    with pytest.raises(ConfigError, match="cannot be read"):
        plan.release_payload(target)
    (tmp_path / "dist").mkdir()
    (tmp_path / "dist" / "shop-1.4.0.tgz").write_bytes(b"12345")
    check_release(spec, str(tmp_path), "1.4.0")
    assert plan.release_payload(target) == b"12345"


def instance(release: HostsRelease) -> InstanceSpec:
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
        secret_env={"TOKEN": "s3cret"},
        target=HostsTarget((HOST,), "/srv/baepo", 0, "/src/shop", release=release),
    )


def test_a_url_release_with_a_build_renders_exactly() -> None:
    release = HostsRelease(
        url="https://example.com/shop.tgz", sha256=SHA, build=("make", "build"), build_timeout=90
    )
    actions = plan.release_plan(instance(release), 1, agent_source=b"agent", payload=None)
    agent_py = "/srv/baepo/.baepo/agent.py"
    assert commands.render_plan(actions) == (
        "root@10.0.0.11  $ mkdir -p /srv/baepo/.baepo\n"
        f"root@10.0.0.11  upload the baepo agent (5 bytes) -> {agent_py}\n"
        "root@10.0.0.11  $ mkdir -p /srv/baepo/shop/prod/instances\n"
        f"root@10.0.0.11  $ python3 {agent_py} fetch https://example.com/shop.tgz "
        f"/srv/baepo/shop/prod/r3 {SHA}\n"
        f"root@10.0.0.11  $ python3 {agent_py} build /srv/baepo/shop/prod/r3 "
        "/srv/baepo/shop/prod/r3 90 -- make build"
        "  < (build environment)\n"
        f"root@10.0.0.11  $ python3 {agent_py} start '/srv/baepo/shop/prod/instances/<id-1>'"
        "  < (instance JSON, secrets redacted)\n"
    )
    build = actions[4]
    assert isinstance(build, commands.Exec) and commands.is_build(build)
    assert build.stdin == '{"MODE": "fast"}'  # the build never gets the secrets
    assert build.timeout == 120.0


def test_an_archive_release_renders_exactly() -> None:
    release = HostsRelease(archive="/src/shop/dist/shop.tar.gz")
    actions = plan.release_plan(instance(release), 1, agent_source=b"", payload=b"x" * 7)
    assert commands.render_plan(actions).splitlines()[2:5] == [
        "root@10.0.0.11  $ mkdir -p /srv/baepo/shop/prod/instances",
        "root@10.0.0.11  upload /src/shop/dist/shop.tar.gz (7 bytes) -> "
        "/srv/baepo/shop/prod/r3.tar.gz",
        "root@10.0.0.11  $ python3 /srv/baepo/.baepo/agent.py unpack "
        "/srv/baepo/shop/prod/r3.tar.gz /srv/baepo/shop/prod/r3",
    ]
    assert not any(commands.is_build(a) for a in actions if isinstance(a, commands.Exec))


# -- the agent's side -------------------------------------------------------------------------


def tar_bytes(files: dict[str, bytes], mode: str = "w:gz") -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=mode) as tar:  # type: ignore[call-overload]
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def test_a_compressed_archive_unpacks(tmp_path: Path) -> None:
    archive = tmp_path / "r1.tgz"
    archive.write_bytes(tar_bytes({"app.py": b"v1", "web/index.html": b"hi"}))
    agent.unpack(archive, tmp_path / "r1")
    assert (tmp_path / "r1" / "web" / "index.html").read_text() == "hi"
    assert not archive.exists()


@pytest.mark.parametrize("name", ["/etc/evil", "web/../../evil", "web/../app.py"])
def test_absolute_and_dotdot_members_are_refused(tmp_path: Path, name: str) -> None:
    archive = tmp_path / "r1.tar.gz"
    archive.write_bytes(tar_bytes({"app.py": b"v1", name: b"x"}))
    with pytest.raises(SystemExit, match=re.escape("absolute paths and '..' are refused")):
        agent.unpack(archive, tmp_path / "r1")
    assert not (tmp_path / "r1").exists() and not archive.exists()
    assert [p.name for p in tmp_path.iterdir()] == []  # no half-unpacked folder left


def test_a_corrupt_archive_is_a_clear_error(tmp_path: Path) -> None:
    archive = tmp_path / "r1.tgz"
    archive.write_bytes(b"not a tar at all")
    with pytest.raises(SystemExit, match=re.escape("cannot unpack the release archive r1.tgz")):
        agent.unpack(archive, tmp_path / "r1")


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, bytes]]:
    """A release archive served over HTTP on 127.0.0.1: its URL and its bytes."""
    data = tar_bytes({"app.py": b"served"})
    (tmp_path / "www").mkdir()
    (tmp_path / "www" / "shop.tgz").write_bytes(data)

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: object, **kw: object) -> None:
            super().__init__(*args, directory=str(tmp_path / "www"), **kw)  # type: ignore[arg-type]

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/shop.tgz", data
    server.shutdown()
    server.server_close()


def test_fetch_checks_the_sha256_then_unpacks(tmp_path: Path, served: tuple[str, bytes]) -> None:
    url, data = served
    good = hashlib.sha256(data).hexdigest()
    app = tmp_path / "shop" / "prod"
    app.mkdir(parents=True)
    with pytest.raises(SystemExit) as refused:
        agent.fetch(url, app / "r1", SHA)
    assert f"its sha256 is {good}, expected {SHA}" in str(refused.value)
    assert list(app.iterdir()) == []
    agent.fetch(url, app / "r1", good.upper())
    assert (app / "r1" / "app.py").read_text() == "served"
    agent.fetch(url + ".gone", app / "r1", None)  # already there: nothing is downloaded
    with pytest.raises(SystemExit, match=r"cannot download .*404"):
        agent.fetch(url + ".gone", app / "r2", None)


def test_a_build_runs_once_per_release(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    release = tmp_path / "r1"
    release.mkdir()
    script = "import os; open('built.txt', 'a').write(os.environ['MODE'] + '\\n')"
    for _ in range(2):
        monkeypatch.setattr("sys.stdin", io.StringIO('{"MODE": "fast"}'))
        agent.build(release, release, 30, ["python3", "-c", script])
    assert (release / "built.txt").read_text() == "fast\n"
    assert (release / agent.BUILT_FILE).is_file()


def test_a_failed_build_shows_its_last_lines_and_is_not_marked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    release = tmp_path / "r1"
    release.mkdir()
    script = "for n in range(50): print('line', n)\nraise SystemExit(3)"
    monkeypatch.setattr("sys.stdin", io.StringIO("{}"))
    with pytest.raises(SystemExit) as failed:
        agent.build(release, release, 30, ["python3", "-c", script])
    message = str(failed.value)
    assert "exited with 3" in message and "line 49" in message and "line 29" not in message
    assert not (release / agent.BUILT_FILE).exists()
    monkeypatch.setattr("sys.stdin", io.StringIO("{}"))
    with pytest.raises(SystemExit, match=re.escape("timed out after 0.5s")):
        agent.build(release, release, 0.5, ["sleep", "30"])
    monkeypatch.setattr("sys.stdin", io.StringIO("{}"))
    with pytest.raises(SystemExit, match=r"(?s)exited with 127.*cannot run the build command"):
        agent.build(release, release, 5, ["no-such-program-here"])


def test_the_dry_run_plan_of_a_spec_with_a_release(tmp_path: Path) -> None:
    """What ``baepo hosts plan`` and ``baepo deploy --dry-run`` print, from the spec file."""
    spec = parse_spec(
        BASE.replace("run: {", "run: {cwd: shop, ")
        + "  release:\n"
        + "    url: 'https://example.com/shop-{version}.tgz'\n"
        + "    build: {command: [make], timeout: 1m}\n"
        + "secrets: {TOKEN: {env: SHOP_TOKEN}}\n"
    )
    config = spec.model_dump(mode="json")
    revision = Revision(
        "shop", "prod", 3, "1.4.0", config, config_hash(config), str(tmp_path), "me", AT
    )
    agent_py = "/srv/baepo/.baepo/agent.py"
    assert preview.hosts_plan_lines(revision, spec)[2:] == [
        "root@10.0.0.11  $ mkdir -p /srv/baepo/shop/prod/instances",
        f"root@10.0.0.11  $ python3 {agent_py} fetch https://example.com/shop-1.4.0.tgz "
        "/srv/baepo/shop/prod/r3",
        f"root@10.0.0.11  $ python3 {agent_py} build /srv/baepo/shop/prod/r3 "
        "/srv/baepo/shop/prod/r3/shop 60 -- make  < (build environment)",
        f"root@10.0.0.11  $ python3 {agent_py} start '/srv/baepo/shop/prod/instances/<id-1>'"
        "  < (instance JSON, secrets redacted)",
    ]


def test_the_dry_run_plan_goes_batch_by_batch(tmp_path: Path) -> None:
    """With ``hosts_at_a_time`` the plan is grouped as the rollout runs it: each batch's hosts
    get the release and their share of the replicas, then their old instances stop."""
    spec = parse_spec(
        BASE.replace(
            "hosts: [{address: 10.0.0.11}]",
            "hosts: [{address: 10.0.0.11}, {address: 10.0.0.12}, {address: 10.0.0.13}]",
        )
        + "replicas: 4\n"
        + "strategy: {rolling: {hosts_at_a_time: 2}}\n"
    )
    config = spec.model_dump(mode="json")
    revision = Revision(
        "shop", "prod", 3, "1.4.0", config, config_hash(config), str(tmp_path), "me", AT
    )
    lines = preview.hosts_plan_lines(revision, spec)
    headers = [line for line in lines if not line.startswith("  ")]
    assert headers == ["batch 1/2: 10.0.0.11, 10.0.0.12", "batch 2/2: 10.0.0.13"]
    starts = [
        line.split()[0] + " " + line.split("/instances/")[1][:6]
        for line in lines
        if " start " in line
    ]
    # 4 replicas over 3 hosts: the first host takes the remainder; ids count on across batches.
    assert starts == [
        "root@10.0.0.11 <id-1>",
        "root@10.0.0.11 <id-2>",
        "root@10.0.0.12 <id-3>",
        "root@10.0.0.13 <id-4>",
    ]
    second = lines.index("batch 2/2: 10.0.0.13")
    assert all("10.0.0.13" not in line for line in lines[:second])
    assert lines[second - 1] == (
        "  then the old instances on 10.0.0.11, 10.0.0.12 stop as the new ones are ready"
    )
    assert any("upload the baepo agent" in line for line in lines[second:])
