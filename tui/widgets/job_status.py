"""A bulk job in words: its title and state, its counts, the client being worked on, and
the outcome with what can be done next."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from clientlink.common.protocol import Job, JobKind, JobState
from clientlink.common.wording import agree, plural, waiting_for_sign_in
from clientlink.tui.formatting import duration, parse_time

JOB_TITLES = {
    JobKind.REAUTHORISE: "Re-authorise clients",
    JobKind.REIMPORT: "Re-import clients",
    JobKind.INVITE: "Invite clients to connect banks",
}
DONE_WORDS = {
    JobKind.REAUTHORISE: "re-authorised",
    JobKind.REIMPORT: "re-imported",
    JobKind.INVITE: "invited",
}
STATE_STYLES = {
    JobState.QUEUED: "dim",
    JobState.RUNNING: "bold cyan",
    JobState.PAUSED: "bold yellow",
    JobState.WAITING: "bold magenta",
    JobState.COMPLETED: "bold green",
    JobState.CANCELLED: "bold yellow",
    JobState.FAILED: "bold red",
}


def job_title(kind: JobKind | str) -> str:
    """What a job kind does, in words (``Re-authorise clients``)."""
    try:
        return JOB_TITLES[JobKind(kind)]
    except ValueError:
        return str(kind).replace("_", " ").capitalize()


def state_text(state: JobState) -> Text:
    """A job's state in its colour."""
    return Text(state.value.capitalize(), style=STATE_STYLES.get(state, ""))


def outcome_line(job: Job) -> str:
    """``22 re-authorised, 1 failed`` (plus what a cancel left undone)."""
    words = DONE_WORDS.get(job.kind, "done")
    line = f"{job.done} {words}, {job.failed} failed"
    left = job.total - job.done - job.failed
    if job.state == JobState.CANCELLED and left > 0:
        line += f", {left} not started (cancelled)"
    return line


def job_heading(kind: JobKind | None, job_id: int, job: Job | None) -> Text:
    """``Re-authorise clients  · job 7  · Running  · retry of job 6``."""
    heading = Text(job_title(kind or "job"), style="bold")
    heading.append(f"  · job {job_id}", style="dim")
    if job is not None:
        heading.append("  · ")
        heading.append_text(state_text(job.state))
        if job.retry_of:
            heading.append(f"  · retry of job {job.retry_of}", style="dim")
    return heading


def job_took(job: Job) -> str:
    """How long a finished job ran, in words ("" when not known)."""
    started, finished = parse_time(job.started_at), parse_time(job.finished_at)
    if started is None or finished is None:
        return ""
    return duration((finished - started).total_seconds())


def job_counts(job: Job) -> Text:
    """Done, failed and total; then how long it took, or its rate and the time left."""
    counts = Text()
    counts.append(f"{job.done} done", style="green")
    counts.append(" · ")
    counts.append(f"{job.failed} failed", style="bold red" if job.failed else "")
    counts.append(f" · {job.total} total")
    if job.state.finished:
        took = job_took(job)
        if took:
            counts.append(f" · took {took}", style="dim")
    elif job.state == JobState.RUNNING and job.rate_per_minute:
        counts.append(f" · {job.rate_per_minute:.0f}/min", style="dim")
        if job.eta_seconds is not None:
            counts.append(f" · about {duration(job.eta_seconds)} left", style="dim")
    return counts


def job_current(job: Job) -> Text:
    """The client being worked on now, or why none is."""
    if job.state == JobState.PAUSED:
        return Text("Paused: press p to resume.", style="yellow")
    if job.state == JobState.QUEUED:
        return Text("Waiting to start…", style="dim")
    wait = job.waiting_for_sign_in
    if job.state == JobState.WAITING and wait is not None:
        said = waiting_for_sign_in(wait.business)
        text = Text(said[:1].upper() + said[1:], style="bold magenta")
        text.append(f" (sign-in {wait.index} of {wait.of}): press s to sign in")
        return text
    if job.state.finished or not job.current:
        return Text("")
    now = Text("Now: ", style="dim")
    now.append(job.current, style="bold")
    return now


def job_summary(job: Job, changed_items: int) -> Text | str:
    """A finished job's outcome and the keys for what next ("" while it runs);
    ``changed_items``: after a re-import, how many clients differ from the software."""
    if not job.state.finished:
        return ""
    text = Text(outcome_line(job), style="bold")
    if job.takeover_of:
        text.append(
            f"\nTook over {job.done} of {job.takeover_name or job.takeover_of}'s connections: "
            "they rest on your sign-in now.",
            style="green" if job.done else "",
        )
    if job.state == JobState.FAILED:
        text.append("  Every client failed: the reasons are below.", style="red")
    hints = []
    if job.failed:
        hints.append("r retries the failed")
    if job.kind == JobKind.REIMPORT:
        if changed_items:
            text.append(
                f"\n{plural(changed_items, 'client')} "
                f"{agree(changed_items, 'differs', 'differ')} from the software: "
                "nothing changed yet.",
                style="yellow",
            )
            hints.append("v reviews them")
        else:
            text.append("\nNo differences found.", style="dim")
    hints += ["e exports the outcome", "m Manage Clients"]
    text.append("\n" + " · ".join(hints), style="dim")
    return text


class JobSummary(Static):
    """A finished job's outcome, empty while it runs."""

    def show(self, job: Job, changed_items: int) -> None:
        self.update(job_summary(job, changed_items))
