#!/usr/bin/env python3
"""Summarise a bench run (scripts/bench.sh): read RAW_DIR/kv and RAW_DIR/fio/*.json,
print the comparison table, write it as JSON. Every row tolerates configurations that
lack a measurement (skipped, failed, or not made for that configuration): it prints "-".

    report.py RAW_DIR JSON_OUT

RAW_DIR/kv holds "key<TAB>value" lines written by bench.sh (later lines win).
RAW_DIR/fio/<config>-<workload>.json are fio --output-format=json files.
Units: MB = 10^6 bytes, latencies in ms (fio lat_ns: submission + completion).
"""
import json
import math
import os
import re
import statistics
import sys

CONFIGS = [  # (key, column title)
    ("raw", "raw disk"),
    ("rcopy_sync", "rcopy sync"),
    ("rcopy_sync_alcold", "sync cold AL"),
    ("drbd_C", "DRBD C"),
    ("rcopy_async", "rcopy async"),
    ("drbd_A", "DRBD A"),
]
WORKLOADS = [  # (key, title, metric)
    ("seq", "seq 1M write QD8  (MB/s)", "mbps"),
    ("r16", "rand 4k write QD16 (IOPS)", "iops"),
    ("r1", "rand 4k write QD1 (lat ms)", "lat_ms"),
]
PAIRS = [("rcopy_sync", "drbd_C"), ("rcopy_async", "drbd_A")]
# the alternating phase: (mode, rcopy config, DRBD config), rounds taken in turn
ALT_PAIRS = [("sync", "alt_rcopy_sync", "alt_drbd_C"), ("async", "alt_rcopy_async", "alt_drbd_A")]
# the fast case: both ends of each pair on VM a over 127.0.0.1, loop devices in tmpfs
FAST_CONFIGS = [
    ("fast_raw", "raw loop"),
    ("fast_rcopy_sync", "rcopy sync"),
    ("fast_rcopy_async", "rcopy async"),
    ("fast_drbd_C", "DRBD C"),
    ("fast_drbd_A", "DRBD A"),
]
FAST_WORKLOADS = [w for w in WORKLOADS if w[0] in ("seq", "r16")]
# the configurations with the 4k random outage measurement
RANDOUT_CONFIGS = ["rcopy_sync", "drbd_C", "rcopy_async", "drbd_A"]


def read_kv(path):
    kv = {}
    try:
        with open(path) as f:
            for line in f:
                line = line.rstrip("\n")
                if "\t" in line:
                    k, v = line.split("\t", 1)
                    kv[k] = v
    except OSError:
        pass
    return kv


def num(s):
    try:
        x = float(s)
        return x if math.isfinite(x) else None
    except (TypeError, ValueError):
        return None


def fio_summary(path):
    try:
        with open(path) as f:
            text = f.read()
        # fio may print notes before the JSON object
        d = json.loads(text[text.index("{"):])
        job = d["jobs"][0]
        w = job["write"]
    except (OSError, ValueError, KeyError, IndexError):
        return None
    runtime_ms = w.get("runtime") or job.get("job_runtime") or 0
    pct = (w.get("clat_ns", {}).get("percentile") or {})
    return {
        "error": job.get("error", 0),
        "runtime_s": runtime_ms / 1000.0,
        "io_bytes": w.get("io_bytes", 0),
        "ios": w.get("total_ios", 0),
        "mbps": w.get("bw_bytes", 0) / 1e6,
        "iops": w.get("iops", 0.0),
        "lat_ms": w.get("lat_ns", {}).get("mean", 0) / 1e6,
        "clat_ms": w.get("clat_ns", {}).get("mean", 0) / 1e6,
        "slat_ms": w.get("slat_ns", {}).get("mean", 0) / 1e6,
        "clat_p99_ms": (pct.get("99.000000") or 0) / 1e6,
    }


def cpu_cost(kv, cfg, wl, io_bytes, hz):
    """CPU time charged to one fio job: busy ticks of /proc/stat on each VM measured
    (bench.sh cpu_mark: 0 before the job, 1 right after it, 2 once drained)."""
    out = {}
    per_vm = {}
    for v in ("a", "b"):
        t0 = num(kv.get(f"{cfg}.{wl}.cpu_{v}_0"))
        t1 = num(kv.get(f"{cfg}.{wl}.cpu_{v}_1"))
        t2 = num(kv.get(f"{cfg}.{wl}.cpu_{v}_2"))
        if t0 is None or t1 is None:
            continue
        per_vm[v] = ((t1 - t0) * 1000.0 / hz, ((t2 if t2 is not None else t1) - t0) * 1000.0 / hz)
        # how busy the VM's one vCPU was during the job (busy ticks over all ticks)
        a0 = num(kv.get(f"{cfg}.{wl}.all_{v}_0"))
        a1 = num(kv.get(f"{cfg}.{wl}.all_{v}_1"))
        if a0 is not None and a1 is not None and a1 > a0:
            out[f"busy_{v}_pct"] = 100.0 * (t1 - t0) / (a1 - a0)
    if not per_vm:
        return out
    mib = io_bytes / 1048576 if io_bytes else 0
    for v, (job, drained) in per_vm.items():
        out[f"cpu_{v}_ms"] = drained
        out[f"cpu_{v}_ms_per_mib"] = drained / mib if mib else None
    tot_job = sum(j for j, _ in per_vm.values())
    tot = sum(d for _, d in per_vm.values())
    out["cpu_vms"] = "+".join(sorted(per_vm))
    out["cpu_ms_job"] = tot_job
    out["cpu_ms"] = tot
    out["cpu_ms_per_mib_job"] = tot_job / mib if mib else None
    # until drained (the replica's work on data still queued when fio ended included)
    out["cpu_ms_per_mib"] = tot / mib if mib else None
    return out


