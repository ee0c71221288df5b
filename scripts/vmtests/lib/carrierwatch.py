#!/usr/bin/env python3
"""Marks in the kernel log the moment a network device's carrier returns.

  carrierwatch.py DEV LABEL [LINE]
      Writes "rcopy-test: watching LABEL" to /dev/kmsg, then reads
      /sys/class/net/DEV/carrier every 2 ms and, once it reads 1, writes LINE
      (default "rcopy-test: carrier back LABEL") and exits. The kernel stamps
      both lines, so a test (or the bench) can time what the kernel logged after
      the carrier's return (rcopy's "connected to") on the kernel's own clock,
      free of the delay between the host's command and the guest seeing it.
"""
import sys
import time


def kmsg(line):
    with open('/dev/kmsg', 'w') as f:
        f.write(line + '\n')


def main():
    dev, label = sys.argv[1], sys.argv[2]
    line = sys.argv[3] if len(sys.argv) > 3 else 'rcopy-test: carrier back %s' % label
    path = '/sys/class/net/%s/carrier' % dev
    kmsg('rcopy-test: watching %s' % label)
    while True:
        try:
            with open(path) as f:
                if f.read().strip() == '1':
                    break
        except OSError:
            pass
        time.sleep(0.002)
    kmsg(line)


if __name__ == '__main__':
    main()
