#!/usr/bin/env python3
"""Scale check for issue #6: plan a deploy of N small files and report time and peak RSS.

For each N (default 10,000, 50,000 and 100,000 files of 32-200 bytes in nested directories):
  1. `hoist deploy --dryrun` against an empty bucket (scan, hash, list, plan);
  2. the real deploy (uploads every file) -- skipped with --plan-only;
  3. `hoist deploy --dryrun` against the populated bucket (a paginated listing of N keys,
     the manifest GET and the plan), and the same deploy for real (it also builds the next
     manifest, finds it unchanged and writes nothing): the no-op case users run every day;
  4. the listing alone, through the same client (`hoist sync` of the bucket into an empty
     directory with every key excluded): page after page, the floor of a listing that cannot
     guess where its pages begin;
  5. the same listing with the tree as the other side: the walk, then every page at once,
     which is how step 3 lists (the floor of a plan that walks before it lists).
It prints a markdown table: wall seconds, client CPU seconds and peak RSS (from
/usr/bin/time), so linear growth and the 200 MB bound can be read off. A script run by
hand, not a test; servers run on 127.0.0.1 only.

    bench/scale.py [--hoist target/release/hoist] [--sizes 10000,50000,100000] [--plan-only]
                   [--baseline OTHER_HOIST] [--rounds 3]

With --baseline, the steady no-op plan is also run with another build (the previous main),
alternating with this one for --rounds rounds over the same bucket, so a change is measured
beside what it replaces in the same run.
"""

import argparse
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENV = os.path.join(ROOT, ".venv", "bin")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_tree(root, n, seed=7):
    rng = random.Random(seed)
    for i in range(n):
        d = os.path.join(root, f"s{i % 100:02d}", f"d{(i // 100) % 50:02d}")
        os.makedirs(d, exist_ok=True)
        ext = (".html", ".css", ".js", ".txt")[i % 4]
        with open(os.path.join(d, f"f{i}{ext}"), "wb") as f:
            f.write(rng.randbytes(rng.randint(32, 200)))


def timed(cmd, env):
    """Runs cmd under /usr/bin/time; returns (wall, cpu, rss_mb, returncode, stderr)."""
    time_bin = "/usr/bin/time" if os.path.exists("/usr/bin/time") else None
    full = ([time_bin, "-f", "TIME %U %S %M"] if time_bin else []) + cmd
    started = time.monotonic()
    proc = subprocess.run(full, env=env, capture_output=True, text=True, timeout=3600)
    wall = time.monotonic() - started
    cpu = rss = float("nan")
    for line in proc.stderr.splitlines():
        if line.startswith("TIME "):
            _, user, sys_, max_kb = line.split()
            cpu = float(user) + float(sys_)
            rss = int(max_kb) / 1024
    return wall, cpu, rss, proc.returncode, proc.stderr


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hoist", default=os.path.join(ROOT, "target", "release", "hoist"))
    parser.add_argument("--sizes", default="10000,50000,100000")
    parser.add_argument("--plan-only", action="store_true", help="skip the uploads")
    parser.add_argument("--baseline", help="another hoist build to run the no-op plan with")
    parser.add_argument("--rounds", type=int, default=1, help="rounds of the steady no-op plan")
    args = parser.parse_args()
    rclone = os.path.join(VENV, "rclone")
    if not os.path.exists(rclone):
        sys.exit("rclone not found: run scripts/install-test-servers first")
    work = tempfile.mkdtemp(prefix="hoist-scale-")
    port = free_port()
    data = os.path.join(work, "data")
    sizes = [int(s) for s in args.sizes.split(",")]
    # rclone caches directory listings: a bucket directory made after its first listing stays
    # invisible, so every bucket exists before the server starts.
    for n in sizes:
        os.makedirs(os.path.join(data, f"scale{n}"))
    server = subprocess.Popen(
        [rclone, "serve", "s3", "--addr", f"127.0.0.1:{port}", "--auth-key", "scalekey,scalesecret", data],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    rows = []
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1)
            except urllib.error.HTTPError:
                break
            except OSError:
                time.sleep(0.1)
        env = dict(os.environ, AWS_ACCESS_KEY_ID="scalekey", AWS_SECRET_ACCESS_KEY="scalesecret",
                   AWS_REGION="us-east-1", AWS_EC2_METADATA_DISABLED="true", CI="1")
        env.pop("AWS_PROFILE", None)
        for n in sizes:
            bucket = f"scale{n}"
            tree = os.path.join(work, f"tree{n}")
            make_tree(tree, n)
            base = [args.hoist, "deploy", "--source", tree, "--target", f"s3://{bucket}/",
                    "--endpoint-url", f"http://127.0.0.1:{port}", "--quiet", "--force",
                    # rclone serve s3 ignores conditional writes, so hoist cannot lock there.
                    "--no-lock"]
            steps = [("plan, empty bucket", base + ["--dryrun"])]
            if not args.plan_only:
                # The floor of a no-op plan: the same listing alone, through the same client
                # (`hoist sync` of the bucket into an empty directory, every key excluded).
                empty = os.path.join(work, "empty")
                os.makedirs(empty, exist_ok=True)
                floor = [args.hoist, "sync", f"s3://{bucket}/", empty, "--endpoint-url",
                         f"http://127.0.0.1:{port}", "--dryrun", "--exclude", "*", "--quiet"]
                # The same listing with its pages asked for at once, as a deploy asks for
                # them: the sync walks the tree (every key excluded afterwards) and its names
                # say where each page begins.
                at_once = [args.hoist, "sync", f"s3://{bucket}/", tree, "--endpoint-url",
                           f"http://127.0.0.1:{port}", "--dryrun", "--exclude", "*", "--quiet"]
                # The first plan after the upload meets rclone's cold directory caches; the
                # second is the steady state a daily deploy sees, measured beside the floor.
                steps += [("deploy (upload all)", base),
                          ("plan, populated (no-op), first", base + ["--dryrun"])]
                for _ in range(args.rounds):
                    steps.append(("plan, populated (no-op)", base + ["--dryrun"]))
                    if args.baseline:
                        steps.append(("plan, populated (no-op), baseline",
                                      [args.baseline] + base[1:] + ["--dryrun"]))
                    # The same deploy for real, as CI runs it: it finds nothing to write, but
                    # builds the next manifest to compare with the stored one.
                    steps.append(("deploy, populated (no-op)", base))
                    if args.baseline:
                        steps.append(("deploy, populated (no-op), baseline",
                                      [args.baseline] + base[1:]))
                steps += [("listing alone (the floor)", floor),
                          ("walk + listing at once", at_once)]
            for name, cmd in steps:
                wall, cpu, rss, code, err = timed(cmd, env)
                messages = [l for l in err.strip().splitlines() if not l.startswith("TIME ")]
                status = "ok" if code == 0 else f"exit {code}: {messages[-1:]}"
                rows.append((n, name, wall, cpu, rss, status))
                print(f"{n:>7} {name:<34} {wall:7.2f}s cpu {cpu:6.2f}s rss {rss:6.1f} MB {status}", flush=True)
            shutil.rmtree(tree)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=10)
        shutil.rmtree(work, ignore_errors=True)
    print("\n| files | step | wall s | client CPU s | peak RSS MB | status |")
    print("|---:|---|---:|---:|---:|---|")
    for n, name, wall, cpu, rss, status in rows:
        print(f"| {n:,} | {name} | {wall:.2f} | {cpu:.2f} | {rss:.1f} | {status} |")


if __name__ == "__main__":
    main()
