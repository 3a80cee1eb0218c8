"""Benchmark: ``leadsync sync`` on a generated CSV of realistic leads.

    python bench/csv_sync.py --rows 1000000 [--store postgresql+psycopg://...]

Generates the CSV (phones in local formats that need E.164 normalisation, emails with
stray case and spaces), then runs ``leadsync sync`` twice in fresh processes: the first
load, and an unchanged re-sync. Prints leads/s and the peak RSS of each run.
Not a test: nothing here asserts timings.
"""

from __future__ import annotations

import argparse
import csv
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FIRST = ["ada", "grace", "alan", "katherine", "linus", "margaret", "dennis", "barbara"]
LAST = ["lovelace", "hopper", "turing", "johnson", "torvalds", "hamilton", "ritchie"]
COMPANIES = ["Acme Corp", "Globex", "Initech", "Umbrella", "Hooli", "Stark", "Wayne"]
STAGES = ["New", "Working", "Qualified", "Customer", "Disqualified"]

MAPPING = """\
lead_id: id
updated_at: updated_at
fields:
  email: {from: email, transform: [strip, lower, email]}
  first_name: {from: first_name, transform: [title]}
  last_name: {from: last_name, transform: [title]}
  company: company
  title: job_title
  phone: {from: phone, transform: [{e164: {region: US}}]}
  status: {from: stage, map: {New: new, Working: contacted, Qualified: qualified,
           Customer: converted, Disqualified: lost}, default: new}
  score: {from: score, type: int}
  tags: {from: tags, split: ";"}
  custom.industry: industry
require: [email]
"""


def generate(path: Path, rows: int, seed: int = 42) -> None:
    """Write ``rows`` realistic leads to ``path``."""
    rng = random.Random(seed)
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(
            [
                "id",
                "email",
                "first_name",
                "last_name",
                "company",
                "job_title",
                "phone",
                "stage",
                "score",
                "tags",
                "industry",
                "updated_at",
            ]
        )
        for i in range(rows):
            first, last = rng.choice(FIRST), rng.choice(LAST)
            area = rng.randint(201, 989)
            phone = rng.choice(
                [
                    f"({area}) 555-{i % 10000:04d}",
                    f"{area}.555.{i % 10000:04d}",
                    f"+1 {area} 555 {i % 10000:04d}",
                ]
            )
            writer.writerow(
                [
                    f"L{i:08d}",
                    f" {first.title()}.{last}{i}@example.com",
                    first,
                    last,
                    rng.choice(COMPANIES),
                    "Buyer",
                    phone,
                    rng.choice(STAGES),
                    rng.randint(0, 100),
                    "webinar;q3" if i % 3 else "",
                    "software",
                    f"2024-01-{1 + i % 28:02d}T10:00:00Z",
                ]
            )


def _tree_rss_kib(root: int) -> int:
    """Resident memory of ``root`` and all its descendants (mapping workers), KiB."""
    parents: dict[int, int] = {}
    rss: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            status = (entry / "status").read_text()
        except OSError:
            continue
        pid = int(entry.name)
        parents[pid] = int(stat.rsplit(")", 1)[1].split()[1])
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                rss[pid] = int(line.split()[1])
    total = 0
    for pid, kib in rss.items():
        node = pid
        while node and node != root:
            node = parents.get(node, 0)
        if node == root:
            total += kib
    return total


def run_sync(config: Path) -> tuple[float, int, float]:
    """Run ``leadsync sync`` in a fresh process: (seconds, peak RSS KiB, CPU s).

    The peak RSS is the largest sum, sampled every 100 ms, over the process and its
    mapping workers; the CPU time includes the workers'.
    """
    cmd = [sys.executable, "-m", "service.cli", "sync", "--config", str(config)]
    started = time.perf_counter()
    proc = subprocess.Popen(
        [*cmd, "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    peak = 0
    while proc.poll() is None:
        peak = max(peak, _tree_rss_kib(proc.pid))
        time.sleep(0.1)
    elapsed = time.perf_counter() - started
    out, err = proc.communicate()
    if proc.returncode != 0:
        sys.stderr.write(out + err)
        raise SystemExit(f"sync failed with exit code {proc.returncode}")
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = usage.ru_utime + usage.ru_stime - _CPU_BEFORE[0]
    _CPU_BEFORE[0] = usage.ru_utime + usage.ru_stime
    return elapsed, peak, cpu


_CPU_BEFORE = [0.0]


def main() -> None:
    """Generate, sync twice, report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument(
        "--store", default=None, help="store URL (default: SQLite file)"
    )
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="leadsync-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    csv_path = work / "leads.csv"
    if not csv_path.exists() or sum(1 for _ in csv_path.open()) != args.rows + 1:
        generate(csv_path, args.rows)
    (work / "mapping.yaml").write_text(MAPPING)
    store = args.store or f"sqlite:///{work / 'store.db'}"
    (work / "leadsync.yaml").write_text(
        f"store: {{url: '{store}'}}\nlead_fields: [{{name: industry, type: string}}]\n"
        "logging: {level: warning}\n"
        "connectors:\n  - {name: bench, type: csv, path: leads.csv,"
        " mapping: mapping.yaml}\n"
    )
    first = run_sync(work / "leadsync.yaml")
    second = run_sync(work / "leadsync.yaml")
    backend = store.split(":", 1)[0]
    print(f"rows={args.rows:,} store={backend}")
    for label, (secs, kib, cpu) in (("first load", first), ("unchanged", second)):
        print(
            f"  {label:10} {secs:8.2f} s  {args.rows / secs:9,.0f} leads/s  "
            f"peak RSS {kib / 1024:5.0f} MiB  CPU {cpu:7.2f} s "
            f"({cpu / secs:.2f} cores)"
        )


if __name__ == "__main__":
    main()
