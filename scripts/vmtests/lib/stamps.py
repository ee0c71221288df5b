#!/usr/bin/env python3
"""Sequence-stamped writer and point-in-time checker for rcopy's snapshot tests.

  stamps.py write DEV BLOCKS COUNT PROGRESS [--start S] [--point-every N POINTS]
                 [--latencies FILE]
      Writes stamps s = S+1 .. S+COUNT in order, one at a time (O_DIRECT|O_SYNC:
      each completes before the next is issued). Stamp s goes to 4 KiB block
      target(s) = (s * 7919) % BLOCKS, so blocks are overwritten again and again.
      After each write completes, its number goes into PROGRESS (rewritten in
      place, fsynced), so a reader learns how far the writer got. With
      --point-every, after every N-th stamp it asks rcopy for a consistency point
      (dmsetup message r0 0 point) and appends the stamp to POINTS once the
      request is queued: a point made there holds exactly stamps 1..s. At the
      end it prints "written=<n> max_latency_ms=<m> p99_latency_ms=<p>" and, with
      --latencies, writes "<stamp> <latency_us>" lines to FILE, one per stamp (to
      look at the writes made while something else happened, by their stamps).
  stamps.py cut DEV BLOCKS
      Reads DEV and finds the point of the write order it holds: the highest
      stamp present, S. Checks that every block holds exactly what the writes
      1..S left there (the last stamp s <= S aimed at it, or zeroes if none) and
      prints "cut=<S>". Exit 1 naming the first block that differs: an image
      that is not a prefix of the write order.
"""
import mmap
import os
import sys
import time

BS = 4096
PRIME = 7919


def target(s, blocks):
    return (s * PRIME) % blocks


def pattern(s, b):
    line = b"RCOPY-STAMP %012d BLOCK %08d\n" % (s, b)
    return (line * (BS // len(line) + 1))[:BS]


def write(dev, blocks, count, progress, start, every=0, points=None, latfile=None):
    import subprocess
    fd = os.open(dev, os.O_WRONLY | os.O_DIRECT | os.O_SYNC)
    buf = mmap.mmap(-1, BS)
    pfd = os.open(progress, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    lat = []
    for s in range(start + 1, start + count + 1):
        b = target(s, blocks)
        buf.seek(0)
        buf.write(pattern(s, b))
        t0 = time.monotonic()
        if os.pwritev(fd, [buf], b * BS) != BS:
            sys.exit("short write")
        lat.append(time.monotonic() - t0)
        os.pwrite(pfd, b"%012d\n" % s, 0)
        os.fsync(pfd)
        if every and s % every == 0:
            r = subprocess.run(["dmsetup", "message", "r0", "0", "point"],
                               capture_output=True)
            if r.returncode == 0:
                with open(points, "a") as f:
                    f.write("%d\n" % s)
                    f.flush()
                    os.fsync(f.fileno())
    os.close(fd)
    if latfile:
        with open(latfile, "w") as f:
            f.writelines("%d %d\n" % (start + 1 + i, int(t * 1e6))
                         for i, t in enumerate(lat))
    lat.sort()
    p99 = lat[int(len(lat) * 0.99)] if lat else 0
    print("written=%d max_latency_ms=%d p99_latency_ms=%d"
          % (count, int(lat[-1] * 1000) if lat else 0, int(p99 * 1000)))


def stamp_of(data, b):
    if data == b"\0" * BS:
        return 0
    if not data.startswith(b"RCOPY-STAMP "):
        return None
    try:
        s = int(data[12:24])
    except ValueError:
        return None
    return s if data == pattern(s, b) else None


def cut(dev, blocks):
    stamps = []
    with open(dev, "rb", buffering=0) as f:
        for b in range(blocks):
            f.seek(b * BS)
            s = stamp_of(f.read(BS), b)
            if s is None:
                print("block %d holds something that is no stamp" % b)
                sys.exit(1)
            stamps.append(s)
    top = max(stamps)
    # What writes 1..top leave in each block: the last stamp aimed at it.
    want = [0] * blocks
    for s in range(1, top + 1):
        want[target(s, blocks)] = s
    for b in range(blocks):
        if stamps[b] != want[b]:
            print("not a prefix of the write order: block %d holds stamp %d, "
                  "writes 1..%d leave %d there" % (b, stamps[b], top, want[b]))
            sys.exit(1)
    print("cut=%d" % top)


def main():
    a = sys.argv[1:]
    if len(a) >= 5 and a[0] == "write":
        start = int(a[a.index("--start") + 1]) if "--start" in a else 0
        every, points = 0, None
        if "--point-every" in a:
            i = a.index("--point-every")
            every, points = int(a[i + 1]), a[i + 2]
        latfile = a[a.index("--latencies") + 1] if "--latencies" in a else None
        write(a[1], int(a[2]), int(a[3]), a[4], start, every, points, latfile)
    elif len(a) == 3 and a[0] == "cut":
        cut(a[1], int(a[2]))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
