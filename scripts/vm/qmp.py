#!/usr/bin/env python3
"""Send one QMP command to a QEMU monitor socket and print the reply.

usage: qmp.py SOCKET COMMAND [JSON_ARGUMENTS]
Exit status 0 on {"return": ...}, 1 on {"error": ...} or a broken connection.
For "quit" a closed connection counts as success.
"""
import json
import socket
import sys


def main():
    if len(sys.argv) < 3:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    path, cmd = sys.argv[1], sys.argv[2]
    args = json.loads(sys.argv[3]) if len(sys.argv) > 3 and sys.argv[3] else None
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(15)
    s.connect(path)
    f = s.makefile("rw", encoding="utf-8", newline="\n")

    def reply():
        while True:
            line = f.readline()
            if not line:
                return None
            msg = json.loads(line)
            if "return" in msg or "error" in msg:
                return msg
            # greeting or asynchronous event: skip

    greeting = json.loads(f.readline())
    if "QMP" not in greeting:
        print("not a QMP socket: %r" % greeting, file=sys.stderr)
        return 1
    f.write(json.dumps({"execute": "qmp_capabilities"}) + "\n")
    f.flush()
    reply()
    req = {"execute": cmd}
    if args is not None:
        req["arguments"] = args
    f.write(json.dumps(req) + "\n")
    f.flush()
    try:
        r = reply()
    except (ConnectionResetError, socket.timeout):
        r = None
    if r is None:
        if cmd == "quit":
            return 0
        print("QMP connection closed without a reply", file=sys.stderr)
        return 1
    print(json.dumps(r))
    return 1 if "error" in r else 0


if __name__ == "__main__":
    sys.exit(main())
