#!/usr/bin/env python3
"""Sends hostile input to an rcopy listening port and reports how the peer reacted.

  garbage.py HOST PORT CASE
  CASE: random | oversized | badcrc | write-before-auth | hello-flood
Prints "closed" when the peer closed the connection (what it must do), or
"open" if it is still waiting for more after 3 s. Exit 0 either way.
"""
import os
import socket
import struct
import sys

MAGIC = 0x59504352


def crc32c(data, crc=0xFFFFFFFF):
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 & -(crc & 1))
    return crc


def header(kind, flags=0, length=0, nr=0, seq=0, a=0, b=0, payload=b"", crc=None):
    raw = struct.pack("<IBBHIIQQQII", MAGIC, 1, kind, flags, length, nr, seq, a, b, 0, 0)
    if crc is None:
        crc = crc32c(raw + payload) ^ 0xFFFFFFFF
    return struct.pack("<IBBHIIQQQII", MAGIC, 1, kind, flags, length, nr, seq, a, b, crc, 0)


def hello_payload():
    # version 1, features 0, pair id, 64 MiB, 64 KiB tracks, role primary, mode sync
    return struct.pack("<II16sQIBBHQ32s", 1, 0, b"\x11" * 16, 64 << 20, 65536, 0, 0, 0, 7, os.urandom(32))


def main():
    host, port, case = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    s = socket.create_connection((host, port), timeout=10)
    try:
        if case == "random":
            s.sendall(os.urandom(65536))
        elif case == "oversized":
            s.sendall(header(5, length=16 << 20, nr=32768, seq=1, crc=0) + os.urandom(4096))
        elif case == "badcrc":
            p = hello_payload()
            s.sendall(header(1, length=len(p), payload=p, crc=0xDEADBEEF) + p)
        elif case == "write-before-auth":
            data = os.urandom(4096)
            s.sendall(header(5, length=4096, nr=8, seq=1, a=0, payload=data) + data)
        elif case == "hello-flood":
            p = hello_payload()
            for _ in range(50):
                s.sendall(header(1, length=len(p), payload=p) + p)
        else:
            sys.exit("unknown case")
    except (BrokenPipeError, ConnectionResetError):
        print("closed")
        return
    s.settimeout(3)
    try:
        while True:
            d = s.recv(65536)
            if not d:
                print("closed")
                return
    except socket.timeout:
        print("open")
    except ConnectionResetError:
        print("closed")


if __name__ == "__main__":
    main()
