#!/usr/bin/env python3
"""kubectl-mpo benchmark: prints ratios against the product.md targets.

Runs against its own sandbox (target/sandbox-bench) with N = 50, 200, 1000 overrides
(MPO_BENCH_COUNTS), and writes target/bench/results.json:
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
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import base64

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COUNTS = [int(n) for n in os.environ.get("MPO_BENCH_COUNTS", "50,200,1000").split(",")]
RUNS = int(os.environ.get("MPO_BENCH_RUNS", "7"))
CACHE = os.environ.get("MPO_CACHE_DIR", os.path.expanduser("~/.cache/kubectl-mpo"))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
SANDBOX = os.environ.get("SANDBOX_DIR", os.path.join(ROOT, "target", "sandbox-bench"))
BIN = os.path.join(TARGET, "release", "kubectl-mpo")


def sh(args, **kw):
    return subprocess.run(args, check=True, **kw)


def cpu_seconds(pid):
    """User + system CPU time a running process has used so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def timed_full(args, env, runs=RUNS, servers=()):
    """Medians over `runs` runs: wall time (s), the command's own CPU time (s), and the
    CPU time (s) the server processes `servers` (PIDs) spent meanwhile; and max RSS (KiB)."""
    times, cpu, server_cpu = [], [], []
    peak = 0
    for _ in range(runs):
        before = sum(cpu_seconds(pid) for pid in servers)
        start = time.perf_counter()
        child = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _, status, usage = os.wait4(child.pid, 0)
        times.append(time.perf_counter() - start)
        server_cpu.append(sum(cpu_seconds(pid) for pid in servers) - before)
        cpu.append(usage.ru_utime + usage.ru_stime)
        if os.waitstatus_to_exitcode(status) not in (0, 1):
            sys.exit(f"benchmark command failed: {' '.join(args)}")
        peak = max(peak, usage.ru_maxrss)
    return {
        "wall": statistics.median(times),
        "cpu": statistics.median(cpu),
        "serverCpu": statistics.median(server_cpu),
        "rss": peak,
    }


def timed(args, env, runs=RUNS):
    """Median wall time (s) and max RSS (KiB) over `runs` runs."""
    result = timed_full(args, env, runs)
    return result["wall"], result["rss"]


def pid_of(name):
    with open(os.path.join(SANDBOX, "pids", f"{name}.pid")) as f:
        return int(f.read().strip())


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


def simulator(signal_name):
    """Pauses (STOP) or resumes (CONT) the controller simulator: it is not what is
    measured, and on a small machine its polling would compete for the CPU (on a real
    cluster the controller runs elsewhere)."""
    with open(os.path.join(SANDBOX, "pids", "simulator.pid")) as f:
        os.kill(int(f.read().strip()), getattr(signal, "SIG" + signal_name))


def measure(state, count, env):
    sh([os.path.join(TARGET, "debug", "mpo-sandbox"), "bench-setup", "--state",
        os.path.join(SANDBOX, "state.json"), "--count", str(count)], env={**os.environ, "SANDBOX_DIR": SANDBOX})
    simulator("STOP")
    try:
        return timings(state, count, env)
    finally:
        simulator("CONT")


def docker_config(directory, registry):
    """A docker config.json with the registry's credentials; returns its path."""
    auth = base64.b64encode(f"{registry['username']}:{registry['password']}".encode()).decode()
    path = os.path.join(directory, "config.json")
    with open(path, "w") as f:
        json.dump({"auths": {registry["host"]: {"auth": auth}}}, f)
    return path


