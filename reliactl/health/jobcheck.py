"""The health check of kind ``job`` (``job:NAME``): one per job declared in ``jobs:``.

The judgement is ``reliactl.schedule.job_status`` (``evaluate_job``, with a cron schedule's
expected runs kept in the job's record) over the job's run history; this module
only turns it into a HealthMetric (value and perfdata: seconds since the last success, and
the failure streak). A history that could not be read (a busy store past a health round's
bound, a broken one) is UNKNOWN, "run history not read: ...": judged without its runs, a job
that keeps failing would read as OK or as never having succeeded.
"""

from __future__ import annotations

from collections.abc import Mapping

from reliactl.errors import ReliactlError
from reliactl.health.checks import Check, CheckContext
from reliactl.health.model import HealthMetric, PerfData, Status
from reliactl.schedule import job_status

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (see reliactl/__init__)
if TYPE_CHECKING:
    from reliactl.config import JobSettings

__all__ = ["JOB_CHECK_PREFIX", "job_check", "job_checks"]

JOB_CHECK_PREFIX = "job:"


def job_check(name: str, spec: JobSettings, timeout: float) -> Check:
    """The health check (kind ``job``) of one declared job: ``job:NAME``.

    Its value and perfdata ``last_success_age`` are the seconds since the last success
    (absent while it never succeeded); ``failures`` is the current failure streak.
    """
    check_name = f"{JOB_CHECK_PREFIX}{name}"

    def run(ctx: CheckContext) -> HealthMetric:
        now = ctx.clock()
        # Through the records' view: within a round's bound as its other operations (a store
        # another process holds locked, or another thread's operation, waits no longer).
        try:
            runs = ctx.records.runs(name, 200)
        except ReliactlError as exc:  # not read (in time): UNKNOWN, never judged without it
            return HealthMetric(
                check_name, Status.UNKNOWN, None, f"run history not read: {exc}", kind="job"
            )
        st = job_status(ctx.records, name, spec, runs, now)
        perf = [PerfData("failures", float(st.consecutive_failures), "", "", "", 0)]
        if st.success_age is not None:
            perf.insert(0, PerfData("last_success_age", round(st.success_age, 3), "s", min=0))
        return HealthMetric(
            check_name,
            Status(st.status),
            None if st.success_age is None else round(st.success_age, 3),
            st.message,
            unit="s",
            kind="job",
            perfdata=tuple(perf),
            details=st.to_dict(),
        )

    return Check(check_name, "job", run, timeout)


def job_checks(jobs: Mapping[str, JobSettings], timeout: float) -> list[Check]:
    """One ``job`` check per declared job, in declaration order."""
    return [job_check(name, spec, timeout) for name, spec in jobs.items()]
