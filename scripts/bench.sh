#!/usr/bin/env bash
# `make bench`: measure rcopy against the raw disk and DRBD 8.4, side by side in one run,
# on two QEMU/TCG VMs of the test kernel linked by a private network (see
# Documentation/rcopy.rst, "Replication", for what each mode costs and why; one run's
# figures are in README.md, "Performance").
#
#   scripts/bench.sh
#
# VM a (10.77.0.1) and VM b (10.77.0.2) on net n0. Disks (same on both, plus vde on a):
#   vda rcopy data   vdb rcopy metadata   vdc DRBD data   vdd DRBD metadata (external)
#   vde (a only) the raw-disk baseline, same size as the data disks
#   the pipe disks, BENCH_RESYNC_MB each: vdf on a (the resync's data), vde on b
# Steps: link (ping, iperf3), raw disk, rcopy sync, rcopy sync with a cold activity log,
# DRBD protocol C, rcopy async, DRBD protocol A (same-protocol pairs next to each other in
# time: the host may be shared), the fast case, link again (iperf3; the client starts once
# the server on b is seen listening, and a failed run is one NOTE line, not an error).
# Each disk configuration runs the same three fio jobs on a (direct
# I/O, libaio, time-based): sequential 1 MiB writes QD8, random 4k writes QD16, random 4k
# writes QD1 (preceded by 20 pings, so its latency can be set against raw + that RTT).
# After each job on a replicated device the bench waits until the peer has everything
# (the "drain"), so every job starts from a clean pair and the table can show throughput
# including that drain. Then a resync after a link cut: rcopy via vm_link down (the
# primary notices after timeout_ms), DRBD via `drbdadm disconnect`; BENCH_RESYNC_MB written
# meanwhile; the rate is the resynced bytes over the time from reconnection to in sync.
# Each resync has the disk-TCP-disk pipe (no engine) run just before and just after it
# on the pipe disks, and is set against the mean of those two: the host's disk and
# link speeds drift by a fifth or more over a run, so a pipe timed elsewhere in the
# run is not the ceiling this resync had.
# (For that resync the kernel-log mark is the carrier's return as a's kernel sees it,
# written by scripts/vmtests/lib/carrierwatch.py, not the QMP command before it.)
# Then a second outage, by the operator for both products (rcopy: `dmsetup message r0 0
# disconnect`/`connect`; DRBD: `drbdadm disconnect`/`connect`), with BENCH_RANDOUT_MB of
# 4 KiB random writes during it (fio randwrite, direct, QD16, offsets over the whole device from
# fio's random map, so no block twice, seeded with BENCH_RANDOUT_SEED: every product gets
# the same offsets); the resync's cost is the bytes the primary sent from just before
# the reconnection until in sync (rcopy: delta of sent_bytes in `dmsetup status`;
# DRBD: the ns: KiB counter of /proc/drbd, which 8.4 zeroes at connect), per byte
# written, with the times from the reconnection request (taken just before the command
# that makes it, so the time the command itself takes counts for both) to reconnected and
# to in sync.
# CPU cost: around every fio job the busy ticks of /proc/stat's first line (user, nice,
# system, irq, softirq, steal) on a and b, before the job, after it and once drained;
# the table shows (a+b) ms per MiB fio wrote, until drained (the replica's work on data
# still queued when fio ended counts; the drain poll's own dmsetup/awk runs too).
# The fast case (BENCH_FAST_MB, 0 skips it): on a alone, both ends of each pair in one
# kernel over 127.0.0.1, on loop devices backed by files in a's tmpfs (/dev/shm; a gets
# 2 x BENCH_FAST_MB more memory): no link shaping, no disk latency, so the engines' own
# cost shows. Raw loop device, rcopy sync and async (fp0 -> fs0, port 7790), DRBD 8.4
# protocols C and A (a resource cannot pair with itself: two resources fa -> fb, minors
# 1 and 2, with swapped addresses 127.0.0.1:7800/7801, each in a config file of its own);
# seq 1M QD8 and random 4k QD16; MB/s, IOPS and a's CPU ms per MiB. a has one vCPU:
# fio, both ends and the loop devices share it.
# rcopy pairs are made like scripts/vmtests/lib/pair.sh (dmsetup tables; secondary on b
# first); the first one does a full initial copy (timed and reported), the async pair
# reuses the metadata of the cleanly removed sync pair and starts in sync. DRBD 8.4 (the
# in-tree module of the test kernel, handed to the VMs through their share directories,
# driven by drbd-utils' drbdadm-84 with -c /tmp/drbd.conf) skips its initial sync with
# `drbdadm -- --clear-bitmap new-current-uuid` on the fresh pair, then switches protocols
# by down/up with the same metadata, and is down while rcopy runs; its resync is
# unthrottled (c-plan-ahead 0, resync-rate 1000M), everything else is the 8.4 default.
# The guests get the host's TSC frequency on their command line (see "guest clock"),
# otherwise the test kernel keeps a 4 ms jiffies clock and RTTs read 0 or 4 ms.
#
# Output: a table on stdout; the same as JSON in $BENCH_OUT (default
# ${TMPDIR:-/tmp}/rcopy-bench-<date>/bench.json) with fio's raw JSON, kernel consoles and
# a trace log in the directory next to it (<BENCH_OUT without .json>-raw/).
# Exit status: 0 unless the VMs cannot boot or rcopy fails functionally (never on speed;
# a DRBD problem is reported in one line and skipped).
#
# Rounds: every fio job runs BENCH_ROUNDS times in a row (each drained before the next;
# the cold-AL variant once), and the table shows the median round (its CPU and drain
# figures with it) and the spread of the rounds. Then the alternating phase: both
# products up at once, their jobs (seq, QD16, QD1) taken in turn, BENCH_ROUNDS
# rounds each, so the ratio compares rounds of the same minutes (see alt_phase); an
# iperf3 run starts each round, and the seq jobs' rates including the drain are set
# against it (the async target), not against the best iperf3 of the run's two ends.
# The resync after a cable cut runs BENCH_RESYNC_ROUNDS times per product, each with
# the pipe just before and after it: one resync moved from 0.6x to 1.06x of the pipe
# beside it between rounds of one boot (the host drops some of the virtual link's
# datagrams, and TCP's retransmissions vary with its load), so the table shows the
# median round and the median of the per-round ratios to the pipe.
# Settings: BENCH_RUNTIME (s per fio job, 10), BENCH_ROUNDS (3), BENCH_RESYNC_ROUNDS (3),
# BENCH_DISK_MB (256), BENCH_RESYNC_MB (64),
# BENCH_RANDOUT_MB (8), BENCH_RANDOUT_SEED (4242), BENCH_FAST_MB (256), BENCH_OUT,
# BENCH_TSC_KHZ (guest TSC frequency; default: the host's from its kernel log; 0 keeps
# the test kernel's jiffies clock), KDIR, RCOPY_KERNEL, RCOPY_MODULE, KEEP_VMS=1.
set -uo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$HERE/common.sh"