# Kernel log lines (the saved console of VM a) that time a reconnection: bench.sh writes
# "rcopy-bench: mark CONFIG.WHAT" just before it (kmark); then each product logs when it
# is connected and when the peer is in sync. rcopy: "r0: connected to" (after the
# HELLO and authentication, before the bitmap exchange) and "r0: peer is in sync";
# DRBD 8.4: "conn( WFConnection -> WFReportParams )" (the connection made, before its
# handshake) and "Resync done".
KLOG_LINE = re.compile(r"^\[\s*(\d+\.\d+)\]\s(.*)$")
KLOG_MARK = re.compile(r"rcopy-bench: mark (\S+)")
KLOG_EVENTS = {
    "rcopy": (re.compile(r"\br0: connected to "), re.compile(r"\br0: peer is in sync")),
    "drbd": (re.compile(r"conn\( WFConnection -> WFReportParams \)"), re.compile(r"Resync done")),
}


def klog_times(path):
    """{CONFIG.WHAT: {"connect_s", "insync_s", "resync_s"}} from a console log: seconds
    from the mark to the last 'connected' before 'in sync', to 'in sync', and between
    the two (the resync itself); a value the log lacks is None."""
    out = {}
    try:
        with open(path, errors="replace") as f:
            lines = [m.groups() for m in map(KLOG_LINE.match, (x.rstrip("\r\n") for x in f)) if m]
    except OSError:
        return out
    cur = None
    for ts, text in lines:
        t = float(ts)
        mk = KLOG_MARK.search(text)
        if mk:
            label = mk.group(1)
            cur = {"label": label, "t0": t, "conn": None, "done": None,
                   "ev": KLOG_EVENTS["drbd" if label.startswith("drbd") else "rcopy"]}
            out[label] = {"connect_s": None, "insync_s": None, "resync_s": None}
            continue
        if cur is None or cur["done"] is not None:
            continue
        conn_re, done_re = cur["ev"]
        if conn_re.search(text):
            cur["conn"] = t
        elif done_re.search(text):
            cur["done"] = t
            r = out[cur["label"]]
            r["insync_s"] = t - cur["t0"]
            if cur["conn"] is not None:
                r["connect_s"] = cur["conn"] - cur["t0"]
                r["resync_s"] = t - cur["conn"]
    return out


def at(r):
    """how round R's keys are told apart: nothing for the first, @R after it
    (bench.sh's at_round)"""
    return "" if r == 1 else f"@{r}"


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


def fmt(x, digits=None):
    if x is None:
        return "-"
    if x == 0:
        return "0"
    if digits is None:
        digits = 0 if abs(x) >= 100 else 1 if abs(x) >= 10 else 2 if abs(x) >= 1 else 3
    return f"{x:.{digits}f}"


def fx(x):
    return "-" if x is None else f"{x:.2f}x"


