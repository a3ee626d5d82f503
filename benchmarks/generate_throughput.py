"""Benchmark: `generate` throughput against the fake Mistral server under a rate limit, with 429s.

Usage: python benchmarks/generate_throughput.py [--examples 10000] [--rps 20] [--latency 0.3]
       [--rate-429 0.05] [--retry-after 1] [--max-concurrency 32] [--workdir DIR]
Target: achieved request rate >= 95 % of --rps, and 0 answers paid for twice.

The examples are the first --examples pairs of SICK train + test and RTE train (../shared/data/external),
imported with the real importer; where that folder is absent, generated toy pairs are used instead.
The fake server (tests/fake_mistral.py) runs as its own process, so the CPU time measured here is the
client's: the real SDK, pacing, retries, parsing and one SQLite commit per answer. Figures:
- achieved_rps: HTTP requests the server received per second: (requests - 1) intervals over the time
  from the first arrival to the last (429s included: every attempt takes a slot of the limit);
- answers_per_s: answers stored per second of the run;
- duplicates: request keys the server answered successfully more than once (must be 0);
- cpu_ms_per_request: client process CPU time (all threads) per request sent.
Prints one JSON line at the end.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data"
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))


def _pairs(n: int) -> tuple[list[tuple[str, str, int]], str]:
    """n distinct labelled pairs: real NLI data when present, else toy pairs."""
    files = [SHARED / "external" / f for f in ("sick_train.csv", "sick_test.csv", "rte_train.csv")]
    if not all(f.exists() for f in files):
        from fake_mistral import toy_pairs

        return toy_pairs(n), "toy pairs (../shared/data absent)"
    seen: set[tuple[str, str]] = set()
    pairs = []
    for path in files:
        with path.open(newline="", encoding="utf-8") as fh:
            for row in csv.DictReader(fh):
                key = (row["premise"], row["hypothesis"])
                if key not in seen:
                    seen.add(key)
                    pairs.append((row["premise"], row["hypothesis"], int(row["label"])))
    if len(pairs) < n:
        sys.exit(f"only {len(pairs)} distinct pairs available; use --examples {len(pairs)} or fewer")
    return pairs[:n], "SICK train+test, RTE train"


def _build_db(workdir: Path, n: int) -> tuple[Path, str]:
    from db import open_db
    from pipeline.importing import import_file

    pairs, source = _pairs(n)
    data = workdir / "bench_train.csv"
    with data.open("w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows([("premise", "hypothesis", "label"), *pairs])
    db_path = workdir / "bench.db"
    db = open_db(db_path)
    import_file(db, data)
    db.conn.close()
    return db_path, source


def _start_server(args: argparse.Namespace) -> tuple[subprocess.Popen[str], str]:
    command = [sys.executable, str(ROOT / "tests" / "fake_mistral.py"), "--latency-s", str(args.latency),
               "--rate-429", str(args.rate_429), "--retry-after", str(args.retry_after), "--api-key", args.key]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    assert server.stdout is not None
    line = server.stdout.readline().split()
    if len(line) != 2 or line[0] != "FAKE_MISTRAL_URL":
        server.kill()
        sys.exit(f"the fake server did not start: {line}")
    return server, line[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=10_000)
    parser.add_argument("--rps", type=float, default=20.0)
    parser.add_argument("--latency", type=float, default=0.3)
    parser.add_argument("--rate-429", type=float, default=0.05)
    parser.add_argument("--retry-after", type=float, default=1.0)
    parser.add_argument("--max-concurrency", type=int, default=32)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    args.key = "sk-benchmark-not-a-real-key"
    os.environ["MISTRAL_API_KEY"] = args.key

    from pipeline.generate import Selection, run_stage, stage_options
    from pipeline.settings import Api, Settings

    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        db_path, source = _build_db(Path(tmp), args.examples)
        server, url = _start_server(args)
        try:
            settings = Settings(api=Api(server_url=url, rps=args.rps, max_concurrency=args.max_concurrency,
                                        timeout_s=30.0, max_retries=8))
            opts = stage_options("thought", settings)
            last = [0.0]

            def progress(counters) -> None:
                now = time.monotonic()
                if now - last[0] >= 30:
                    last[0] = now
                    print(f"  {counters.finished}/{counters.total} done, {counters.requests} requests, "
                          f"{counters.as_dict()['requests_per_s']} req/s", file=sys.stderr, flush=True)

            cpu0, wall0 = time.process_time(), time.monotonic()
            result = run_stage(db_path, opts, Selection(limit=args.examples), on_progress=progress)
            cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
            with urllib.request.urlopen(f"{url}/_fake/stats", timeout=10) as res:
                stats = json.loads(res.read())
        finally:
            server.terminate()
            server.wait(10)
    run = result.summary["run"]
    span = stats["last_at"] - stats["first_at"]
    out = {
        "benchmark": "generate_throughput",
        "examples": args.examples,
        "source": source,
        "limit_rps": args.rps,
        "achieved_rps": round((stats["requests"] - 1) / span, 3),
        "ratio_to_limit": round((stats["requests"] - 1) / span / args.rps, 4),
        "answers_per_s": round(run["stored"] / wall, 3),
        "requests": stats["requests"],
        "server_429s": stats["by_status"].get("429", 0),
        "stored": run["stored"],
        "failures": run["failures"],
        "duplicates": stats["duplicates"],
        "cpu_ms_per_request": round(1000 * cpu / max(1, run["requests"]), 3),
        "wall_s": round(wall, 1),
        "latency_s": args.latency,
        "rate_429": args.rate_429,
        "max_concurrency": args.max_concurrency,
    }
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
