#!/usr/bin/env python3
"""Numbered-block writer and checker for rcopy's ordering tests.

  blocks.py write DEV FIRST COUNT REPORT [--sleep S]
      Writes block k (FIRST <= k < FIRST+COUNT), 4 KiB at offset k*4096, with
      O_DIRECT|O_SYNC, one at a time. After each write completes, appends "k" to
      REPORT and fsyncs it (REPORT lives on the host share, so the host learns of
      every completed write even if this VM is killed right after).
  blocks.py check DEV [--max N] [--prefix] [--expect REPORT]
      Reads DEV (a device or a disk image), prints "present=<n> max=<m>".
      --prefix: the blocks present must be exactly FIRST..m (no gap): a write k+1
      is never present without write k. --expect: every block listed in REPORT must
      be present. Exit 1 with a reason when a check fails.
"""
import mmap
import os
import sys

BS = 4096


def pattern(k):
    line = b"RCOPY-BLOCK %010d\n" % k
    return (line * (BS // len(line) + 1))[:BS]


def write(dev, first, count, report, sleep):
    fd = os.open(dev, os.O_WRONLY | os.O_DIRECT | os.O_SYNC)
    buf = mmap.mmap(-1, BS)
    rep = open(report, "a")
    import time
    for k in range(first, first + count):
        buf.seek(0)
        buf.write(pattern(k))
        if os.pwritev(fd, [buf], k * BS) != BS:
            sys.exit("short write")
        rep.write("%d\n" % k)
        rep.flush()
        os.fsync(rep.fileno())
        if sleep:
            time.sleep(sleep)
    os.close(fd)


def present_blocks(dev, maxk):
    flags = os.O_RDONLY
    out = []
    with open(dev, "rb", buffering=0) as f:
        for k in range(1, maxk + 1):
            f.seek(k * BS)
            data = f.read(BS)
            if data == pattern(k):
                out.append(k)
            elif data.startswith(b"RCOPY-BLOCK"):
                print("block %d holds foreign data: %r" % (k, data[:24]))
                sys.exit(1)
    return out


def check(dev, args):
    maxk = int(args[args.index("--max") + 1]) if "--max" in args else 4096
    got = present_blocks(dev, maxk)
    m = max(got) if got else 0
    print("present=%d max=%d" % (len(got), m))
    if "--prefix" in args:
        first = got[0] if got else 1
        missing = sorted(set(range(first, m + 1)) - set(got))
        if got and first != 1:
            print("not a prefix: block 1 missing, first present is %d" % first)
            sys.exit(1)
        if missing:
            print("not a prefix: %d present but %s missing" % (m, missing[:10]))
            sys.exit(1)
    if "--expect" in args:
        rep = args[args.index("--expect") + 1]
        want = [int(x) for x in open(rep).read().split()]
        lost = sorted(set(want) - set(got))
        print("reported=%d" % len(want))
        if lost:
            print("acknowledged writes missing: %s (of %d)" % (lost[:10], len(lost)))
            sys.exit(1)


def main():
    a = sys.argv[1:]
    if a and a[0] == "write":
        sleep = float(a[a.index("--sleep") + 1]) if "--sleep" in a else 0
        write(a[1], int(a[2]), int(a[3]), a[4], sleep)
    elif a and a[0] == "check":
        check(a[1], a[2:])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
