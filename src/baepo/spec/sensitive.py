"""Which spec values look like secrets, and how every view shows them: one rule for all.

A ``run.env`` variable whose name contains ``password``, ``token``, ``secret`` or ``key`` (in
any case: ``API_TOKEN``, ``DB_PASSWORD``, ``signing_key``) holds a secret-looking value. Such a
value belongs in ``secrets:``; when a spec keeps it in ``run.env`` anyway, ``validate`` and
``deploy`` warn (:func:`secret_env_warnings`), a revision stores it sealed (encrypted with the
keyring, see ``secrets.sealed``: ``SEALED_PREFIX`` + keyed fingerprint + Fernet token), and
every view shows it as ``***`` (:func:`mask_spec`): ``config show``, ``validate -o json``,
history, dry-run previews, the API and the dashboard.

Pure functions over spec mappings (``Spec.model_dump`` or the spec as written, overlays
included). Callers: ``cli.spec_commands``, ``api.views``, ``controller.preview``,
``web.pages``, ``secrets.sealed``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, Mapping
from typing import Any

MASK = "***"
SEALED_PREFIX = "baepo-sealed:v1:"
"""A sealed value reads ``baepo-sealed:v1:<fingerprint>:<Fernet token>``."""

_SECRET_WORDS = ("password", "token", "secret", "key")
_ENVIRONMENTS = "environments"


def is_secret_name(name: str) -> bool:
    """True for variable names that look like they hold a secret (``API_KEY``, ``DB_PASSWORD``)."""
    lowered = name.lower()
    return any(word in lowered for word in _SECRET_WORDS)


def is_sealed(value: object) -> bool:
    """True for a value a revision stores sealed (never shown, opened only to run)."""
    return isinstance(value, str) and value.startswith(SEALED_PREFIX)


def sealed_fingerprint(value: str) -> str:
    """The keyed fingerprint inside a sealed value: equal values give equal fingerprints."""
    return value[len(SEALED_PREFIX) :].split(":", 1)[0]


def env_sections(data: Mapping[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Each ``run.env`` mapping of a spec mapping with its key path: the base's, then each
    environment overlay's (``environments.production.run.env``)."""
    sections: list[tuple[str, Any]] = [("", data)]
    envs = data.get(_ENVIRONMENTS)
    if isinstance(envs, Mapping):
        sections += [(f"{_ENVIRONMENTS}.{name}.", overlay) for name, overlay in envs.items()]
    for prefix, section in sections:
        run = section.get("run") if isinstance(section, Mapping) else None
        env = run.get("env") if isinstance(run, Mapping) else None
        if isinstance(env, dict):
            yield f"{prefix}run.env", env


def secret_env_paths(data: Mapping[str, Any]) -> list[str]:
    """The key path of every secret-looking ``run.env`` value (``run.env.API_TOKEN``)."""
    return [
        f"{path}.{name}"
        for path, env in env_sections(data)
        for name, value in env.items()
        if is_secret_name(str(name)) and value is not None
    ]


def secret_env_warnings(data: Mapping[str, Any]) -> list[str]:
    """One warning per secret-looking ``run.env`` value, naming its key path and showing the
    ``secrets:`` entry to write instead (the value itself never appears)."""
    warnings = []
    for path in secret_env_paths(data):
        name = path.rsplit(".", 1)[1]
        stored = name.lower().replace("_", "-")
        warnings.append(
            f"{path} looks like a secret: keep it in `secrets:` instead of `run.env` (until "
            f"then baepo stores it encrypted and shows it as {MASK}); store it with "
            f"`baepo secret set {stored} < FILE` and write:\n"
            f"secrets:\n  {name}: {stored}"
        )
    return warnings


def mask_spec(data: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of a spec mapping with every secret-looking ``run.env`` value (in the base and
    in every overlay) and every sealed value anywhere shown as ``***``."""
    shown = _map_sealed(copy.deepcopy(dict(data)), lambda _: MASK)
    assert isinstance(shown, dict)
    for _, env in env_sections(shown):
        for name, value in env.items():
            if is_secret_name(str(name)) and value is not None:
                env[name] = MASK
    return shown


def seal_values(data: Mapping[str, Any], seal: Callable[[str], str]) -> dict[str, Any]:
    """A copy of a spec mapping with every secret-looking ``run.env`` value not yet sealed
    replaced by ``seal(value)``, in the base and in every overlay."""
    done = copy.deepcopy(dict(data))
    for _, env in env_sections(done):
        for name, value in env.items():
            if is_secret_name(str(name)) and value is not None and not is_sealed(value):
                env[name] = seal(str(value))
    return done


def hash_view(data: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of a spec mapping with each sealed value cut to its prefix and fingerprint: what
    a config hash is taken over, the same for the same values whatever their tokens."""
    cut = _map_sealed(dict(data), lambda value: SEALED_PREFIX + sealed_fingerprint(value))
    assert isinstance(cut, dict)
    return cut


def sealed_versions(config: Mapping[str, Any]) -> dict[str, str]:
    """``{variable: "run.env <fingerprint>"}`` for each sealed ``run.env`` value of a resolved
    config: with the ``secrets:`` versions, what history compares to say "changed"."""
    run = config.get("run")
    env = run.get("env") if isinstance(run, Mapping) else None
    if not isinstance(env, Mapping):
        return {}
    return {
        str(name): f"run.env {sealed_fingerprint(value)}"
        for name, value in env.items()
        if is_sealed(value)
    }


def _map_sealed(value: Any, change: Callable[[str], str]) -> Any:
    if isinstance(value, dict):
        return {k: _map_sealed(v, change) for k, v in value.items()}
    if isinstance(value, list):
        return [_map_sealed(v, change) for v in value]
    return change(value) if is_sealed(value) else value
