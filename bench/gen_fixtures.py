#!/usr/bin/env python3
"""Deterministic fixtures for the hoist benchmark (issue 5).

    bench/gen_fixtures.py [--small] [--out bench/fixtures] [--seed 5] [--force]

Writes OUT/<mode>/ (mode = full or small):

    site/      the static site: nested HTML, content-hashed JS/CSS and fonts under assets/,
               images of incompressible bytes (full: 5,000 files, ~230 MB; small: 500, ~23 MB)
    changed/   the "1% changed" mutation: new contents for 1% of site/'s paths (HTML and
               images, never assets/, whose names are content hashes); half keep their size,
               half change it. The benchmark copies these over a hard-linked copy of site/.
    big/       3 files of incompressible bytes (full: 64 MiB each; small: 16 MiB)
    manifest.json  every file's relative path and size, per tree, plus a content digest

Every file (and directory) gets the same fixed mtime, 2025-01-01T00:00:00Z, so that a sync
by size and mtime sees nothing to do once a tool has uploaded the tree. The same seed always
gives byte-identical trees (Python's `random` is stable across versions for these calls);
the digest in manifest.json lets two machines compare. A tree whose manifest matches the
requested parameters is reused; --force regenerates.
"""

import argparse
import hashlib
import json
import math
import os
import random
import shutil
import sys
import time

GENERATOR_VERSION = 1
FIXED_MTIME = 1735689600  # 2025-01-01T00:00:00Z
MODES = {
    # files in the site, number of big files, size of each big file
    "full": {"files": 5000, "big_count": 3, "big_size": 64 * 1024 * 1024},
    "small": {"files": 500, "big_count": 3, "big_size": 16 * 1024 * 1024},
    # bench/latency.py: 2,000 files, the size of the site in issue 15's latency table.
    "medium": {"files": 2000, "big_count": 1, "big_size": 16 * 1024 * 1024},
}
CHANGED_FRACTION = 0.01

WORDS = (
    "lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor incididunt "
    "ut labore et dolore magna aliqua enim ad minim veniam quis nostrud exercitation ullamco "
    "laboris nisi aliquip ex ea commodo consequat duis aute irure in reprehenderit voluptate "
    "velit esse cillum fugiat nulla pariatur excepteur sint occaecat cupidatat non proident "
    "sunt culpa qui officia deserunt mollit anim id est laborum deploy bucket object static "
    "site cache header content type release build asset bundle image font page guide api"
).split()
SECTIONS = ["blog", "docs", "guides", "products", "news", "help", "api", "learn"]
JS_NAMES = ["app", "vendor", "runtime", "chunk", "polyfills", "search", "analytics", "router"]
CSS_NAMES = ["main", "theme", "print", "docs", "blog", "vendor"]
IMG_EXT = ["jpg", "png", "webp", "avif", "gif"]


def log_uniform(rng, lo, hi):
    return int(math.exp(rng.uniform(math.log(lo), math.log(hi))))


