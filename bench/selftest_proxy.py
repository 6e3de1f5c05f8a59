#!/usr/bin/env python3
"""Self-test of count_proxy.py's framing: keep-alive, chunked requests and responses,
100-continue, HEAD with Content-Length, Connection: close. Run: python3 bench/selftest_proxy.py
"""

import asyncio
import hashlib
import http.client
import json
import os
import subprocess
import sys
import threading
import time
import urllib.request

BENCH = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, BENCH)
from count_proxy import classify, copy_body, parse_head, read_head  # noqa: E402


class Sink:
    def __init__(self):
        self.h = hashlib.sha256()
        self.n = 0

    def write(self, data):
        self.h.update(data)
        self.n += len(data)

    async def drain(self):
        pass


async def upstream(reader, writer):
    """A tiny HTTP/1.1 server: answers with the body's length and sha256, chunked for GET."""
    while True:
        head = await read_head(reader)
        if not head:
            break
        start, headers = parse_head(head)
        method, target, _ = start.split(" ", 2)
        if headers.get("expect", "").lower() == "100-continue":
            writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            await writer.drain()
        sink = Sink()
        if "chunked" in headers.get("transfer-encoding", ""):
            while True:  # decode, so that the digest is of the payload
                size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
                if size == 0:
                    while await reader.readuntil(b"\r\n") != b"\r\n":
                        pass
                    break
                sink.write((await reader.readexactly(size + 2))[:-2])
        else:
            await copy_body(reader, sink, headers)
        payload = json.dumps({"n": sink.n, "sha": sink.h.hexdigest(), "target": target}).encode()
        close = target.endswith("close")
        extra = b"Connection: close\r\n" if close else b""
        if method == "GET":
            writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n" + extra + b"\r\n")
            big = payload + b" " * 300_000
            for i in range(0, len(big), 70_001):
                part = big[i:i + 70_001]
                writer.write(b"%x\r\n" % len(part) + part + b"\r\n")
            writer.write(b"0\r\nX-Trailer: yes\r\n\r\n")
        elif method == "HEAD":
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 12345\r\n" + extra + b"\r\n")
        else:
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n" % len(payload) + extra
                         + b"\r\n" + payload)
        await writer.drain()
        if close:
            break
    writer.close()


def serve(port_box, ready):
    async def main():
        srv = await asyncio.start_server(upstream, "127.0.0.1", 0)
        port_box.append(srv.sockets[0].getsockname()[1])
        ready.set()
        async with srv:
            await srv.serve_forever()

    asyncio.run(main())


def main():
    port_box, ready = [], threading.Event()
    threading.Thread(target=serve, args=(port_box, ready), daemon=True).start()
    ready.wait(5)
    pf = f"/tmp/count-proxy-selftest-{os.getpid()}"
    proxy = subprocess.Popen([sys.executable, os.path.join(BENCH, "count_proxy.py"), "--upstream",
                              f"127.0.0.1:{port_box[0]}", "--port-file", pf])
    try:
        for _ in range(100):
            if os.path.exists(pf):
                break
            time.sleep(0.05)
        port = int(open(pf).read())
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        body = os.urandom(3_000_000)
        want = hashlib.sha256(body).hexdigest()

        def chunks():
            for i in range(0, len(body), 100_000):
                yield body[i:i + 100_000]

        # One keep-alive connection, several requests.
        c.request("PUT", "/bkt/a/b.bin", body=chunks(), encode_chunked=True,
                  headers={"Transfer-Encoding": "chunked"})
        r = json.loads(c.getresponse().read())
        assert r["n"] == len(body) and r["sha"] == want, r
        c.request("PUT", "/bkt/k?partNumber=1&uploadId=x", body=body,
                  headers={"Expect": "100-continue"})
        r = json.loads(c.getresponse().read())
        assert r["n"] == len(body) and r["sha"] == want, r
        c.request("HEAD", "/bkt/k")
        resp = c.getresponse()
        assert resp.read() == b"" and resp.status == 200
        c.request("GET", "/bkt?list-type=2&prefix=")
        data = c.getresponse().read()
        assert len(data) > 300_000 and json.loads(data.rstrip())["n"] == 0
        c.request("PUT", "/bkt/copy", headers={"x-amz-copy-source": "/bkt/k"})
        c.getresponse().read()
        c.request("POST", "/bkt?delete", body=b"<Delete/>")
        c.getresponse().read()
        c.request("GET", "/bkt/k-close")
        resp = c.getresponse()
        resp.read()
        c.close()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/__proxy__/stats") as f:
            stats = json.load(f)
        want_ops = {"PutObject": 1, "UploadPart": 1, "HeadObject": 1, "ListObjectsV2": 1,
                    "CopyObject": 1, "DeleteObjects": 1, "GetObject": 1}
        assert stats["ops"] == want_ops, stats
        assert stats["connections"] == 1, stats
        assert classify("POST", "/b/k?uploads", {}) == "CreateMultipartUpload"
        assert classify("POST", "/b/k?uploadId=1", {}) == "CompleteMultipartUpload"
        assert classify("GET", "/b?delimiter=%2F&prefix=x%2F", {}) == "ListObjects"
        print("selftest_proxy: 7 passed, 0 failed")
    finally:
        proxy.terminate()
        proxy.wait(5)
        if os.path.exists(pf):
            os.unlink(pf)


if __name__ == "__main__":
    main()
