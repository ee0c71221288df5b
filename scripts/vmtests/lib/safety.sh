# shellcheck shell=bash
# Helpers for the issue-7 safety tests (tests/40-safety.sh), on top of pair.sh:
# VM a (10.77.0.1) is the primary, VM b (10.77.0.2) the secondary.

LOGREPLAY=${LOGREPLAY:-$RCOPY_ROOT/userspace-tools/target/x86_64-unknown-linux-gnu/release/logreplay}
FLUSHWRITER_PY=$RCOPY_ROOT/scripts/vmtests/lib/flushwriter.py

# primary_on DEV [OPTION WORDS...]: create r0 on a as the primary over data device DEV
primary_on() {
	local dev=$1
	shift
	vm_run a "dmsetup create r0 --table \"$(primary_table "$dev" "$@")\""
}

# reload_primary DEV [OPTION WORDS...]: load a new table for r0 on a (not yet live)
reload_primary() {
	local dev=$1
	shift
	vm_run a "dmsetup reload r0 --table \"$(primary_table "$dev" "$@")\""
}

# primary_table DEV [OPTION WORDS...]: the table line (its size is computed in the VM)
primary_table() {
	local dev=$1
	shift
	local opts="role primary peer 10.77.0.2:$PAIR_PORT secret $PAIR_SECRET $*"
	local n
	n=$(wc -w <<<"$opts")
	printf '0 $(blockdev --getsz %s) rcopy %s /dev/vdb %s %s' "$dev" "$dev" "$n" "$opts"
}

# fio_bg VM SECONDS [FIO OPTIONS...]: random 4 KiB writes on r0 for SECONDS, in the
# background; prints the job id (collect it with vm_wait)
fio_bg() {
	local vm=$1 secs=$2
	shift 2
	vm_spawn "$vm" --timeout $((secs + 300)) -- fio --name=bg --filename=/dev/mapper/r0 \
		--rw=randwrite --bs=4k --ioengine=libaio --iodepth=16 --direct=1 --randrepeat=0 \
		--time_based --runtime="$secs" "$@"
}

# rand_sleep MIN_TENTHS MAX_TENTHS: sleep a random time in [MIN, MAX] tenths of a second
rand_sleep() {
	local t=$(($1 + RANDOM % ($2 - $1 + 1)))
	sleep "$((t / 10)).$((t % 10))"
	echo "$((t / 10)).$((t % 10))"
}

# status_key STATUS_LINE KEY: one key of a status line already read
status_key() { tr ' ' '\n' <<<"$1" | sed -n "s/^$2=//p"; }

# established VM local|remote: TCP connections in ESTABLISHED state with port 7788 as
# the local (secondary) or the remote (primary) port; kernel sockets are listed too
established() {
	local col=2
	[[ $2 == remote ]] && col=3
	vm_run "$1" "awk -v p=$(printf ':%04X' "$PAIR_PORT") 'NR > 1 && \$4 == \"01\" && substr(\$$col, length(\$$col) - 4) == p' /proc/net/tcp | wc -l"
}

# klog_lines VM: number of lines in the kernel log now (to read what comes after)
klog_lines() { vm_run "$1" 'dmesg | wc -l'; }

# klog_since VM N: kernel log lines after the first N
klog_since() { vm_run "$1" "dmesg | tail -n +$(($2 + 1))"; }

# Soft checks: a test records every violated expectation (so that one run shows all
# the evidence), then ends with checks_done, which fails if any was recorded.
CHECK_FAILURES=()
check() {
	local msg=$1
	shift
	if "$@"; then
		echo "check ok: $msg"
	else
		echo "CHECK FAILED: $msg" >&2
		CHECK_FAILURES+=("$msg")
	fi
}
checks_done() {
	((${#CHECK_FAILURES[@]} == 0)) && return 0
	local m
	for m in "${CHECK_FAILURES[@]}"; do echo "FAILED CHECK: $m" >&2; done
	fail "${#CHECK_FAILURES[@]} check(s) failed"
}

# sums_equal: sha256 of a's and b's data disks are the same (prints both)
sums_equal() {
	local sa sb
	sa=$(lower_sum a)
	sb=$(lower_sum b)
	echo "sha256 a=$sa b=$sb"
	[[ $sa == "$sb" ]] && return 0
	diff_blocks
	return 1
}

# diff_blocks: print how many 4 KiB blocks of a's and b's data disks differ, and where
diff_blocks() {
	local py='import hashlib, os, sys
f = os.open("/dev/vda", os.O_RDONLY)
while True:
    b = os.read(f, 1 << 20)
    if not b:
        break
    for i in range(0, len(b), 4096):
        print(hashlib.md5(b[i:i + 4096]).hexdigest()[:12])'
	local ha hb
	ha=$(vm_run a "sync; echo 3 >/proc/sys/vm/drop_caches; python3 -c '$py'") || return 0
	hb=$(vm_run b "sync; echo 3 >/proc/sys/vm/drop_caches; python3 -c '$py'") || return 0
	paste <(cat -n <<<"$ha") <(cat <<<"$hb") | awk '$2 != $3 { n++; if (n <= 8) l = l " " ($1 - 1) * 4 "K" }
		END { printf "%d blocks of 4 KiB differ; at:%s%s\n", n, l, (n > 8 ? " ..." : "") }'
}
