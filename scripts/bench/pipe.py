#!/usr/bin/env python3
"""Disk to TCP to disk, with no replication engine: what min(disk, link) is when the
source disk, both network stacks and the target disk work at once, on the same host
(scripts/bench.sh, the "pipe" rows: the ceiling a resync can reach here).

    pipe.py recv ADDR PORT DEVICE BYTES   (on b: writes BYTES at offset 0 of DEVICE)
    pipe.py send ADDR PORT DEVICE BYTES   (on a: reads BYTES from offset 0 of DEVICE)
    pipe.py echo ADDR PORT                (on b: answers each 4 KiB with 32 bytes)
    pipe.py rtt ADDR PORT COUNT           (on a: COUNT 4 KiB requests, one at a time)

Both sides pipeline like a resync: a reader thread keeps up to DEPTH 1 MiB disk reads
ahead of the socket on the sender; a writer thread writes behind the socket on the
receiver. Disk I/O is O_DIRECT (no page cache), and the receiver fsyncs before it
answers one byte. The sender prints "seconds=S mbps=M": from its connect to that
answer, so it covers the last write reaching b's disk.

rtt/echo: a 4 KiB request and a 32-byte answer over TCP (TCP_NODELAY), between two
processes that sleep until the data arrives: what a replicated 4 KiB write's round
trip costs here before any disk or engine work, where ping's 64-byte ICMP echo is
answered inside b's kernel without waking anyone. rtt prints "median_ms=M
mean_ms=A min_ms=N".
"""
import mmap
import os
import queue
import socket
import sys
import threading
import time

CHUNK = 1 << 20
DEPTH = 4


def buffers():
    # page-aligned, as O_DIRECT needs
    return [mmap.mmap(-1, CHUNK) for _ in range(DEPTH)]


def accept_one(addr, port):
    """listen on ADDR:PORT, say so on stdout, return the first connection"""
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((addr, port))
    ls.listen(1)
    print("listening", flush=True)
    return ls.accept()[0]


def send(addr, port, dev, nbytes):
    fd = os.open(dev, os.O_RDONLY | os.O_DIRECT)
    free, full = queue.Queue(), queue.Queue()
    for b in buffers():
        free.put(b)

    def reader():
        off = 0
        while off < nbytes:
            b = free.get()
            n = os.preadv(fd, [b], off)
            if n <= 0:
                break
            full.put((b, min(n, nbytes - off)))
            off += n
        full.put(None)

    s = socket.create_connection((addr, port))
    t0 = time.monotonic()
    threading.Thread(target=reader, daemon=True).start()
    while (item := full.get()) is not None:
        b, n = item
        s.sendall(memoryview(b)[:n])
        free.put(b)
    s.shutdown(socket.SHUT_WR)
    ok = s.recv(1)
    t = time.monotonic() - t0
    if ok != b"k":
        sys.exit("pipe: no answer from the receiver")
    print(f"seconds={t:.3f} mbps={nbytes / t / 1e6:.2f}")


def recv(addr, port, dev, nbytes):
    fd = os.open(dev, os.O_WRONLY | os.O_DIRECT)
    free, full = queue.Queue(), queue.Queue()
    for b in buffers():
        free.put(b)
    err = []

    def writer():
        off = 0
        while (item := full.get()) is not None:
            b, n = item
            try:
                os.pwritev(fd, [memoryview(b)[:n]], off)
            except OSError as e:
                err.append(e)
            off += n
            free.put(b)

    s = accept_one(addr, port)
    w = threading.Thread(target=writer)
    w.start()
    got = 0
    while got < nbytes:
        b = free.get()
        mv, n = memoryview(b), 0
        while n < CHUNK and got + n < nbytes:
            r = s.recv_into(mv[n:], CHUNK - n)
            if r == 0:
                break
            n += r
        if n == 0:
            free.put(b)
            break
        full.put((b, n))
        got += n
    full.put(None)
    w.join()
    os.fsync(fd)
    if err or got != nbytes:
        sys.exit(f"pipe: received {got} of {nbytes} bytes; write errors: {err}")
    s.sendall(b"k")
    s.close()


REQ = 4096
ANS = 32


def recv_exact(s, n):
    b = bytearray()
    while len(b) < n:
        r = s.recv(n - len(b))
        if not r:
            return None
        b += r
    return b


def echo(addr, port):
    s = accept_one(addr, port)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    while recv_exact(s, REQ) is not None:
        s.sendall(b"a" * ANS)


def rtt(addr, port, count):
    s = socket.create_connection((addr, port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    req = os.urandom(REQ)
    t = []
    for _ in range(count):
        t0 = time.monotonic()
        s.sendall(req)
        if recv_exact(s, ANS) is None:
            sys.exit("rtt: the echo side closed")
        t.append((time.monotonic() - t0) * 1000)
    s.close()
    t.sort()
    print(f"median_ms={t[len(t) // 2]:.3f} mean_ms={sum(t) / len(t):.3f} min_ms={t[0]:.3f}")


if __name__ == "__main__":
    a = sys.argv[1:]
    if len(a) == 5 and a[0] in ("send", "recv"):
        (send if a[0] == "send" else recv)(a[1], int(a[2]), a[3], int(a[4]))
    elif len(a) == 3 and a[0] == "echo":
        echo(a[1], int(a[2]))
    elif len(a) == 4 and a[0] == "rtt":
        rtt(a[1], int(a[2]), int(a[3]))
    else:
        sys.exit(__doc__)
