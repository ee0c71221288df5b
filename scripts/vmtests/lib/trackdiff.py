#!/usr/bin/env python3
"""trackdiff.py A B LENGTH [TRACK]: the number of TRACK-byte tracks (default 65536)
in which the first LENGTH bytes of A and B differ (devices are read with O_DIRECT
when they allow it). Prints "differ=<n>"."""
import mmap
import os
import sys


def opener(path):
    try:
        return os.open(path, os.O_RDONLY | os.O_DIRECT)
    except OSError:
        return os.open(path, os.O_RDONLY)


a, b, length = sys.argv[1], sys.argv[2], int(sys.argv[3])
track = int(sys.argv[4]) if len(sys.argv) > 4 else 65536
fa, fb = opener(a), opener(b)
ba, bb = mmap.mmap(-1, track), mmap.mmap(-1, track)
n = 0
for off in range(0, length, track):
    la = os.preadv(fa, [ba], off)
    lb = os.preadv(fb, [bb], off)
    if la != lb or ba[:la] != bb[:lb]:
        n += 1
print("differ=%d" % n)
