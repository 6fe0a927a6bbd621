"""Progress on stderr only on a terminal and without --quiet; --quiet prints what its help
says."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from migrate.cli import main
from tests.conftest import SAMPLES

SHOP = str(SAMPLES / "istio" / "shop")
SCRIPT = str(Path(sys.executable).parent / "meshmigrate")


def on_terminal(*args: str) -> tuple[int, str, str]:
    """Run the command with stderr on a pseudo-terminal; (exit code, stdout, terminal text)."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen([SCRIPT, *args], stdout=subprocess.PIPE, stderr=follower)
    os.close(follower)
    chunks = []
    while True:
        try:
            data = os.read(leader, 65536)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    stdout = proc.stdout.read() if proc.stdout else b""
    code = proc.wait(timeout=120)
    os.close(leader)
    return code, stdout.decode(), b"".join(chunks).decode()


def test_progress_shows_the_stages_on_a_terminal(tmp_path: Path):
    code, stdout, terminal = on_terminal("plan", "--from", "istio", "--to", "linkerd", "-f",
                                         SHOP, "-o", str(tmp_path / "out"))
    assert code == 0 and stdout == ""
    for stage in ("reading the input", "mapping to linkerd", "planning the steps",
                  "checking equivalence", "checking coexistence"):
        assert f"\rmeshmigrate: {stage}..." in terminal
    # The line is erased before the report, which starts on a clean line.
    assert "\r" + " " * 110 + "\rmeshmigrate: 28 losses" in terminal


def test_quiet_and_pipes_show_no_progress(tmp_path: Path):
    code, _, terminal = on_terminal("plan", "--from", "istio", "--to", "linkerd", "-f", SHOP,
                                    "-o", str(tmp_path / "q"), "-q")
    assert code == 0 and "\r" not in terminal.replace("\r\n", "\n")
    piped = subprocess.run([SCRIPT, "plan", "--from", "istio", "--to", "linkerd", "-f", SHOP,
                            "-o", str(tmp_path / "p")], capture_output=True, text=True,
                           timeout=120)
    assert piped.returncode == 0 and "\r" not in piped.stderr and "..." not in piped.stderr


def test_quiet_prints_errors_and_the_summary_lines_only(tmp_path: Path):
    src = tmp_path / "in.yaml"
    src.write_text((Path(SHOP) / "dump.yaml").read_text() + "\n---\nkind: [unclosed\n")
    result = CliRunner().invoke(main, ["plan", "--from", "auto", "--to", "linkerd", "-f",
                                       str(src), "-o", str(tmp_path / "out"), "-q"])
    lines = result.stderr.splitlines()
    assert result.exit_code == 1
    assert [line.split(":")[0] for line in lines] == ["meshmigrate", "error", "meshmigrate",
                                                      "meshmigrate", "meshmigrate"], lines
    assert lines[0].startswith("meshmigrate: detected istio")
    assert lines[2].startswith("meshmigrate: 28 losses (5 manual")
    assert lines[3] == f"meshmigrate: wrote 10 steps to {tmp_path / 'out'}"
    assert lines[4].startswith("meshmigrate: equivalence: ")
    verified = CliRunner().invoke(main, ["verify", "--from", "istio", "-f", SHOP, "--plan",
                                         str(tmp_path / "out"), "-q"])
    assert verified.stdout.splitlines() == ["115 probes, 6 divergences, 0 unexplained"]
