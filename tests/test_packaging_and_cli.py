"""The installed shape of clientlink and its command line."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

from clientlink.common import protocol as p
from clientlink.common.protocol import ErrorCode
from tests.helpers import clientlink_cli


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    # Run from / so the repository folder is not on sys.path: only the installed names count.
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd="/", timeout=60
    )


def test_packages_install_under_one_import_name():
    result = run_python(
        "import clientlink.common, clientlink.daemon, clientlink.tui, clientlink.sandbox\n"
        "import clientlink.cli\n"
        "import importlib.util as u\n"
        "print([n for n in ('common', 'daemon', 'tui', 'sandbox', 'cli') if u.find_spec(n)])"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_the_wheel_lists_every_package_folder():
    """``packages`` in pyproject.toml is an explicit list: a new sub-package that is not on it
    works in the editable install and is missing from the wheel."""
    root = Path(__file__).resolve().parents[1]
    setup = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]
    folders = set()
    for name, folder in setup["package-dir"].items():
        for marker in sorted((root / folder).rglob("__init__.py")):
            inner = marker.parent.relative_to(root / folder).parts
            folders.add(".".join((name, *inner)))
    assert "clientlink.daemon.store" in folders
    assert folders == set(setup["packages"])


ROOT = Path(__file__).resolve().parents[1]


def copy_of_the_tree(destination: Path) -> Path:
    """The project's files as a fresh clone has them (no .venv, no build output)."""
    shutil.copytree(
        ROOT,
        destination,
        ignore=shutil.ignore_patterns(
            ".git",
            ".venv",
            ".venv.lock",
            "__pycache__",
            "build",
            "dist",
            "*.egg-info",
            ".ruff_cache",
            ".pytest_cache",
            ".import_linter_cache",
        ),
    )
    return destination


