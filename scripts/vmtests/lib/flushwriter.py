#!/usr/bin/env python3
"""flushwriter.py DEV FIRST COUNT REPORT: numbered blocks (the pattern of blocks.py)
written with durability points, for the secondary power-loss test.

Block k (FIRST <= k < FIRST+COUNT) is written, 4 KiB at offset k*4096, with O_DIRECT:
every 7th as a FUA write (O_DSYNC), the others plain; after every 5 plain writes
(and at the end) the device is flushed (fdatasync). A block is appended to REPORT
(fsynced, on the host share) only once it is durable by the block layer's rules:
a FUA write when it completes, a plain write when a flush issued after it completes.
The host thus knows which writes a correct device must never lose, even if this VM
or the peer dies right after.
"""
import mmap
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from blocks import BS, pattern  # noqa: E402


def main():
    dev, first, count, report = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    plain = os.open(dev, os.O_WRONLY | os.O_DIRECT)
    fua = os.open(dev, os.O_WRONLY | os.O_DIRECT | os.O_DSYNC)
    buf = mmap.mmap(-1, BS)
    rep = open(report, "a")

    def durable(ks):
        if ks:
            rep.write("".join("%d\n" % k for k in ks))
            rep.flush()
            os.fsync(rep.fileno())

    pending = []
    for k in range(first, first + count):
        buf.seek(0)
        buf.write(pattern(k))
        if k % 7 == 0:
            if os.pwritev(fua, [buf], k * BS) != BS:
                sys.exit("short write")
            durable([k])
        else:
            if os.pwritev(plain, [buf], k * BS) != BS:
                sys.exit("short write")
            pending.append(k)
            if len(pending) >= 5:
                os.fdatasync(plain)
                durable(pending)
                pending = []
    os.fdatasync(plain)
    durable(pending)
    print("wrote %d blocks" % count)


if __name__ == "__main__":
    main()
