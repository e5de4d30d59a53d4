"""Running one command in its own process, timed, with its peak memory: what the CLI benches share.

The peak is read from /proc while the command runs: each process's own high-water mark
(VmHWM), summed over the command and any processes it starts. rusage would count the pages a
child shared with the large benchmark process before exec, and only one process of a tree.
Summing the high-water marks can only overstate the peak, never hide one.
"""

import os
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FLASK = ROOT / ".venv" / "bin" / "flask"
PYTHON = ROOT / ".venv" / "bin" / "python"
POLL_SECONDS = 0.02
# Looking for new child processes reads every /proc/<pid>/stat, so it is done less often.
CHILDREN_EVERY_POLLS = 25


@dataclass(frozen=True)
class Finished:
    seconds: float
    peak_mb: float
    stdout: str
    stderr: str


def measured(command: list[str], env: dict[str, str] | None = None) -> Finished:
    """Run ``command`` from the repository root; raise if it fails, with its error output."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        started = time.perf_counter()
        child = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=err, text=True)
        peaks: dict[int, int] = {}
        polls = 0
        while child.poll() is None:
            if polls % CHILDREN_EVERY_POLLS == 0:
                peaks.update(dict.fromkeys(descendants(child.pid) - peaks.keys(), 0))
            for pid in peaks.keys() | {child.pid}:
                peaks[pid] = max(peaks.get(pid, 0), high_water_kb(pid))
            polls += 1
            time.sleep(POLL_SECONDS)
        seconds = time.perf_counter() - started
        out.seek(0)
        err.seek(0)
        finished = Finished(seconds, sum(peaks.values()) / 1024, out.read(), err.read())
    if child.returncode:
        raise RuntimeError(f"{command[0]} failed with status {child.returncode}: {finished.stderr}")
    return finished


def service_env(url: str) -> dict[str, str]:
    """The environment the service's commands run in, on the database at ``url``."""
    return {**os.environ, "SUPPRESS_DATABASE_URL": url, "SUPPRESS_SECRET_KEY": "bench"}


def high_water_kb(pid: int) -> int:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def descendants(pid: int) -> set[int]:
    """Every process below ``pid``, found through the parent ids in /proc/<pid>/stat."""
    parents: dict[int, int] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{name}/stat").read_text()
        except OSError:
            continue
        # The command name in parentheses may hold spaces; the parent id follows its end.
        parents[int(name)] = int(stat.rpartition(")")[2].split()[1])
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found
