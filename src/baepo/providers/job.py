"""The ``job`` provider: a command whose exit status is the measurement.

Each measurement runs ``job.command`` (every item's ``{{name}}`` placeholders rendered)
without a shell, in the spec's folder, with ``BAEPO_APP``, ``BAEPO_ENV``,
``BAEPO_REVISION`` and ``BAEPO_BASELINE`` (empty without a stable revision) added to the
environment. ``result`` is the exit code, so conditions read ``result == 0``; conditions also
see ``exit_code`` and ``passed`` (the exit code is 0). A run that outlives ``job.timeout`` is
killed with every process it started and is a MeasurementError, as is a program that cannot
start. The run's output (stdout and stderr interleaved, its last 4000 characters) is kept in
``Measured.output``.

Callers: ``providers.make_providers``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from baepo.analysis.measure import MeasureContext, Measured, MeasurementError, render
from baepo.errors import BaepoError
from baepo.shell import accounts, process, statedir
from baepo.spec.analysis import JobSpec, MetricSpec
from baepo.spec.units import format_duration

OUTPUT_CHARS = 4000
_QUOTED_OUTPUT_CHARS = 200


def job_argv(job: JobSpec, context: MeasureContext) -> list[str]:
    """The command to run, placeholders rendered. Pure."""
    return [render(item, context) for item in job.command]


def job_env(context: MeasureContext, base: Mapping[str, str]) -> dict[str, str]:
    """``base`` plus the variables that say what is measured. Pure."""
    return {
        **base,
        "BAEPO_APP": context.app,
        "BAEPO_ENV": context.env,
        "BAEPO_REVISION": str(context.revision),
        "BAEPO_BASELINE": "" if context.baseline is None else str(context.baseline),
    }


class JobProvider:
    """Measures by running a command; holds no state between measurements."""

    kind = "job"

    async def measure(self, metric: MetricSpec, context: MeasureContext) -> Measured:
        if metric.job is None:
            raise MeasurementError(f"metric {metric.name!r} has no `job:` section")
        argv = job_argv(metric.job, context)
        if not os.path.isdir(context.spec_dir):
            raise MeasurementError(
                f"cannot run {argv[0]!r}: its folder {context.spec_dir!r} does not exist"
            )
        try:
            done = await process.run_command(
                argv,
                cwd=context.spec_dir,
                env=job_env(context, accounts.inherited_environment(os.environ)),
                timeout=metric.job.timeout,
                account=accounts.run_as(context.user),
                umask=statedir.CHILD_UMASK,
            )
        except BaepoError as exc:
            raise MeasurementError(exc.message) from exc
        output = done.output[-OUTPUT_CHARS:]
        if done.timed_out:
            raise MeasurementError(
                f"{argv[0]!r} timed out after {format_duration(metric.job.timeout)} and was "
                f"killed{_last_words(output)}"
            )
        return Measured(
            value=done.exit_code,
            variables={"exit_code": done.exit_code, "passed": done.exit_code == 0},
            output=output,
        )


def _last_words(output: str) -> str:
    text = " ".join(output.split())
    if not text:
        return ""
    if len(text) > _QUOTED_OUTPUT_CHARS:
        text = "..." + text[-_QUOTED_OUTPUT_CHARS:]
    return f"; last output: {text!r}"
