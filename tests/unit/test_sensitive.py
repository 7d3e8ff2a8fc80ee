"""One rule for secret-looking run.env values: masked in views, sealed in revisions."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from cryptography.fernet import Fernet

from baepo.controller import preview
from baepo.core.model import Revision
from baepo.secrets import sealed
from baepo.secrets.keys import Keyring
from baepo.secrets.resolve import secret_labels
from baepo.spec import sensitive
from baepo.spec.loader import parse_spec

AT = datetime(2026, 1, 1, tzinfo=UTC)

SPEC = {
    "run": {"env": {"API_TOKEN": "s3cr3t-value", "LOG_LEVEL": "info"}},
    "environments": {"production": {"run": {"env": {"DB_PASSWORD": "pw-123"}}}},
}


def keyring() -> Keyring:
    return Keyring(keys=[Fernet.generate_key().decode()])


def test_secret_paths_and_warnings_name_every_value_never_show_it() -> None:
    assert sensitive.secret_env_paths(SPEC) == [
        "run.env.API_TOKEN",
        "environments.production.run.env.DB_PASSWORD",
    ]
    warnings = sensitive.secret_env_warnings(SPEC)
    assert len(warnings) == 2
    assert warnings[0].startswith("run.env.API_TOKEN looks like a secret")
    assert "secrets:\n  API_TOKEN: api-token" in warnings[0]
    assert not any("s3cr3t" in w or "pw-123" in w for w in warnings)


def test_sealed_values_open_to_the_same_value_and_never_show() -> None:
    ring = keyring()
    done = sealed.seal_spec(SPEC, ring)
    token = done["run"]["env"]["API_TOKEN"]
    assert sensitive.is_sealed(token) and "s3cr3t" not in str(done)
    assert done["run"]["env"]["LOG_LEVEL"] == "info"
    assert sensitive.is_sealed(done["environments"]["production"]["run"]["env"]["DB_PASSWORD"])
    assert sealed.open_env(done["run"]["env"], ring) == SPEC["run"]["env"]
    assert sensitive.mask_spec(done)["run"]["env"] == {"API_TOKEN": "***", "LOG_LEVEL": "info"}
    # Sealing again keeps the value as it is (undo, promote-release run the same token).
    assert sealed.seal_spec(done, ring) == done


def test_equal_values_hash_alike_and_a_changed_value_shows_as_changed() -> None:
    ring = keyring()
    one, two = sealed.seal_spec(SPEC, ring), sealed.seal_spec(SPEC, ring)
    assert one != two  # Fernet tokens differ...
    assert sensitive.hash_view(one) == sensitive.hash_view(two)  # ...the hash does not
    other = sealed.seal_spec({"run": {"env": {"API_TOKEN": "another"}}}, ring)
    before, after = sensitive.sealed_versions(one), sensitive.sealed_versions(other)
    assert before.keys() == {"API_TOKEN"} and before != after
    assert secret_labels(before) == {"API_TOKEN": "run.env, sealed"}


def test_split_env_keeps_plain_values_apart() -> None:
    done = sealed.seal_spec(SPEC, keyring())
    plain, closed = sealed.split_env(done["run"]["env"])
    assert plain == {"LOG_LEVEL": "info"} and list(closed) == ["API_TOKEN"]


def test_a_hosts_plan_sends_secret_looking_values_as_secrets(tmp_path: Path) -> None:
    spec = parse_spec(
        'app: shop\nversion: "1"\nrun: {command: [app], env: {API_TOKEN: s3cr3t, LEVEL: info}}\n'
        "target:\n  kind: hosts\n  hosts: [{address: 10.0.0.11}]\n"
    )
    config = spec.model_dump(mode="json")
    revision = Revision("shop", "prod", 1, "1", config, "h", str(tmp_path), "me", AT)
    text = "\n".join(preview.hosts_plan_lines(revision, spec))
    assert "secrets redacted" in text and "s3cr3t" not in text
