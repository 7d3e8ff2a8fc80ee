"""What a spec's secret reference may name: the static rules (located spec errors), the
deploy-time check against a real SQLite store, and the read-time check on the opened file."""

from __future__ import annotations

import asyncio
import os
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from baepo.analysis.measure import MeasureContext, MeasurementError, render
from baepo.controller import desired
from baepo.core.model import Secret
from baepo.core.ports import Store
from baepo.errors import ConfigError, StateError
from baepo.gates.run import probe
from baepo.secrets import references
from baepo.secrets.keys import Keyring
from baepo.secrets.references import SecretScope
from baepo.secrets.resolve import secret_env, secret_versions
from baepo.spec.gates import HttpCheckSpec
from baepo.spec.loader import parse_spec
from baepo.store import open_store, sqlite_url

SCOPE = SecretScope()
HEAD = 'app: shop\nrun: {command: ["true"]}\n'


@pytest.fixture
def store(tmp_path: Path) -> Store:
    opened: Store = open_store(sqlite_url(tmp_path / "state.db"))
    return opened


@pytest.fixture
def home(tmp_path: Path) -> Path:
    folder = tmp_path / "app"
    folder.mkdir()
    (folder / "token.txt").write_text("inside\n")
    (tmp_path / "outside.txt").write_text("outside\n")
    return folder


def problems_of(text: str) -> dict[str, str]:
    with pytest.raises(ConfigError) as caught:
        parse_spec(HEAD + text, source="baepo.yaml")
    return {p.path: p.message for p in caught.value.problems}


def test_a_file_outside_the_folder_is_a_located_spec_error() -> None:
    found = problems_of(
        "secrets:\n"
        "  UP: {file: ../.baepo/secret.key}\n"
        "  DEEP: {file: config/../../x}\n"
        "  ABSOLUTE: {file: /etc/passwd}\n"
        "  EMPTY: {file: ''}\n"
    )
    assert found["secrets.UP.file"].startswith("../.baepo/secret.key goes up with '..'")
    assert "goes up with '..'" in found["secrets.DEEP.file"]
    assert found["secrets.ABSOLUTE.file"].startswith("/etc/passwd is an absolute path")
    assert "relative to the spec's folder" in found["secrets.EMPTY.file"]


def test_names_must_be_names_and_a_source_has_one_kind() -> None:
    found = problems_of(
        "secrets:\n"
        "  A: {env: 'PATH=x'}\n"
        "  B: ../prod/db\n"
        "  C: {secret: 'a b'}\n"
        "  D: {env: HOME, file: x}\n"
        "  E: {}\n"
    )
    assert "not an environment variable name" in found["secrets.A.env"]
    assert "not a stored secret's name" in found["secrets.B"]
    assert "not a stored secret's name" in found["secrets.C.secret"]
    assert found["secrets.D"] == "give exactly one of secret, env or file (got env, file)"
    assert found["secrets.E"] == "give exactly one of secret, env or file"


def test_an_environment_overlay_is_checked_too() -> None:
    found = problems_of(
        "environments:\n  staging:\n    secrets: {KEY: {file: /root/.ssh/id_ed25519}}\n"
    )
    assert any(path.endswith("secrets.KEY.file") for path in found), found


def test_reading_stays_in_the_folder(home: Path) -> None:
    assert references.read_secret_file(home, "token.txt") == "inside"
    (home / "sub").mkdir()
    (home / "sub" / "link").symlink_to(home / "token.txt")
    assert references.read_secret_file(home, "sub/link") == "inside"  # a link inside is fine
    (home / "out").symlink_to(home.parent / "outside.txt")
    (home / "up").symlink_to("..", target_is_directory=True)
    for name in ("out", "up/outside.txt"):
        with pytest.raises(StateError, match="leads out of the app's folder"):
            references.read_secret_file(home, name)
    for name in ("../outside.txt", str(home.parent / "outside.txt")):
        with pytest.raises(StateError, match="not a relative path inside the app's folder"):
            references.read_secret_file(home, name)


def test_only_small_regular_files_are_read(home: Path) -> None:
    os.mkfifo(home / "pipe")  # opening must not block, reading must be refused
    with pytest.raises(StateError, match="not a regular file"):
        references.read_secret_file(home, "pipe")
    (home / "dir").mkdir()
    with pytest.raises(StateError, match="not a regular file"):
        references.read_secret_file(home, "dir")
    (home / "big").write_bytes(b"x" * (references.MAX_FILE_BYTES + 1))
    with pytest.raises(StateError, match="larger than"):
        references.read_secret_file(home, "big")
    with pytest.raises(StateError, match=r"cannot read missing\.txt"):
        references.read_secret_file(home, "missing.txt")


