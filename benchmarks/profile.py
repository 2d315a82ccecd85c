"""``--profile``: py-spy records the engine and worker processes while a workload runs.

Each recording is a speedscope JSON file (open it at https://www.speedscope.app); the top
functions by own time (samples where the function is the innermost frame, idle excluded)
are read back from it and printed. py-spy attaches by pid (``py-spy record --pid``), so the
processes being profiled are the same ones the unprofiled run uses. Attaching to a process
that is not one's own child needs a kernel that allows it (no Yama ``ptrace_scope`` above 0,
or CAP_SYS_PTRACE); where it is refused, the line for that process says so.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import signal
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

RATE_HZ = 100
STOP_TIMEOUT_S = 30.0


def find_py_spy() -> str:
    """py-spy beside this interpreter (the venv's bin), else on PATH."""
    beside = Path(sys.executable).parent / "py-spy"
    found = str(beside) if beside.exists() else shutil.which("py-spy")
    if found is None:
        raise SystemExit("--profile needs py-spy on PATH (pip install -e '.[dev]')")
    return found


def own_time(path: Path, top: int) -> tuple[int, list[tuple[str, float]]]:
    """The samples of a speedscope profile and its ``top`` functions by own time, as
    (frame, share of the samples). Under uvloop the loop's own C code shows as
    ``Runner.run`` (the innermost Python frame while it runs)."""
    doc = json.loads(path.read_text())
    frames = doc["shared"]["frames"]
    counts: Counter[int] = Counter()
    total, samples = 0.0, 0
    for prof in doc["profiles"]:
        for stack, weight in zip(prof["samples"], prof["weights"], strict=True):
            if stack:  # root first: the last frame is the one running
                counts[stack[-1]] += weight
                total += weight
                samples += 1
    if not total:
        return 0, []
    out = []
    for idx, weight in counts.most_common(top):
        f = frames[idx]
        where = Path(str(f.get("file") or "?"))
        label = f"{f['name']} ({'/'.join(where.parts[-2:])}:{f.get('line') or '?'})"
        out.append((label, weight / total))
    return samples, out


@dataclass
class Recording:
    role: str
    path: Path
    proc: asyncio.subprocess.Process


@dataclass
class Profiler:
    """Records ``--profile`` runs into ``directory``; one file per workload and role."""

    directory: Path
    top: int = 15
    py_spy: str = field(default_factory=find_py_spy)
    files: list[Path] = field(default_factory=list)

    async def start(self, workload: str, pids: dict[str, int]) -> list[Recording]:
        self.directory.mkdir(parents=True, exist_ok=True)
        recs = []
        for role, pid in pids.items():
            path = self.directory / f"{workload}-{role}.speedscope.json"
            proc = await asyncio.create_subprocess_exec(
                *(self.py_spy, "record", "--pid", str(pid), "--format", "speedscope"),
                *("--rate", str(RATE_HZ), "--nonblocking", "--output", str(path)),
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
            )
            recs.append(Recording(role, path, proc))
        return recs

    async def stop(self, recs: list[Recording]) -> list[str]:
        """Stop the recordings (py-spy writes its file on SIGINT); the printed top-N."""
        lines: list[str] = []
        for rec in recs:
            if rec.proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    rec.proc.send_signal(signal.SIGINT)
            try:
                _, err = await asyncio.wait_for(rec.proc.communicate(), STOP_TIMEOUT_S)
            except TimeoutError:
                rec.proc.kill()
                await rec.proc.wait()
                err = b""
            if not rec.path.exists():
                detail = err.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
                lines.append(f"  profile of the {rec.role}: not written ({detail[0]})")
                continue
            self.files.append(rec.path)
            samples, top = own_time(rec.path, self.top)
            lines.append(
                f"  profile of the {rec.role}: {rec.path} ({samples} samples at {RATE_HZ} Hz), "
                f"top {self.top} by own time:"
            )
            for label, share in top:
                lines.append(f"    {share * 100:5.1f} %  {label}")
        return lines
