"""Load test of the lead API on a 100,000-lead SQLite store, through a real server.

Builds the store in a temporary folder, starts ``leadsync serve [--workers N]``
(uvicorn) on a free loopback port, and drives it with wrk (Debian package ``wrk``) when
installed, else with httpx in threads. Scenarios: GET /healthz (the framework alone,
for comparison on a shared machine), GET /v1/leads, GET /v1/leads/{id},
GET /v1/leads/search, POST /v1/leads/sync (100 leads per request, new leads each time).
Besides latency, each row shows the server's CPU time per request (all its processes):
on a shared machine it moves less than the request rate.

    python bench/api_load.py [--leads 100000] [--seconds 10] [--connections 16]
                             [--workers 1]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from state.apikeys import create_api_key  # noqa: E402 # after the sys.path fix
from state.db import make_engine, session_scope  # noqa: E402
from state.migrate import upgrade  # noqa: E402
from state.store import upsert_leads  # noqa: E402

INDUSTRIES = ["Retail", "Software", "Finance", "Health", "Logistics", "Media"]


def _lead(i: int) -> dict[str, object]:
    return {
        "lead_id": f"crm-{i}",
        "email": f"person{i}@example{i % 97}.com",
        "first_name": f"First{i}",
        "last_name": f"Last{i % 1000}",
        "name": f"First{i} Last{i % 1000}",
        "company": f"Company {i % 500}",
        "status": ("new", "contacted", "qualified", "converted", "lost")[i % 5],
        "score": i % 100,
        "source": "web",
        "tags": ["bench"],
        "custom_fields": {"industry": INDUSTRIES[i % len(INDUSTRIES)]},
    }


def build_store(folder: Path, count: int) -> tuple[str, list[str], str]:
    """Fill a SQLite store; returns its URL, some store ids and an admin key."""
    url = f"sqlite:///{folder / 'store.db'}"
    engine = make_engine(url)
    upgrade(engine)
    now = datetime.now(UTC)
    ids: list[str] = []
    started = time.perf_counter()
    for start in range(0, count, 1000):
        batch = [_lead(i) for i in range(start, min(count, start + 1000))]
        with session_scope(engine) as session:
            result = upsert_leads(session, origin="crm", leads=batch, now=now)
        if len(ids) < 2000:
            ids += [store_id for _, store_id in result.actions.values()][:20]
    seconds = time.perf_counter() - started
    print(f"store: {count} leads upserted in {seconds:.1f}s ({count / seconds:,.0f}/s)")
    with session_scope(engine) as session:
        _, key = create_api_key(session, name="bench", scopes=["admin"], now=now)
    engine.dispose()
    return url, ids, key


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(
    folder: Path, url: str, workers: int = 1
) -> tuple[subprocess.Popen[bytes], str]:
    """``leadsync serve`` in a child process; returns it and its base URL."""
    port = _free_port()
    config = folder / "leadsync.yaml"
    limits = "{requests_per_minute: 100000000, sync_requests_per_minute: 100000000,"
    limits += " sync_leads_per_minute: 1000000000}"
    config.write_text(
        f"store: {{url: '{url}'}}\n"
        f"api: {{port: {port}, rate_limits: {limits}}}\n"
        "lead_fields: [{name: industry, type: string}]\n"
        "logging: {format: json, level: warning}\n"
    )
    script = (
        os.environ.get("BENCH_PRELUDE", "")
        + "import typer; from service.cli_api import serve; typer.run(serve)"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            script,
            "--config",
            str(config),
            "--workers",
            f"{workers}",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                return proc, base
        except httpx.TransportError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("the server did not start")


_WRK_LUA = """
local ids = {%(ids)s}
local words = {%(words)s}
local kind = "%(kind)s"
local counter = 0
local tid = 0
local threads = 0
setup = function(thread) thread:set("tid", threads); threads = threads + 1 end
request = function()
  counter = counter + 1
  if kind == "health" then
    return wrk.format("GET", "/healthz")
  elseif kind == "get" then
    return wrk.format("GET", "/v1/leads/" .. ids[(counter %% #ids) + 1])
  elseif kind == "search" then
    return wrk.format("GET", "/v1/leads/search?q=" .. words[(counter %% #words) + 1])
  elseif kind == "sync" then
    local parts = {}
    for i = 1, 100 do
      local lid = "w" .. tid .. "-" .. counter .. "-" .. i
      parts[i] = '{"lead_id":"' .. lid .. '","email":"' .. lid .. '@bench.io",' ..
        '"name":"Bench ' .. lid .. '","status":"new",' ..
        '"customFields":{"industry":"Retail"}}'
    end
    local body = '{"origin":"bench","leads":[' .. table.concat(parts, ",") .. ']}'
    return wrk.format("POST", "/v1/leads/sync", nil, body)
  end
  return wrk.format("GET", "/v1/leads?page=" .. ((counter %% 20) + 1))
end
done = function(summary, latency, requests)
  io.write(string.format("RESULT %%d %%d %%d %%d %%d %%d %%d\\n", summary.requests,
    summary.duration, latency:percentile(50), latency:percentile(99),
    summary.errors.status, summary.errors.connect + summary.errors.read +
    summary.errors.write + summary.errors.timeout, latency.max))
end
"""


def run_wrk(
    base: str, key: str, kind: str, ids: list[str], seconds: int, conns: int
) -> dict[str, float]:
    """One scenario with wrk; latencies in milliseconds."""
    # Every last name of the store once, in a fixed shuffled order: the mix of cheap
    # and costly searches is that of the data itself (a word with fewer digits
    # prefix-matches ten times as many leads), the same in every run.
    population = [f'"last{n}"' for n in range(1000)]
    random.Random(1000).shuffle(population)
    words = population
    script = _WRK_LUA % {
        "ids": ",".join(f'"{i}"' for i in ids),
        "words": ",".join(words),
        "kind": kind,
    }
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as handle:
        handle.write(script)
    flags = f"-t2 -c{conns} -d{seconds}s --timeout 10s -s {handle.name}".split()
    headers = ["-H", f"X-API-Key: {key}", "-H", "Content-Type: application/json"]
    try:
        output = subprocess.run(
            ["wrk", *flags, *headers, base],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    finally:
        os.unlink(handle.name)
    line = next(x for x in output.splitlines() if x.startswith("RESULT"))
    requests, micros, p50, p99, bad, failed, worst = map(int, line.split()[1:])
    return {
        "requests": requests,
        "rps": requests / (micros / 1e6),
        "p50": p50 / 1000,
        "p99": p99 / 1000,
        "errors": bad + failed,
        "max": worst / 1000,
    }


def run_httpx(
    base: str, key: str, kind: str, ids: list[str], seconds: int, conns: int
) -> dict[str, float]:
    """One scenario with httpx in threads (when wrk is not installed)."""
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def worker(n: int) -> None:
        counter = 0
        with httpx.Client(base_url=base, headers={"X-API-Key": key}) as client:
            while time.monotonic() < stop:
                counter += 1
                started = time.perf_counter()
                if kind == "health":
                    response = client.get("/healthz")
                elif kind == "get":
                    response = client.get(f"/v1/leads/{random.choice(ids)}")
                elif kind == "search":
                    response = client.get(
                        f"/v1/leads/search?q=last{random.randrange(1000)}"
                    )
                elif kind == "sync":
                    leads = [
                        {
                            "lead_id": f"h{n}-{counter}-{i}",
                            "email": f"h{n}-{counter}-{i}@bench.io",
                        }
                        for i in range(100)
                    ]
                    response = client.post(
                        "/v1/leads/sync", json={"origin": "bench", "leads": leads}
                    )
                else:
                    response = client.get(f"/v1/leads?page={counter % 20 + 1}")
                elapsed = time.perf_counter() - started
                with lock:
                    latencies.append(elapsed)
                    errors[0] += response.status_code >= 400

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(conns)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    cuts = statistics.quantiles(latencies, n=100)
    return {
        "requests": len(latencies),
        "rps": len(latencies) / seconds,
        "p50": cuts[49] * 1000,
        "p99": cuts[98] * 1000,
        "errors": errors[0],
        "max": max(latencies) * 1000,
    }


def server_cpu(pid: int) -> float:
    """CPU seconds used so far by a process and its children (Linux /proc)."""
    total = 0
    pids = [pid]
    children = Path(f"/proc/{pid}/task/{pid}/children")
    if children.exists():
        pids += [int(p) for p in children.read_text().split()]
    for each in pids:
        try:
            fields = Path(f"/proc/{each}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / os.sysconf("SC_CLK_TCK")


def machine_speed() -> float:
    """Seconds a fixed pure-Python loop takes now: on a shared virtual machine it
    moves from minute to minute, and every row's numbers move with it."""
    started = time.perf_counter()
    total = 0
    for i in range(10_000_000):
        total += i
    return time.perf_counter() - started


def main() -> None:
    """Build, serve, load, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=100_000)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    runner = run_wrk if shutil.which("wrk") else run_httpx
    speed_before = machine_speed()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        url, ids, key = build_store(folder, args.leads)
        proc, base = start_server(folder, url, args.workers)
        try:
            rows = []
            for label, kind, conns in (
                # The framework alone, for comparison on a shared machine.
                ("GET /healthz (no key, no SQL)", "health", args.connections),
                ("GET /v1/leads", "list", args.connections),
                ("GET /v1/leads/{id}", "get", args.connections),
                ("GET /v1/leads/search", "search", args.connections),
                ("POST /v1/leads/sync (100/req)", "sync", 4),
            ):
                cpu = server_cpu(proc.pid)
                result = runner(base, key, kind, ids, args.seconds, conns)
                used = server_cpu(proc.pid) - cpu
                result["cpu_us"] = used / max(1, result["requests"]) * 1e6
                rows.append((label, conns, result))
        finally:
            proc.terminate()
            proc.wait(timeout=20)
    tool = "wrk" if runner is run_wrk else "httpx threads"
    speed_after = machine_speed()
    processes = "1 uvicorn process" if args.workers == 1 else f"{args.workers} workers"
    print(
        f"\n{args.leads:,} leads, SQLite, {processes}, {tool}, {args.seconds}s each,"
        f" {os.cpu_count()} CPUs; machine speed: a 10M-step Python loop took"
        f" {speed_before:.2f} s before and {speed_after:.2f} s after (lower is faster)"
    )
    header = ("scenario", "conns", "req/s", "leads/s", "p50 ms", "p99 ms", "errors")
    header += ("cpu us/req",)
    print(f"{header[0]:32} " + " ".join(f"{h:>9}" for h in header[1:]))
    for label, conns, r in rows:
        leads = r["rps"] * 100 if "sync" in label else float("nan")
        shown = f"{leads:9,.0f}" if leads == leads else f"{'-':>9}"
        cells = [f"{conns:>9}", f"{r['rps']:9,.0f}", shown, f"{r['p50']:9.1f}"]
        cells += [f"{r['p99']:9.1f}", f"{int(r['errors']):>9}", f"{r['cpu_us']:9.0f}"]
        print(f"{label:32} " + " ".join(cells))
    print(json.dumps({label: r for label, _, r in rows}, default=float))


if __name__ == "__main__":
    main()
