#!/usr/bin/env python3
"""kubectl-mpo benchmark: prints ratios against the product.md targets.

Runs against its own sandbox (target/sandbox-bench) with COUNT overrides:
  - start-up: `kubectl mpo --help` / `version`, target well under 10 ms;
  - `kubectl mpo status` (registry checks for every override) vs plain
    `kubectl get mpo -o json`: target ratio <= 1.5;
  - vs the docs' way, one `crane digest` per module: target >= 20x faster;
  - peak memory (max RSS) of `status`.
Timings are medians of several runs; machines are noisy, so this prints numbers and
ratios instead of failing a test.
"""
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import base64

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COUNT = int(os.environ.get("MPO_BENCH_COUNT", "200"))
RUNS = int(os.environ.get("MPO_BENCH_RUNS", "7"))
CACHE = os.environ.get("MPO_CACHE_DIR", os.path.expanduser("~/.cache/kubectl-mpo"))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
SANDBOX = os.environ.get("SANDBOX_DIR", os.path.join(ROOT, "target", "sandbox-bench"))
BIN = os.path.join(TARGET, "release", "kubectl-mpo")


def sh(args, **kw):
    return subprocess.run(args, check=True, **kw)


def timed(args, env, runs=RUNS):
    """Median wall time (s) and max RSS (KiB) over `runs` runs."""
    times = []
    peak = 0
    for _ in range(runs):
        start = time.perf_counter()
        child = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _, status, usage = os.wait4(child.pid, 0)
        times.append(time.perf_counter() - start)
        if os.waitstatus_to_exitcode(status) not in (0, 1):
            sys.exit(f"benchmark command failed: {' '.join(args)}")
        peak = max(peak, usage.ru_maxrss)
    return statistics.median(times), peak


def crane():
    path = os.path.join(CACHE, "bin", "crane")
    if not os.path.exists(path):
        sh(["go", "install", "github.com/google/go-containerregistry/cmd/crane@v0.20.6"],
           env={**os.environ, "GOBIN": os.path.dirname(path), "GOFLAGS": "-mod=mod"}, cwd=tempfile.gettempdir())
    return path


def main():
    sh(["cargo", "build", "--quiet", "--release", "--bin", "kubectl-mpo"], cwd=ROOT)
    env_up = {**os.environ, "SANDBOX_DIR": SANDBOX}
    sh([os.path.join(ROOT, "sandbox/scripts/up.sh")], env=env_up)
    try:
        run(env_up)
    finally:
        if not os.environ.get("MPO_BENCH_KEEP"):
            subprocess.run([os.path.join(ROOT, "sandbox/scripts/down.sh")], env=env_up)


def run(env_up):
    state = json.load(open(os.path.join(SANDBOX, "state.json")))
    sh([os.path.join(TARGET, "debug", "mpo-sandbox"), "bench-setup", "--state",
        os.path.join(SANDBOX, "state.json"), "--count", str(COUNT)], env=env_up)
    env = {**os.environ, "KUBECONFIG": state["kubeconfig"], "NO_COLOR": "1"}

    help_time, _ = timed([BIN, "--help"], env, runs=30)
    version_time, _ = timed([BIN, "version"], env, runs=30)
    get_time, _ = timed(["kubectl", "get", "modulepulloverrides.deckhouse.io", "-o", "json"], env)
    status_time, status_rss = timed([BIN, "status", "-o", "json"], env)
    offline_time, _ = timed([BIN, "status", "--offline", "-o", "json"], env)

    # The docs' way: one `crane digest` per module, with the ModuleSource's credentials.
    registry = state["registries"]["tls"]
    with tempfile.TemporaryDirectory() as docker_config:
        auth = base64.b64encode(f"{registry['username']}:{registry['password']}".encode()).decode()
        with open(os.path.join(docker_config, "config.json"), "w") as f:
            json.dump({"auths": {registry["host"]: {"auth": auth}}}, f)
        crane_env = {**env, "DOCKER_CONFIG": docker_config, "SSL_CERT_FILE": state["ca_file"]}
        sample = min(COUNT, 20)
        start = time.perf_counter()
        for i in range(sample):
            sh([crane(), "digest", f"{registry['host']}/deckhouse/modules/bench-{i:03}:dev"],
               env=crane_env, stdout=subprocess.DEVNULL)
        crane_time = (time.perf_counter() - start) / sample * COUNT

    ms = lambda s: f"{s * 1000:8.1f} ms"
    print()
    print(f"kubectl-mpo benchmark ({COUNT} overrides, median of {RUNS} runs)")
    print(f"  start-up --help             {ms(help_time)}   ratio to 10 ms target: {help_time / 0.010:5.2f} (want < 1)")
    print(f"  start-up version            {ms(version_time)}   ratio to 10 ms target: {version_time / 0.010:5.2f} (want < 1)")
    print(f"  kubectl get mpo -o json     {ms(get_time)}")
    print(f"  kubectl mpo status --offline{ms(offline_time)}")
    print(f"  kubectl mpo status          {ms(status_time)}   ratio to kubectl get: {status_time / get_time:5.2f} (want <= 1.5)")
    print(f"  crane digest x {COUNT:<4}        {ms(crane_time)}   (measured on {min(COUNT, 20)}, scaled)")
    print(f"  speed-up over crane         {crane_time / status_time:8.1f}x  (want >= 20)")
    print(f"  status peak memory          {status_rss / 1024:8.1f} MiB")


if __name__ == "__main__":
    main()