RT=${BENCH_RUNTIME:-10}
DISK_MB=${BENCH_DISK_MB:-256}
RESYNC_MB=${BENCH_RESYNC_MB:-64}
RANDOUT_MB=${BENCH_RANDOUT_MB:-8}
RANDOUT_SEED=${BENCH_RANDOUT_SEED:-4242}
FAST_MB=${BENCH_FAST_MB:-256}
ROUNDS=${BENCH_ROUNDS:-3}
RESYNC_ROUNDS=${BENCH_RESYNC_ROUNDS:-3}
FAST_PORT=7790
BENCH_HELPERS=$RCOPY_ROOT/scripts/bench
MODULE=${RCOPY_MODULE:-$RCOPY_ROOT/rust/dm_rcopy.ko}
SECRET=bench-$$-$RANDOM
PORT=7788
DRBD_PORT=7789
STAMP=$(date +%Y%m%d-%H%M%S)
BENCH_OUT=${BENCH_OUT:-${TMPDIR:-/tmp}/rcopy-bench-$STAMP/bench.json}
case $BENCH_OUT in /*) ;; *) BENCH_OUT=$PWD/$BENCH_OUT ;; esac
RAW=${BENCH_OUT%.json}-raw
mkdir -p "$RAW/fio" "$(dirname "$BENCH_OUT")" || die "cannot create $RAW"
: >"$RAW/kv"
LOG=$RAW/trace.log

[[ $RT =~ ^[1-9][0-9]*$ && $DISK_MB =~ ^[1-9][0-9]*$ && $RESYNC_MB =~ ^[1-9][0-9]*$ ]] ||
	die "BENCH_RUNTIME, BENCH_DISK_MB and BENCH_RESYNC_MB must be positive integers"
((RESYNC_MB * 2 <= DISK_MB)) || die "BENCH_RESYNC_MB must be at most half of BENCH_DISK_MB"
[[ $RANDOUT_MB =~ ^[1-9][0-9]*$ && $RANDOUT_SEED =~ ^[0-9]+$ && $FAST_MB =~ ^[0-9]+$ ]] ||
	die "BENCH_RANDOUT_MB must be a positive integer, BENCH_RANDOUT_SEED and BENCH_FAST_MB integers"
[[ $ROUNDS =~ ^[1-9][0-9]?$ ]] || die "BENCH_ROUNDS must be an integer from 1 to 99"
[[ $RESYNC_ROUNDS =~ ^[1-9][0-9]?$ ]] || die "BENCH_RESYNC_ROUNDS must be an integer from 1 to 99"
((RANDOUT_MB * 2 <= DISK_MB)) || die "BENCH_RANDOUT_MB must be at most half of BENCH_DISK_MB"
[[ -f $MODULE ]] || die "no module at $MODULE: run 'make module'"
for t in fio ping iperf3 python3 dmsetup; do
	command -v "$t" >/dev/null || die "$t is not installed (the VMs use the host's root)"
done

KTREE=${KDIR:-$("$RCOPY_ROOT/scripts/build-kernel.sh")} || die "scripts/build-kernel.sh failed"
export RCOPY_KERNEL=${RCOPY_KERNEL:-$KTREE/arch/x86/boot/bzImage}
# shellcheck source=vm/lib.sh
. "$RCOPY_ROOT/scripts/vm/lib.sh"
vm_setup_run_dir

# Progress on stdout (and in the log); the harness' traces and failing commands' output
# go to the log only.
exec 3>&1 4>&2 2>>"$LOG"
VM_TRACE=1
say() { printf '[bench] %s\n' "$*" >&3; printf '[bench %(%T)T] %s\n' -1 "$*" >&2; }
# rec KEY VALUE: one result for report.py
rec() { printf '%s\t%s\n' "$1" "${*:2}" >>"$RAW/kv"; }
RCOPY_BROKEN=
# rcopy_fail REASON: rcopy failed functionally: report and stop measuring it
rcopy_fail() {
	say "rcopy FAILED: $*"
	rec rcopy.failed "$*"
	RCOPY_BROKEN=1
	return 1
}

T_START=$SECONDS
rec meta.date "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
rec meta.runtime_s "$RT"
rec meta.rounds "$ROUNDS"
rec meta.disk_mb "$DISK_MB"
rec meta.resync_mb "$RESYNC_MB"
rec meta.resync_rounds "$RESYNC_ROUNDS"
rec meta.randout_mb "$RANDOUT_MB"
rec meta.randout_seed "$RANDOUT_SEED"
rec meta.fast_mb "$FAST_MB"
rec meta.host "$(uname -n), $(nproc) cpus"
rec meta.load_start "$(cut -d' ' -f1-3 /proc/loadavg)"
rec meta.kernel "$RCOPY_KERNEL"
rec meta.module "$MODULE"
rec meta.git "$(git -C "$RCOPY_ROOT" describe --always --dirty 2>/dev/null || echo unknown)"

# ------------------------------------------------------------------ guest clock
# Without ACPI/HPET, and with TSC calibration against the PIT failing under TCG, the
# test kernel runs on the jiffies clocksource (4 ms steps at HZ=250): ping shows 0 or
# 4 ms and fio latencies are coarse. Under TCG the guest TSC is the host's, so give the
# guest the host's TSC frequency.
tsc_khz=${BENCH_TSC_KHZ:-}
if [[ -z $tsc_khz ]] && grep -qw constant_tsc /proc/cpuinfo && grep -qw nonstop_tsc /proc/cpuinfo; then
	mhz=$({ dmesg 2>/dev/null || journalctl -k -b 2>/dev/null; } |
		sed -n -e 's/.*tsc: Refined TSC clocksource calibration: \([0-9.]*\) MHz.*/\1/p' \
			-e 's/.*tsc: Detected \([0-9.]*\) MHz processor.*/\1/p' | tail -n 1)
	[[ -n $mhz ]] && tsc_khz=$(awk -v m="$mhz" 'BEGIN { printf "%d", m * 1000 }')
fi
APPEND=()
if [[ -n $tsc_khz && $tsc_khz != 0 ]]; then
	APPEND=(--append "tsc_early_khz=$tsc_khz" --append tsc=reliable --append clocksource=tsc)
	rec meta.guest_tsc_khz "$tsc_khz"
else
	rec note.clock "host TSC frequency unknown: the guests keep the jiffies clock (4 ms resolution)"
fi

# ------------------------------------------------------------------ boot
say "results: $BENCH_OUT (raw data and logs: $RAW)"
say "booting VMs a and b (${DISK_MB} MiB data disks, runtime ${RT} s per fio job)"
d="--disk $DISK_MB --disk 8 --disk $DISK_MB --disk 8"
# a holds the fast case's four loop files in its tmpfs: give it that much more memory
if ! vm_start_many "a $d --disk $DISK_MB --disk $RESYNC_MB --net n0 --ip 10.77.0.1/24 --mem $((VM_MEM + 2 * FAST_MB + 32)) ${APPEND[*]}" \
	"b $d --disk $RESYNC_MB --net n0 --ip 10.77.0.2/24 ${APPEND[*]}"; then
	say "the VMs did not boot (see $LOG)"
	exit 1
fi
# Allocate the sparse disk files now, so no configuration pays the host's block
# allocation on its first writes and another does not.
for v in a b; do
	for i in 0 1 2 3 4 5; do
		f=$(vm_disk "$v" "$i")
		[[ -f $f ]] && fallocate -l "$(stat -c %s "$f")" "$f" 2>/dev/null
	done
done
clk=$(vm_run a --timeout 30 'cat /sys/devices/system/clocksource/clocksource0/current_clocksource')
rec meta.clocksource "${clk:-unknown}"
rec meta.user_hz "$(vm_run a --timeout 30 'getconf CLK_TCK')"
[[ $clk == tsc* ]] || say "note: guest clocksource is '${clk:-unknown}' (coarse timestamps)"

for v in a b; do
	vm_run "$v" --timeout 60 "insmod $MODULE" || { rcopy_fail "insmod dm_rcopy failed on $v"; }
	# what a MiB of CRC-32C (the kernel's and the table) and of memcpy costs this guest,
	# and which CRC the module chose (timed at load)
	rec "meta.byte_costs_$v" "$(vm_run "$v" --timeout 30 "dmesg | sed -n 's/.*rcopy: cost per MiB on this CPU: //p' | tail -n 1")"
	# the VM sees the host's root, but /var/cache (where the kernel tree lives) is a
	# tmpfs inside: hand the DRBD modules over through the share directory
	cp "$KTREE/lib/lru_cache.ko" "$KTREE/drivers/block/drbd/drbd.ko" "$(vm_share_dir "$v")/" 2>/dev/null
	# random data for the resync tests
	vm_run "$v" --timeout 60 "head -c ${RESYNC_MB}M /dev/urandom >/tmp/resync.bin" >/dev/null
done

