#!/usr/bin/env python3
"""tracks.py DEV N SEED [TRACK]: one 4 KiB O_DIRECT write into each of N distinct,
randomly chosen tracks of DEV (TRACK bytes each, default 65536), then fsync."""
import mmap
import os
import random
import sys

dev, n, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
track = int(sys.argv[4]) if len(sys.argv) > 4 else 65536
rnd = random.Random(seed)
fd = os.open(dev, os.O_WRONLY | os.O_DIRECT)
size = os.lseek(fd, 0, os.SEEK_END)
buf = mmap.mmap(-1, 4096)
for t in rnd.sample(range(size // track), n):
    buf.seek(0)
    buf.write(os.urandom(4096))
    os.pwritev(fd, [buf], t * track + 4096 * rnd.randrange(track // 4096))
os.fsync(fd)
os.close(fd)
print("wrote %d tracks" % n)
