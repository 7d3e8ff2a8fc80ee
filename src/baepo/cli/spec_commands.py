"""Commands about the spec file itself: ``init``, ``validate``, ``schema``. No server needed.

Callers: ``cli.main`` registers them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.text import Text

from baepo.cli.context import FileOpt, Output, OutputOpt
from baepo.errors import ConfigError, Problem

out = Console(highlight=False, markup=False)
err = Console(stderr=True, highlight=False, markup=False)


def init(
    app_name: Annotated[
        str | None, typer.Option("--app", help="The app's name (default: this folder's name).")
    ] = None,
    file: FileOpt = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
) -> None:
    """Write a commented starter `baepo.yaml`.

    Example: `baepo init --app shop-api`, then edit `run.command` and `health`.
    """
    from baepo.spec.starter import app_name_from, starter_spec

    path = (file or Path("baepo.yaml")).resolve()
    if path.exists() and not force:
        raise ConfigError(
            f"{path} already exists",
            problems=[Problem("--file", "choose another file, or pass --force to overwrite")],
        )
    name = app_name or app_name_from(path.parent.name)
    path.write_text(starter_spec(name))
    out.print(
        f"wrote {escape(str(path))} for app [bold]{escape(name)}[/]; next: edit it, then "
        "`baepo deploy --wait`",
        markup=True,
    )


def validate(file: FileOpt = None, output: OutputOpt = Output.text) -> None:
    """Check a spec file and summarise it; exit 2 with located problems when it is invalid.

    A `run.env` value whose name looks like a secret (`password`, `token`, `secret`, `key`)
    gets a warning (exit 0) naming its key path and the `secrets:` entry to write instead.

    Example: `baepo validate -f deploy/baepo.yaml`
    """
    from baepo.spec.files import find_spec_file
    from baepo.spec.loader import load_spec, spec_source
    from baepo.spec.sensitive import mask_spec, secret_env_warnings

    loaded = load_spec(find_spec_file(Path.cwd(), file))
    spec = loaded.spec
    warnings = secret_env_warnings(spec_source(loaded.text))
    if output == Output.json:
        shown = mask_spec(spec.model_dump(mode="json"))
        view = {"valid": True, "file": str(loaded.path), "spec": shown, "warnings": warnings}
        print(json.dumps(view))
        return
    for warning in warnings:
        err.print(f"[yellow]warning[/]: {escape(warning)}", soft_wrap=True, markup=True)
    if spec.strategy.rolling is not None:
        surge, unavailable = spec.strategy.rolling.resolve(spec.replicas)
        how = f"rolling (surge {surge}, unavailable {unavailable})"
    elif spec.strategy.canary is not None:
        how = f"canary ({len(spec.strategy.canary.steps)} steps)"
    elif spec.strategy.blue_green is not None:
        how = "blue-green"
    else:
        how = "recreate (with downtime)"
    out.print(
        f"[green]valid[/]: {escape(str(loaded.path))}: app [bold]{spec.app}[/], "
        f"version {escape(spec.version or '(from --version)')}, {spec.replicas} replicas, "
        f"{how}, router on {spec.router.listen}",
        markup=True,
    )


def schema() -> None:
    """Print the JSON Schema of `baepo.yaml` (for editor completion).

    Example: `baepo schema > baepo.schema.json`, then in baepo.yaml:
    `# yaml-language-server: $schema=baepo.schema.json`
    """
    from baepo.spec.schema import spec_json_schema

    print(json.dumps(spec_json_schema(), indent=2))


config = typer.Typer(
    name="config",
    help="Show the configuration a deploy would use, defaults included.",
    no_args_is_help=True,
)


ShowEnvOpt = Annotated[
    str | None,
    typer.Option(
        "--env",
        "-e",
        help="The environment whose overlay to merge in (default: the spec's `default_env`).",
        envvar="BAEPO_ENV",
        metavar="ENV",
    ),
]


@config.command("show")
def config_show(
    file: FileOpt = None, env: ShowEnvOpt = None, output: OutputOpt = Output.text
) -> None:
    """Print the resolved spec with every default filled in, the rollback guards that are
    on, and the analysis templates.

    With `--env`, the environment's overlay from `environments:` is merged in and each key it
    sets is listed with its origin. Values of `run.env` variables whose names contain
    `password`, `token`, `secret` or `key` are shown as `***`.
    Guards are on unless the spec turns them off: `rollback: {error_rate: off}` or
    `rollback: {enabled: false}`.
    Example: `baepo config show --env production`, `baepo config show -o json | jq .guards`
    """
    from baepo.spec.files import find_spec_file
    from baepo.spec.loader import load_spec
    from baepo.spec.sensitive import mask_spec

    path = find_spec_file(Path.cwd(), file)
    loaded = load_spec(path)
    if env is None:
        env = loaded.spec.default_env
    if env is not None:
        loaded = load_spec(path, env=env)
    spec = loaded.spec
    resolved = mask_spec(spec.model_dump(mode="json"))
    guards = spec.rollback.active_guards()
    if output == Output.json:
        shown = {
            "file": str(loaded.path),
            "env": env,
            "spec": resolved,
            "sources": loaded.sources,
            "guards": guards,
        }
        print(json.dumps(shown))
        return
    import yaml

    where = f" for environment [bold]{escape(env)}[/]" if env is not None else ""
    out.print(f"[bold]{escape(str(loaded.path))}[/] resolved{where}:", markup=True)
    out.print(yaml.safe_dump(resolved, sort_keys=False), markup=False, highlight=False)
    if loaded.sources:
        out.print(
            "[bold]overrides[/] (every other value comes from the base spec or a default):",
            markup=True,
        )
        for key, origin in loaded.sources.items():
            out.print(f"  - {key}  # from {origin}", markup=False)
    elif env is not None:
        out.print(
            f"[bold]overrides[/]: none, environment {escape(env)} uses the base spec", markup=True
        )
    if guards:
        watch = spec.rollback.window
        out.print(
            f"[bold]rollback guards[/] (roll back on their own; rates over up to {watch:g}s):",
            markup=True,
        )
        for guard in guards:
            out.print(f"  - {guard}")
    else:
        out.print("[bold]rollback guards[/]: all off", markup=True)
    if spec.analysis:
        out.print(
            Text.assemble(("analysis templates", "bold"), ": ", ", ".join(sorted(spec.analysis)))
        )


def register(app: typer.Typer) -> None:
    app.command(rich_help_panel="Spec")(init)
    app.command(rich_help_panel="Spec")(validate)
    app.command(rich_help_panel="Spec")(schema)
    app.add_typer(config, rich_help_panel="Spec")
