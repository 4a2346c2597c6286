"""clientlinkd's log lines carry syslog priorities when stderr is the journal."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

LOG_SOME_LINES = (
    "import logging\n"
    "from clientlink.daemon.main import configure_logging\n"
    "configure_logging('DEBUG')\n"
    "log = logging.getLogger('clientlinkd.test')\n"
    "log.debug('looking')\n"
    "log.info('client %s', 'Evil\\x1b[2J Pty Ltd')\n"
    "log.warning('slow')\n"
    "log.error('failed')\n"
    "try:\n"
    "    raise ValueError('boom')\n"
    "except ValueError:\n"
    "    log.exception('job 3 failed')\n"
)


def _run(tmp_path: Path, journal_stream: str | None) -> list[str]:
    """Run the daemon's logging set-up with stderr a real file (as journald gives a
    socket), JOURNAL_STREAM as given, and return the lines written."""
    env = {k: v for k, v in os.environ.items() if k != "JOURNAL_STREAM"}
    log_file = tmp_path / "stderr.log"
    with log_file.open("wb") as stderr:
        if journal_stream == "this stderr":
            info = os.fstat(stderr.fileno())
            journal_stream = f"{info.st_dev}:{info.st_ino}"
        if journal_stream is not None:
            env["JOURNAL_STREAM"] = journal_stream
        subprocess.run(
            [sys.executable, "-c", LOG_SOME_LINES],
            stderr=stderr,
            env=env,
            cwd="/",
            timeout=60,
            check=True,
        )
    lines = log_file.read_text(encoding="utf-8").splitlines()
    # Its traceback is on purpose: not left among the logs a run leaves to be read for bugs.
    log_file.unlink()
    return lines


def test_lines_to_the_journal_start_with_their_syslog_priority(tmp_path: Path) -> None:
    lines = _run(tmp_path, "this stderr")
    assert lines[0].startswith("<7>") and lines[0].endswith("looking")
    assert lines[1].startswith("<6>") and lines[1].endswith("client Evil\u241b[2J Pty Ltd")
    assert lines[2].startswith("<4>") and lines[2].endswith("slow")
    assert lines[3].startswith("<3>") and lines[3].endswith("failed")
    # A traceback's every line is the error's, so `journalctl -p err` shows all of it.
    assert lines[4].startswith("<3>") and lines[4].endswith("job 3 failed")
    assert lines[5] == "<3>Traceback (most recent call last):"
    assert lines[-1] == "<3>ValueError: boom"
    assert all(line.startswith("<3>") for line in lines[4:])
    assert "\x1b" not in "".join(lines)  # still escaped


def test_lines_elsewhere_have_no_prefix(tmp_path: Path) -> None:
    for journal_stream in (None, "1:2", "not a stream"):  # absent, another stream, garbage
        lines = _run(tmp_path, journal_stream)
        assert lines[0].endswith("looking") and lines[3].endswith("failed")
        assert not any(line.startswith("<") for line in lines), journal_stream
        assert lines[5] == "Traceback (most recent call last):"
