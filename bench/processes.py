"""Running one command in its own process, timed, with its peak memory: what the CLI benches share.

The peak is read from /proc while the command runs: the larger of the command's own high-water
mark (VmHWM, exact for a single process) and the largest sum, sampled, of the proportional set
sizes (Pss) of the command and every process it started, in which a page a forked worker shares
with its parent counts once. rusage would count the pages a child shared with the large
benchmark process before exec, and only one process of a tree.
"""

import os
import resource
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FLASK = ROOT / ".venv" / "bin" / "flask"
PYTHON = ROOT / ".venv" / "bin" / "python"
POLL_SECONDS = 0.02
# The processes of the tree and their Pss are read less often: the kernel walks every page
# table for Pss, and finding children reads every /proc/<pid>/stat.
TREE_EVERY_POLLS = 5


@dataclass(frozen=True)
class Finished:
    """Wall time, CPU time (user and system, of the command and every process it waited for),
    the CPU time of each of its processes, largest first, and its peak memory; what it said.
    On a machine with a core for each, the largest process's CPU time is how long the command
    would take."""

    seconds: float
    cpu_seconds: float
    process_cpu_seconds: tuple[float, ...]
    peak_mb: float
    stdout: str
    stderr: str


def measured(
    command: list[str], env: dict[str, str] | None = None, *, proportional: bool = True
) -> Finished:
    """Run ``command`` from the repository root; raise if it fails, with its error output.

    Without ``proportional`` the peak is the command's own high-water mark only. Reading Pss
    makes the kernel walk the page tables (8 ms for 300 MB, at every fifth poll): for a
    command that keeps both cores busy that is CPU time taken from it, so timings are taken
    without, and the tree's peak in a run of its own."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        cpu_before = _children_cpu()
        started = time.perf_counter()
        child = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=err, text=True)
        high_water = tree_peak = polls = 0
        started_by_it: dict[int, float] = {}
        while child.poll() is None:
            high_water = max(high_water, status_kb(child.pid, "VmHWM"))
            if polls % TREE_EVERY_POLLS == 0:
                tree = {child.pid, *descendants(child.pid)}
                if proportional:
                    tree_peak = max(tree_peak, sum(proportional_kb(pid) for pid in tree))
                for pid in tree - {child.pid}:  # the last reading, once gone, is 0
                    started_by_it[pid] = max(started_by_it.get(pid, 0.0), cpu_seconds(pid))
            polls += 1
            time.sleep(POLL_SECONDS)
        seconds = time.perf_counter() - started
        cpu = _children_cpu() - cpu_before
        others = sorted(started_by_it.values(), reverse=True)
        processes = tuple(sorted([cpu - sum(others), *others], reverse=True))
        out.seek(0)
        err.seek(0)
        peak_mb = max(high_water, tree_peak) / 1024
        finished = Finished(seconds, cpu, processes, peak_mb, out.read(), err.read())
    if child.returncode:
        raise RuntimeError(f"{command[0]} failed with status {child.returncode}: {finished.stderr}")
    return finished


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of a running process so far (0 once it is gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    user, system = stat.rpartition(")")[2].split()[11:13]
    return (int(user) + int(system)) / os.sysconf("SC_CLK_TCK")


def _children_cpu() -> float:
    """CPU seconds of every child this process has waited for: runs are one at a time, so the
    difference across one is its own."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def exit_status(database_url: str | None, run: Callable[[str], bool]) -> int:
    """0 when ``run`` on the database at ``database_url`` (default: a temporary SQLite file)
    met its targets, else 1."""
    if database_url:
        return 0 if run(database_url) else 1
    with tempfile.TemporaryDirectory() as folder:
        return 0 if run(f"sqlite:///{folder}/bench.db") else 1


def service_env(url: str) -> dict[str, str]:
    """The environment the service's commands run in, on the database at ``url``."""
    return {**os.environ, "SUPPRESS_DATABASE_URL": url, "SUPPRESS_SECRET_KEY": "bench"}


def status_kb(pid: int, field: str) -> int:
    """A memory figure from /proc/<pid>/status, 0 once the process is gone."""
    return _field_kb(f"/proc/{pid}/status", f"{field}:")


def proportional_kb(pid: int) -> int:
    """The process's resident memory, each shared page divided among its sharers."""
    return _field_kb(f"/proc/{pid}/smaps_rollup", "Pss:")


def _field_kb(path: str, prefix: str) -> int:
    try:
        text = Path(path).read_text()
    except OSError:
        return 0
    for line in text.splitlines():
        if line.startswith(prefix):
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