class TextPool:
    """A few MB of seeded pseudo-prose; pages are windows into it (fast and compressible)."""

    def __init__(self, rng, size=4 << 20):
        words = rng.choices(WORDS, k=size // 6)
        self.text = " ".join(words).encode()
        self.rng = rng

    def take(self, n):
        n = max(0, n)
        out = bytearray()
        while len(out) < n:
            start = self.rng.randrange(0, len(self.text) - 1)
            out += self.text[start : start + min(n - len(out), 65536)]
        return bytes(out[:n])


def html_page(rng, pool, title, size):
    head = (
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{title}</title><link rel=\"stylesheet\" href=\"/assets/css/main.css\">"
        "</head>\n<body><main>\n"
    ).encode()
    tail = b"\n</main><script src=\"/assets/js/app.js\"></script></body></html>\n"
    body = bytearray()
    need = size - len(head) - len(tail)
    while len(body) < need:
        para = pool.take(rng.randint(200, 1200))
        body += b"<p>" + para + b"</p>\n"
    return head + bytes(body[: max(0, need)]) + tail


def code_text(rng, pool, kind, size):
    if kind == "js":
        prefix = b"\"use strict\";(function(){var s=\""
        suffix = b"\";window.__b=s.length;})();\n"
    else:
        prefix = b":root{--c:#123456}body{font-family:sans-serif}/*"
        suffix = b"*/\n"
    return prefix + pool.take(size - len(prefix) - len(suffix)) + suffix


def plan_site(rng, n_files):
    """Return [(relpath, kind, size)] for the site, deterministic for rng's seed."""
    scale = n_files / 5000
    entries = []
    used = set()

    def add(path, kind, size):
        assert path not in used, path
        used.add(path)
        entries.append((path, kind, size))

    # Root files.
    add("index.html", "html", 24_000)
    add("404.html", "html", 6_000)
    add("robots.txt", "text", 120)
    add("sitemap.xml", "text", 180_000 if scale >= 1 else 18_000)
    add("favicon.ico", "bin", 15_086)
    add("site.webmanifest", "text", 400)
    n_fonts = max(2, round(50 * scale))
    n_code = max(6, round(600 * scale))
    n_html = round(3000 * scale)
    n_img = n_files - len(entries) - n_fonts - n_code - n_html
    # Fonts.
    for i in range(n_fonts):
        add(f"assets/fonts/font{i:02d}-{rng.getrandbits(32):08x}.woff2", "bin",
            rng.randint(20_000, 80_000))
    # Content-hashed JS/CSS: names are filled in from the content once generated.
    for i in range(n_code):
        kind = "js" if i % 3 else "css"
        base = rng.choice(JS_NAMES if kind == "js" else CSS_NAMES)
        add(f"assets/{kind}/{base}-{i:04d}-HASH.{kind}", kind, log_uniform(rng, 800, 160_000))
    # HTML pages, nested.
    for i in range(n_html):
        sec = SECTIONS[i % len(SECTIONS)]
        if sec in ("blog", "news"):
            path = (f"{sec}/{2016 + rng.randrange(9)}/{1 + rng.randrange(12):02d}/"
                    f"{rng.choice(WORDS)}-{rng.choice(WORDS)}-{i}/index.html")
        else:
            depth = rng.randint(1, 3)
            parts = [f"{rng.choice(WORDS)}{rng.randrange(6)}" for _ in range(depth)]
            path = f"{sec}/{'/'.join(parts)}/{rng.choice(WORDS)}-{i}.html"
        add(path, "html", log_uniform(rng, 5_000, 72_000))
    # Images: incompressible bytes, 2 KB to 200 KB.
    for i in range(n_img):
        sec = rng.choice(SECTIONS)
        ext = rng.choice(IMG_EXT)
        add(f"images/{sec}/{i // 100:02d}/img-{i:05d}.{ext}", "bin", rng.randint(2_048, 200_000))
    assert len(entries) == n_files, (len(entries), n_files)
    return entries


def content_for(rng, pool, kind, path, size):
    if kind == "html":
        return html_page(rng, pool, path, size)
    if kind in ("js", "css"):
        return code_text(rng, pool, kind, size)
    if kind == "text":
        return pool.take(size)
    return rng.randbytes(size)


def write_file(root, rel, data):
    path = os.path.join(root, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def set_mtimes(root):
    for dirpath, dirnames, filenames in os.walk(root, topdown=False):
        for name in filenames:
            os.utime(os.path.join(dirpath, name), (FIXED_MTIME, FIXED_MTIME))
        os.utime(dirpath, (FIXED_MTIME, FIXED_MTIME))


def tree_listing(root):
    out = {}
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            full = os.path.join(dirpath, name)
            out[os.path.relpath(full, root).replace(os.sep, "/")] = os.path.getsize(full)
    return dict(sorted(out.items()))


def tree_digest(root, listing):
    h = hashlib.sha256()
    for rel, size in listing.items():
        with open(os.path.join(root, rel), "rb") as f:
            h.update(f"{rel}\0{size}\0".encode())
            h.update(hashlib.sha256(f.read()).digest())
    return h.hexdigest()


def params_for(mode, seed):
    p = dict(MODES[mode])
    with open(os.path.abspath(__file__), "rb") as f:
        source = hashlib.sha256(f.read()).hexdigest()[:16]
    p.update(mode=mode, seed=seed, version=GENERATOR_VERSION, generator=source,
             changed_fraction=CHANGED_FRACTION)
    return p


def load_manifest(out_dir):
    try:
        with open(os.path.join(out_dir, "manifest.json")) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def generate(mode, seed, out_root, force=False, quiet=False):
    """Generate (or reuse) OUT/<mode>/ and return its manifest dict."""
    out_dir = os.path.join(out_root, mode)
    params = params_for(mode, seed)
    existing = load_manifest(out_dir)
    if existing and existing.get("params") == params and not force:
        # Cheap check that nothing was edited: every file present with its size.
        ok = all(
            os.path.isfile(os.path.join(out_dir, tree, rel))
            and os.path.getsize(os.path.join(out_dir, tree, rel)) == size
            for tree in ("site", "changed", "big")
            for rel, size in existing[tree].items()
        )
        if ok:
            return existing
    t0 = time.monotonic()
    if os.path.exists(out_dir):
        shutil.rmtree(out_dir)
    os.makedirs(out_dir)
    rng = random.Random(f"hoist-bench-{seed}-{mode}")
    pool = TextPool(random.Random(f"hoist-bench-text-{seed}"))
    site = os.path.join(out_dir, "site")
    entries = plan_site(rng, params["files"])
    final = []
    for rel, kind, size in entries:
        data = content_for(rng, pool, kind, rel, size)
        if "HASH" in rel:
            rel = rel.replace("HASH", hashlib.sha256(data).hexdigest()[:10])
        write_file(site, rel, data)
        final.append((rel, kind, len(data)))
    # The 1% mutation: HTML pages and images (not content-hashed assets, not root files).
    candidates = [e for e in final if e[0].startswith(("images/",) + tuple(s + "/" for s in SECTIONS))]
    n_changed = max(1, round(params["files"] * CHANGED_FRACTION))
    picked = sorted(rng.sample(candidates, n_changed))
    changed = os.path.join(out_dir, "changed")
    for i, (rel, kind, size) in enumerate(picked):
        new_size = size if i % 2 == 0 else max(512, size + rng.randint(-size // 10, size // 10) + 1)
        data = content_for(rng, pool, kind, rel, new_size)
        if kind == "html":
            data = data.replace(b"<main>", b"<main><!-- rev 2 -->", 1)[: len(data)]
            if len(data) < new_size:
                data += b" " * (new_size - len(data))
        write_file(changed, rel, data)
    # Big files.
    big = os.path.join(out_dir, "big")
    for i in range(params["big_count"]):
        path = os.path.join(big, f"big-{i + 1}.bin")
        os.makedirs(big, exist_ok=True)
        with open(path, "wb") as f:
            left = params["big_size"]
            while left:
                n = min(left, 8 << 20)
                f.write(rng.randbytes(n))
                left -= n
    for tree in (site, changed, big):
        set_mtimes(tree)
    manifest = {"params": params, "fixed_mtime": FIXED_MTIME}
    for name, root in (("site", site), ("changed", changed), ("big", big)):
        manifest[name] = tree_listing(root)
    manifest["digest"] = {
        name: tree_digest(os.path.join(out_dir, name), manifest[name])
        for name in ("site", "changed", "big")
    }
    manifest["bytes"] = {name: sum(manifest[name].values()) for name in ("site", "changed", "big")}
    with open(os.path.join(out_dir, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
    if not quiet:
        b = manifest["bytes"]
        print(
            f"fixtures {mode}: site {len(manifest['site'])} files {b['site'] / 1e6:.1f} MB, "
            f"changed {len(manifest['changed'])} files, big {len(manifest['big'])} x "
            f"{params['big_size'] >> 20} MiB, in {time.monotonic() - t0:.1f} s; "
            f"digest {manifest['digest']['site'][:16]}",
            file=sys.stderr,
        )
    return manifest


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--small", action="store_true", help="500 files and 3 x 16 MiB")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures"))
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--force", action="store_true", help="regenerate even if up to date")
    args = ap.parse_args()
    m = generate("small" if args.small else "full", args.seed, args.out, force=args.force)
    print(json.dumps({"bytes": m["bytes"], "files": len(m["site"]), "digest": m["digest"]}, indent=1))


if __name__ == "__main__":
    main()