# ------------------------------------------------------------------ helpers
# The VMs whose CPU time a fio job is charged with (the fast case: a alone).
CPU_VMS="a b"
# cpu_mark CONFIG WORKLOAD PHASE: busy CPU ticks (USER_HZ) of each VM in CPU_VMS, from the
# first line of /proc/stat: user+nice+system+irq+softirq+steal. PHASE 0 before the fio
# job, 1 right after it, 2 once drained. Recorded as CONFIG.WORKLOAD.cpu_<vm>_<PHASE>,
# and all ticks (idle and iowait too) as CONFIG.WORKLOAD.all_<vm>_<PHASE>, for how busy
# each VM's one vCPU was during the job.
cpu_mark() {
	local v t
	for v in $CPU_VMS; do
		t=$(vm_run "$v" --timeout 30 "awk '/^cpu /{print \$2+\$3+\$4+\$7+\$8+\$9, \$2+\$3+\$4+\$5+\$6+\$7+\$8+\$9; exit}' /proc/stat")
		[[ $t =~ ^[0-9]+\ [0-9]+$ ]] || continue
		rec "$1.$2.cpu_${v}_$3" "${t% *}"
		rec "$1.$2.all_${v}_$3" "${t#* }"
	done
}

# at_round R: how round R's keys are told apart: nothing for the first, @R after it
# (seq, seq@2, ...; CONFIG.resync_s, CONFIG.resync@2_s, ...; report.py's `at`)
at_round() { if (($1 > 1)); then printf '@%d' "$1"; fi; }

# rounds_of "WORKLOAD..." [N]: each workload N (default BENCH_ROUNDS) times: seq seq@2 ...
rounds_of() {
	local wl r n=${2:-$ROUNDS}
	for wl in $1; do
		for ((r = 1; r <= n; r++)); do
			printf '%s%s ' "$wl" "$(at_round "$r")"
		done
	done
}

# run_fio CONFIG WORKLOAD[@ROUND] DEVICE [AFTER_SCRIPT]: one fio job on a; its JSON lands in
# $RAW/fio/CONFIG-WORKLOAD.json; AFTER_SCRIPT's output (the device's state right after
# the job) in the kv file.
run_fio() {
	local cfg=$1 wl=$2 dev=$3 after=${4:-true} args out tag=$1-$2
	cpu_mark "$cfg" "$wl" 0
	case ${wl%@*} in
	seq) args="--rw=write --bs=1M --iodepth=8" ;;
	r16) args="--rw=randwrite --bs=4k --iodepth=16" ;;
	r1) args="--rw=randwrite --bs=4k --iodepth=1" ;;
	esac
	out=$(vm_run a --timeout $((RT + 150)) "fio --name=$tag --filename=$dev $args --ioengine=libaio \
--direct=1 --time_based --runtime=$RT --randrepeat=0 --norandommap --output-format=json \
--output=/run/vm/share/$tag.json >/run/vm/share/$tag.err 2>&1; rc=\$?; ($after) 2>&1 | tr '\n' ' '; exit \$rc")
	local rc=$?
	cpu_mark "$cfg" "$wl" 1
	cp "$(vm_share_dir a)/$tag.json" "$RAW/fio/$tag.json" 2>/dev/null
	cat "$(vm_share_dir a)/$tag.err" >>"$LOG" 2>/dev/null
	rec "$cfg.$wl.after" "$out"
	if ((rc != 0)); then
		say "  fio $tag failed (exit $rc): $(tail -n 3 "$(vm_share_dir a)/$tag.err" 2>/dev/null | tr '\n' ' ')"
		return 1
	fi
	say "  $(python3 - "$RAW/fio/$tag.json" <<'EOF'
import json, sys
t = open(sys.argv[1]).read(); d = json.loads(t[t.index("{"):]); j = d["jobs"][0]; w = j["write"]
print(f"{j['jobname']}: {w['bw_bytes']/1e6:.1f} MB/s, {w['iops']:.0f} IOPS, lat {w['lat_ns']['mean']/1e6:.2f} ms")
EOF
)"
}

# kv_of TEXT KEY: value of KEY=value in TEXT (words or lines)
kv_of() { tr ' ' '\n' <<<"$1" | sed -n "s/^$2=//p" | head -n 1; }
# line_of TEXT KEY: the rest of the line KEY=... in TEXT
line_of() { sed -n "s/^$2=//p" <<<"$1" | head -n 1; }

# drain CONFIG WORKLOAD KIND [ENV]: wait (bounded) until the peer has everything; record
# the time. ENV (RC_DEV=name, DRBD_MINOR=n) tells watch.sh which device to watch.
drain() {
	local out t
	out=$(vm_run a --timeout 330 "${4:-} bash $BENCH_HELPERS/watch.sh $3 300 0.1")
	t=$(kv_of "$out" t_done)
	if [[ -z $t ]]; then
		say "  $1 $2: not drained after 300 s: $(line_of "$out" status)"
		return 1
	fi
	rec "$1.$2.drain_s" "$t"
	cpu_mark "$1" "$2" 2
	say "  drained in $t s"
}

