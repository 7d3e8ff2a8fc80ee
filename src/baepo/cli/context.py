"""Where a command works: the spec file, the state directory, the environment, the output form.

Commands find ``baepo.yaml`` in the current directory unless given ``-f FILE``; state lives in
``.baepo/`` beside the spec unless ``--state-dir`` or ``BAEPO_STATE_DIR`` says otherwise.
Callers: every CLI command module.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from enum import StrEnum
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from baepo.spec import text

if TYPE_CHECKING:
    from baepo.cli.client import Client
    from baepo.spec.loader import LoadedSpec


class Output(StrEnum):
    text = "text"
    json = "json"


FileOpt = Annotated[
    Path | None,
    typer.Option(
        "--file", "-f", help="The spec file (default: baepo.yaml in this folder).", metavar="FILE"
    ),
]
EnvOpt = Annotated[
    str | None,
    typer.Option(
        "--env",
        "-e",
        help="The environment (default: the spec's `default_env`, else `default`).",
        envvar="BAEPO_ENV",
        metavar="ENV",
        show_default=False,
    ),
]
StateOpt = Annotated[
    Path | None,
    typer.Option(
        "--state-dir",
        help="Where baepo keeps state (default: .baepo beside the spec).",
        envvar="BAEPO_STATE_DIR",
        metavar="DIR",
    ),
]
OutputOpt = Annotated[Output, typer.Option("--output", "-o", help="Output format: text or json.")]


def line_option(value: str | None) -> str | None:
    """Typer callback: an option value that must be one line without control characters (a
    version); anything else is a usage error (exit 2) naming the option."""
    return _checked(value, one_line=True)


def text_option(value: str | None) -> str | None:
    """Typer callback: an option value that may hold tabs and newlines but no other control
    characters (a message, a reason)."""
    return _checked(value, one_line=False)


def _checked(value: str | None, *, one_line: bool) -> str | None:
    problem = None if value is None else text.control_problem(value, one_line=one_line)
    if problem is not None:
        raise typer.BadParameter(problem)
    return value


MessageOpt = Annotated[
    str, typer.Option("--message", "-m", help="Why, for the history.", callback=text_option)
]


@dataclass
class Project:
    """The spec file and state directory a command works on."""

    file: Path | None
    env_option: str | None
    state_dir_option: Path | None

    @cached_property
    def env(self) -> str:
        """``--env`` (or ``BAEPO_ENV``), else the spec's ``default_env``, else ``default``."""
        if self.env_option:
            return self.env_option
        from baepo.core.model import DEFAULT_ENV
        from baepo.errors import BaepoError
        from baepo.spec.files import quick_default_env

        try:
            return quick_default_env(self.path) or DEFAULT_ENV
        except BaepoError:  # no spec file: commands that need one say so themselves
            return DEFAULT_ENV

    @cached_property
    def loaded(self) -> LoadedSpec:
        from baepo.spec.loader import load_spec

        return load_spec(self.path)

    @cached_property
    def path(self) -> Path:
        from baepo.spec.files import find_spec_file

        return find_spec_file(Path.cwd(), self.file).resolve()

    @cached_property
    def app(self) -> str:
        """The app's name: read cheaply when the file plainly names one, else fully validated
        (so a broken file gets located errors)."""
        from baepo.spec.files import quick_app_name

        return quick_app_name(self.path) or self.loaded.spec.app

    @cached_property
    def state_dir(self) -> Path:
        if self.state_dir_option is not None:
            return self.state_dir_option.resolve()
        return self.path.parent / ".baepo"

    def client(self, *, start: bool = True) -> Client:
        """A client for the state directory's server; one started here gets the spec's folder
        (when there is a spec) as the app's folder."""
        from baepo.cli.client import connect
        from baepo.errors import BaepoError

        try:
            workdir: Path | None = self.path.parent
        except BaepoError:  # no spec here: the server's default (the state dir's parent)
            workdir = None
        return connect(
            self.state_dir,
            start=start,
            database_url=os.environ.get("BAEPO_DATABASE_URL"),
            workdir=workdir,
        )

    def spec_client(self) -> Client:
        """A client for a command that sends the spec's text (deploy, backup): the server runs
        the app in its own folder, so a local server must have this spec's folder as its."""
        client = self.client()
        workdir = (client.server_info or {}).get("workdir")
        folder = self.path.parent
        if workdir and Path(workdir) != folder:
            from baepo.errors import StateError

            client.close()
            raise StateError(
                f"the server of {self.state_dir} runs apps in {workdir}, but {self.path.name} "
                f"is in {folder}: the server would not find this folder's files",
                hint="run baepo in that folder, keep this spec's state beside it (no "
                "--state-dir), or restart the server for this folder: baepo server stop, "
                f"then baepo server start --workdir {folder}",
            )
        return client

    def act(self, route: str, output: Output, **body: Any) -> dict[str, Any]:
        """POST ``{env, **body}`` to the app's ``route``; with ``-o json`` print
        the answer as JSON. Returns the answer, for the caller's text output."""
        result: dict[str, Any] = self.client().post(
            f"/api/v1/apps/{self.app}/{route}", {"env": self.env, **body}
        )
        if output == Output.json:
            print(json.dumps(result))
        return result
