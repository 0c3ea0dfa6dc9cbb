#!/usr/bin/env python3
"""Alternating rounds of the http_hello server under wrk, one fresh server
process per variant per round, and each variant's requests/s relative to the
first as a paired log-ratio with a 95 % confidence interval.

    rounds.py ROUNDS SECS VARIANT...

VARIANT is BIN:RUNTIME[:NAME=VALUE,...]: the bench binary, the runtime its
`--serve` takes (wq, wq-no-monitor, tokio), and environment variables for the
server process. Example, from the repository's root after
`cargo build --release -p wq-bench --bin bench`:

    benches/http-trace/rounds.py 100 1 target/release/bench:wq target/release/bench:tokio

The interval is the normal approximation, meaningful from a few dozen
rounds on. Why fresh processes: a server kept for many rounds keeps what its instance
was dealt (thread placement on the vCPUs), and two long-lived servers can
differ by a few percent for the whole run (docs/performance.md, HTTP).
"""
import math
import os
import re
import statistics
import subprocess
import sys
import time

WRK = ["wrk", "-t2", "-c64"]


def serve(binary, runtime, env):
    server = subprocess.Popen(
        [binary, "--serve", runtime, "--workers", "2"],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    address = server.stdout.readline().strip()
    if not address:
        server.kill()
        sys.exit(f"{binary} --serve {runtime} printed no address")
    time.sleep(0.2)
    return server, address


def one_round(variant, secs):
    binary, runtime, env = variant
    server, address = serve(binary, runtime, env)
    try:
        out = subprocess.run(
            WRK + [f"-d{secs:g}s", f"http://{address}/"],
            capture_output=True, text=True, check=True,
        ).stdout
    finally:
        server.kill()
        server.wait()
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))


def parse(spec):
    parts = spec.split(":")
    if len(parts) < 2:
        sys.exit(f"variant `{spec}`: expected BIN:RUNTIME[:NAME=VALUE,...]")
    env = dict(kv.split("=", 1) for kv in filter(None, ",".join(parts[2:]).split(",")))
    return parts[0], parts[1], env


def name(spec):
    return ":".join(spec.split(":")[1:])


def main():
    if len(sys.argv) < 5:
        sys.exit(__doc__)
    rounds, secs, specs = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3:]
    variants = [parse(s) for s in specs]
    results = [[] for _ in variants]
    for r in range(rounds):
        # Rotate the order, and reverse it every other lap, so that no
        # variant always follows the same one.
        order = list(range(len(variants)))
        k = r % len(order)
        order = order[k:] + order[:k]
        if (r // len(order)) % 2:
            order.reverse()
        for i in order:
            results[i].append(one_round(variants[i], secs))
    print("mean requests/s:", ", ".join(f"{name(s)} {statistics.mean(x) / 1e3:.1f} k" for s, x in zip(specs, results)))
    for spec, result in zip(specs[1:], results[1:]):
        logs = [math.log(b / a) for a, b in zip(results[0], result)]
        mean = statistics.mean(logs)
        half = 1.96 * statistics.stdev(logs) / math.sqrt(len(logs))
        print(f"{name(spec)} / {name(specs[0])}: {math.exp(mean):.3f} "
              f"(95 % CI {math.exp(mean - half):.3f} to {math.exp(mean + half):.3f}, {len(logs)} rounds)")


if __name__ == "__main__":
    main()
