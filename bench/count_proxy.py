#!/usr/bin/env python3
"""A counting HTTP/1.1 proxy for S3 on loopback (hoist benchmark, issue 5).

    count_proxy.py --upstream 127.0.0.1:9000 [--listen 127.0.0.1:0] [--port-file F]

Clients talk to the proxy as if it were the S3 endpoint (path-style). Each client
connection gets its own upstream connection (so keep-alive and connection reuse are the
client's, unchanged); requests are framed (Content-Length or chunked, streamed in 256 KiB
pieces, never buffered whole), classified as S3 operations from method, path, query and
x-amz-copy-source, counted, and forwarded byte for byte. Responses are framed too, so their
status codes are counted per operation (1xx interim responses such as 100-continue are
passed through).

Control (not forwarded; send with `Connection: close`):
    GET  /__proxy__/stats   -> JSON {"ops": {op: n}, "errors": {op: {status: n}},
                                     "connections": n, "bytes_up": n, "bytes_down": n}
    POST /__proxy__/reset   -> zero the counters
"""

import argparse
import asyncio
import json
import sys
from collections import Counter, defaultdict
from urllib.parse import parse_qs, urlsplit

PIECE = 256 * 1024
HEAD_LIMIT = 1 << 20


class Stats:
    def __init__(self):
        self.reset()

    def reset(self):
        self.ops = Counter()
        self.errors = defaultdict(Counter)
        self.connections = 0
        self.bytes_up = 0
        self.bytes_down = 0

    def as_dict(self):
        return {
            "ops": dict(self.ops),
            "errors": {op: {str(k): v for k, v in c.items()} for op, c in self.errors.items()},
            "connections": self.connections,
            "bytes_up": self.bytes_up,
            "bytes_down": self.bytes_down,
        }


STATS = Stats()


def classify(method, target, headers):
    """The S3 operation of a path-style request."""
    parts = urlsplit(target)
    path = parts.path
    query = parse_qs(parts.query, keep_blank_values=True)
    segs = path.lstrip("/").split("/", 1)
    bucket = segs[0]
    key = segs[1] if len(segs) > 1 else ""
    copy = "x-amz-copy-source" in headers
    if not bucket:
        return "ListBuckets" if method == "GET" else f"{method} /"
    if not key:
        if method == "GET":
            if query.get("list-type") == ["2"]:
                return "ListObjectsV2"
            for sub, op in (("uploads", "ListMultipartUploads"), ("versions", "ListObjectVersions"),
                            ("location", "GetBucketLocation"), ("policy", "GetBucketPolicy"),
                            ("acl", "GetBucketAcl"), ("versioning", "GetBucketVersioning")):
                if sub in query:
                    return op
            if query and not ({"prefix", "delimiter", "marker", "max-keys", "encoding-type"} & set(query)):
                return "GetBucket?" + ",".join(sorted(query))
            return "ListObjects"
        if method == "HEAD":
            return "HeadBucket"
        if method == "PUT":
            return "CreateBucket" if not query else "PutBucket?" + ",".join(sorted(query))
        if method == "DELETE":
            return "DeleteBucket" if not query else "DeleteBucket?" + ",".join(sorted(query))
        if method == "POST" and "delete" in query:
            return "DeleteObjects"
        return f"{method} bucket?" + ",".join(sorted(query))
    if method == "GET":
        if "uploadId" in query:
            return "ListParts"
        for sub, op in (("tagging", "GetObjectTagging"), ("acl", "GetObjectAcl"),
                        ("attributes", "GetObjectAttributes")):
            if sub in query:
                return op
        return "GetObject"
    if method == "HEAD":
        return "HeadObject"
    if method == "PUT":
        if "uploadId" in query:
            return "UploadPartCopy" if copy else "UploadPart"
        if copy:
            return "CopyObject"
        for sub, op in (("tagging", "PutObjectTagging"), ("acl", "PutObjectAcl")):
            if sub in query:
                return op
        return "PutObject"
    if method == "POST":
        if "uploads" in query:
            return "CreateMultipartUpload"
        if "uploadId" in query:
            return "CompleteMultipartUpload"
        return "POST object"
    if method == "DELETE":
        return "AbortMultipartUpload" if "uploadId" in query else "DeleteObject"
    return f"{method} object"


async def read_head(reader):
    """One message head (start line + headers) as bytes, or b"" at a clean EOF."""
    try:
        return await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as e:
        if e.partial.strip():
            raise
        return b""


def parse_head(head):
    lines = head.decode("latin-1").split("\r\n")
    start = lines[0]
    headers = {}
    for line in lines[1:]:
        if not line:
            continue
        name, _, value = line.partition(":")
        name = name.strip().lower()
        value = value.strip()
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    return start, headers


async def copy_exact(reader, writer, n):
    moved = 0
    while n > 0:
        data = await reader.read(min(n, PIECE))
        if not data:
            raise ConnectionError("unexpected EOF in body")
        writer.write(data)
        await writer.drain()
        n -= len(data)
        moved += len(data)
    return moved


