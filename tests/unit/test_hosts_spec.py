"""The ``target`` section: local by default, hosts validated with errors naming the field."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from baepo.controller.desired import hosts_target
from baepo.errors import ConfigError
from baepo.platforms.hosts import commands
from baepo.spec.loader import parse_spec

BASE = 'app: shop\nrun: {command: ["python3", "app.py", "--port", "{port}"]}\n'


def problems(text: str) -> list[tuple[str, str]]:
    with pytest.raises(ConfigError) as caught:
        parse_spec(BASE + text)
    return [(p.path, p.message) for p in caught.value.problems]


def test_local_is_the_default() -> None:
    spec = parse_spec(BASE)
    assert spec.target.kind == "local"
    assert hosts_target(spec, "/src") is None
    # A resolved spec (every field, defaults included) loads again, as a revision does.
    assert type(spec).model_validate(spec.model_dump()).target.kind == "local"


def test_hosts_with_defaults() -> None:
    spec = parse_spec(
        BASE
        + "target: {kind: hosts, hosts: [{address: 10.0.0.11, key: ~/.ssh/id}, "
        + "{address: 10.0.0.12, user: deploy, port: 2222, labels: {zone: a}}]}\n"
    )
    target = hosts_target(spec, "/src/shop")
    assert target is not None
    assert target.path == "/srv/baepo"
    assert target.max_failed_hosts == 0
    assert target.source == "/src/shop"
    assert {host.python for host in target.hosts} == {"python3"}
    first, second = target.hosts
    assert (first.address, first.port, first.user, first.key) == (
        "10.0.0.11",
        22,
        "root",
        "~/.ssh/id",
    )
    assert (second.port, second.user, second.labels) == (2222, "deploy", (("zone", "a"),))


@pytest.mark.parametrize(
    ("text", "path", "words"),
    [
        ("target: {kind: hosts}\n", "target", "at least one host"),
        ("target: {kind: cloud}\n", "target.kind", "local"),
        ("target: {hosts: [{address: a}]}\n", "target", "only `kind: hosts`"),
        ("target: {kind: hosts, hosts: [{port: 22}]}\n", "target.hosts[0].address", "required"),
        (
            "target: {kind: hosts, hosts: [{address: 'a b'}]}\n",
            "target.hosts[0].address",
            "host name",
        ),
        ("target: {kind: hosts, hosts: [{address: a, port: 0}]}\n", "target.hosts[0].port", ""),
        (
            "target: {kind: hosts, hosts: [{address: a, user: 'Bad User'}]}\n",
            "target.hosts[0].user",
            "Unix user",
        ),
        (
            "target: {kind: hosts, hosts: [{address: a, pasword: x}]}\n",
            "target.hosts[0].pasword",
            "",
        ),
        ("target: {kind: hosts, hosts: [{address: a}], path: srv}\n", "target.path", "absolute"),
        (
            "target: {kind: hosts, hosts: [{address: a}], path: /srv/../etc}\n",
            "target.path",
            "'..'",
        ),
        ("target: {kind: hosts, hosts: [{address: a}, {address: a}]}\n", "target", "listed twice"),
        (
            "target: {kind: hosts, hosts: [{address: a}], max_failed_hosts: 1}\n",
            "target",
            "max_failed_hosts",
        ),
        ("target: {kind: hosts, hosts: [{address: a}], python: 'python3 -u'}\n", "target.python",
         "bare command name"),
        ("target: {kind: hosts, hosts: [{address: a}], python: bin/python3}\n", "target.python",
         "absolute path"),
        ("target: {kind: hosts, hosts: [{address: a}], python: '/opt/../python3'}\n",
         "target.python", "'..'"),
        ("target: {kind: hosts, hosts: [{address: a}], python: ''}\n", "target.python",
         "bare command name"),
        ("target: {python: /usr/bin/python3}\n", "target", "only `kind: hosts`"),
        ("target: {kind: local, python: python3.11}\n", "target", "only `kind: hosts`"),
    ],
)  # fmt: skip
def test_bad_targets_name_the_field(text: str, path: str, words: str) -> None:
    found = problems(text)
    assert any(p == path and words in m for p, m in found), found


@pytest.mark.parametrize("python", ["/usr/bin/python3", "python3.11", "/opt/py-3.12/bin/python"])
def test_target_python_runs_every_agent_command(python: str) -> None:
    spec = parse_spec(
        BASE + f"target: {{kind: hosts, python: {python}, hosts: [{{address: 10.0.0.11}}]}}\n"
    )
    target = hosts_target(spec, "/src/shop")
    assert target is not None
    (host,) = target.hosts
    assert host.python == python
    status = commands.status(host, target.path, "shop", "prod")
    assert status.argv == (python, "/srv/baepo/.baepo/agent.py", "status",
                           "/srv/baepo/shop/prod/instances")  # fmt: skip
    build = commands.build_release(host, target.path, "shop", "prod", 3, ("make",), 60.0, {})
    assert build.argv[0] == python and commands.is_build(build)


def test_the_yaml_examples_of_docs_hosts_md_load() -> None:
    text = (Path(__file__).resolve().parents[2] / "docs" / "hosts.md").read_text()
    blocks = re.findall(r"^```yaml\n(.*?)^```$", text, flags=re.DOTALL | re.MULTILINE)
    assert blocks
    for block in blocks:
        assert parse_spec(block).target.kind == "hosts"