def test_building_the_wheel_prints_no_setuptools_warning(tmp_path):
    """A newcomer's set-up shows no deprecation or "package would be ignored" warning, and the
    wheel still holds the sandbox's templates (a data folder, not a package)."""
    tree = copy_of_the_tree(tmp_path / "clientlink")
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(tmp_path / "out"), "."],
        cwd=tree,
        capture_output=True,
        text=True,
        timeout=110,
    )
    assert result.returncode == 0, result.stderr
    said = result.stdout + result.stderr
    assert "BuildBackendWarning" not in said and "SetuptoolsDeprecationWarning" not in said, said
    (wheel,) = (tmp_path / "out").glob("clientlink-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        metadata = archive.read(next(n for n in names if n.endswith(".dist-info/METADATA")))
    assert "clientlink/sandbox/templates/base.html" in names
    assert "clientlink/tui/app.tcss" in names
    assert b"License-Expression: LicenseRef-Proprietary" in metadata


TINY_PROJECT = """\
[build-system]
requires = ["setuptools>=77"]
build-backend = "setuptools.build_meta"

[project]
name = "setup-lock-probe"
version = "0"

[project.optional-dependencies]
test = []

[tool.setuptools]
packages = []
"""


@pytest.mark.timeout(300)
def test_two_set_ups_started_together_build_one_venv(tmp_path):
    """scripts/demo.sh and scripts/test.sh on a fresh clone both run scripts/setup.sh: the
    second waits for the first's lock and then finds .venv ready. (The real script on a
    project with nothing to install, so that this takes seconds; the whole project's
    set-up is what every CI run does first, and the wheel test checks its warnings.)"""
    tree = tmp_path / "fresh-clone"
    (tree / "scripts").mkdir(parents=True)
    shutil.copy(ROOT / "scripts" / "setup.sh", tree / "scripts" / "setup.sh")
    (tree / "pyproject.toml").write_text(TINY_PROJECT, encoding="utf-8")
    first = subprocess.Popen(
        ["bash", "scripts/setup.sh"],
        cwd=tree,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert first.stdout is not None
    assert first.stdout.readline().strip() == "setup: creating .venv"  # it holds the lock
    second = subprocess.run(
        ["bash", "scripts/setup.sh"], cwd=tree, capture_output=True, text=True, timeout=280
    )
    rest = first.stdout.read()
    assert first.wait(timeout=60) == 0, rest
    assert second.returncode == 0, second.stdout + second.stderr
    assert second.stdout.splitlines() == [
        "setup: another set-up is preparing .venv; waiting for it"
    ], second.stdout
    assert (tree / ".venv" / ".clientlink-installed").exists()


def test_daemon_and_common_never_import_textual():
    result = run_python(
        "import sys\n"
        "import clientlink.daemon.main, clientlink.daemon.service, clientlink.common.client\n"
        "print('textual' in sys.modules)"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_the_command_line_imports_textual_only_to_open_the_tui():
    result = run_python(
        "import sys\n"
        "from clientlink.cli.main import main\n"
        "try:\n"
        "    main(['--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "print('textual' in sys.modules, any(n.startswith('clientlink.tui') for n in sys.modules))"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "False False"


def loaded_by_cli(*argv: str) -> set[str]:
    """Which of the heavy packages ``clientlink ARGV`` has imported by the time it exits."""
    result = run_python(
        "import sys\n"
        "from clientlink.cli.main import main\n"
        "try:\n"
        f"    main({list(argv)!r})\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = ('clientlink.sandbox', 'clientlink.common.protocol', 'pydantic', 'httpx',\n"
        "         'clientlink.cli.demo', 'clientlink.cli.service_install',\n"
        "         'clientlink.cli.agent')\n"
        "print('loaded:', *sorted(n for n in heavy if n in sys.modules))"
    )
    assert result.returncode == 0, result.stderr
    return set(result.stdout.strip().splitlines()[-1].removeprefix("loaded:").split())


def test_the_command_line_loads_only_what_the_command_it_runs_needs():
    # --help and a subcommand's --help read no models and no sandbox; the sandbox's own
    # arguments load the sandbox, and only then.
    assert loaded_by_cli("--help") == set()
    assert loaded_by_cli("status", "--help") == set()
    assert loaded_by_cli("clients", "--help") == set()
    assert "clientlink.sandbox" in loaded_by_cli("sandbox", "--help")
    assert "clientlink.cli.demo" in loaded_by_cli("demo", "--help")
    assert (
        loaded_by_cli("service", "--help") & {"clientlink.sandbox", "clientlink.cli.demo"} == set()
    )


def test_each_subcommand_keeps_its_arguments_and_help_line():
    result = run_python(
        "from clientlink.cli.main import build_parser\n"
        "print(build_parser().format_help())\n"
        "print(build_parser().parse_args(['clients', '--status', 'error', '--json']))\n"
        "print(build_parser('sandbox').parse_args(['sandbox', '--port', '5']).port)"
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for line in ("demo", "a throwaway practice", "serve the emulated providers", "agent"):
        assert line in out
    assert "status='error'" in out and "json=True" in out
    assert out.strip().splitlines()[-1] == "5"


async def clientlink(*args: str) -> tuple[int, str, str]:
    code, stdout, stderr = await clientlink_cli(*args)
    return code, stdout.decode(), stderr.decode()


async def test_rpc_prints_the_result_as_json(practice):
    home = str(practice.paths.config_dir.parent)
    code, out, _ = await clientlink("--home", home, "rpc", "clients.list", '{"limit": 2}')
    assert code == 0
    assert json.loads(out)["total"] == len(practice.seeded.client_ids)


async def test_rpc_errors_go_to_stderr_with_a_nonzero_exit(practice):
    home = str(practice.paths.config_dir.parent)
    code, out, err = await clientlink("--home", home, "rpc", "clients.get", '{"client_id": 0}')
    assert code != 0 and out == ""
    assert f"error {int(ErrorCode.NOT_FOUND)}" in err
    code, _, err = await clientlink("--home", home, "rpc", "clients.list", "{oops")
    assert code != 0 and "not valid JSON" in err


async def test_status_exits_nonzero_and_counts_when_clients_need_attention(practice):
    home = str(practice.paths.config_dir.parent)
    code, out, _ = await clientlink("--home", home, "status")
    needing = len(practice.client_ids_needing_reauth)
    assert code == 1
    assert f"{needing} of {len(practice.seeded.client_ids)} clients need attention" in out
    code, out, _ = await clientlink("--home", home, "status", "--json")
    assert json.loads(out)["clients_by_status"]["needs_reauth"] == needing


async def test_clients_lists_with_a_status_filter(practice):
    home = str(practice.paths.config_dir.parent)
    code, out, _ = await clientlink("--home", home, "clients", "--status", "needs_reauth", "--json")
    assert code == 0
    listing = json.loads(out)
    assert sorted(item["id"] for item in listing["items"]) == sorted(
        practice.client_ids_needing_reauth
    )


@pytest.mark.parametrize("command", [["status"], ["clients"], ["rpc", "daemon.status"]])
async def test_commands_say_how_to_start_a_missing_daemon(short_tmp, command):
    code, _, err = await clientlink("--home", str(short_tmp), *command)
    assert code == 3
    assert "clientlinkd is not running" in err
    # The whole command inside the backticks, ready to paste.
    assert f"Start it with `clientlinkd --home {short_tmp}`." in err


async def test_the_start_command_quotes_a_home_with_a_space(short_tmp):
    home = short_tmp / "my practice"
    code, _, err = await clientlink("--home", str(home), "status")
    assert code == 3
    assert f"Start it with `clientlinkd --home '{home}'`." in err


async def test_jobs_lists_bulk_jobs_and_refuses_a_bad_state(practice):
    home = str(practice.paths.config_dir.parent)
    rpc = await practice.connect()
    await rpc.call(p.JOBS_START, kind="reimport", client_ids=practice.connected_ids[:2])
    code, out, _ = await clientlink("--home", home, "jobs", "--json")
    assert code == 0
    (job,) = json.loads(out)["items"]
    assert job["kind"] == "reimport" and job["total"] == 2
    code, out, _ = await clientlink("--home", home, "jobs")
    assert "reimport" in out and out.rstrip().endswith("1 job")
    code, _, err = await clientlink("--home", home, "jobs", "--state", "sleeping")
    assert code != 0 and "state" in err


async def test_channel_secret_is_read_from_stdin_and_never_echoed(daemon, short_tmp):
    home = str(daemon.paths.config_dir.parent)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "clientlink.cli",
        "--home",
        home,
        "channel",
        "set-secret",
        "sms",
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(b"token-that-stays-secret\n"), 60)
    assert process.returncode == 0, err
    assert b"token-that-stays-secret" not in out + err
    audit = await (await daemon.connect()).call(p.AUDIT_LIST)
    assert audit.items[0].action == "channel.secret_set"
