#!/usr/bin/env python3
"""The latency scenario (issue 15): each tool over a path with added round-trip time.

    bench/run-latency [--rtt-ms 20] [--files 2000] [--rounds 3] [--tools a,b]
                      [--concurrency 64] [--hoist PATH] [--only upload,noop,...]

Loopback answers in well under a millisecond, so `bench/run` measures CPU; deploys from CI
cross 10-50 ms, where the number of requests in flight decides the time. Here every client
talks to `rclone serve s3` through a delay proxy, which holds each byte for half the RTT in
each direction (and a new connection's first bytes for one RTT, its handshake): by default
`bench/delay-proxy` (Rust, one thread, built into bench/.cache on first use), or with `--proxy
python` `bench/delay_proxy.py` (the same model; it relays every byte in Python, which takes a
share of the two cores the tools and the server need, as no real network does). Each
tool runs twice per scenario: at its own defaults (what users get) and at an equal
concurrency (`--concurrency`, what the engine can do).

Scenarios, each in fresh buckets: `upload` (a tree into an empty bucket), `noop` (again),
`changed` (1% of the files replaced), `download` (a seeded bucket into an empty directory),
`copy` (that bucket into an empty one, server-side). The fixture is `bench/gen_fixtures.py`'s
`medium` (2,000 files) unless `--files 500` picks `small`.

Output: a markdown table on stdout and in bench/out/latency-<date>.md: the median wall time of
the rounds per tool, setting and scenario, hoist's ratio to the best peer at the same setting,
and each run's client CPU.
"""

import argparse
import datetime
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

BENCH = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, BENCH)
import bench  # noqa: E402
import gen_fixtures  # noqa: E402

SCENARIOS = ["upload", "noop", "changed", "download", "copy"]
TOOLS = ["hoist", "aws", "s5cmd", "rclone", "s3sync"]
# What each tool does when given no concurrency setting, for the table's legend.
DEFAULTS = {
    "hoist": "hoist's default",
    "aws": "max_concurrent_requests 10",
    "s5cmd": "--numworkers 256",
    "rclone": "--transfers 4 --checkers 8",
    "s3sync": "--worker-size 16",
}
class Clients:
    """argv and environment of each tool, at its defaults (`conc=None`) or at `conc`."""

    def __init__(self, hoist, s3sync, tmp):
        self.hoist = hoist
        self.s3sync = s3sync
        self.s5cmd = bench.Tools._s5cmd_binary()
        self.aws = os.path.join(bench.VENV_BIN, "aws")
        self.rclone = os.path.join(bench.VENV_BIN, "rclone")
        self.tmp = tmp
        creds = os.path.join(tmp, "aws-credentials")
        with open(creds, "w") as f:
            f.write(f"[default]\naws_access_key_id = {bench.KEY}\n"
                    f"aws_secret_access_key = {bench.SECRET}\n")
        rcfg = os.path.join(tmp, "rclone.conf")
        open(rcfg, "w").close()
        self.base_env = bench.clean_env()
        self.env = self.base_env  # for bench.Tools.versions
        self.base_env.update(
            AWS_ACCESS_KEY_ID=bench.KEY, AWS_SECRET_ACCESS_KEY=bench.SECRET,
            AWS_REGION=bench.REGION, AWS_DEFAULT_REGION=bench.REGION,
            AWS_SHARED_CREDENTIALS_FILE=creds, AWS_EC2_METADATA_DISABLED="true",
            RCLONE_CONFIG=rcfg, RCLONE_CONFIG_BENCH_TYPE="s3",
            RCLONE_CONFIG_BENCH_PROVIDER="Other", RCLONE_CONFIG_BENCH_ACCESS_KEY_ID=bench.KEY,
            RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY=bench.SECRET,
            RCLONE_CONFIG_BENCH_REGION=bench.REGION, RCLONE_CONFIG_BENCH_FORCE_PATH_STYLE="true",
        )

    def available(self, tool):
        return {"hoist": self.hoist, "aws": self.aws, "s5cmd": self.s5cmd,
                "rclone": self.rclone, "s3sync": self.s3sync}[tool] is not None

    def env_for(self, tool, conc):
        env = dict(self.base_env)
        cfg = os.path.join(self.tmp, f"aws-config-{conc or 'default'}")
        with open(cfg, "w") as f:
            f.write(f"[default]\nregion = {bench.REGION}\n")
            if conc and tool == "aws":
                f.write(f"s3 =\n  max_concurrent_requests = {conc}\n")
        env["AWS_CONFIG_FILE"] = cfg
        return env

    def argv(self, tool, src, dst, endpoint, conc):
        """`sync SRC DST`; SRC/DST are a local dir or ('s3', bucket)."""
        def url(x):
            return f"s3://{x[1]}/" if isinstance(x, tuple) else x

        if tool == "hoist":
            argv = [self.hoist, "sync", url(src), url(dst), "--endpoint-url", endpoint,
                    "--no-progress"]
            return argv + (["--concurrency", str(conc)] if conc else [])
        if tool == "aws":
            return [self.aws, "s3", "sync", url(src), url(dst), "--endpoint-url", endpoint,
                    "--only-show-errors"]
        if tool == "s5cmd":
            s = (url(src) + "*") if isinstance(src, tuple) else src.rstrip("/") + "/*"
            d = url(dst) if isinstance(dst, tuple) else dst.rstrip("/") + "/"
            workers = ["--numworkers", str(conc)] if conc else []
            return [self.s5cmd, "--endpoint-url", endpoint, *workers, "--log", "error",
                    "sync", s, d]
        if tool == "rclone":
            def rc(x):
                return f"bench:{x[1]}" if isinstance(x, tuple) else x
            argv = [self.rclone, "sync", rc(src), rc(dst), "--s3-endpoint", endpoint]
            return argv + (["--transfers", str(conc), "--checkers", str(conc)] if conc else [])
        if tool == "s3sync":
            argv = [self.s3sync]
            for side, x in (("source", src), ("target", dst)):
                if isinstance(x, tuple):
                    argv += [f"--{side}-endpoint-url", endpoint, f"--{side}-force-path-style",
                             f"--{side}-region", bench.REGION]
            if conc:
                argv += ["--worker-size", str(conc)]
            return argv + [url(src), url(dst)]
        raise ValueError(tool)