def main():
    raw_dir, out_path = sys.argv[1], sys.argv[2]
    kv = read_kv(os.path.join(raw_dir, "kv"))
    res = {}
    hz = num(kv.get("meta.user_hz")) or 100.0
    rounds = int(num(kv.get("meta.rounds")) or 1)

    def one_round(cfg, key):
        """one fio job (KEY: workload, or workload@round) with its drain and CPU"""
        s = fio_summary(os.path.join(raw_dir, "fio", f"{cfg}-{key}.json"))
        if s is None:
            return None
        drain = num(kv.get(f"{cfg}.{key}.drain_s"))
        s["drain_s"] = drain
        s["after"] = kv.get(f"{cfg}.{key}.after")
        # what the replica really absorbed: everything written, until drained
        if drain is not None and s["runtime_s"] > 0:
            t = s["runtime_s"] + drain
            s["sustained_mbps"] = s["io_bytes"] / t / 1e6
            s["sustained_iops"] = s["ios"] / t
        else:
            s["sustained_mbps"] = s["sustained_iops"] = None
        s.update(cpu_cost(kv, cfg, key, s["io_bytes"], hz))
        return s

    for cfg, _ in CONFIGS + FAST_CONFIGS:
        res[cfg] = {}
        for wl, _, metric in WORKLOADS:
            keys = [wl + at(r) for r in range(1, rounds + 1)]
            got = [(k, one_round(cfg, k)) for k in keys]
            got = [(k, s) for k, s in got if s is not None and s.get(metric) is not None]
            if not got:
                continue
            # the median round (for an even count, the better of the two middle ones),
            # with that round's drain and CPU figures
            got.sort(key=lambda ks: ks[1][metric], reverse=(metric != "lat_ms"))
            k, s = got[(len(got) - 1) // 2]
            vals = [x[metric] for _, x in got]
            s["round"] = k
            s["rounds"] = len(got)
            s["round_values"] = vals
            s["round_min"], s["round_max"] = min(vals), max(vals)
            res[cfg][wl] = s

    def m(cfg, wl, key=None):
        s = res.get(cfg, {}).get(wl)
        if s is None:
            return None
        return s.get(key or dict((w, k) for w, _, k in WORKLOADS)[wl])

    def spread(cfg, wl):
        s = res.get(cfg, {}).get(wl)
        if s is None or s.get("rounds", 1) < 2:
            return "-"
        return f"{fmt(s['round_min'])}-{fmt(s['round_max'])}"

    def safe(f, c):
        """f(c), or None when the configuration lacks what f looks at"""
        try:
            return f(c)
        except (KeyError, TypeError, ValueError, ZeroDivisionError, AttributeError):
            return None

    link = {k: num(kv.get("link." + k)) for k in (
        "ping_min_ms", "ping_avg_ms", "ping_median_ms", "ping_max_ms", "iperf_mbps", "iperf_end_mbps",
        "pipe_mbps", "pipe_end_mbps", "rtt4k_median_ms", "rtt4k_mean_ms")}
    # the link's capacity: the better of the two iperf3 runs (start and end of the bench)
    runs = [x for x in (link["iperf_mbps"], link["iperf_end_mbps"]) if x]
    lk = link["link_mbps"] = max(runs) if runs else None
    ping = link["ping_avg_ms"]
    # disk a -> TCP -> disk b with no engine (pipe.py): the better of its two runs
    pipes = [x for x in (link["pipe_mbps"], link["pipe_end_mbps"]) if x]
    pipe = link["pipe_best_mbps"] = max(pipes) if pipes else None
    klog = klog_times(os.path.join(raw_dir, "console-a.log"))
    # pings taken right before each configuration's QD1 job (same host load)
    phase_ping = {c: num(kv.get(f"{c}.ping_avg_ms")) for c, _ in CONFIGS}
    phase_ping_median = {c: num(kv.get(f"{c}.ping_median_ms")) for c, _ in CONFIGS}
    link["phase_ping_avg_ms"] = phase_ping
    link["phase_ping_median_ms"] = phase_ping_median

    # what was left to replicate right after each job (rcopy: dirty + lag bytes; DRBD:
    # out-of-sync KiB)
    for cfg in res:
        for wl, s in res[cfg].items():
            a = s.get("after") or ""
            left = None
            words = dict(w.split("=", 1) for w in a.split() if "=" in w)
            if "dirty_bytes" in words:
                try:
                    left = int(words["dirty_bytes"]) + int(words.get("lag_bytes", 0))
                    s["dirty_after_bytes"] = int(words["dirty_bytes"])
                    s["lag_after_bytes"] = int(words.get("lag_bytes", 0))
                except ValueError:
                    pass
            else:
                for w in a.split():
                    if w.startswith("oos:"):
                        try:
                            left = int(w[4:]) * 1024
                        except ValueError:
                            pass
            s["left_after_mib"] = None if left is None else left / 1048576

    sync_info = {}
    for cfg in [c for c, _ in CONFIGS if c != "raw"]:
        d = {}
        for what in ("copy", "resync"):
            b = num(kv.get(f"{cfg}.{what}_bytes"))
            t = num(kv.get(f"{cfg}.{what}_s"))
            tc = num(kv.get(f"{cfg}.{what}_connect_s"))
            d[what] = {"bytes": b, "seconds": t, "connect_s": tc,
                       "mbps": (b / t / 1e6) if b and t else None}
        # the cable-cut resync, BENCH_RESYNC_ROUNDS rounds (keys CONFIG.resync@R_...
        # from round 2): each round's rate (kernel log, else state polling) against
        # the pipe run on spare disks just before and just after it, the ceiling of
        # the same minute (the host drifts over a run and between rounds)
        rrounds = []
        for r in range(1, int(num(kv.get("meta.resync_rounds")) or 1) + 1):
            s_ = at(r)
            b = num(kv.get(f"{cfg}.resync{s_}_bytes"))
            t = num(kv.get(f"{cfg}.resync{s_}_s"))
            k = klog.get(f"{cfg}.resync{s_}") or {}
            before = num(kv.get(f"{cfg}.pipe{s_}_before_mbps"))
            after = num(kv.get(f"{cfg}.pipe{s_}_after_mbps"))
            beside = [x for x in (before, after) if x]
            x = {"bytes": b, "seconds": t, "mbps": (b / t / 1e6) if b and t else None,
                 "connect_s": num(kv.get(f"{cfg}.resync{s_}_connect_s")),
                 "klog_resync_s": k.get("resync_s"), "klog_connect_s": k.get("connect_s"),
                 "klog_mbps": b / k["resync_s"] / 1e6 if b and k.get("resync_s") else None,
                 "pipe_before_mbps": before, "pipe_after_mbps": after,
                 "pipe_beside_mbps": sum(beside) / len(beside) if beside else None}
            x["retrans_segs"] = num(kv.get(f"{cfg}.resync{s_}_retrans_segs"))
            x["host_udp_drops"] = num(kv.get(f"{cfg}.resync{s_}_host_udp_drops"))
            pr = [num(kv.get(f"{cfg}.pipe{s_}_{w}_retrans_segs")) for w in ("before", "after")]
            pr = [v for v in pr if v is not None]
            x["pipe_retrans_segs"] = sum(pr) / len(pr) if pr else None
            x["vs_pipe_beside"] = ratio(x["klog_mbps"] or x["mbps"], x["pipe_beside_mbps"])
            if b is not None or k:
                rrounds.append(x)

        def med(key):
            v = [x[key] for x in rrounds if x[key] is not None]
            return statistics.median(v) if v else None

        # the table's figures: the median round of each, and the median per-round ratio
        d["resync"] = {key: med(key) for key in (
            "bytes", "seconds", "connect_s", "mbps", "klog_resync_s", "klog_connect_s", "klog_mbps",
            "pipe_before_mbps", "pipe_after_mbps", "pipe_beside_mbps", "vs_pipe_beside",
            "retrans_segs", "host_udp_drops", "pipe_retrans_segs")}
        d["resync"]["rounds"] = rrounds
        sync_info[cfg] = d

    def si(cfg, what, key):
        return (sync_info.get(cfg) or {}).get(what, {}).get(key)

    def rmb(cfg):
        """the resync rate: from the kernel log, else from the state polling"""
        return si(cfg, "resync", "klog_mbps") or si(cfg, "resync", "mbps")

    # the 4k random outage: resync bytes sent per byte written
    randout = {}
    for cfg in RANDOUT_CONFIGS:
        w = num(kv.get(f"{cfg}.randout_written_bytes"))
        fs = fio_summary(os.path.join(raw_dir, "fio", f"{cfg}-randout.json"))
        if fs and fs.get("io_bytes"):
            w = float(fs["io_bytes"])
        sent = num(kv.get(f"{cfg}.randout_sent_bytes"))
        if sent is None:
            w = None
        randout[cfg] = {
            "written_bytes": w,
            "dirty_bytes": num(kv.get(f"{cfg}.randout_dirty_bytes")),
            "sent_bytes": sent,
            "sent_per_written": ratio(sent, w),
            "connect_s": num(kv.get(f"{cfg}.randout_connect_s")),
            "insync_s": num(kv.get(f"{cfg}.randout_insync_s")),
            "polls": num(kv.get(f"{cfg}.randout_polls")),
            "klog_connect_s": (klog.get(f"{cfg}.randout") or {}).get("connect_s"),
            "klog_insync_s": (klog.get(f"{cfg}.randout") or {}).get("insync_s"),
            "outage_fio_iops": fs.get("iops") if fs else None,
        }

    def ro(cfg, key):
        return (randout.get(cfg) or {}).get(key)

    raw_seq = m("raw", "seq")
    best_resync_bound = min(x for x in (raw_seq, lk) if x) if (raw_seq or lk) else None

    # ----------------------------------------------------------------- table
    L = []
    L.append("rcopy benchmark: " + kv.get("meta.date", "?") + ", " + kv.get("meta.runtime_s", "?") +
             " s per fio job, " + kv.get("meta.disk_mb", "?") + " MiB disks, guest clock " +
             kv.get("meta.clocksource", "?"))
    L.append(f"link a->b: ping avg {fmt(ping)} ms (min {fmt(link['ping_min_ms'])}, median "
             f"{fmt(link['ping_median_ms'])}, max {fmt(link['ping_max_ms'])}); iperf3 {fmt(lk)} MB/s "
             f"(best of {fmt(link['iperf_mbps'])} at start, {fmt(link['iperf_end_mbps'])} at end)")
    L.append(f"4 KiB request, 32-byte answer over TCP between processes on a and b: median "
             f"{fmt(link['rtt4k_median_ms'])} ms, mean {fmt(link['rtt4k_mean_ms'])} ms")
    L.append(f"disk a -> TCP -> disk b, no engine (pipe.py, {kv.get('meta.resync_mb', '?')} MiB): {fmt(pipe)} MB/s "
             f"(best of {fmt(link['pipe_mbps'])} at start, {fmt(link['pipe_end_mbps'])} at end)")
    L.append(f"host: {kv.get('meta.host', '?')}, load average {kv.get('meta.load_start', '?')} at start, "
             f"{kv.get('meta.load_end', '?')} at end")
    L.append(f"each fio job: the median of {rounds} round(s) in a row (the cold-AL variant: one); "
             "'rounds' rows show the lowest and highest")
    for v in ("a", "b"):
        if kv.get(f"meta.byte_costs_{v}"):
            L.append(f"guest {v}, per MiB (timed by the module at load): {kv[f'meta.byte_costs_{v}']}")
    for k in sorted(kv):
        if k.endswith(".skipped") or k.endswith(".failed") or k.startswith("note."):
            L.append(f"NOTE {k}: {kv[k]}")
    L.append("")
    w0 = 34
    cw = 13
    L.append(" " * w0 + "".join(t.rjust(cw) for _, t in CONFIGS))
    for wl, title, key in WORKLOADS:
        L.append(title.ljust(w0) + "".join(fmt(m(c, wl)).rjust(cw) for c, _ in CONFIGS))
        if key == "lat_ms":
            L.append("  clat p99 (ms)".ljust(w0) +
                     "".join(fmt(m(c, wl, "clat_p99_ms")).rjust(cw) for c, _ in CONFIGS))
        else:
            sk = "sustained_mbps" if key == "mbps" else "sustained_iops"
            L.append("  incl. drain afterwards".ljust(w0) +
                     "".join(("-" if c == "raw" else fmt(m(c, wl, sk))).rjust(cw) for c, _ in CONFIGS))
        L.append("  left to ship after (MiB)".ljust(w0) +
                 "".join(("-" if c == "raw" else fmt(m(c, wl, "left_after_mib"))).rjust(cw) for c, _ in CONFIGS))
        L.append("  drain after job (s)".ljust(w0) +
                 "".join(("-" if c == "raw" else fmt(m(c, wl, "drain_s"))).rjust(cw) for c, _ in CONFIGS))
        L.append("  rounds (min-max)".ljust(w0) + "".join(spread(c, wl).rjust(cw) for c, _ in CONFIGS))
        L.append("  CPU ms/MiB (a+b)".ljust(w0) +
                 "".join(fmt(m(c, wl, "cpu_ms_per_mib")).rjust(cw) for c, _ in CONFIGS))
        L.append("  CPU ms/MiB on a / on b".ljust(w0) + "".join(
            f"{fmt(m(c, wl, 'cpu_a_ms_per_mib'))}/{fmt(m(c, wl, 'cpu_b_ms_per_mib'))}".rjust(cw)
            for c, _ in CONFIGS))
        L.append("  busy % of a's vCPU / b's".ljust(w0) + "".join(
            f"{fmt(m(c, wl, 'busy_a_pct'), 0)}/{fmt(m(c, wl, 'busy_b_pct'), 0)}".rjust(cw)
            for c, _ in CONFIGS))

    def rspread(c, key, f=fmt):
        v = [x[key] for x in (si(c, "resync", "rounds") or []) if x[key] is not None]
        return f"{f(min(v))}-{f(max(v))}" if v else "-"

    def row(title, f, fm=fmt):
        L.append(title.ljust(w0) + "".join(("-" if c == "raw" else fm(safe(f, c))).rjust(cw) for c, _ in CONFIGS))

    L.append(f"resync after a cable cut: {kv.get('meta.resync_rounds', '1')} rounds of "
             f"{kv.get('meta.resync_mb', '?')} MiB, medians (rcopy: the link cut; DRBD: drbdadm disconnect)")
    row("resync after a cable cut (MB/s)", lambda c: si(c, "resync", "klog_mbps"))
    row("  rounds (min-max MB/s)", lambda c: rspread(c, "klog_mbps"), fm=str)
    row("  / pipe beside it (min-max)", lambda c: rspread(c, "vs_pipe_beside", fx), fm=str)
    row("  by state polling (MB/s)", lambda c: si(c, "resync", "mbps"))
    row("  resynced (MiB)", lambda c: (si(c, "resync", "bytes") or 0) / 1048576 or None)
    row("  connected to in sync (s)", lambda c: si(c, "resync", "klog_resync_s"))
    row("  pipe just before / after (MB/s)", lambda c: (
        f"{fmt(si(c, 'resync', 'pipe_before_mbps'))}/{fmt(si(c, 'resync', 'pipe_after_mbps'))}"), fm=str)
    row("  cable back to connected (s)", lambda c: si(c, "resync", "klog_connect_s"))
    # the virtual link is a QEMU UDP socket on the host: frames it drops cost TCP
    # retransmissions and recovery time, for the pipe as for a resync
    row("  TCP segments a resent (min-max)", lambda c: rspread(c, "retrans_segs"), fm=str)
    row("  ... in the pipes (min-max)", lambda c: rspread(c, "pipe_retrans_segs"), fm=str)
    row("  host UDP drops (min-max)", lambda c: rspread(c, "host_udp_drops"), fm=str)
    L.append(f"4k random outage: {kv.get('meta.randout_mb', '?')} MiB of 4k random writes while disconnected (rcopy: message disconnect/connect; DRBD: drbdadm disconnect/connect)")
    row("  written (MiB)", lambda c: ro(c, "written_bytes") / 1048576)
    row("  resync sent (MiB)", lambda c: ro(c, "sent_bytes") / 1048576)
    row("  resync bytes / written", lambda c: ro(c, "sent_per_written"), fx)
    row("  reconnect request to connected (s)", lambda c: ro(c, "klog_connect_s"))
    row("  reconnect request to in sync (s)", lambda c: ro(c, "klog_insync_s"))
    row("  the same by state polling (s)", lambda c: ro(c, "insync_s"))
    # rcopy's state is read with a dmsetup fork+exec, DRBD's from /proc/drbd without one:
    # the period bounds how late a change is seen
    row("  state poll period (ms)", lambda c: 1000 * ro(c, "insync_s") / ro(c, "polls"))
    row("initial copy (MB/s)", lambda c: si(c, "copy", "mbps"))
    row("ping avg before QD1 job (ms)", lambda c: phase_ping.get(c))
    L.append("CPU ms/MiB: busy CPU of a and b (/proc/stat) from before the job until drained, per MiB "
             "fio wrote; the raw column's b share is an idle VM's; busy %: during the job itself")

    # ----------------------------------------------------------------- ratios
    ratios = {}
    L.append("")
    L.append("ratios (throughput/IOPS: higher is better; latency: lower is better)")
    L.append(" " * w0 + "".join(t.rjust(cw) for t in ("seq MB/s", "IOPS QD16", "lat QD1", "resync")))
    rows = [
        ("rcopy sync / raw", "rcopy_sync", "raw"),
        ("rcopy async / raw", "rcopy_async", "raw"),
        ("rcopy sync / DRBD C", "rcopy_sync", "drbd_C"),
        ("rcopy async / DRBD A", "rcopy_async", "drbd_A"),
    ]
    for title, a, b in rows:
        r = {wl: ratio(m(a, wl), m(b, wl)) for wl, _, _ in WORKLOADS}
        r["resync"] = ratio(rmb(a), rmb(b)) if b != "raw" else None
        ratios[f"{a}/{b}"] = r
        L.append(title.ljust(w0) + "".join(fx(r[k]).rjust(cw) for k in ("seq", "r16", "r1", "resync")))
    L.append("")
    L.append("throughput vs link (" + fmt(lk) + " MB/s)".ljust(w0 - 20) + "".join(
        t.rjust(cw) for _, t in CONFIGS[1:]))
    vs = {}
    for lab, key in (("seq fio / link", "mbps"), ("seq incl. drain / link", "sustained_mbps")):
        vals = [ratio(m(c, "seq", key), lk) for c, _ in CONFIGS[1:]]
        vs[key] = dict(zip([c for c, _ in CONFIGS[1:]], vals))
        L.append(("  " + lab).ljust(w0) + "".join(fx(v).rjust(cw) for v in vals))
    rs = [ratio(rmb(c), best_resync_bound) for c, _ in CONFIGS[1:]]
    vs["resync_vs_min_disk_link"] = dict(zip([c for c, _ in CONFIGS[1:]], rs))
    L.append("  resync / min(raw disk, iperf3)".ljust(w0) + "".join(fx(v).rjust(cw) for v in rs))
    rs = [ratio(rmb(c), pipe) for c, _ in CONFIGS[1:]]
    vs["resync_vs_pipe"] = dict(zip([c for c, _ in CONFIGS[1:]], rs))
    L.append("  resync / disk-TCP-disk pipe (best)".ljust(w0) + "".join(fx(v).rjust(cw) for v in rs))
    rs = [si(c, "resync", "vs_pipe_beside") for c, _ in CONFIGS[1:]]
    vs["resync_vs_pipe_beside"] = dict(zip([c for c, _ in CONFIGS[1:]], rs))
    L.append("  resync / pipe beside it (median round)".ljust(w0) + "".join(fx(v).rjust(cw) for v in rs))
    ratios["vs_link"] = vs

    raw_lat = m("raw", "r1")

    def bound_for(cfg):
        p = phase_ping.get(cfg) or ping
        return (raw_lat + p) if (raw_lat is not None and p is not None) else None

    bound = bound_for("rcopy_sync")
    sync_lat = m("rcopy_sync", "r1")
    drbd_lat = m("drbd_C", "r1")
    L.append("")
    L.append("sync QD1 latency vs raw + ping avg (the ping taken right before that job):")
    for c, lat in (("rcopy_sync", sync_lat), ("drbd_C", drbd_lat)):
        b = bound_for(c)
        L.append(f"  {c}: {fmt(lat)} ms vs {fmt(raw_lat)} + {fmt(phase_ping.get(c) or ping)} = {fmt(b)} ms: "
                 f"{fx(ratio(lat, b))}")
    r4 = link["rtt4k_mean_ms"]
    b4 = raw_lat + r4 if (raw_lat is not None and r4 is not None) else None
    L.append(f"  against raw + the 4 KiB TCP round trip (mean) = {fmt(b4)} ms: rcopy sync "
             f"{fx(ratio(sync_lat, b4))}, DRBD C {fx(ratio(drbd_lat, b4))}")
    ratios["sync_lat_vs_raw_plus_rtt4k"] = {"rcopy_sync": ratio(sync_lat, b4),
                                            "drbd_C": ratio(drbd_lat, b4), "bound_ms": b4}
    ratios["sync_lat_vs_raw_plus_rtt"] = {"rcopy_sync": ratio(sync_lat, bound),
                                          "drbd_C": ratio(drbd_lat, bound_for("drbd_C")), "bound_ms": bound}

    # ----------------------------------------------------------------- fast link
    fast = {c: res.get(c, {}) for c, _ in FAST_CONFIGS}
    if any(fast.values()) or any(k.startswith("fast") for k in kv):
        L.append("")
        L.append(f"fast link: both ends on VM a over 127.0.0.1, {kv.get('meta.fast_mb', '?')} MiB loop "
                 "devices in a's tmpfs, link unshaped; CPU is a's")
        L.append(" " * w0 + "".join(t.rjust(cw) for _, t in FAST_CONFIGS))
        for wl, title, key in FAST_WORKLOADS:
            L.append(title.ljust(w0) + "".join(fmt(m(c, wl)).rjust(cw) for c, _ in FAST_CONFIGS))
            if key == "mbps":
                L.append("  IOPS".ljust(w0) + "".join(fmt(m(c, wl, "iops")).rjust(cw) for c, _ in FAST_CONFIGS))
            else:
                L.append("  MB/s".ljust(w0) + "".join(fmt(m(c, wl, "mbps")).rjust(cw) for c, _ in FAST_CONFIGS))
            sk = "sustained_mbps" if key == "mbps" else "sustained_iops"
            L.append("  incl. drain afterwards".ljust(w0) + "".join(
                ("-" if c == "fast_raw" else fmt(m(c, wl, sk))).rjust(cw) for c, _ in FAST_CONFIGS))
            L.append("  rounds (min-max)".ljust(w0) + "".join(spread(c, wl).rjust(cw) for c, _ in FAST_CONFIGS))
            L.append("  CPU ms/MiB (a)".ljust(w0) +
                     "".join(fmt(m(c, wl, "cpu_ms_per_mib")).rjust(cw) for c, _ in FAST_CONFIGS))
        fr = {}
        L.append(" " * w0 + "".join(t.rjust(cw) for t in ("seq MB/s", "IOPS QD16", "CPU seq", "CPU r16")))
        for title, a, b in (("rcopy sync / DRBD C", "fast_rcopy_sync", "fast_drbd_C"),
                            ("rcopy async / DRBD A", "fast_rcopy_async", "fast_drbd_A"),
                            ("rcopy sync / raw loop", "fast_rcopy_sync", "fast_raw"),
                            ("rcopy async / raw loop", "fast_rcopy_async", "fast_raw")):
            r = {"seq": ratio(m(a, "seq"), m(b, "seq")), "r16": ratio(m(a, "r16"), m(b, "r16")),
                 "seq_cpu": ratio(m(a, "seq", "cpu_ms_per_mib"), m(b, "seq", "cpu_ms_per_mib")),
                 "r16_cpu": ratio(m(a, "r16", "cpu_ms_per_mib"), m(b, "r16", "cpu_ms_per_mib"))}
            fr[f"{a}/{b}"] = r
            L.append(("  " + title).ljust(w0) +
                     "".join(fx(r[x]).rjust(cw) for x in ("seq", "r16", "seq_cpu", "r16_cpu")))
        ratios["fast"] = fr

    # the alternating phase: rcopy and DRBD both up, their rounds taken in turn, so
    # each rcopy round has a DRBD round of the same minutes beside it
    alt = {}
    for mode, rc, dc in ALT_PAIRS:
        for wl, metric, name in (("seq", "mbps", "seq"), ("seq", "sustained_mbps", "seq_drain"),
                                 ("r16", "iops", "r16"), ("r1", "lat_ms", "r1")):
            per = []
            for r in range(1, rounds + 1):
                k = wl + at(r)
                a, b = one_round(rc, k), one_round(dc, k)
                if a and b and a.get(metric) and b.get(metric):
                    per.append({"rcopy": a[metric], "drbd": b[metric], "ratio": a[metric] / b[metric]})
            if per:
                alt[f"{rc}/{dc}.{name}"] = {"rounds": per,
                                          "median_ratio": statistics.median(x["ratio"] for x in per)}
        # each product's seq rate incl. drain against the iperf3 run just before that
        # round (bench.sh alt_phase): the link of those minutes, not of the run's ends
        for cfg in (rc, dc):
            per = []
            for r in range(1, rounds + 1):
                a, lkr = one_round(cfg, "seq" + at(r)), num(kv.get(f"link.alt_{mode}_iperf{at(r)}"))
                if a and a.get("sustained_mbps") and lkr:
                    per.append({"mbps": a["sustained_mbps"], "link": lkr, "ratio": a["sustained_mbps"] / lkr})
            if per:
                alt[f"{cfg}.seq_drain_vs_link"] = {"rounds": per,
                                                   "median_ratio": statistics.median(x["ratio"] for x in per)}
    if alt:
        L.append("")
        L.append("alternating (both pairs up, one round of each in turn, each drained before the next):")
        for mode, rc, dc in ALT_PAIRS:
            for wl, title in (("seq", "seq 1M QD8 MB/s"), ("seq_drain", "seq 1M QD8 MB/s incl. drain"),
                              ("r16", "rand 4k QD16 IOPS"), ("r1", "rand 4k QD1 latency ms")):
                a = alt.get(f"{rc}/{dc}.{wl}")
                if not a:
                    continue
                rounds_txt = ", ".join(f"{fmt(x['rcopy'])}/{fmt(x['drbd'])}" for x in a["rounds"])
                L.append(f"  rcopy {mode} / DRBD {dc[-1]}, {title}: median ratio {fx(a['median_ratio'])} "
                         f"(rounds rcopy/DRBD: {rounds_txt})")
            for cfg, who in ((rc, f"rcopy {mode}"), (dc, f"DRBD {dc[-1]}")):
                a = alt.get(f"{cfg}.seq_drain_vs_link")
                if a:
                    rounds_txt = ", ".join(f"{fmt(x['mbps'])}/{fmt(x['link'])}" for x in a["rounds"])
                    L.append(f"  {who}, seq 1M QD8 MB/s incl. drain / iperf3 just before the round: median "
                             f"{fx(a['median_ratio'])} (rounds: {rounds_txt})")
    ratios["alternating"] = alt

    # ----------------------------------------------------------------- targets
    targets = []

    def target(name, value, limit, ok_if_ge=True):
        if value is None or limit is None:
            met = None
        else:
            met = value >= limit if ok_if_ge else value <= limit
        targets.append({"target": name, "value": value, "limit": limit, "met": met})

    iops_cap = None
    if m("raw", "r16") is not None:
        iops_cap = m("raw", "r16")
        if lk:
            iops_cap = min(iops_cap, lk * 1e6 / 4096)
    target("async seq MB/s incl. drain >= 0.9 x link", m("rcopy_async", "seq", "sustained_mbps"),
           0.9 * lk if lk else None)
    a = alt.get("alt_rcopy_async.seq_drain_vs_link")
    target("async seq MB/s incl. drain >= 0.9 x iperf3 just before it (alternating rounds, median ratio)",
           a["median_ratio"] if a else None, 0.9)
    target("async rand4k QD16 IOPS incl. drain >= 0.9 x min(raw, link/4k)",
           m("rcopy_async", "r16", "sustained_iops"), 0.9 * iops_cap if iops_cap else None)
    target("async QD1 latency <= 1.1 x raw (ms)", m("rcopy_async", "r1"),
           1.1 * raw_lat if raw_lat is not None else None, ok_if_ge=False)
    target("sync QD1 latency <= 1.1 x (raw + ping avg) (ms)", sync_lat,
           1.1 * bound if bound is not None else None, ok_if_ge=False)
    for c in ("rcopy_sync", "rcopy_async"):
        target(f"{c} resync MB/s >= 0.9 x min(raw disk, iperf3)", rmb(c),
               0.9 * best_resync_bound if best_resync_bound else None)
        target(f"{c} resync MB/s >= 0.9 x the disk-TCP-disk pipe (best of the run)", rmb(c), 0.9 * pipe if pipe else None)
        target(f"{c} resync / the pipe just before and after it >= 0.9 (median of rounds)",
               si(c, "resync", "vs_pipe_beside"), 0.9)
    for c in ("rcopy_sync", "rcopy_async"):
        target(f"{c} resync bytes / written after a 4k random outage <= 1.5",
               ro(c, "sent_per_written"), 1.5, ok_if_ge=False)
    a = alt.get("alt_rcopy_sync/alt_drbd_C.seq")
    target("rcopy sync seq MB/s >= 1.0 x DRBD C (alternating rounds, median ratio)",
           a["median_ratio"] if a else None, 1.0)
    for mode, rc, dc in ALT_PAIRS:
        a = alt.get(f"{rc}/{dc}.r16")
        target(f"rcopy {mode} rand4k QD16 IOPS >= 1.2 x DRBD {dc[-1]} (alternating rounds, median ratio)",
               a["median_ratio"] if a else None, 1.2)
    for a, b in PAIRS:
        for wl, title, key in WORKLOADS:
            target(f"{a} {wl} beats {b}", m(a, wl), m(b, wl), ok_if_ge=(key != "lat_ms"))
        target(f"{a} resync beats {b}", rmb(a), rmb(b))
    L.append("")
    L.append("targets (mission.md, informational; the bench never fails on speed):")
    for t in targets:
        st = {True: "met   ", False: "MISSED", None: "n/a   "}[t["met"]]
        L.append(f"  {st} {t['target']}: {fmt(t['value'])} vs {fmt(t['limit'])}")

    out = {
        "meta": {k[5:]: v for k, v in kv.items() if k.startswith("meta.")},
        "notes": {k: v for k, v in kv.items()
                  if k.endswith(".skipped") or k.endswith(".failed") or k.startswith("note.")},
        "link": link,
        "fio": res,
        "copy_and_resync": sync_info,
        "randout": randout,
        "ratios": ratios,
        "targets": targets,
        "table": L,
    }
    with open(out_path, "w") as f:
        json.dump(out, f, indent=1, sort_keys=False)
    print("\n".join(L))
    print(f"\nJSON: {out_path}")


if __name__ == "__main__":
    main()