# ------------------------------------------------------------------ link
# ping_stats PREFIX: 20 pings a -> b; records PREFIX.ping_{min,avg,median,max}_ms
ping_stats() {
	local out st
	out=$(vm_run a --timeout 60 'ping -c 20 -i 0.2 -W 2 10.77.0.2')
	st=$(python3 -c '
import re, statistics, sys
t = [float(x) for x in re.findall(r"time=([0-9.]+) ms", sys.stdin.read())]
if t:
    print(f"{min(t):.3f} {statistics.mean(t):.3f} {statistics.median(t):.3f} {max(t):.3f} {len(t)}")' <<<"$out")
	if [[ -z $st ]]; then
		say "  ping failed: $(tail -n 2 <<<"$out" | tr '\n' ' ')"
		return 1
	fi
	local mn av md mx n
	read -r mn av md mx n <<<"$st"
	rec "$1.ping_min_ms" "$mn"
	rec "$1.ping_avg_ms" "$av"
	rec "$1.ping_median_ms" "$md"
	rec "$1.ping_max_ms" "$mx"
	say "  ping a->b ($n replies) min/avg/median/max $mn/$av/$md/$mx ms"
}

# iperf KEY: 5 s of iperf3 a -> b (server on b, default options); records KEY in MB/s.
# The client starts only once the server is seen listening; if iperf3 still cannot
# measure, one line says why (note.KEY) and the bench goes on.
iperf() {
	local job mbps why='' share
	share=$(vm_share_dir a)
	rm -f "$share/iperf.json"
	job=$(vm_spawn b --timeout 60 'exec iperf3 -s -1 -B 10.77.0.2') || why="cannot start the server on b"
	if [[ -z $why ]] && ! vm_wait_until b 20 "ss -Hltn | grep -q '10.77.0.2:5201 '" >/dev/null; then
		why="the server on b was not listening after 20 s"
	fi
	if [[ -z $why ]] && ! vm_run a --timeout 60 'for i in 1 2 3 4 5; do
		iperf3 -c 10.77.0.2 -t 5 -J >/run/vm/share/iperf.json 2>&1 && exit 0; sleep 1; done; exit 1' >/dev/null; then
		why="client: $(python3 -c 'import json, sys; print(json.load(open(sys.argv[1])).get("error", "?"))' "$share/iperf.json" 2>/dev/null || echo "no output")"
	fi
	[[ -z $why ]] && mbps=$(python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
print(round(d["end"]["sum_received"]["bits_per_second"] / 8e6, 2))' "$share/iperf.json" 2>/dev/null)
	# the server exits after its one client; if it did not (no client came), stop it
	if [[ -n $job ]] && ! vm_wait b "$job" 15 >/dev/null 2>&1; then vm_job_kill b "$job"; fi
	cp "$share/iperf.json" "$RAW/$1.json" 2>/dev/null
	if [[ -n $mbps ]]; then
		rec "$1" "$mbps"
		say "  iperf3 a->b $mbps MB/s"
	else
		rec "note.$1" "iperf3 a->b did not measure: ${why:-unreadable output}"
		say "  iperf3 a->b did not measure (${why:-unreadable output}); the report uses the other run"
	fi
}

# loss_mark, then loss_rec KEY: the TCP segments a retransmitted in between (nstat in
# a; the bench's only TCP traffic from a is the transfer being measured) as
# KEY_retrans_segs, and the datagrams the host's UDP sockets dropped for a full receive
# buffer (RcvbufErrors in the host's /proc/net/snmp: the VMs' link is a QEMU UDP
# socket, so that is where the virtual wire loses frames) as KEY_host_udp_drops. A
# transfer that lost more frames spent more of its time in TCP's recovery.
host_udp_drops() { awk '/^Udp: [0-9]/ { print $6; exit }' /proc/net/snmp 2>/dev/null; }
LOSS_UDP0=
loss_mark() {
	vm_run a --timeout 30 'nstat -n >/dev/null 2>&1; true' >/dev/null
	LOSS_UDP0=$(host_udp_drops)
}
loss_rec() {
	local n u
	n=$(vm_run a --timeout 30 "nstat -z TcpRetransSegs 2>/dev/null | awk '\$1 == \"TcpRetransSegs\" { print \$2 }'")
	u=$(host_udp_drops)
	[[ $n =~ ^[0-9]+$ ]] && rec "$1_retrans_segs" "$n"
	[[ $u =~ ^[0-9]+$ && $LOSS_UDP0 =~ ^[0-9]+$ ]] && rec "$1_host_udp_drops" "$((u - LOSS_UDP0))"
}

# pipe KEY [A_DEV B_DEV]: RESYNC_MB from a's A_DEV to b's B_DEV (default: /dev/vda,
# used while no pair holds it: before the first rcopy pair, after the last) over TCP
# with no replication engine (scripts/bench/pipe.py: O_DIRECT reads ahead on a, writes
# behind on b, fsync, one byte back), records KEY in MB/s: min(disk, link) as it is
# when a's disk, both network stacks and b's disk work at once on this host, the
# ceiling for a resync. `pipe_beside` runs it on the pipe disks next to a resync.
pipe() {
	local job out mbps src=${2:-/dev/vda} dst=${3:-/dev/vda}
	loss_mark
	job=$(vm_spawn b --timeout 200 "exec python3 $BENCH_HELPERS/pipe.py recv 10.77.0.2 7798 $dst $((RESYNC_MB << 20))") &&
		wait_until 60 grep -q listening "$(_vm_dir b)/ctl/jobs/out.$job" &&
		out=$(vm_run a --timeout 200 "python3 $BENCH_HELPERS/pipe.py send 10.77.0.2 7798 $src $((RESYNC_MB << 20))") &&
		vm_wait b "$job" 30 >/dev/null
	mbps=$(kv_of "$out" mbps)
	if [[ -n $mbps ]]; then
		rec "$1" "$mbps"
		loss_rec "${1%_mbps}"
		say "  disk a -> TCP -> disk b, $RESYNC_MB MiB, no engine: $mbps MB/s"
	else
		[[ -n $job ]] && vm_job_kill b "$job" 2>/dev/null
		rec "note.$1" "the disk-to-disk pipe did not measure: ${out:-no output}"
		say "  the disk-to-disk pipe did not measure: ${out:-no output}"
	fi
}

# pipe_beside KEY: the pipe on the pipe disks (a's vdf, holding the resync's data, to
# b's vde), which no pair uses: just before and just after a resync (KEY_before,
# KEY_after), so the resync is set against the ceiling of its own minute
pipe_beside() { pipe "$1" /dev/vdf /dev/vde; }

# rtt4k KEY: 200 round trips of a 4 KiB request and a 32-byte answer between two
# processes on a and b over TCP (pipe.py rtt/echo); records KEY_median_ms and
# KEY_mean_ms: a replicated 4 KiB write's round trip before disk or engine work
rtt4k() {
	local job out
	job=$(vm_spawn b --timeout 120 "exec python3 $BENCH_HELPERS/pipe.py echo 10.77.0.2 7797") &&
		wait_until 60 grep -q listening "$(_vm_dir b)/ctl/jobs/out.$job" &&
		out=$(vm_run a --timeout 100 "python3 $BENCH_HELPERS/pipe.py rtt 10.77.0.2 7797 200")
	[[ -n $job ]] && ! vm_wait b "$job" 10 >/dev/null 2>&1 && vm_job_kill b "$job"
	if [[ -n $(kv_of "$out" median_ms) ]]; then
		rec "$1_median_ms" "$(kv_of "$out" median_ms)"
		rec "$1_mean_ms" "$(kv_of "$out" mean_ms)"
		say "  4 KiB request, 32-byte answer over TCP a -> b -> a: median $(kv_of "$out" median_ms) ms, mean $(kv_of "$out" mean_ms) ms"
	else
		rec "note.$1" "the 4 KiB TCP round trip did not measure: ${out:-no output}"
	fi
}

say "link: ping, iperf3, a 4 KiB TCP round trip and a disk-to-disk pipe a -> b"
ping_stats link
iperf link.iperf_mbps
rtt4k link.rtt4k
# real data to carry (the resync's), not a sparse file's zeros
for d in /dev/vda /dev/vdf; do
	vm_run a --timeout 120 "dd if=/tmp/resync.bin of=$d bs=1M oflag=direct conv=fsync status=none" >/dev/null
done
pipe link.pipe_mbps

# ------------------------------------------------------------------ raw
say "raw disk (/dev/vde on a)"
for wl in $(rounds_of "seq r16 r1"); do run_fio raw "$wl" /dev/vde; done

# ------------------------------------------------------------------ rcopy
rstatus() { vm_run "$1" --timeout 30 'dmsetup status r0'; }

# rcopy_pair MODE [CFG [OPTION WORDS...]]: secondary on b, then primary on a (with the
# extra table options); wait for duplex and time the initial copy
rcopy_pair() {
	local mode=$1 cfg=${2:-rcopy_$1} out t tc
	shift 2 || shift $#
	local extra="$*" nopt=$((8 + $#))
	vm_run b --timeout 60 "dmsetup create r0 --table \"0 \$(blockdev --getsz /dev/vda) rcopy /dev/vda /dev/vdb 6 role secondary local 10.77.0.2:$PORT secret $SECRET\"" ||
		{ rcopy_fail "cannot create the secondary on b"; return 1; }
	out=$(vm_run a --timeout 700 "dmsetup create r0 --table \"0 \$(blockdev --getsz /dev/vda) rcopy /dev/vda /dev/vdb $nopt role primary peer 10.77.0.2:$PORT secret $SECRET mode $mode $extra\" || exit 99
		bash $BENCH_HELPERS/watch.sh rcopy-sync 600 0.2")
	case $? in
	0) ;;
	99) rcopy_fail "cannot create the primary on a: $out"; return 1 ;;
	*) rcopy_fail "$mode pair did not reach duplex in 600 s: $(line_of "$out" status)"; return 1 ;;
	esac
	t=$(kv_of "$out" t_done) tc=$(kv_of "$out" t_conn)
	local total cs
	total=$(kv_of "$(grep '^status=' <<<"$out")" sync_total)
	cs=$(kv_of "$(grep '^conn_status=' <<<"$out")" state)
	if [[ $cs == copying || $cs == resyncing ]] && ((${total:-0} > 0)); then
		rec "$cfg.copy_bytes" "$total"
		rec "$cfg.copy_s" "$(awk -v a="$t" -v b="$tc" 'BEGIN { printf "%.3f", a - b }')"
		rec "$cfg.copy_connect_s" "$tc"
		say "  duplex: initial copy of $((total >> 20)) MiB took $t s (connected after $tc s)"
	else
		# the metadata device remembers the previous pair (same disks, cleanly removed)
		rec "note.$cfg.copy" "no initial copy: the pair resumed from its metadata (state '$cs' on connect)"
		say "  duplex after $t s, without a copy (state '$cs' on connect: resumed from the metadata)"
	fi
	vm_wait_until b 60 "dmsetup status r0 | grep -q 'state=duplex '" >/dev/null ||
		say "  note: b does not show duplex yet: $(rstatus b)"
}

# kmark LABEL: a command that writes "rcopy-bench: mark LABEL" into the guest's kernel
# log, just before a reconnection (the request or the cable plugged back in).
# report.py reads the kernel's own timestamps after it in the saved console (both
# products log when they connect and when they are in sync): exact, and free of the
# state polling's period and cost.
kmark() { printf "echo 'rcopy-bench: mark %s' >/dev/kmsg" "$1"; }

# rcopy_resync CONFIG [ROUND]: cut the link, write RESYNC_MB, restore it, time the
# resync; ROUND 2 and on record their keys as CONFIG.resync@ROUND_... (and
# CONFIG.pipe@ROUND_...: at_round)
rcopy_resync() {
	local cfg=$1 r=${2:-1} out dirty job t tc s
	s=$(at_round "$r")
	pipe_beside "$cfg.pipe${s}_before_mbps"
	vm_link a down || { say "  vm_link failed"; return 1; }
	# the primary declares the link dead after timeout_ms (5 s) without frames
	if ! vm_wait_until a 60 "dmsetup status r0 | grep -q 'state=suspended '" >/dev/null; then
		vm_link a up
		rcopy_fail "primary did not notice the link cut in 60 s: $(rstatus a)"
		return 1
	fi
	vm_run a --timeout 120 "dd if=/tmp/resync.bin of=/dev/mapper/r0 bs=1M seek=$RESYNC_MB oflag=direct conv=fsync status=none" ||
		{ vm_link a up; rcopy_fail "write while the link is down failed"; return 1; }
	out=$(rstatus a)
	dirty=$(kv_of "$out" dirty_bytes)
	rec "$cfg.resync${s}_dirty_bytes" "$dirty"
	job=$(vm_spawn a --timeout 400 "bash $BENCH_HELPERS/watch.sh rcopy-sync 360 0.1")
	wait_until 30 grep -q started= "$(_vm_dir a)/ctl/jobs/out.$job"
	# the mark is the carrier's return as a's kernel sees it (not the QMP command
	# before it), so "cable back to connected" is the primary's own time
	vm_run a --timeout 30 "nohup python3 $RCOPY_ROOT/scripts/vmtests/lib/carrierwatch.py eth0 $cfg$s \
'rcopy-bench: mark $cfg.resync$s' >/dev/null 2>&1 & true" >/dev/null
	vm_wait_until a 30 "dmesg | grep -q 'rcopy-test: watching $cfg$s\$'" >/dev/null ||
		say "  the carrier watcher did not start: no kernel-log times for this resync"
	loss_mark
	vm_link a up
	out=$(vm_wait a "$job" 420)
	loss_rec "$cfg.resync$s"
	t=$(kv_of "$out" t_done) tc=$(kv_of "$out" t_conn)
	if [[ -z $t ]]; then
		rcopy_fail "no resync to duplex within 360 s after the link came back: $(line_of "$out" status)"
		return 1
	fi
	rec "$cfg.resync${s}_bytes" "$dirty"
	rec "$cfg.resync${s}_s" "$(awk -v a="$t" -v b="$tc" 'BEGIN { printf "%.3f", a - b }')"
	rec "$cfg.resync${s}_connect_s" "$tc"
	say "  resync $r of $((dirty >> 20)) MiB dirty: reconnected after $tc s, duplex after $t s"
	pipe_beside "$cfg.pipe${s}_after_mbps"
}

# randout_fio CONFIG DEVICE: the outage workload of the 4k random measurement: RANDOUT_MB
# of 4 KiB random writes over the whole device (fio's random map: no block twice), with
# the fixed seed RANDOUT_SEED, so every product gets the same offsets
randout_fio() {
	local tag=$1-randout rc
	vm_run a --timeout 300 "fio --name=$tag --filename=$2 --rw=randwrite --bs=4k --iodepth=16 \
--ioengine=libaio --direct=1 --io_size=${RANDOUT_MB}M --randseed=$RANDOUT_SEED --output-format=json \
--output=/run/vm/share/$tag.json >/run/vm/share/$tag.err 2>&1" >/dev/null
	rc=$?
	cp "$(vm_share_dir a)/$tag.json" "$RAW/fio/$tag.json" 2>/dev/null
	cat "$(vm_share_dir a)/$tag.err" >>"$LOG" 2>/dev/null
	((rc == 0)) || say "  fio $tag failed (exit $rc): $(tail -n 3 "$(vm_share_dir a)/$tag.err" 2>/dev/null | tr '\n' ' ')"
	return $rc
}

# randout_rec CONFIG SENT_BEFORE SENT_AFTER DIRTY T_CONN T_DONE: the 4k random outage's
# results (bytes; a counter that went down was zeroed on reconnection: DRBD's ns:)
randout_rec() {
	local cfg=$1 sent=$(($3 - $2))
	(($3 >= $2)) || sent=$3
	local w=$((RANDOUT_MB << 20))
	rec "$cfg.randout_written_bytes" "$w"
	rec "$cfg.randout_dirty_bytes" "$4"
	rec "$cfg.randout_sent_bytes" "$sent"
	rec "$cfg.randout_connect_s" "$5"
	rec "$cfg.randout_insync_s" "$6"
	say "  4k random outage: $RANDOUT_MB MiB written, $(($4 >> 10)) KiB to resync, $((sent >> 10)) KiB sent" \
		"($(awk -v a="$sent" -v b="$w" 'BEGIN { printf "%.2f", a / b }') x written): reconnected after $5 s, in sync after $6 s"
}

# rcopy_randout CONFIG: disconnect the pair by the operator's message (`disconnect`, as
# DRBD's measurement uses `drbdadm disconnect`), write RANDOUT_MB of 4k random blocks,
# reconnect (`connect`); resync bytes = the primary's sent_bytes from just before the
# reconnection to duplex. (The other resync row cuts the cable; see its note.)
rcopy_randout() {
	local cfg=$1 out dirty sent0 sent1 job t tc
	vm_run a --timeout 30 'dmsetup message r0 0 disconnect' >/dev/null || { say "  disconnect failed"; return 1; }
	if ! vm_wait_until a 60 "dmsetup status r0 | grep -q 'state=suspended '" >/dev/null; then
		vm_run a --timeout 30 'dmsetup message r0 0 connect' >/dev/null
		rcopy_fail "primary did not go suspended after disconnect: $(rstatus a)"
		return 1
	fi
	randout_fio "$cfg" /dev/mapper/r0 || {
		vm_run a --timeout 30 'dmsetup message r0 0 connect' >/dev/null
		rcopy_fail "4k random writes while disconnected failed"
		return 1
	}
	out=$(rstatus a)
	dirty=$(kv_of "$out" dirty_bytes) sent0=$(kv_of "$out" sent_bytes)
	job=$(vm_spawn a --timeout 400 "$(kmark "$cfg.randout"); t0=\$EPOCHREALTIME; dmsetup message r0 0 connect && WATCH_T0=\$t0 bash $BENCH_HELPERS/watch.sh rcopy-sync 360 0.1")
	out=$(vm_wait a "$job" 420)
	t=$(kv_of "$out" t_done) tc=$(kv_of "$out" t_conn)
	sent1=$(kv_of "$(line_of "$out" status)" sent_bytes)
	if [[ -z $t ]]; then
		rcopy_fail "no resync to duplex within 360 s after the 4k random outage: $(line_of "$out" status)"
		return 1
	fi
	rec "$cfg.randout_polls" "$(kv_of "$out" polls)"
	randout_rec "$cfg" "${sent0:-0}" "${sent1:-0}" "${dirty:-0}" "$tc" "$t"
}

rcopy_unpair() {
	vm_run a --timeout 120 'dmsetup remove r0' >/dev/null &&
		vm_run b --timeout 120 'dmsetup remove r0' >/dev/null ||
		rcopy_fail "cannot remove r0"
}

# rcopy_mode MODE [CFG OPTION WORDS...]: the whole rcopy phase of one mode; with a CFG
# (a variant), the fio jobs only, on a pair with the extra table options
rcopy_mode() {
	local mode=$1 cfg=${2:-rcopy_$1} wl r
	[[ -z $RCOPY_BROKEN ]] || return 1
	say "rcopy $mode mode${3:+ with ${*:3}} (/dev/mapper/r0 on a, secondary on b)"
	rcopy_pair "$mode" "$cfg" "${@:3}" || return 1
	# a variant (the cold activity log) runs each job once
	for wl in $(rounds_of "seq r16 r1" "$([[ -n ${2:-} ]] && echo 1)"); do
		[[ $wl == r1 ]] && ping_stats "$cfg"
		run_fio "$cfg" "$wl" /dev/mapper/r0 'dmsetup status r0' || { rcopy_fail "fio on r0 failed ($mode, $wl)"; return 1; }
		drain "$cfg" "$wl" rcopy-drain || { rcopy_fail "the $mode pair did not drain after $wl"; return 1; }
	done
	if [[ -z ${2:-} ]]; then
		for ((r = 1; r <= RESYNC_ROUNDS; r++)); do rcopy_resync "$cfg" "$r" || return 1; done
		rcopy_randout "$cfg" || return 1
	else
		rec "$cfg.al_status" "$(kv_of "$(rstatus a)" al_hot) hot"
	fi
	rcopy_unpair
}

# ------------------------------------------------------------------ DRBD
DRBD_UP=
# drbdadm inside a VM: the 9.x drbdadm hands over to /usr/lib/drbd/drbdadm-84 when the
# 8.4 module is loaded; /etc is read-only, so the config is /tmp/drbd.conf
DRBDADM="drbdadm -c /tmp/drbd.conf"

drbd_conf() {
	cat <<EOF
global { usage-count no; }
resource r0 {
	protocol $1;
	# resync unthrottled, as fast as the link and disks allow (the default dynamic
	# controller would pace it); everything else is the 8.4 default
	disk { c-plan-ahead 0; resync-rate 1000M; }
	on a { device /dev/drbd0; disk /dev/vdc; address 10.77.0.1:$DRBD_PORT; meta-disk /dev/vdd; }
	on b { device /dev/drbd0; disk /dev/vdc; address 10.77.0.2:$DRBD_PORT; meta-disk /dev/vdd; }
}
EOF
}

# drbd_skip REASON: one clear line, then the bench goes on without DRBD
drbd_skip() {
	say "DRBD skipped: $*"
	rec "drbd.skipped" "$*"
	DRBD_BROKEN=1
	return 1
}
DRBD_BROKEN=

# drbd_protocol C|A: (re)start the DRBD pair with that protocol, a primary on a, in sync
drbd_protocol() {
	local p=$1 v out
	for v in a b; do drbd_conf "$p" >"$(vm_share_dir "$v")/drbd.conf"; done
	if [[ -z $DRBD_UP ]]; then
		for v in a b; do
			out=$(vm_run "$v" --timeout 60 'grep -q "^drbd " /proc/modules && exit 0
				[ -f /run/vm/share/drbd.ko ] || { echo "drbd.ko not found in the kernel tree"; exit 1; }
				insmod /run/vm/share/lru_cache.ko 2>&1 | grep -v "File exists"
				insmod /run/vm/share/drbd.ko && head -1 /proc/drbd') ||
				{ drbd_skip "cannot load the DRBD 8.4 module on $v: $out"; return 1; }
			[[ -x /usr/lib/drbd/drbdadm-84 ]] || { drbd_skip "drbd-utils without /usr/lib/drbd/drbdadm-84"; return 1; }
			out=$(vm_run "$v" --timeout 120 "cp /run/vm/share/drbd.conf /tmp/drbd.conf &&
				$DRBDADM -- --force create-md r0 </dev/null && $DRBDADM up r0") ||
				{ drbd_skip "drbdadm create-md/up failed on $v: $(tail -n 2 <<<"$out" | tr '\n' ' ')"; return 1; }
		done
		vm_wait_until a 60 "grep -q 'cs:Connected' /proc/drbd" >/dev/null ||
			{ drbd_skip "the DRBD pair did not connect in 60 s: $(vm_run a 'cat /proc/drbd' | tail -n 2 | tr '\n' ' ')"; return 1; }
		# a new pair: declare both sides in sync without the initial full sync
		out=$(vm_run a --timeout 60 "$DRBDADM -- --clear-bitmap new-current-uuid r0") ||
			{ drbd_skip "new-current-uuid --clear-bitmap failed: $out"; return 1; }
		DRBD_UP=1
	else
		# another protocol: the last phase took the pair down (drbd_down); up again
		# with the new config (the metadata says both sides are in sync, so they
		# reconnect without a full sync)
		for v in b a; do
			out=$(vm_run "$v" --timeout 120 "cp /run/vm/share/drbd.conf /tmp/drbd.conf && $DRBDADM up r0") ||
				{ drbd_skip "drbdadm up (protocol $p) failed on $v: $out"; return 1; }
		done
	fi
	vm_wait_until a 120 "grep -q 'cs:Connected.*ds:UpToDate/UpToDate' /proc/drbd" >/dev/null ||
		{ drbd_skip "DRBD not Connected UpToDate/UpToDate: $(vm_run a 'cat /proc/drbd' | tail -n 2 | tr '\n' ' ')"; return 1; }
	out=$(vm_run a --timeout 60 "$DRBDADM primary r0 && grep -o ' cs:.*' /proc/drbd") ||
		{ drbd_skip "drbdadm primary failed: $out"; return 1; }
	say "  DRBD up:$out"
	out=$(vm_run a --timeout 30 "grep -o ' [ABC] r' /proc/drbd")
	[[ $out == *" $p r"* ]] || { drbd_skip "DRBD runs protocol '$out', not $p"; return 1; }
}

# drbd_resync CONFIG [ROUND]: as rcopy_resync, the link cut by `drbdadm disconnect`
drbd_resync() {
	local cfg=$1 r=${2:-1} out oos t tc s
	s=$(at_round "$r")
	pipe_beside "$cfg.pipe${s}_before_mbps"
	out=$(vm_run a --timeout 60 "$DRBDADM disconnect r0 && grep -o ' cs:[A-Za-z]*' /proc/drbd") ||
		{ say "  drbdadm disconnect failed: $out"; return 1; }
	vm_run a --timeout 120 "dd if=/tmp/resync.bin of=/dev/drbd0 bs=1M seek=$RESYNC_MB oflag=direct conv=fsync status=none" ||
		{ say "  write while disconnected failed"; return 1; }
	oos=$(vm_run a --timeout 30 "sed -n 's/.* oos:\([0-9]*\).*/\1/p' /proc/drbd")
	loss_mark
	out=$(vm_run a --timeout 420 "$(kmark "$cfg.resync$s"); t0=\$EPOCHREALTIME; $DRBDADM connect r0 && WATCH_T0=\$t0 bash $BENCH_HELPERS/watch.sh drbd-sync 360 0.1")
	loss_rec "$cfg.resync$s"
	t=$(kv_of "$out" t_done) tc=$(kv_of "$out" t_conn)
	if [[ -z $t || -z $oos ]]; then
		say "  DRBD resync did not finish: $(line_of "$out" status)"
		return 1
	fi
	rec "$cfg.resync${s}_dirty_bytes" "$((oos * 1024))"
	rec "$cfg.resync${s}_bytes" "$((oos * 1024))"
	rec "$cfg.resync${s}_s" "$(awk -v a="$t" -v b="$tc" 'BEGIN { printf "%.3f", a - b }')"
	rec "$cfg.resync${s}_connect_s" "$tc"
	say "  resync $r of $((oos >> 10)) MiB out of sync: reconnected after $tc s, in sync after $t s"
	pipe_beside "$cfg.pipe${s}_after_mbps"
}

# drbd_randout CONFIG: like rcopy_randout, the link cut by `drbdadm disconnect`; resync
# bytes from the ns: counter (KiB sent) of /proc/drbd on the primary, which DRBD 8.4
# zeroes at `connect`: the value once in sync
drbd_randout() {
	local cfg=$1 out oos ns0 ns1 t tc
	out=$(vm_run a --timeout 60 "$DRBDADM disconnect r0 && grep -o ' cs:[A-Za-z]*' /proc/drbd") ||
		{ say "  drbdadm disconnect failed: $out"; return 1; }
	randout_fio "$cfg" /dev/drbd0 || { vm_run a --timeout 60 "$DRBDADM connect r0" >/dev/null; return 1; }
	out=$(vm_run a --timeout 30 'cat /proc/drbd')
	oos=$(sed -n 's/.* oos:\([0-9]*\).*/\1/p' <<<"$out" | head -n 1)
	ns0=$(sed -n 's/.* ns:\([0-9]*\) .*/\1/p' <<<"$out" | head -n 1)
	out=$(vm_run a --timeout 420 "$(kmark "$cfg.randout"); t0=\$EPOCHREALTIME; $DRBDADM connect r0 && WATCH_T0=\$t0 bash $BENCH_HELPERS/watch.sh drbd-sync 360 0.1")
	t=$(kv_of "$out" t_done) tc=$(kv_of "$out" t_conn)
	ns1=$(sed -n 's/.* ns:\([0-9]*\) .*/\1/p' <<<"$(line_of "$out" status)")
	if [[ -z $t || -z $oos || -z $ns0 || -z $ns1 ]]; then
		say "  DRBD resync after the 4k random outage did not finish: $(line_of "$out" status)"
		return 1
	fi
	rec "$cfg.randout_polls" "$(kv_of "$out" polls)"
	randout_rec "$cfg" $((ns0 * 1024)) $((ns1 * 1024)) $((oos * 1024)) "$tc" "$t"
}

drbd_phase() {
	local p=$1 cfg=drbd_$1 wl r
	[[ -z $DRBD_BROKEN ]] || return 1
	say "DRBD 8.4 protocol $p (/dev/drbd0 on a, secondary on b)"
	drbd_protocol "$p" || return 1
	for wl in $(rounds_of "seq r16 r1"); do
		[[ $wl == r1 ]] && ping_stats "$cfg"
		run_fio "$cfg" "$wl" /dev/drbd0 "tail -n 2 /proc/drbd" || { drbd_skip "fio on drbd0 failed (protocol $p)"; return 1; }
		drain "$cfg" "$wl" drbd-drain || { drbd_skip "DRBD did not drain after $wl"; return 1; }
	done
	for ((r = 1; r <= RESYNC_ROUNDS; r++)); do
		drbd_resync "$cfg" "$r" || { rec "$cfg.resync.skipped" "resync measurement failed (see $LOG)"; break; }
	done
	drbd_randout "$cfg" || rec "$cfg.randout.skipped" "4k random outage measurement failed (see $LOG)"
	drbd_down
}

# drbd_down: takes the DRBD pair down on both VMs between its phases. Left connected, an
# idle DRBD pair shares the link and the vCPUs with the next rcopy phase: a cable cut
# there also broke DRBD's connection, and its reconnection (handshake, bitmap exchange,
# a forked before-resync-source helper) ran during rcopy's timed resync.
drbd_down() {
	local v out
	for v in a b; do
		out=$(vm_run "$v" --timeout 120 "$DRBDADM down r0") ||
			{ drbd_skip "drbdadm down failed on $v: $out"; return 1; }
	done
}

# ------------------------------------------------------------------ alternating
# alt_phase MODE PROTOCOL: rcopy in MODE (vda) and DRBD in PROTOCOL (vdc) both up, their
# seq 1M, QD16 and QD1 random-write jobs taken in turn, round by round (rcopy first in odd
# rounds, DRBD first in even ones), each drained before the next. The phases above run
# one product's rounds after the other's, minutes apart; on a shared host their ratio
# moved by a fifth or more between runs (sync seq: 1.40x DRBD C in one run, 0.64x in
# the next, on the same engine). Here every rcopy round has a DRBD round of
# the same minutes beside it, and the report gives the median of the per-round ratios.
# The idle pair only exchanges its pings meanwhile.
alt_phase() {
	local mode=$1 p=$2 rc=alt_rcopy_$1 dc=alt_drbd_$2 r wl w first
	if [[ -n $RCOPY_BROKEN || -n $DRBD_BROKEN || -z $DRBD_UP ]]; then
		rec "alt_$mode.skipped" "rcopy or DRBD was skipped above"
		return 1
	fi
	say "alternating: rcopy $mode and DRBD protocol $p both up, seq 1M, random 4k QD16 and QD1 in turn"
	rcopy_pair "$mode" "$rc" || return 1
	drbd_protocol "$p" || { rcopy_unpair; return 1; }
	for ((r = 1; r <= ROUNDS; r++)); do
		# the link's rate in these minutes, for the seq jobs' "incl. drain" rate: the
		# link moved from 16.7 to 38.5 MB/s between the start and end of one run, so
		# the best of those two is no yardstick for a job minutes from either
		iperf "link.alt_${mode}_iperf$(at_round "$r")"
		for wl in seq r16 r1; do
			w=$wl$(at_round "$r")
			for first in $( ((r % 2)) && echo "rcopy drbd" || echo "drbd rcopy"); do
				if [[ $first == rcopy ]]; then
					run_fio "$rc" "$w" /dev/mapper/r0 'dmsetup status r0' &&
						drain "$rc" "$w" rcopy-drain || { rcopy_fail "alternating: rcopy $mode $w failed"; break 3; }
				else
					run_fio "$dc" "$w" /dev/drbd0 "tail -n 2 /proc/drbd" &&
						drain "$dc" "$w" drbd-drain || { drbd_skip "alternating: DRBD $p $w failed"; break 3; }
				fi
			done
		done
	done
	rcopy_unpair
	drbd_down
}

# ------------------------------------------------------------------ fast link
# Both ends of a pair on VM a, over 127.0.0.1, on loop devices backed by files in a's
# tmpfs: no link shaping, no disk latency, so the engines' own costs show. CPU is a's.
FP='' FPM='' FS='' FSM=''

fast_skip() {
	say "  fast case skipped: $*"
	rec fast.skipped "$*"
}

fast_setup() {
	local out
	out=$(vm_run a --timeout 180 "set -e; cd /dev/shm
		for f in fp fs; do fallocate -l ${FAST_MB}M \$f.img; fallocate -l 8M \$f.meta; done
		for f in fp.img fp.meta fs.img fs.meta; do losetup -f --show /dev/shm/\$f; done | tr '\n' ' '") ||
		{ fast_skip "loop devices on a's /dev/shm: $(tail -n 2 <<<"$out" | tr '\n' ' ')"; return 1; }
	read -r FP FPM FS FSM <<<"$out"
	[[ -n $FSM ]] || { fast_skip "losetup printed '$out'"; return 1; }
}

# fast_rcopy MODE: the pair fp0 (primary, on FP) -> fs0 (secondary, on FS), both on a
fast_rcopy() {
	local mode=$1 cfg=fast_rcopy_$1 out rc wl
	[[ -z $RCOPY_BROKEN ]] || return 1
	say "fast: rcopy $mode (/dev/mapper/fp0 -> fs0 on a, 127.0.0.1:$FAST_PORT)"
	out=$(vm_run a --timeout 700 "dmsetup create fs0 --table \"0 \$(blockdev --getsz $FS) rcopy $FS $FSM 6 role secondary local 127.0.0.1:$FAST_PORT secret $SECRET\" || exit 98
		dmsetup create fp0 --table \"0 \$(blockdev --getsz $FP) rcopy $FP $FPM 8 role primary peer 127.0.0.1:$FAST_PORT secret $SECRET mode $mode\" || exit 99
		RC_DEV=fp0 bash $BENCH_HELPERS/watch.sh rcopy-sync 600 0.2")
	rc=$?
	case $rc in
	0) say "  duplex after $(kv_of "$out" t_done) s" ;;
	98 | 99)
		rec "$cfg.skipped" "cannot create both ends in one kernel: $(tail -n 2 <<<"$out" | tr '\n' ' ')"
		say "  cannot create both ends in one kernel: $(tail -n 2 <<<"$out" | tr '\n' ' ')"
		vm_run a --timeout 60 'dmsetup remove fs0' >/dev/null 2>&1
		return 1
		;;
	*) rcopy_fail "fast $mode pair did not reach duplex in 600 s: $(line_of "$out" status)"; return 1 ;;
	esac
	for wl in $(rounds_of "seq r16"); do
		run_fio "$cfg" "$wl" /dev/mapper/fp0 'dmsetup status fp0' || { rcopy_fail "fio on fp0 failed ($mode, $wl)"; return 1; }
		drain "$cfg" "$wl" rcopy-drain RC_DEV=fp0 || { rcopy_fail "the fast $mode pair did not drain after $wl"; return 1; }
	done
	vm_run a --timeout 120 'dmsetup remove fp0 && dmsetup remove fs0' >/dev/null || rcopy_fail "cannot remove fp0/fs0"
}

# fast_drbd_conf RES PROTOCOL MINOR DISK META PORT PEER_MINOR PEER_DISK PEER_META PEER_PORT:
# one resource of DRBD's loopback pair, in a file of its own (a resource cannot pair
# with itself; two resources, fa and fb, with swapped addresses can)
fast_drbd_conf() {
	cat <<EOF
global { usage-count no; }
resource $1 {
	protocol $2;
	disk { c-plan-ahead 0; resync-rate 1000M; }
	on a { device /dev/drbd$3; disk $4; address 127.0.0.1:$6; meta-disk $5; }
	on peer-of-$1 { device /dev/drbd$7; disk $8; address 127.0.0.1:${10}; meta-disk $9; }
}
EOF
}
FAST_DRBD_UP=

# fast_drbd C|A: /dev/drbd1 (resource fa, primary, on FP) -> /dev/drbd2 (fb, on FS), on a
fast_drbd() {
	local p=$1 cfg=fast_drbd_$1 out wl sh
	local fa="drbdadm -c /tmp/fa.conf" fb="drbdadm -c /tmp/fb.conf"
	say "fast: DRBD 8.4 protocol $p (/dev/drbd1 -> /dev/drbd2 on a, 127.0.0.1:7800/7801)"
	sh=$(vm_share_dir a)
	fast_drbd_conf fa "$p" 1 "$FP" "$FPM" 7800 2 "$FS" "$FSM" 7801 >"$sh/fa.conf"
	fast_drbd_conf fb "$p" 2 "$FS" "$FSM" 7801 1 "$FP" "$FPM" 7800 >"$sh/fb.conf"
	if [[ -z $FAST_DRBD_UP ]]; then
		out=$(vm_run a --timeout 180 "cp /run/vm/share/fa.conf /run/vm/share/fb.conf /tmp/ &&
			$fa -- --force create-md fa </dev/null && $fb -- --force create-md fb </dev/null &&
			$fb up fb && $fa up fa") ||
			{ fast_skip "DRBD loopback pair: create-md/up failed: $(tail -n 3 <<<"$out" | tr '\n' ' ')"; return 1; }
		vm_wait_until a 60 "grep -q ' 1: cs:Connected' /proc/drbd" >/dev/null ||
			{ fast_skip "the DRBD loopback pair did not connect in 60 s: $(vm_run a 'cat /proc/drbd' | tail -n 4 | tr '\n' ' ')"; return 1; }
		out=$(vm_run a --timeout 60 "$fa -- --clear-bitmap new-current-uuid fa") ||
			{ fast_skip "DRBD loopback pair: new-current-uuid failed: $out"; return 1; }
		FAST_DRBD_UP=1
	else
		out=$(vm_run a --timeout 180 "$fa down fa && $fb down fb && cp /run/vm/share/fa.conf /run/vm/share/fb.conf /tmp/ &&
			$fb up fb && $fa up fa") ||
			{ fast_skip "DRBD loopback pair: down/up for protocol $p failed: $(tail -n 3 <<<"$out" | tr '\n' ' ')"; return 1; }
	fi
	vm_wait_until a 120 "grep -q ' 1: cs:Connected.*ds:UpToDate/UpToDate' /proc/drbd" >/dev/null ||
		{ fast_skip "DRBD loopback pair not in sync: $(vm_run a 'cat /proc/drbd' | tail -n 4 | tr '\n' ' ')"; return 1; }
	out=$(vm_run a --timeout 60 "$fa primary fa && grep -o ' 1: cs:.*' /proc/drbd") ||
		{ fast_skip "DRBD loopback pair: primary failed: $out"; return 1; }
	[[ $out == *" $p r"* ]] || { fast_skip "DRBD loopback pair runs '$out', not protocol $p"; return 1; }
	for wl in $(rounds_of "seq r16"); do
		run_fio "$cfg" "$wl" /dev/drbd1 "grep -A1 ' 1: cs' /proc/drbd" || { fast_skip "fio on drbd1 failed (protocol $p)"; return 1; }
		drain "$cfg" "$wl" drbd-drain DRBD_MINOR=1 || { fast_skip "the DRBD loopback pair did not drain after $wl"; return 1; }
	done
}

fast_phase() {
	local wl
	if ((FAST_MB == 0)); then
		rec fast.skipped "BENCH_FAST_MB=0"
		return 0
	fi
	say "fast link: pairs with both ends on a over 127.0.0.1, ${FAST_MB} MiB loop devices in a's tmpfs"
	fast_setup || return 1
	CPU_VMS=a
	say "fast: raw loop device ($FP)"
	for wl in $(rounds_of "seq r16"); do run_fio fast_raw "$wl" "$FP"; done
	fast_rcopy sync
	fast_rcopy async
	if [[ -n $DRBD_BROKEN || -z $DRBD_UP ]]; then
		rec fast_drbd.skipped "DRBD was skipped above"
	else
		fast_drbd C && fast_drbd A
		vm_run a --timeout 120 'drbdadm -c /tmp/fa.conf down fa; drbdadm -c /tmp/fb.conf down fb' >/dev/null 2>&1
	fi
	CPU_VMS="a b"
}

# ------------------------------------------------------------------ run
# same-protocol pairs next to each other in time: the host may be shared and noisy
rcopy_mode sync
# the activity log's cost: 7 hot extents of one track each, so nearly every random
# write first waits for an activity-log transaction (its worst case; the default
# 512 x 4 MiB covers these disks whole)
rcopy_mode sync rcopy_sync_alcold al_extents 7 al_extent_size 65536
drbd_phase C
rcopy_mode async
drbd_phase A
# rcopy and DRBD rounds in turn, for the two rows that move most between runs
alt_phase sync C
alt_phase async A
# the engines' own costs, without the link or the disks in the way
fast_phase

# ------------------------------------------------------------------ wrap up
say "link again"
iperf link.iperf_end_mbps
if [[ -z $RCOPY_BROKEN ]]; then pipe link.pipe_end_mbps; fi
rec meta.load_end "$(cut -d' ' -f1-3 /proc/loadavg)"
for v in a b; do
	cp "$(_vm_dir "$v")/console.log" "$RAW/console-$v.log" 2>/dev/null
	if ! probs=$(vm_check_dmesg "$v" 2>&1); then
		say "kernel problems in the console of $v (see $RAW/console-$v.log):"
		printf '%s\n' "$probs" | head -n 20 >&3
		grep -qiE 'rcopy|panicked at' <<<"$probs" && rcopy_fail "kernel problem mentioning rcopy on $v"
		rec "note.dmesg_$v" "$(printf '%s' "$probs" | head -n 5 | tr '\n' ' ')"
	fi
done
rec meta.elapsed_s "$((SECONDS - T_START))"
say "done in $((SECONDS - T_START)) s"
echo >&3
python3 "$BENCH_HELPERS/report.py" "$RAW" "$BENCH_OUT" >&3 || say "report.py failed"
if [[ -n $RCOPY_BROKEN ]]; then exit 1; fi
exit 0
