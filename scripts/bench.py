#!/usr/bin/env python3
"""kubectl-mpo benchmark: every figure against the floor, measured in the same run.

The floor is the leanest client doing the same server work as the plugin. For `status`
with N overrides: one list of the overrides from the API server with curl, then the same
N manifest GETs (same Accept header, same credentials, HTTP/1.1 keep-alive, the plugin's
32 lookups at a time) with one `curl --parallel` over a config file; behind the Bearer
token service, the same batched token requests first (20 repositories per token, 4 at a
time, as the plugin asks). For image reads: `crane export IMAGE - | tar -x` into a
temporary directory.

Runs against its own sandbox (target/sandbox-bench) and writes target/bench/results.json.
Targets (docs/product.md quality bars):
  - `status` <= 1.15x floor at N = 200, 1000, 5000, Basic and Bearer registry;
  - peak RSS of `status` < 64 MiB at N = 5000;
  - `status --watch` on 1000 overrides: idle CPU < 1% of a core, a change shown < 1 s;
  - `create --wait` exits < 200 ms after the controller writes its verdict;
  - `diff --content`, `registry files|cat` on a 300 MiB image: peak RSS < 80 MiB and
    time <= 1.3x `crane export | tar -x`.
Information only: `status` / `kubectl get -o json`, and the docs' crane loop (one
`crane digest` per module; 20 timed and scaled).

The machine is shared and noisy: each round runs the floor and the plugin back to back
(alternating which goes first), and ratios are medians of the per-round ratios.

Environment:
  MPO_BENCH_QUICK=1           short run: N = 200, 3 rounds, 10 s idle window, 60 MiB image
  MPO_BENCH_COUNTS=200,1000   override counts
  MPO_BENCH_RUNS=5            rounds per figure
  MPO_BENCH_IDLE_SECONDS=60   `status --watch` idle window
  MPO_BENCH_IMAGE_MIB=300     size of the big module image (0 skips the image figures)
  MPO_BENCH_WATCH=0           skip `status --watch` and `create --wait`
  MPO_BENCH_STATUS=0          skip the `status` timings (seed only)
  MPO_BENCH_MERGE=1           keep figures of an earlier results.json this run does not
                              measure (a long run in parts)
  MPO_BENCH_KEEP=1            leave the sandbox running
  MPO_BENCH_PREFLIGHT=0       skip timing `create --dry-run=server` with the image preflight
                              against `--skip-image-checks` (target <= 1.3x); that figure
                              on its own: MPO_BENCH_COUNTS=1 MPO_BENCH_STATUS=0
                              MPO_BENCH_WATCH=0 MPO_BENCH_IMAGE_MIB=0
"""
import base64
import http.client
import json
import os
import re
import signal
import shutil
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
QUICK = os.environ.get("MPO_BENCH_QUICK", "") not in ("", "0")
COUNTS = sorted(int(n) for n in os.environ.get(
    "MPO_BENCH_COUNTS", "200" if QUICK else "200,1000,5000").split(","))
RUNS = int(os.environ.get("MPO_BENCH_RUNS", "3" if QUICK else "5"))
IDLE_SECONDS = float(os.environ.get("MPO_BENCH_IDLE_SECONDS", "10" if QUICK else "60"))
IMAGE_MIB = int(os.environ.get("MPO_BENCH_IMAGE_MIB", "60" if QUICK else "300"))
WATCH_COUNT = 1000
WATCH = os.environ.get("MPO_BENCH_WATCH", "1") != "0"
MERGE = os.environ.get("MPO_BENCH_MERGE", "") not in ("", "0")
STATUS = os.environ.get("MPO_BENCH_STATUS", "1") != "0"
PREFLIGHT = os.environ.get("MPO_BENCH_PREFLIGHT", "1") != "0"
CACHE = os.environ.get("MPO_CACHE_DIR", os.path.expanduser("~/.cache/kubectl-mpo"))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
SANDBOX = os.environ.get("SANDBOX_DIR", os.path.join(ROOT, "target", "sandbox-bench"))
BIN = os.path.join(TARGET, "release", "kubectl-mpo")
SANDBOX_BIN = os.path.join(TARGET, "debug", "mpo-sandbox")
OUT_DIR = os.path.join(ROOT, "target", "bench")

# What the plugin does (src/cmd/status.rs, src/registry): 32 lookups at once, one GET
# per manifest with these media types, Bearer tokens for 20 repositories per request,
# 4 token requests at once.
CONCURRENCY = 32
ACCEPT = ", ".join([
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
])
SCOPES_PER_TOKEN = 20
TOKEN_CONCURRENCY = 4
REPO_PATH = "deckhouse/modules"

TARGETS = {
    "statusToFloor": 1.15,
    "statusPeakRssMiB": 64,
    "watchIdleCpuPercent": 1.0,
    "watchChangeSeconds": 1.0,
    "createWaitAfterReadyMs": 200,
    "imagePeakRssMiB": 80,
    "imageToCraneExport": 1.3,
}


def log(text):
    print(f"[bench] {text}", file=sys.stderr, flush=True)


def sh(args, **kw):
    return subprocess.run(args, check=True, **kw)


def need(command, how):
    path = shutil.which(command)
    if not path:
        sys.exit(f"bench: `{command}` not found: {how}")
    return path


