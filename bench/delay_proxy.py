#!/usr/bin/env python3
"""A TCP proxy on loopback that adds a fixed network latency (hoist benchmark, issue 15).

    delay_proxy.py --upstream 127.0.0.1:9000 --rtt-ms 20 [--listen 127.0.0.1:0]
                   [--window-kib 1024] [--port-file F]

Every byte is forwarded after half the round-trip time, in each direction, the way a path
with that RTT delivers it, and in order. It works below HTTP, so whatever a client does costs
what it would cost over such a network: a request and its answer one RTT, an `Expect:
100-continue` upload two (the headers, the interim 100, then the body and the answer), a new
connection one more (its TCP handshake; the proxy holds the client's first bytes for one RTT
after accepting it). Connection reuse, pipelining and the number of requests in flight are the
client's own. TLS is not modelled: over the internet it adds one or two RTTs to each new
connection, which favours the tools that keep connections alive.

Each direction of a connection buffers at most `--window-kib` of delayed bytes (1 MiB: a TCP
window), so one connection carries at most window / (RTT / 2) bytes a second, as a real path
with that window would; many connections in parallel are what fills a fat pipe.

The listening port is printed as `listening on 127.0.0.1:PORT` (and written to `--port-file`).
"""

import argparse
import asyncio
import sys

CHUNK = 64 * 1024


async def forward(reader, writer, delay, window):
    """Copies reader to writer, each chunk written `delay` seconds after it was read."""
    loop = asyncio.get_running_loop()
    queue = asyncio.Queue(maxsize=max(1, window // CHUNK))

    async def pump():
        try:
            while True:
                data = await reader.read(CHUNK)
                await queue.put((loop.time() + delay, data))
                if not data:
                    return
        except (ConnectionError, asyncio.CancelledError):
            await queue.put((loop.time() + delay, b""))

    async def drain():
        try:
            while True:
                due, data = await queue.get()
                wait = due - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                if not data:
                    if writer.can_write_eof():
                        writer.write_eof()
                    return
                writer.write(data)
                await writer.drain()
        except ConnectionError:
            pass

    await asyncio.gather(pump(), drain())


async def handle(client_reader, client_writer, upstream, rtt, window):
    host, port = upstream
    try:
        # The handshake of a new connection: one RTT before the client's bytes can leave.
        await asyncio.sleep(rtt)
        server_reader, server_writer = await asyncio.open_connection(host, port)
    except OSError:
        client_writer.close()
        return
    try:
        await asyncio.gather(
            forward(client_reader, server_writer, rtt / 2, window),
            forward(server_reader, client_writer, rtt / 2, window),
        )
    finally:
        for w in (server_writer, client_writer):
            try:
                w.close()
            except Exception:
                pass


async def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--upstream", required=True, help="HOST:PORT of the server")
    ap.add_argument("--listen", default="127.0.0.1:0")
    ap.add_argument("--rtt-ms", type=float, required=True, help="added round-trip time")
    ap.add_argument("--window-kib", type=int, default=1024)
    ap.add_argument("--port-file")
    args = ap.parse_args()
    uh, up = args.upstream.rsplit(":", 1)
    lh, lp = args.listen.rsplit(":", 1)
    rtt = args.rtt_ms / 1000
    window = args.window_kib * 1024
    server = await asyncio.start_server(
        lambda r, w: handle(r, w, (uh, int(up)), rtt, window), lh, int(lp), backlog=1024)
    port = server.sockets[0].getsockname()[1]
    print(f"listening on {lh}:{port}", flush=True)
    if args.port_file:
        with open(args.port_file, "w") as f:
            f.write(str(port))
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