def run(argv, env, timeout):
    """Wall time, client CPU and exit code of one run (GNU time when present)."""
    timefile = tempfile.mktemp(prefix="hoist-latency-time-")
    use_time = os.access(bench.GNU_TIME, os.X_OK)
    full = ([bench.GNU_TIME, "-f", "%U %S %M", "-o", timefile] + argv) if use_time else argv
    t0 = time.perf_counter()
    p = subprocess.run(full, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                       stdin=subprocess.DEVNULL, timeout=timeout, preexec_fn=bench.set_pdeathsig)
    wall = time.perf_counter() - t0
    cpu = None
    if use_time:
        try:
            with open(timefile) as f:
                u, s, _ = f.read().strip().splitlines()[-1].split()
            cpu = float(u) + float(s)
        except (OSError, ValueError):
            pass
        finally:
            if os.path.exists(timefile):
                os.unlink(timefile)
    return {"wall": wall, "cpu": cpu, "rc": p.returncode,
            "stderr": p.stderr.decode("utf-8", "replace")[-2000:]}


PROXY_NAMES = {"rust": "`bench/delay-proxy` (Rust)", "python": "`bench/delay_proxy.py`"}


def proxy_argv(kind):
    """The delay proxy's command: the Rust one is built (release) into bench/.cache first."""
    if kind == "python":
        return [sys.executable, os.path.join(BENCH, "delay_proxy.py")]
    target = os.path.join(BENCH, ".cache", "delay-proxy-target")
    subprocess.run(["cargo", "build", "--release", "--quiet", "--manifest-path",
                    os.path.join(BENCH, "delay-proxy", "Cargo.toml"), "--target-dir", target],
                   check=True)
    return [os.path.join(target, "release", "hoist-bench-delay-proxy")]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rtt-ms", type=float, default=20)
    ap.add_argument("--files", type=int, choices=[500, 2000], default=2000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--tools", default=",".join(TOOLS))
    ap.add_argument("--only", default=",".join(SCENARIOS))
    ap.add_argument("--concurrency", type=int, default=64,
                    help="the equal-concurrency setting (default 64)")
    ap.add_argument("--no-defaults", action="store_true", help="skip the runs at each tool's defaults")
    ap.add_argument("--hoist", default=os.path.join(bench.REPO, "target", "release", "hoist"))
    ap.add_argument("--no-install", action="store_true", help="do not cargo install s3sync")
    ap.add_argument("--timeout", type=float, default=900)
    ap.add_argument("--proxy", choices=["rust", "python"], default="rust",
                    help="the delay proxy: bench/delay-proxy (Rust, cheap on CPU; default) or "
                         "bench/delay_proxy.py (the same model, dearer: it takes a share of the "
                         "cores the tools and the server need)")
    args = ap.parse_args()
    tools = [t for t in args.tools.split(",") if t]
    wanted = [s for s in args.only.split(",") if s]

    mode = "medium" if args.files == 2000 else "small"
    fx = gen_fixtures.generate(mode, 5, os.path.join(BENCH, "fixtures"))
    storage = bench.pick_storage(False)
    work = tempfile.mkdtemp(prefix="hoist-latency-", dir=storage or None)
    tmp = tempfile.mkdtemp(prefix="hoist-latency-cfg-")
    logdir = tempfile.mkdtemp(prefix="hoist-latency-logs-")
    fxdir = os.path.join(work, "fixture")
    subprocess.run(["cp", "-a", os.path.join(BENCH, "fixtures", mode), fxdir], check=True)
    s3sync = bench.s3sync_binary(not args.no_install) if "s3sync" in tools else None
    clients = Clients(args.hoist if os.access(args.hoist, os.X_OK) else None, s3sync, tmp)
    tools = [t for t in tools if clients.available(t)]

    data = os.path.join(work, "rclone-data")
    os.makedirs(data)
    server = bench.Service("rclone", [clients.rclone, "serve", "s3", "--addr", "127.0.0.1:{PORT}",
                                      "--auth-key", f"{bench.KEY},{bench.SECRET}", data],
                           bench.clean_env(), logdir)
    proxy = bench.Service("delay", [*proxy_argv(args.proxy),
                                    "--upstream", server.endpoint.replace("http://", ""),
                                    "--listen", "127.0.0.1:{PORT}", "--rtt-ms", str(args.rtt_ms)],
                          bench.clean_env(), logdir)
    store = bench.Store(server, data)
    site = os.path.join(fxdir, "site")
    site_listing = fx["site"]
    changed_listing = dict(site_listing)
    changed_listing.update(fx["changed"])
    seeded = "seeded"
    store.create(seeded)
    r = run(clients.argv("rclone", site, ("s3", seeded), server.endpoint, 16),
            clients.env_for("rclone", 16), args.timeout)
    if r["rc"] != 0 or bench.compare_listing(store.listing(seeded), site_listing):
        sys.exit(f"seeding failed: {r['stderr']}")

    settings = ([None] if not args.no_defaults else []) + [args.concurrency]
    results = {}  # (tool, setting, scenario) -> [run]
    seq = [0]

    def bucket(prefix):
        seq[0] += 1
        name = f"{prefix}-{seq[0]}"
        store.create(name)
        return name

    def timed(tool, conc, scen, src, dst, check):
        r = run(clients.argv(tool, src, dst, proxy.endpoint, conc), clients.env_for(tool, conc),
                args.timeout)
        bad = check() if r["rc"] == 0 else f"exit {r['rc']}: {r['stderr'][-300:]}"
        r["ok"] = not bad
        results.setdefault((tool, conc, scen), []).append(r)
        bench.log(f"  {tool:<7} {('default' if conc is None else conc)!s:<8} {scen:<9} "
                  f"{r['wall']:7.2f} s  cpu {r['cpu'] or 0:5.2f}  {'ok' if r['ok'] else 'FAIL ' + bad}")
        return r

    for rnd in range(args.rounds):
        order = tools[rnd % len(tools):] + tools[:rnd % len(tools)]
        bench.log(f"round {rnd + 1}/{args.rounds} ({args.rtt_ms:g} ms RTT): {', '.join(order)}")
        for conc in settings:
            for tool in order:
                src = os.path.join(work, f"src-{tool}")
                shutil.rmtree(src, ignore_errors=True)
                subprocess.run(["cp", "-al", site, src], check=True)
                b = bucket(f"up-{tool}")
                try:
                    if {"upload", "noop", "changed"} & set(wanted):
                        r = timed(tool, conc, "upload", src, ("s3", b),
                                  lambda: bench.compare_listing(store.listing(b), site_listing))
                        if r["ok"] and "noop" in wanted:
                            timed(tool, conc, "noop", src, ("s3", b),
                                  lambda: bench.compare_listing(store.listing(b), site_listing))
                        if r["ok"] and "changed" in wanted:
                            for rel in fx["changed"]:
                                path = os.path.join(src, rel)
                                os.unlink(path)
                                shutil.copyfile(os.path.join(fxdir, "changed", rel), path)
                            timed(tool, conc, "changed", src, ("s3", b),
                                  lambda: bench.compare_listing(store.listing(b), changed_listing))
                finally:
                    store.delete(b)
                    shutil.rmtree(src, ignore_errors=True)
                if "download" in wanted:
                    dst = os.path.join(work, f"dl-{tool}")
                    shutil.rmtree(dst, ignore_errors=True)
                    os.makedirs(dst)
                    timed(tool, conc, "download", ("s3", seeded), dst,
                          lambda: bench.compare_listing(bench.local_listing(dst), site_listing))
                    shutil.rmtree(dst, ignore_errors=True)
                if "copy" in wanted:
                    c = bucket(f"cp-{tool}")
                    try:
                        timed(tool, conc, "copy", ("s3", seeded), ("s3", c),
                              lambda: bench.compare_listing(store.listing(c), site_listing))
                    finally:
                        store.delete(c)
    args.proxy_cpu = proxy.cpu()
    args.server_cpu = server.cpu()
    proxy.stop()
    server.stop()
    shutil.rmtree(work, ignore_errors=True)
    report(args, fx, tools, settings, wanted, results, clients)


def round_ratios(results, conc, scen, peer):
    """hoist's wall time over `peer`'s, round by round (runs are recorded in round order);
    None unless every run of both succeeded and there are at least two rounds."""
    ours = results.get(("hoist", conc, scen), [])
    theirs = results.get((peer, conc, scen), [])
    if len(ours) < 2 or len(ours) != len(theirs) or not all(r["ok"] for r in ours + theirs):
        return None
    return [a["wall"] / b["wall"] for a, b in zip(ours, theirs)]


def report(args, fx, tools, settings, wanted, results, clients):
    def median(tool, conc, scen):
        runs = [r for r in results.get((tool, conc, scen), []) if r["ok"]]
        if not runs or len(runs) < len(results.get((tool, conc, scen), [])):
            return None, None
        return statistics.median(r["wall"] for r in runs), statistics.median(
            r["cpu"] or 0 for r in runs)

    site_mb = sum(fx["site"].values()) / 1e6
    lines = [
        f"# hoist latency benchmark, {datetime.date.today()}",
        "",
        f"{len(fx['site'])} files ({site_mb:.0f} MB), rclone serve s3 on loopback behind "
        f"{PROXY_NAMES[args.proxy]} adding {args.rtt_ms:g} ms of round trip (half each way; one "
        f"more RTT per new connection), {args.rounds} rounds, median wall seconds "
        f"(client CPU seconds). Machine: {os.cpu_count()} cores, load "
        f"{os.getloadavg()[0]:.2f} at the end. Ratio: hoist over the best peer at the same "
        "setting; in brackets, the range of each round's ratio (hoist's run over that peer's "
        "run of the same round), which this VM's drift between rounds does not move.",
        "",
        f"CPU seconds over the whole run: the delay proxy {args.proxy_cpu or 0:.1f}, the server "
        f"{args.server_cpu or 0:.1f}.",
        "",
    ]
    for conc in settings:
        title = "each tool at its defaults" if conc is None else f"every tool at concurrency {conc}"
        lines += [f"## {title}", "",
                  "| tool | setting | " + " | ".join(wanted) + " |",
                  "|---|---|" + "---|" * len(wanted)]
        best = {}  # scenario -> (the best peer's median, that peer)
        for scen in wanted:
            peers = [(median(t, conc, scen)[0], t) for t in tools if t != "hoist"]
            peers = [p for p in peers if p[0] is not None]
            best[scen] = min(peers) if peers else None
        for tool in tools:
            cells = []
            for scen in wanted:
                wall, cpu = median(tool, conc, scen)
                if wall is None:
                    cells.append("FAIL" if results.get((tool, conc, scen)) else "-")
                    continue
                cell = f"{wall:.2f} ({cpu:.2f})"
                if tool == "hoist" and best[scen]:
                    peer_wall, peer = best[scen]
                    cell += f" **{wall / peer_wall:.2f}x**"
                    ratios = round_ratios(results, conc, scen, peer)
                    if ratios:
                        cell += f" ({min(ratios):.2f}-{max(ratios):.2f}x)"
                cells.append(cell)
            setting = DEFAULTS[tool] if conc is None else str(conc)
            lines.append(f"| {tool} | {setting} | " + " | ".join(cells) + " |")
        lines.append("")
    versions = {t: v for t, v in bench.Tools.versions(clients).items() if t in tools}
    if clients.s3sync:
        versions["s3sync"] = f"s3sync {bench.S3SYNC_VERSION} ({clients.s3sync})"
    lines += ["Versions: " + "; ".join(f"{t}: {v}" for t, v in versions.items() if v), ""]
    text = "\n".join(lines)
    print(text)
    out = os.path.join(BENCH, "out")
    os.makedirs(out, exist_ok=True)
    path = os.path.join(out, f"latency-{datetime.datetime.now():%Y-%m-%d-%H%M%S}.md")
    with open(path, "w") as f:
        f.write(text + "\n")
    bench.log(f"report: {path}")


if __name__ == "__main__":
    main()