def cpu_seconds(pid):
    """User + system CPU time a running process has used so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def timed(args, env, ok=(0,)):
    """Wall time (s), own CPU (s) and max RSS (KiB) of one run of `args`."""
    start = time.perf_counter()
    child = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    stderr = child.stderr.read()
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    if code not in ok:
        sys.exit(f"bench: command failed ({code}): {' '.join(args)}\n"
                 f"{stderr.decode(errors='replace')[-2000:]}")
    return {"wall": wall, "cpu": usage.ru_utime + usage.ru_stime, "rss": usage.ru_maxrss}


def curl_run(args, env, expect=None):
    """Runs curl (`-w` writes one HTTP code per transfer); checks that `expect` transfers
    got 200. Wall time (s), CPU (s), max RSS (KiB)."""
    start = time.perf_counter()
    child = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = child.stdout.read(), child.stderr.read()
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - start
    child.returncode = code = os.waitstatus_to_exitcode(status)
    codes = out.split()
    if code != 0 or (expect is not None and
                     (len(codes) != expect or any(c != b"200" for c in codes))):
        bad = sorted(set(c.decode() for c in codes if c != b"200"))
        sys.exit(f"bench: floor curl failed (exit {code}, {len(codes)} answers, other than "
                 f"200: {bad}): {err.decode(errors='replace')[-1000:]}")
    return {"wall": wall, "cpu": usage.ru_utime + usage.ru_stime, "rss": usage.ru_maxrss}


def median(values):
    return statistics.median(values)


# --- sandbox -------------------------------------------------------------------------------

def pid_of(name):
    with open(os.path.join(SANDBOX, "pids", f"{name}.pid")) as f:
        return int(f.read().strip())


def simulator(signal_name):
    """Pauses (STOP) or resumes (CONT) the controller simulator: it is not what is
    measured, and on a small machine its work would compete for the CPU (on a real
    cluster the controller runs elsewhere)."""
    os.kill(pid_of("simulator"), getattr(signal, "SIG" + signal_name))


def sandbox_tool(*args):
    return sh([SANDBOX_BIN, *args, "--state", os.path.join(SANDBOX, "state.json")],
              env={**os.environ, "SANDBOX_DIR": SANDBOX}, stdout=subprocess.PIPE,
              text=True).stdout


class Api:
    """The sandbox API server as its admin, for the floor's list and for watches."""

    def __init__(self, state):
        url = urllib.parse.urlparse(state["api_server"])
        self.url = state["api_server"]
        self.host, self.port = url.hostname, url.port
        with open(os.path.join(SANDBOX, "pki", "tokens.csv")) as f:
            self.token = next(line.split(",")[0] for line in f if ",admin," in line)
        self.ca = state["ca_file"]
        self.context = ssl.create_default_context(cafile=self.ca)

    def connection(self, timeout=30):
        return http.client.HTTPSConnection(self.host, self.port, context=self.context,
                                           timeout=timeout)

    def request(self, method, path, body=None, content_type="application/json"):
        conn = self.connection()
        headers = {"Authorization": f"Bearer {self.token}", "Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = content_type
            body = json.dumps(body)
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        data = response.read()
        conn.close()
        if response.status >= 300:
            sys.exit(f"bench: {method} {path}: {response.status} {data[:300]!r}")
        return json.loads(data) if data else None


MPO_PATH = "/apis/deckhouse.io/v1alpha2/modulepulloverrides"


def docker_config(directory, registry):
    """A docker config.json with the registry's credentials; returns its path."""
    auth = base64.b64encode(f"{registry['username']}:{registry['password']}".encode()).decode()
    path = os.path.join(directory, "config.json")
    with open(path, "w") as f:
        json.dump({"auths": {registry["host"]: {"auth": auth}}}, f)
    return path


def crane():
    path = os.path.join(CACHE, "bin", "crane")
    if not os.path.exists(path):
        need("go", "install Go (https://go.dev/dl) to build crane, or put crane in "
             f"{os.path.dirname(path)}")
        log("building crane from the Go module proxy")
        sh(["go", "install", "github.com/google/go-containerregistry/cmd/crane@v0.20.6"],
           env={**os.environ, "GOBIN": os.path.dirname(path), "GOFLAGS": "-mod=mod"},
           cwd=tempfile.gettempdir())
    return path


def conf_quote(text):
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


# --- status against its floor ------------------------------------------------------------

class Floor:
    """The leanest client doing the server work of `status` for `names`."""

    def __init__(self, state, api, names, directory):
        self.state, self.api, self.names, self.dir = state, api, names, directory
        self.ca = state["ca_file"]
        self.env = {**os.environ}

    def list_args(self):
        return ["curl", "-sS", "--http1.1", "--cacert", self.ca, "-o", "/dev/null",
                "-w", "%{http_code}\n", "-H", f"Authorization: Bearer {self.api.token}",
                "-H", "Accept: application/json", self.api.url + MPO_PATH]

    def section(self, registry, auth_lines, names):
        lines = ["silent", "show-error", "http1.1", f"cacert = {conf_quote(self.ca)}",
                 f"header = {conf_quote('Accept: ' + ACCEPT)}",
                 'write-out = "%{http_code}\\n"', *auth_lines]
        for name in names:
            url = f"https://{registry['host']}/v2/{REPO_PATH}/{name}/manifests/dev"
            lines += [f"url = {conf_quote(url)}", 'output = "/dev/null"']
        return "\n".join(lines) + "\n"

    def parallel(self, config_path, concurrency):
        return ["curl", "--parallel", "--parallel-max", str(concurrency), "-K", config_path]

    def basic(self):
        """One list, then the N manifest GETs with Basic credentials."""
        registry = self.state["registries"]["tls"]
        path = os.path.join(self.dir, "basic.curl")
        if not os.path.exists(path):
            user = f"user = {conf_quote(registry['username'] + ':' + registry['password'])}"
            with open(path, "w") as f:
                f.write(self.section(registry, [user], self.names))
        listed = curl_run(self.list_args(), self.env, expect=1)
        gets = curl_run(self.parallel(path, CONCURRENCY), self.env, expect=len(self.names))
        return {"wall": listed["wall"] + gets["wall"], "cpu": listed["cpu"] + gets["cpu"],
                "rss": max(listed["rss"], gets["rss"])}

    def bearer(self):
        """One list, the batched token requests, then the N GETs with those tokens."""
        registry = self.state["registries"]["token"]
        chunks = [self.names[i:i + SCOPES_PER_TOKEN]
                  for i in range(0, len(self.names), SCOPES_PER_TOKEN)]
        realm = registry["token_realm"]
        tokens_conf = os.path.join(self.dir, "tokens.curl")
        token_files = [os.path.join(self.dir, f"token-{i}.json") for i in range(len(chunks))]
        if not os.path.exists(tokens_conf):
            user = f"user = {conf_quote(registry['username'] + ':' + registry['password'])}"
            lines = ["silent", "show-error", "http1.1", user,
                     'write-out = "%{http_code}\\n"']
            for chunk, out in zip(chunks, token_files):
                query = [("scope", f"repository:{REPO_PATH}/{n}:pull") for n in chunk]
                query.append(("service", "mpo-sandbox-registry"))
                url = realm + "?" + urllib.parse.urlencode(query)
                lines += [f"url = {conf_quote(url)}", f"output = {conf_quote(out)}"]
            with open(tokens_conf, "w") as f:
                f.write("\n".join(lines) + "\n")
        listed = curl_run(self.list_args(), self.env, expect=1)
        tokens = curl_run(self.parallel(tokens_conf, TOKEN_CONCURRENCY), self.env,
                          expect=len(chunks))
        # Not timed: turning the answers into a curl config (curl cannot do that itself).
        sections = []
        for chunk, out in zip(chunks, token_files):
            with open(out) as f:
                token = json.load(f)["token"]
            header = f"header = {conf_quote('Authorization: Bearer ' + token)}"
            sections.append(self.section(registry, [header], chunk))
        gets_conf = os.path.join(self.dir, "bearer.curl")
        with open(gets_conf, "w") as f:
            f.write("next\n".join(sections))
        gets = curl_run(self.parallel(gets_conf, CONCURRENCY), self.env, expect=len(self.names))
        return {"wall": listed["wall"] + tokens["wall"] + gets["wall"],
                "cpu": listed["cpu"] + tokens["cpu"] + gets["cpu"],
                "rss": max(listed["rss"], tokens["rss"], gets["rss"])}


def check_status_rows(env, count, extra_args=()):
    """The plugin really looks up every override: N rows, each with a registry digest."""
    out = sh([BIN, "status", "-o", "json", *extra_args], env=env, stdout=subprocess.PIPE).stdout
    items = json.loads(out)["items"]
    looked_up = [i for i in items if i.get("registryDigest")]
    if len(items) != count or len(looked_up) != count:
        sys.exit(f"bench: status listed {len(items)} overrides, {len(looked_up)} with a "
                 f"registry digest; expected {count} (other overrides in the bench sandbox?)")


def status_figures(state, api, env, count, names):
    directory = tempfile.mkdtemp(prefix="mpo-bench-")
    try:
        token = state["registries"]["token"]
        bearer_args = ["--registry-repo", f"{token['host']}/{REPO_PATH}",
                       "--registry-config", docker_config(directory, token),
                       "--registry-ca", state["ca_file"]]
        check_status_rows(env, count)
        check_status_rows(env, count, bearer_args)
        floor = Floor(state, api, names, directory)
        commands = {
            "floor": floor.basic,
            "status": lambda: timed([BIN, "status", "-o", "json"], env),
            "floorBearer": floor.bearer,
            "statusBearer": lambda: timed([BIN, "status", "-o", "json", *bearer_args], env),
            "kubectlGet": lambda: timed(
                ["kubectl", "get", "modulepulloverrides.deckhouse.io", "-o", "json"], env),
        }
        if count < 5000:  # warm-up: caches, connections, page cache (long enough at 5000)
            for run in commands.values():
                run()
        samples = {key: [] for key in commands}
        runs = RUNS if count < 5000 else max(3, RUNS - 2)
        for round_ in range(runs):
            pairs = [("floor", "status"), ("floorBearer", "statusBearer"), ("kubectlGet",)]
            for pair in pairs:
                for key in (pair if round_ % 2 == 0 else pair[::-1]):
                    samples[key].append(commands[key]())
        crane_time = crane_loop(state, env, count)
    finally:
        shutil.rmtree(directory, ignore_errors=True)

    def med(key, field="wall"):
        return median([s[field] for s in samples[key]])

    def paired(a, b):
        return median([x["wall"] / y["wall"] for x, y in zip(samples[a], samples[b])])

    return {
        "overrides": count,
        "rounds": runs,
        "floorSeconds": med("floor"),
        "statusSeconds": med("status"),
        "statusToFloor": paired("status", "floor"),
        "floorBearerSeconds": med("floorBearer"),
        "statusBearerSeconds": med("statusBearer"),
        "statusBearerToFloorBearer": paired("statusBearer", "floorBearer"),
        "statusPeakRssMiB": max(s["rss"] for s in samples["status"]) / 1024,
        "statusBearerPeakRssMiB": max(s["rss"] for s in samples["statusBearer"]) / 1024,
        "statusCpuSeconds": med("status", "cpu"),
        "floorCpuSeconds": med("floor", "cpu"),
        "statusBearerCpuSeconds": med("statusBearer", "cpu"),
        "floorBearerCpuSeconds": med("floorBearer", "cpu"),
        "kubectlGetSeconds": med("kubectlGet"),
        "kubectlGetCpuSeconds": med("kubectlGet", "cpu"),
        "statusToKubectlGet": paired("status", "kubectlGet"),
        "craneLoopSeconds": crane_time,
        "craneLoopToStatus": crane_time / med("status"),
    }


def crane_loop(state, env, count):
    """The docs' way: one `crane digest` per module (20 timed, scaled to N)."""
    registry = state["registries"]["tls"]
    crane_bin = crane()
    with tempfile.TemporaryDirectory() as directory:
        docker_config(directory, registry)
        crane_env = {**env, "DOCKER_CONFIG": directory, "SSL_CERT_FILE": state["ca_file"]}
        sample = min(count, 20)
        start = time.perf_counter()
        for i in range(sample):
            sh([crane_bin, "digest", f"{registry['host']}/{REPO_PATH}/bench-{i:03}:dev"],
               env=crane_env, stdout=subprocess.DEVNULL)
        return (time.perf_counter() - start) / sample * count


# --- status --watch ------------------------------------------------------------------------

class LineReader(threading.Thread):
    """Collects a process's stdout lines with the time each arrived."""

    def __init__(self, stream):
        super().__init__(daemon=True)
        self.stream, self.lines, self.cond = stream, [], threading.Condition()

    def run(self):
        for raw in self.stream:
            with self.cond:
                self.lines.append((time.perf_counter(), raw.decode(errors="replace")))
                self.cond.notify_all()

    def wait_for(self, predicate, timeout):
        """Time of the first line after the current ones that satisfies `predicate`."""
        deadline = time.perf_counter() + timeout
        with self.cond:
            index = 0
            while True:
                for at, line in self.lines[index:]:
                    if predicate(line):
                        return at
                index = len(self.lines)
                left = deadline - time.perf_counter()
                if left <= 0:
                    return None
                self.cond.wait(left)


class Watch:
    """A running `status --watch` with its stdout lines and stderr."""

    def __init__(self, env, count):
        self.errors = tempfile.TemporaryFile()
        self.started = time.perf_counter()
        self.child = subprocess.Popen([BIN, "status", "--watch"], env=env,
                                      stdout=subprocess.PIPE, stderr=self.errors)
        self.reader = LineReader(self.child.stdout)
        self.reader.start()
        deadline = time.perf_counter() + 120
        while True:
            with self.reader.cond:
                printed = len(self.reader.lines)
            if printed >= count + 1:
                break
            if time.perf_counter() > deadline or self.child.poll() is not None:
                self.stop()
                sys.exit(f"bench: status --watch printed {printed} lines, expected {count + 1}")
            time.sleep(0.2)
        time.sleep(3)  # the watch's own initial list

    def ended(self):
        """None while running, else (seconds it ran, its last error line)."""
        if self.child.poll() is None:
            return None
        self.errors.seek(0)
        lines = self.errors.read().decode(errors="replace").strip().splitlines()
        return (time.perf_counter() - self.started,
                (lines[-1] if lines else "") + f" (exit {self.child.returncode})")

    def changes(self, api, name="bench-007", count=5):
        """Seconds from sending each of `count` status changes to its row on stdout;
        stops early if the watch ends or a change does not show within 10 s."""
        latencies = []
        for attempt in range(count):
            if self.ended():
                break
            message = f"bench change {attempt}-{int(time.time())}"
            start = time.perf_counter()
            api.request("PATCH", f"{MPO_PATH}/{name}/status",
                        {"status": {"message": message}}, "application/merge-patch+json")
            shown = self.reader.wait_for(lambda line: name in line and message in line, 10)
            if shown is None:
                break
            latencies.append(shown - start)
        api.request("PATCH", f"{MPO_PATH}/{name}/status", {"status": {"message": "Ready"}},
                    "application/merge-patch+json")
        return latencies

    def stop(self):
        if self.child.poll() is None:
            self.child.send_signal(signal.SIGINT)
            try:
                self.child.wait(10)
            except subprocess.TimeoutExpired:
                self.child.kill()
                self.child.wait()
        self.errors.close()


def watch_figures(api, env, count):
    """Idle CPU of `status --watch` over the idle window, then how soon a status change
    shows (time from sending the change to the API server to the row on stdout). A
    watch that ends by itself is a result too (when, its last error line); the change
    latency is then also measured on a fresh watch."""
    result = {"watchOverrides": count, "watchIdleSeconds": IDLE_SECONDS}
    watch = Watch(env, count)
    try:
        pid = watch.child.pid
        before, at = cpu_seconds(pid), time.perf_counter()
        last = before
        while time.perf_counter() - at < IDLE_SECONDS and watch.child.poll() is None:
            try:
                last = cpu_seconds(pid)
            except FileNotFoundError:
                break
            time.sleep(0.5)
        result["watchIdleCpuPercent"] = (last - before) / (time.perf_counter() - at) * 100
        latencies = watch.changes(api)
        ended = watch.ended()
    finally:
        watch.stop()
    result["watchChanges"] = len(latencies)
    result["watchChangeSeconds"] = median(latencies) if len(latencies) == 5 else None
    result["watchChangeMaxSeconds"] = max(latencies) if latencies else None
    if ended:
        result["watchEndedAfterSeconds"], result["watchEndedWith"] = ended
    if len(latencies) < 5:
        fresh = Watch(env, count)
        try:
            latencies = fresh.changes(api)
        finally:
            fresh.stop()
        if latencies:
            result["watchFreshChangeSeconds"] = median(latencies)
            result["watchFreshChangeMaxSeconds"] = max(latencies)
    return result


# --- create --wait --------------------------------------------------------------------------

class VerdictWatch(threading.Thread):
    """Watches one override on the API server and records when the controller's verdict
    (a non-empty status.message) arrives."""

    def __init__(self, api, name):
        super().__init__(daemon=True)
        self.api, self.name = api, name
        self.ready_at = None
        self.started = threading.Event()

    def run(self):
        conn = self.api.connection(timeout=700)
        query = urllib.parse.urlencode({"watch": "1", "fieldSelector": f"metadata.name={self.name}"})
        conn.request("GET", f"{MPO_PATH}?{query}",
                     headers={"Authorization": f"Bearer {self.api.token}"})
        response = conn.getresponse()
        self.started.set()
        while True:
            line = response.readline()
            if not line:
                return
            event = json.loads(line)
            status = event.get("object", {}).get("status") or {}
            if status.get("message"):
                self.ready_at = time.perf_counter()
                conn.close()
                return


def create_wait_figures(api, env, runs):
    sandbox_tool("bench-setup", "--prefix", "wait", "--count", str(runs), "--without-overrides")
    time.sleep(3)  # the module manager picks the source
    delays, totals = [], []
    for i in range(runs):
        name = f"wait-{i:03}"
        watch = VerdictWatch(api, name)
        watch.start()
        watch.started.wait(10)
        start = time.perf_counter()
        # The simulator may first confirm overrides the bench setup gave a verdict; the
        # figure is the time from its verdict on this one to the exit. The verdict is the
        # override's: --wait-for=override, not the module run that follows a deploy.
        result = timed([BIN, "create", name, "--tag", "dev", "--wait", "--wait-for=override", "--timeout", "600s"], env)
        exited = start + result["wall"]
        watch.join(10)
        if watch.ready_at is None:
            sys.exit(f"bench: no verdict seen on {name}")
        delays.append(exited - watch.ready_at)
        totals.append(result["wall"])
    for i in range(runs):
        name = f"wait-{i:03}"
        api.request("PATCH", f"{MPO_PATH}/{name}", {"metadata": {"finalizers": None}},
                    "application/merge-patch+json")
        api.request("DELETE", f"{MPO_PATH}/{name}")
    return {"createWaitRuns": runs, "createWaitAfterReadyMs": median(delays) * 1000,
            "createWaitAfterReadyMaxMs": max(delays) * 1000,
            "createWaitTotalSeconds": median(totals)}


def preflight_figures(env, runs):
    """`create --dry-run=server` with the image preflight (one image read: module.yaml and
    openapi/config-values.yaml) against `--skip-image-checks`, alternating which goes
    first; the ratio is the median of the per-round ratios."""
    sandbox_tool("bench-setup", "--prefix", "pre", "--count", "1", "--without-overrides")
    time.sleep(3)  # the module manager picks the source
    base = [BIN, "create", "pre-000", "--tag", "dev", "--dry-run=server"]
    with_checks, without, ratios = [], [], []
    # A command of about 100 ms: single rounds swing by tens of ms, so more rounds.
    for i in range(max(runs, 15)):
        pair = [base, base + ["--skip-image-checks"]]
        if i % 2:
            pair.reverse()
        walls = {tuple(args): timed(args, env)["wall"] for args in pair}
        checked, skipped = walls[tuple(base)], walls[tuple(base + ["--skip-image-checks"])]
        with_checks.append(checked)
        without.append(skipped)
        ratios.append(checked / skipped)
    return {"preflightMs": median(with_checks) * 1000,
            "withoutPreflightMs": median(without) * 1000,
            "preflightRatio": median(ratios),
            "preflightRatioOfMedians": median(with_checks) / median(without)}


# --- image reads -----------------------------------------------------------------------------

def crane_exports(crane_bin, refs, env):
    """`crane export REF - | tar -x -C TMP` for each ref, all at once; wall time and the
    largest RSS of any process."""
    dirs = [tempfile.mkdtemp(prefix="mpo-bench-export-") for _ in refs]
    start = time.perf_counter()
    children = []
    for ref, directory in zip(refs, dirs):
        export = subprocess.Popen([crane_bin, "export", ref, "-"], env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        untar = subprocess.Popen(["tar", "-x", "-C", directory], stdin=export.stdout)
        export.stdout.close()
        children += [export, untar]
    rss = 0
    for child in children:
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
        if child.returncode != 0:
            sys.exit(f"bench: crane export | tar -x failed: {' '.join(map(str, child.args))}")
        rss = max(rss, usage.ru_maxrss)
    wall = time.perf_counter() - start
    for directory in dirs:
        shutil.rmtree(directory, ignore_errors=True)
    return {"wall": wall, "rss": rss}


def image_figures(state, env):
    simulator("CONT")
    log(f"pushing the {IMAGE_MIB} MiB module image (two builds)")
    pushed = json.loads(sandbox_tool("bench-image", "--module", "bench-big",
                                     "--size-mib", str(IMAGE_MIB)).strip().splitlines()[-1])
    simulator("STOP")
    registry = state["registries"]["tls"]
    crane_bin = crane()
    repo = pushed["repository"]
    with tempfile.TemporaryDirectory() as directory:
        docker_config(directory, registry)
        crane_env = {**env, "DOCKER_CONFIG": directory, "SSL_CERT_FILE": state["ca_file"]}
        both = [f"{repo}@{pushed['deployed']}", f"{repo}@{pushed['current']}"]
        commands = {
            # diff pulls both builds at once; its floor exports both at once.
            "diffContent": lambda: timed([BIN, "diff", "bench-big", "--content"], env, ok=(1,)),
            "diffFloor": lambda: crane_exports(crane_bin, both, crane_env),
            "registryFiles": lambda: timed([BIN, "registry", "files", "bench-big:dev"], env),
            "registryCat": lambda: timed(
                [BIN, "registry", "cat", "bench-big:dev", "templates/generated/t-000.yaml"], env),
            "oneFloor": lambda: crane_exports(crane_bin, [f"{repo}:dev"], crane_env),
        }
        for run in commands.values():
            run()
        samples = {key: [] for key in commands}
        rounds = max(3, RUNS - 2)
        for round_ in range(rounds):
            for pair in [("diffFloor", "diffContent"), ("oneFloor", "registryFiles"),
                         ("oneFloor", "registryCat")]:
                for key in (pair if round_ % 2 == 0 else pair[::-1]):
                    samples[key].append(commands[key]())
    ones = samples["oneFloor"]
    files_floor, cat_floor = ones[0::2], ones[1::2]

    def ratio(xs, ys):
        return median([x["wall"] / y["wall"] for x, y in zip(xs, ys)])

    def wall(xs):
        return median([x["wall"] for x in xs])

    def rss(xs):
        return max(x["rss"] for x in xs) / 1024

    return {
        "imageMiB": IMAGE_MIB,
        "imageRounds": rounds,
        "diffContentSeconds": wall(samples["diffContent"]),
        "diffCraneExportSeconds": wall(samples["diffFloor"]),
        "diffContentToCraneExport": ratio(samples["diffContent"], samples["diffFloor"]),
        "diffContentPeakRssMiB": rss(samples["diffContent"]),
        "registryFilesSeconds": wall(samples["registryFiles"]),
        "registryCatSeconds": wall(samples["registryCat"]),
        "craneExportSeconds": wall(ones),
        "registryFilesToCraneExport": ratio(samples["registryFiles"], files_floor),
        "registryCatToCraneExport": ratio(samples["registryCat"], cat_floor),
        "registryFilesPeakRssMiB": rss(samples["registryFiles"]),
        "registryCatPeakRssMiB": rss(samples["registryCat"]),
        "craneExportPeakRssMiB": rss(ones),
    }


# --- main ------------------------------------------------------------------------------------

def verdicts(results):
    """Each target and whether this run met it."""
    checks = []
    for size in results["sizes"]:
        n = size["overrides"]
        checks.append((f"status/floor at {n} (Basic)", size["statusToFloor"], "<=", TARGETS["statusToFloor"]))
        checks.append((f"status/floor at {n} (Bearer)", size["statusBearerToFloorBearer"], "<=", TARGETS["statusToFloor"]))
        if n >= 5000:
            checks.append((f"status peak RSS MiB at {n}", size["statusPeakRssMiB"], "<", TARGETS["statusPeakRssMiB"]))
    watch = results.get("watch")
    if watch:
        checks.append(("watch idle CPU %", watch["watchIdleCpuPercent"], "<", TARGETS["watchIdleCpuPercent"]))
        checks.append(("watch change shown s", watch["watchChangeSeconds"] if watch["watchChangeSeconds"] is not None else float("inf"), "<", TARGETS["watchChangeSeconds"]))
    wait = results.get("createWait")
    if wait:
        checks.append(("create --wait after verdict ms", wait["createWaitAfterReadyMs"], "<", TARGETS["createWaitAfterReadyMs"]))
    image = results.get("image")
    if image:
        for key in ("diffContent", "registryFiles", "registryCat"):
            checks.append((f"{key} peak RSS MiB", image[f"{key}PeakRssMiB"], "<", TARGETS["imagePeakRssMiB"]))
            checks.append((f"{key}/crane export", image[f"{key}ToCraneExport"], "<=", TARGETS["imageToCraneExport"]))
    preflight = results.get("preflight")
    if preflight:
        checks.append(("create preflight / without", preflight["preflightRatio"], "<=", 1.3))
    out = {}
    for label, value, op, limit in checks:
        ok = value <= limit if op == "<=" else value < limit
        out[label] = {"value": round(value, 3) if value != float("inf") else None,
                      "target": f"{op} {limit}", "met": ok}
    return out


def main():
    need("curl", "apt-get install curl")
    need("kubectl", "install kubectl (https://kubernetes.io/docs/tasks/tools/)")
    need("tar", "apt-get install tar")
    need("cargo", "install Rust (https://rustup.rs)")
    crane()
    log("building kubectl-mpo (release) and the sandbox tools")
    sh(["cargo", "build", "--quiet", "--release", "--bin", "kubectl-mpo"], cwd=ROOT)
    sh(["cargo", "build", "--quiet", "-p", "mpo-sandbox", "--bin", "mpo-sandbox"], cwd=ROOT)
    env_up = {**os.environ, "SANDBOX_DIR": SANDBOX}
    sh([os.path.join(ROOT, "sandbox/scripts/up.sh")], env=env_up)
    try:
        run()
    finally:
        if not os.environ.get("MPO_BENCH_KEEP"):
            subprocess.run([os.path.join(ROOT, "sandbox/scripts/down.sh")], env=env_up)


def remove_other_overrides(api, keep):
    """The bench sandbox keeps only `bench-NNN` overrides with NNN < `keep` (a kept
    sandbox may hold more from an earlier run), so `status` and the floor look up
    exactly the same N images. Finalizers are dropped first: the controller need not be
    involved in removing them."""
    items = api.request("GET", MPO_PATH)["items"]
    for item in items:
        name = item["metadata"]["name"]
        match = re.fullmatch(r"bench-([0-9]+)", name)
        if match and int(match.group(1)) < keep:
            continue
        api.request("PATCH", f"{MPO_PATH}/{name}", {"metadata": {"finalizers": None}},
                    "application/merge-patch+json")
        api.request("DELETE", f"{MPO_PATH}/{name}")


def run():
    started = time.perf_counter()
    with open(os.path.join(SANDBOX, "state.json")) as f:
        state = json.load(f)
    env = {**os.environ, "KUBECONFIG": state["kubeconfig"], "NO_COLOR": "1"}
    api = Api(state)
    remove_other_overrides(api, COUNTS[0])
    help_run = [timed([BIN, "--help"], env)["wall"] for _ in range(30)]
    version_run = [timed([BIN, "version"], env)["wall"] for _ in range(30)]
    earlier = {}
    if MERGE and os.path.exists(os.path.join(OUT_DIR, "results.json")):
        with open(os.path.join(OUT_DIR, "results.json")) as f:
            earlier = json.load(f)
    results = {
        "startupHelpMs": median(help_run) * 1000,
        "startupVersionMs": median(version_run) * 1000,
        "binaryBytes": os.path.getsize(BIN),
        "rounds": RUNS,
        "concurrency": CONCURRENCY,
        "sizes": [],
    }
    for count in COUNTS:
        log(f"seeding {count} overrides")
        simulator("CONT")
        sandbox_tool("bench-setup", "--count", str(count))
        simulator("STOP")
        names = [f"bench-{i:03}" for i in range(count)]
        if STATUS:
            log(f"timing status and its floor at N = {count}")
            results["sizes"].append(status_figures(state, api, env, count, names))
            save(results)
        if WATCH and (count == WATCH_COUNT or (count == COUNTS[-1] and "watch" not in results)):
            log(f"status --watch on {count} overrides ({IDLE_SECONDS:.0f} s idle)")
            results["watch"] = watch_figures(api, env, count)
            save(results)
            simulator("CONT")
            log("create --wait")
            results["createWait"] = create_wait_figures(api, env, max(3, RUNS))
            simulator("STOP")
            save(results)
        if IMAGE_MIB > 0 and "image" not in results:
            # While the sandbox holds the fewest overrides: the image's own override must
            # not queue behind thousands of others in the controller.
            results["image"] = image_figures(state, env)
            save(results)
            remove_other_overrides(api, count)
    if PREFLIGHT:
        simulator("CONT")
        log("create with the image preflight vs --skip-image-checks")
        results["preflight"] = preflight_figures(env, RUNS)
        save(results)
    for key in ("watch", "createWait", "image", "preflight"):
        if key not in results and key in earlier:
            results[key] = earlier[key]
    measured = {s["overrides"] for s in results["sizes"]}
    results["sizes"] = sorted(results["sizes"] + [s for s in earlier.get("sizes", [])
                                                  if s["overrides"] not in measured],
                              key=lambda s: s["overrides"])
    simulator("CONT")
    results["targets"] = verdicts(results)
    results["benchSeconds"] = time.perf_counter() - started
    save(results)
    report(results)


def save(results):
    os.makedirs(OUT_DIR, exist_ok=True)
    with open(os.path.join(OUT_DIR, "results.json"), "w") as f:
        json.dump(results, f, indent=2)


def report(r):
    print()
    print(f"kubectl-mpo benchmark (medians of {r['rounds']} rounds; ratios are medians of "
          f"per-round ratios; {r['benchSeconds']:.0f} s)")
    print(f"  start-up: --help {r['startupHelpMs']:.1f} ms, version {r['startupVersionMs']:.1f} ms;"
          f" binary {r['binaryBytes'] / 1048576:.1f} MiB")
    print(f"  {'N':>5} {'floor':>8} {'status':>8} {'ratio':>6} {'floor B':>8} {'status B':>9}"
          f" {'ratio B':>8} {'RSS':>8} {'RSS B':>8} {'get':>7} {'st/get':>7} {'crane loop':>11}")
    for s in r["sizes"]:
        print(f"  {s['overrides']:>5} {s['floorSeconds'] * 1000:>6.0f}ms {s['statusSeconds'] * 1000:>6.0f}ms"
              f" {s['statusToFloor']:>6.2f} {s['floorBearerSeconds'] * 1000:>6.0f}ms"
              f" {s['statusBearerSeconds'] * 1000:>7.0f}ms {s['statusBearerToFloorBearer']:>8.2f}"
              f" {s['statusPeakRssMiB']:>5.1f}MiB {s['statusBearerPeakRssMiB']:>5.1f}MiB"
              f" {s['kubectlGetSeconds'] * 1000:>5.0f}ms {s['statusToKubectlGet']:>7.2f}"
              f" {s['craneLoopSeconds']:>10.1f}s")
    if "watch" in r:
        w = r["watch"]
        shown = (f"change shown after {w['watchChangeSeconds'] * 1000:.0f} ms (max {w['watchChangeMaxSeconds'] * 1000:.0f} ms)"
                 if w["watchChangeSeconds"] is not None else f"{w['watchChanges']} of 5 changes shown")
        print(f"  status --watch ({w['watchOverrides']} overrides): idle CPU {w['watchIdleCpuPercent']:.2f}%"
              f" over {w['watchIdleSeconds']:.0f} s; {shown}")
        if "watchEndedAfterSeconds" in w:
            print(f"    the watch ended by itself after {w['watchEndedAfterSeconds']:.0f} s: {w['watchEndedWith']}")
        if "watchFreshChangeSeconds" in w:
            print(f"    on a fresh watch: change shown after {w['watchFreshChangeSeconds'] * 1000:.0f} ms"
                  f" (max {w['watchFreshChangeMaxSeconds'] * 1000:.0f} ms)")
    if "createWait" in r:
        c = r["createWait"]
        print(f"  create --wait: exits {c['createWaitAfterReadyMs']:.0f} ms after the verdict"
              f" (max {c['createWaitAfterReadyMaxMs']:.0f} ms; whole command {c['createWaitTotalSeconds']:.2f} s)")
    if "preflight" in r:
        p = r["preflight"]
        print(f"  create --dry-run=server: {p['preflightMs']:.0f} ms with the image preflight,"
              f" {p['withoutPreflightMs']:.0f} ms with --skip-image-checks:"
              f" {p['preflightRatio']:.2f}x ({p['preflightRatioOfMedians']:.2f}x of medians; target <= 1.3x)")
    if "image" in r:
        i = r["image"]
        print(f"  {i['imageMiB']} MiB image: diff --content {i['diffContentSeconds']:.2f} s vs 2x crane export"
              f" {i['diffCraneExportSeconds']:.2f} s ({i['diffContentToCraneExport']:.2f}x), peak {i['diffContentPeakRssMiB']:.0f} MiB")
        print(f"    registry files {i['registryFilesSeconds']:.2f} s ({i['registryFilesToCraneExport']:.2f}x),"
              f" peak {i['registryFilesPeakRssMiB']:.0f} MiB; registry cat {i['registryCatSeconds']:.2f} s"
              f" ({i['registryCatToCraneExport']:.2f}x), peak {i['registryCatPeakRssMiB']:.0f} MiB;"
              f" crane export {i['craneExportSeconds']:.2f} s")
    print("  targets:")
    for label, v in r["targets"].items():
        print(f"    {'ok  ' if v['met'] else 'MISS'} {label}: {v['value']} (target {v['target']})")
    print(f"  written: {os.path.join(OUT_DIR, 'results.json')}")


def markdown(r):
    """The README's `status` table from a results.json."""
    def ms(seconds):
        return f"{seconds * 1000:.0f} ms"

    def ratio(paired, a, b):
        mark = "" if paired <= TARGETS["statusToFloor"] else " ✗"
        return f"{paired:.2f}{mark} ({a / b:.2f})"

    lines = [
        "| N | floor (curl) | `status` | status / floor | CPU: status / floor"
        " | Bearer floor | Bearer `status` | Bearer status / floor | `status` peak RSS"
        " | `kubectl get -o json` | status / get | crane loop |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in r["sizes"]:
        rss_ok = s["overrides"] < 5000 or s["statusPeakRssMiB"] < TARGETS["statusPeakRssMiB"]
        lines.append(
            f"| {s['overrides']} | {ms(s['floorSeconds'])} | {ms(s['statusSeconds'])}"
            f" | {ratio(s['statusToFloor'], s['statusSeconds'], s['floorSeconds'])}"
            f" | {ms(s['statusCpuSeconds'])} / {ms(s['floorCpuSeconds'])}"
            f" | {ms(s['floorBearerSeconds'])} | {ms(s['statusBearerSeconds'])}"
            f" | {ratio(s['statusBearerToFloorBearer'], s['statusBearerSeconds'], s['floorBearerSeconds'])}"
            f" | {s['statusPeakRssMiB']:.1f} MiB{'' if rss_ok else ' ✗'} | {ms(s['kubectlGetSeconds'])}"
            f" | {s['statusToKubectlGet']:.2f} | {s['craneLoopSeconds']:.0f} s |")
    return "\n".join(lines)


if __name__ == "__main__":
    if sys.argv[1:] == ["--markdown"]:
        with open(os.path.join(OUT_DIR, "results.json")) as f:
            print(markdown(json.load(f)))
    else:
        main()