def test_a_symlink_made_after_the_deploy_is_refused_at_read_time(store: Store, home: Path) -> None:
    spec = parse_spec(HEAD + "secrets: {TOKEN: {file: token.txt}}\n")
    keyring = Keyring(keys=[Fernet.generate_key().decode()])
    assert references.reference_problems(store, spec, "shop", "staging", home, SCOPE) == []
    (home / "token.txt").unlink()
    (home / "token.txt").symlink_to(home.parent / "outside.txt")
    with pytest.raises(StateError) as caught:
        secret_env(store, keyring, spec, "shop", "staging", home, scope=SCOPE)
    assert str(caught.value).startswith("TOKEN: token.txt leads out of the app's folder")
    versions = secret_versions(store, keyring, spec, "shop", "staging", home, scope=SCOPE)
    assert versions == {"TOKEN": "file token.txt (missing)"}


def test_the_deploy_check_names_each_field(
    store: Store, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    keyring = Keyring(keys=[Fernet.generate_key().decode()])
    store.put_secret(
        Secret("shop", "production", "db", keyring.encrypt("prod-pw"), 0, datetime.now(UTC), "t")
    )
    (home / "out").symlink_to(home.parent / "outside.txt")
    monkeypatch.setenv("SHOP_ALLOWED", "fine")
    monkeypatch.setenv("SHOP_OTHER", "not-for-you")
    spec = parse_spec(
        HEAD + "secrets:\n"
        "  BARE: db\n"
        "  LONG: {secret: db}\n"
        "  OK_ENV: {env: SHOP_ALLOWED}\n"
        "  BAD_ENV: {env: SHOP_OTHER}\n"
        "  LINK: {file: out}\n"
        "  GONE: {file: nothing.txt}\n"
        "  OK_FILE: {file: token.txt}\n"
    )
    scope = SecretScope(frozenset({"SHOP_ALLOWED"}))
    found = {
        p.path: p.message
        for p in references.reference_problems(store, spec, "shop", "staging", home, scope)
    }
    assert sorted(found) == [
        "secrets.BAD_ENV.env",
        "secrets.BARE",
        "secrets.GONE.file",
        "secrets.LINK.file",
        "secrets.LONG.secret",
    ]
    assert found["secrets.BARE"].startswith("the secret db is not set for shop in staging")
    assert "baepo secret set db -e staging" in found["secrets.LONG.secret"]
    assert "--allow-secret-env SHOP_OTHER" in found["secrets.BAD_ENV.env"]
    assert "BAEPO_ALLOWED_SECRET_ENV=SHOP_OTHER" in found["secrets.BAD_ENV.env"]
    assert "leads out of the app's folder" in found["secrets.LINK.file"]
    assert "not-for-you" not in str(found) and "prod-pw" not in str(found)
    with pytest.raises(StateError) as caught:
        secret_env(
            store, keyring, parse_spec(HEAD + "secrets: {X: {env: SHOP_OTHER}}\n"),
            "shop", "staging", home, scope=scope,
        )  # fmt: skip
    assert "does not allow" in str(caught.value) and "--allow-secret-env" in str(caught.value.hint)


def test_allowed_names_come_from_flags_and_the_environment() -> None:
    names = references.allowed_env_names(["API_KEY", "A,B"], "C, D  E")
    assert names == {"API_KEY", "A", "B", "C", "D", "E"}
    assert references.allowed_env_names([], None) == frozenset()
    with pytest.raises(ConfigError) as caught:
        references.allowed_env_names(["OK", "no-dash"], "x=y")
    assert [p.path for p in caught.value.problems] == [
        "--allow-secret-env",
        "BAEPO_ALLOWED_SECRET_ENV",
    ]


def test_every_way_to_name_a_server_variable_is_checked(store: Store, home: Path) -> None:
    spec = parse_spec(
        HEAD + "secrets: {DB_URL: db-url}\n"
        "checks:\n"
        "  before:\n"
        "    - name: smoke\n"
        "      http: {url: 'http://127.0.0.1:9/{{env.CHECK_PATH}}',\n"
        "             headers: {X-Key: '{{ env.BAEPO_TOKEN }}'}}\n"
        "analysis:\n"
        "  smoke:\n"
        "    metrics:\n"
        "      - name: smoke\n"
        "        provider: web\n"
        "        web: {url: 'http://127.0.0.1:9/', headers: {A: 'Bearer {{env.METRICS_TOKEN}}'}}\n"
        "        success_condition: result == true\n"
        "notifications:\n"
        "  - {name: hook, url_env: NOTIFY_URL}\n"
        "backup: {kind: postgres, url_env: DB_URL}\n"
    )
    found = {
        p.path: p.message
        for p in references.server_env_problems(spec, {"METRICS_TOKEN", "CHECK_PATH"})
    }
    assert sorted(found) == ["checks.before[0].http.headers.X-Key", "notifications[0].url_env"]
    assert found["checks.before[0].http.headers.X-Key"].startswith(
        "{{env.BAEPO_TOKEN}}: the server does not allow specs to read its environment variable"
    )
    assert "--allow-secret-env NOTIFY_URL" in found["notifications[0].url_env"]
    # a backup's url_env may name the spec's own secret; a server variable must be allowed
    other = parse_spec(HEAD + "backup: {kind: postgres, url_env: DATABASE_URL}\n")
    assert [p.path for p in references.server_env_problems(other, ())] == ["backup.url_env"]
    assert references.server_env_problems(other, {"DATABASE_URL"}) == []


def test_placeholders_read_only_allowed_variables_at_run_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SHOP_TOKEN", "tok-1")
    monkeypatch.setenv("BAEPO_OTHER", "not-for-specs")
    context = MeasureContext("shop", "staging", 2, 1, 10.0, datetime.now(UTC))
    allowed = MeasureContext(
        "shop", "staging", 2, 1, 10.0, datetime.now(UTC), allowed_env=frozenset({"SHOP_TOKEN"})
    )
    assert render("Bearer {{env.SHOP_TOKEN}}", allowed) == "Bearer tok-1"
    with pytest.raises(MeasurementError, match="--allow-secret-env SHOP_TOKEN"):
        render("Bearer {{env.SHOP_TOKEN}}", context)
    with pytest.raises(MeasurementError) as caught:
        render("{{env.BAEPO_OTHER}}", allowed)
    assert "not-for-specs" not in str(caught.value)

    http = HttpCheckSpec(url="http://127.0.0.1:9/", headers={"X": "{{env.BAEPO_OTHER}}"})
    refused = asyncio.run(probe(http, timeout=1, allowed_env={"SHOP_TOKEN"}))
    assert not refused.passed
    assert "does not allow specs to read its environment variable(s) BAEPO_OTHER" in (
        refused.message
    )


def test_the_state_directory_is_private_even_inside_the_folder(store: Store, home: Path) -> None:
    state = home / ".baepo"
    state.mkdir()
    (state / "secret.key").write_text("master-key")
    (home / "key-link").symlink_to(state / "secret.key")
    scope = SecretScope(private=(str(state),))
    spec = parse_spec(HEAD + "secrets: {KEY: {file: .baepo/secret.key}, LINK: {file: key-link}}\n")
    found = {
        p.path: p.message
        for p in references.reference_problems(store, spec, "shop", "staging", home, scope)
    }
    assert found == {
        "secrets.KEY.file": ".baepo/secret.key is in the server's state directory, which no "
        "spec may read",
        "secrets.LINK.file": "key-link is in the server's state directory, which no spec may read",
    }
    keyring = Keyring(keys=[Fernet.generate_key().decode()])
    with pytest.raises(StateError) as caught:
        secret_env(store, keyring, spec, "shop", "staging", home, scope=scope)
    assert "master-key" not in str(caught.value)


def test_a_release_archive_stays_in_the_folder(home: Path) -> None:
    hosts = "target: {kind: hosts, hosts: [{address: 10.0.0.1}], release: {archive: %s}}\n"
    found = problems_of(hosts % "/srv/builds/shop.tgz")
    assert found["target.release.archive"].startswith("/srv/builds/shop.tgz is an absolute path")
    (home.parent / "stolen.tgz").write_bytes(b"x")
    (home / "dist").mkdir()
    (home / "dist" / "ok-1.tgz").write_bytes(b"x")
    spec = parse_spec(HEAD + hosts % "'dist/{version}.tgz'")
    desired.check_release(spec, str(home), "ok-1")
    with pytest.raises(ConfigError) as caught:
        desired.check_release(spec, str(home), "../../stolen")  # --version ../../stolen
    assert [p.path for p in caught.value.problems] == ["target.release.archive"]
    assert "leads out of the app's folder" in caught.value.problems[0].message


def test_the_example_in_docs_auth_md_loads() -> None:
    text = (Path(__file__).resolve().parents[2] / "docs" / "auth.md").read_text()
    blocks = re.findall(r"^```yaml\n(.*?)^```$", text, flags=re.DOTALL | re.MULTILINE)
    assert blocks
    for block in blocks:
        spec = parse_spec(HEAD + block, source="docs/auth.md")
        assert set(spec.secrets) == {"DB_PASSWORD", "TLS_KEY", "SMTP_PASSWORD"}


def test_a_symlink_swapped_while_opening_is_refused(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The link points out when the file is opened and back in when its real path is looked
    up: the opened file is not the one the path names, so nothing is read."""
    link = home / "token-link"
    link.symlink_to(home.parent / "outside.txt")
    real_open = os.open

    def open_then_swap(path: str, flags: int, *args: object) -> int:
        fd = real_open(path, flags)
        link.unlink()
        link.symlink_to(home / "token.txt")
        return fd

    monkeypatch.setattr(references.os, "open", open_then_swap)
    with pytest.raises(StateError, match="leads out of the app's folder"):
        references.read_secret_file(home, "token-link")