def timings(state, count, env):
    get = timed_full(["kubectl", "get", "modulepulloverrides.deckhouse.io", "-o", "json"], env)
    # The ModuleSource's registry: HTTPS with htpasswd Basic auth.
    status = timed_full([BIN, "status", "-o", "json"], env, servers=[pid_of("registry-tls")])
    offline_time, _ = timed([BIN, "status", "--offline", "-o", "json"], env)
    get_time, status_time, status_rss = get["wall"], status["wall"], status["rss"]

    # The same modules behind a Bearer token service (as Harbor and GitLab serve them),
    # through the --registry-repo fallback.
    token = state["registries"]["token"]
    with tempfile.TemporaryDirectory() as directory:
        bearer = timed_full(
            [BIN, "status", "-o", "json", "--registry-repo", f"{token['host']}/deckhouse/modules",
             "--registry-config", docker_config(directory, token), "--registry-ca", state["ca_file"]],
            env, servers=[pid_of("registry-token"), pid_of("token-service")])

    # The docs' way: one `crane digest` per module, with the ModuleSource's credentials.
    registry = state["registries"]["tls"]
    with tempfile.TemporaryDirectory() as directory:
        docker_config(directory, registry)
        crane_env = {**env, "DOCKER_CONFIG": directory, "SSL_CERT_FILE": state["ca_file"]}
        sample = min(count, 20)
        crane_bin = crane()  # built before the clock starts
        start = time.perf_counter()
        for i in range(sample):
            sh([crane_bin, "digest", f"{registry['host']}/deckhouse/modules/bench-{i:03}:dev"],
               env=crane_env, stdout=subprocess.DEVNULL)
        crane_time = (time.perf_counter() - start) / sample * count
    return {
        "overrides": count,
        "kubectlGetSeconds": get_time,
        "statusSeconds": status_time,
        "statusOfflineSeconds": offline_time,
        "craneLoopSeconds": crane_time,
        "statusToKubectlGet": status_time / get_time,
        "craneLoopToStatus": crane_time / status_time,
        "statusPeakRssMiB": status_rss / 1024,
        # Where the time goes on one shared machine: the client's own CPU against
        # kubectl's, and the registry server's CPU per lookup (its floor here).
        "statusCpuSeconds": status["cpu"],
        "kubectlGetCpuSeconds": get["cpu"],
        "statusCpuToKubectlGetCpu": status["cpu"] / get["cpu"],
        "registryCpuMsPerLookup": status["serverCpu"] / count * 1000,
        "bearerStatusSeconds": bearer["wall"],
        "bearerStatusToKubectlGet": bearer["wall"] / get_time,
        "bearerServerCpuMsPerLookup": bearer["serverCpu"] / count * 1000,
    }


def run(env_up):
    state = json.load(open(os.path.join(SANDBOX, "state.json")))
    env = {**os.environ, "KUBECONFIG": state["kubeconfig"], "NO_COLOR": "1"}
    help_time, _ = timed([BIN, "--help"], env, runs=30)
    version_time, version_rss = timed([BIN, "version"], env, runs=30)
    results = {
        "startupHelpMs": help_time * 1000,
        "startupVersionMs": version_time * 1000,
        "binaryBytes": os.path.getsize(BIN),
        "runs": RUNS,
        "sizes": [measure(state, count, env) for count in sorted(COUNTS)],
    }
    out_dir = os.path.join(ROOT, "target", "bench")
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "results.json"), "w") as f:
        json.dump(results, f, indent=2)

    print()
    print(f"kubectl-mpo benchmark (median of {RUNS} runs; crane loop measured on 20 modules and scaled)")
    print(f"  start-up: --help {help_time * 1000:.1f} ms, version {version_time * 1000:.1f} ms (target < 10 ms)")
    print(f"  binary size: {results['binaryBytes'] / 1048576:.1f} MiB")
    print(f"  {'N':>5} {'kubectl get':>12} {'status':>10} {'offline':>10} {'crane loop':>11} {'status/get':>11} {'crane/status':>13} {'peak RSS':>9}")
    for r in results["sizes"]:
        print(f"  {r['overrides']:>5} {r['kubectlGetSeconds'] * 1000:>10.0f}ms {r['statusSeconds'] * 1000:>8.0f}ms"
              f" {r['statusOfflineSeconds'] * 1000:>8.0f}ms {r['craneLoopSeconds'] * 1000:>9.0f}ms"
              f" {r['statusToKubectlGet']:>11.2f} {r['craneLoopToStatus']:>12.1f}x {r['statusPeakRssMiB']:>7.1f}MiB")
    print("  targets: status/get <= 1.5 and crane/status >= 20 at N=200; peak RSS < 50 MiB at N=1000")
    print()
    print(f"  {'N':>5} {'status cpu':>11} {'get cpu':>9} {'cpu ratio':>10} {'registry cpu/lookup':>20}"
          f" {'bearer status':>14} {'bearer/get':>11} {'bearer cpu/lookup':>18}")
    for r in results["sizes"]:
        print(f"  {r['overrides']:>5} {r['statusCpuSeconds'] * 1000:>9.0f}ms {r['kubectlGetCpuSeconds'] * 1000:>7.0f}ms"
              f" {r['statusCpuToKubectlGetCpu']:>10.2f} {r['registryCpuMsPerLookup']:>18.2f}ms"
              f" {r['bearerStatusSeconds'] * 1000:>12.0f}ms {r['bearerStatusToKubectlGet']:>11.2f}"
              f" {r['bearerServerCpuMsPerLookup']:>16.2f}ms")
    print("  (cpu: the command's own user+system time; registry cpu: what the registry server spent")
    print("   per lookup during `status`, on the same 2 cores as the client in this sandbox)")
    print(f"  written: {os.path.join(out_dir, 'results.json')}")


if __name__ == "__main__":
    main()