async def copy_chunked(reader, writer):
    moved = 0
    while True:
        line = await reader.readuntil(b"\r\n")
        writer.write(line)
        moved += len(line)
        size = int(line.split(b";", 1)[0].strip() or b"0", 16)
        if size == 0:
            # Trailers, up to and including the empty line.
            while True:
                t = await reader.readuntil(b"\r\n")
                writer.write(t)
                moved += len(t)
                if t == b"\r\n":
                    break
            await writer.drain()
            return moved
        moved += await copy_exact(reader, writer, size + 2)  # data + CRLF


async def copy_to_eof(reader, writer):
    moved = 0
    while True:
        data = await reader.read(PIECE)
        if not data:
            return moved
        writer.write(data)
        await writer.drain()
        moved += len(data)


async def copy_body(reader, writer, headers):
    te = headers.get("transfer-encoding", "").lower()
    if "chunked" in te:
        return await copy_chunked(reader, writer)
    if "content-length" in headers:
        return await copy_exact(reader, writer, int(headers["content-length"]))
    return 0


async def pump_requests(first_head, creader, uwriter, pending):
    head = first_head
    while head:
        start, headers = parse_head(head)
        method, target, _ = start.split(" ", 2)
        op = classify(method, target, headers)
        STATS.ops[op] += 1
        pending.put_nowait((op, method))
        uwriter.write(head)
        STATS.bytes_up += len(head) + await copy_body(creader, uwriter, headers)
        await uwriter.drain()
        head = await read_head(creader)
    if uwriter.can_write_eof():
        uwriter.write_eof()


async def pump_responses(ureader, cwriter, pending):
    while True:
        head = await read_head(ureader)
        if not head:
            return
        start, headers = parse_head(head)
        status = int(start.split(" ", 2)[1])
        cwriter.write(head)
        if 100 <= status < 200:
            await cwriter.drain()
            continue
        op, method = await pending.get()
        if status >= 400:
            STATS.errors[op][status] += 1
        if method == "HEAD" or status in (204, 304):
            n = 0
        elif "chunked" in headers.get("transfer-encoding", "").lower() or "content-length" in headers:
            n = await copy_body(ureader, cwriter, headers)
        else:
            n = await copy_to_eof(ureader, cwriter)
            STATS.bytes_down += len(head) + n
            return
        STATS.bytes_down += len(head) + n
        await cwriter.drain()
        if headers.get("connection", "").lower() == "close":
            return


async def control(head, writer):
    start, _ = parse_head(head)
    method, target, _ = start.split(" ", 2)
    if target.startswith("/__proxy__/reset"):
        STATS.reset()
        body = b"{}"
    else:
        body = json.dumps(STATS.as_dict()).encode()
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
                 b"Content-Length: %d\r\n\r\n" % len(body) + body)
    await writer.drain()


async def handle(creader, cwriter, upstream):
    uwriter = None
    try:
        head = await read_head(creader)
        if not head:
            return
        if head.split(b" ", 2)[1].startswith(b"/__proxy__/"):
            await control(head, cwriter)
            return
        STATS.connections += 1
        ureader, uwriter = await asyncio.open_connection(*upstream, limit=HEAD_LIMIT)
        pending = asyncio.Queue()
        up = asyncio.ensure_future(pump_requests(head, creader, uwriter, pending))
        down = asyncio.ensure_future(pump_responses(ureader, cwriter, pending))
        # The response side decides when the exchange is over (EOF or Connection: close);
        # a client that half-closes still gets its responses.
        done, _ = await asyncio.wait({up, down}, return_when=asyncio.FIRST_COMPLETED)
        if down not in done:
            if up.exception() is None:
                await asyncio.wait({down})  # client half-closed: let the last responses through
            else:
                down.cancel()
        up.cancel()
        await asyncio.gather(up, down, return_exceptions=True)
        for t in (up, down):
            if not t.cancelled() and t.exception():
                if not isinstance(t.exception(), (ConnectionError, asyncio.IncompleteReadError)):
                    print(f"count_proxy: {t.exception()!r}", file=sys.stderr)
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        for w in (cwriter, uwriter):
            if w is not None:
                try:
                    w.close()
                except Exception:
                    pass


async def main_async(args):
    uh, up = args.upstream.rsplit(":", 1)
    upstream = (uh, int(up))
    lh, lp = args.listen.rsplit(":", 1)
    server = await asyncio.start_server(
        lambda r, w: handle(r, w, upstream), lh, int(lp), limit=HEAD_LIMIT, backlog=256
    )
    port = server.sockets[0].getsockname()[1]
    if args.port_file:
        with open(args.port_file + ".tmp", "w") as f:
            f.write(str(port))
        import os
        os.replace(args.port_file + ".tmp", args.port_file)
    print(f"count_proxy: 127.0.0.1:{port} -> {args.upstream}", file=sys.stderr, flush=True)
    async with server:
        await server.serve_forever()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--upstream", required=True, help="HOST:PORT of the S3 server")
    ap.add_argument("--listen", default="127.0.0.1:0")
    ap.add_argument("--port-file", help="write the chosen port here once listening")
    args = ap.parse_args()
    try:
        asyncio.run(main_async(args))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
