#!/bin/bash
# Runs INSIDE a bench VM (the repo is visible at the same path). Polls the state of a
# replicated device until a condition holds and prints what it saw as key=value lines,
# with times measured by the guest's clock.
#
#   watch.sh KIND [TIMEOUT_S] [INTERVAL_S]
#
# KIND:
#   rcopy-drain   r0 is duplex with dirty_bytes=0, lag_bytes=0 and an empty cache
#   rcopy-sync    like rcopy-drain, and reports when the link came up (conn=connected),
#                 for the initial copy and for a resync after a link cut
#   drbd-drain    drbd0 Connected, UpToDate/UpToDate, oos:0, nothing pending (pe ap lo)
#   drbd-sync     like drbd-drain, and reports when the link came up (cs: leaves
#                 StandAlone/WFConnection/Unconnected/...)
#
# Output (last lines): started=1 (at once, so a host can wait for it), then
#   t_conn=S      seconds from start until the link was seen up (sync kinds)
#   t_done=S      seconds from start until the condition held
#   conn_status=  the status when the link was first seen up
#   status=       the status line at the end
#   polls=N       how many times the state was read (t_done / polls is the poll period:
#                 rcopy's costs a dmsetup fork+exec, DRBD's a read of /proc/drbd without one;
#                 rcopy-sync reads it when the kernel logs an event for the device, see
#                 knap: its reads are few, and its times as coarse as they are; the
#                 kernel log's own timestamps are exact, README "Performance")
#   ok=1|0
# Exit 0 when the condition held, 1 after TIMEOUT_S (default 300).
# Environment: RC_DEV (the rcopy device, default r0), DRBD_MINOR (default 0): the fast
# case watches fp0 and drbd1; WATCH_T0 ($EPOCHREALTIME taken earlier): times count from it.
kind=${1:?usage: watch.sh KIND [TIMEOUT] [INTERVAL]}
timeout=${2:-300}
interval=${3:-0.1}

# a sleep without fork+exec (costly under TCG): read with a timeout on a private FIFO
fifo=/tmp/.bench-watch.$$
mkfifo "$fifo" && exec {fd}<>"$fifo" && rm -f "$fifo"
nap() { read -r -t "$interval" -u "$fd" _ || true; }

# rcopy-sync waits on the kernel log instead of polling: an rcopy status read forks
# dmsetup (100 ms or more of the guest's one vCPU under TCG), so polling every 0.1 s
# took a third or more of the primary's CPU during the very resync it timed, while
# DRBD's status is a read of /proc/drbd. It reads the device's state when rcopy logs
# a link or copy event for it (`connected to`, `peer is in sync`, ...), then every
# 50 ms for up to half a second until the state the message announced shows (the
# status follows the message: connected, then in sync), and otherwise every 3 s in
# case a message is missed. Each read is a dmsetup fork that takes the very vCPU the
# primary's resync runs on: reading on for the rest of the half second after
# `connected to` took about a second of it from the first seconds of the resync
# it timed. KMSG_WATCH=0 polls as before.
km= kpid=
if [[ $kind == rcopy-sync && ${KMSG_WATCH:-1} == 1 ]]; then
	# only new messages (the backlog can be thousands of lines: reading it took
	# seconds); the first state read below covers anything logged before
	exec {km}< <(exec dmesg -W 2>/dev/null)
	kpid=$!
	trap '[[ -n $kpid ]] && kill "$kpid" 2>/dev/null' EXIT
fi
fast=0
quiet_s=3 # how long without a message before the state is read anyway
knap() {
	local rec deadline=$((SECONDS + quiet_s))
	if ((fast > 0)); then
		fast=$((fast - 1))
		read -r -t 0.05 -u "$fd" _ || true
		return
	fi
	while ((SECONDS <= deadline)); do
		read -r -t "$quiet_s" -u "$km" rec
		case $? in
		0) ;;
		1) km= && return ;; # dmesg -W ended (unsupported?): poll as before
		*) return ;;        # quiet_s without a message: read the state anyway
		esac
		if [[ $rec == *"dm_rcopy: ${rc_dev}: "* ]]; then
			fast=10
			return
		fi
	done
}

now() { printf '%s' "$EPOCHREALTIME"; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.3f", b - a }'; }

# WATCH_T0: the start, if taken earlier (before the command that makes the request)
t0=${WATCH_T0:-$(now)}
echo started=1
t_conn=
conn_status=
st=
deadline=$((SECONDS + timeout))
polls=0

rc_dev=${RC_DEV:-r0}
minor=${DRBD_MINOR:-0}
rcopy_status() { dmsetup status "$rc_dev" 2>&1 | tr '\n' ' '; }
# the lines of /proc/drbd about one minor, joined by spaces
drbd_status() {
	local line s='' in=0
	while IFS= read -r line; do
		if [[ $line =~ ^\ *([0-9]+): ]]; then
			in=0
			[[ ${BASH_REMATCH[1]} == "$minor" ]] && in=1
		fi
		((in)) && s+="$line "
	done </proc/drbd
	printf '%s' "$s"
}

while :; do
	polls=$((polls + 1))
	case $kind in
	rcopy-*)
		st=$(rcopy_status)
		up=0 done=0
		[[ $st == *" conn=connected "* ]] && up=1
		if [[ $up == 1 && $st == *" state=duplex "* && $st == *" dirty_bytes=0 "* &&
			$st == *" lag_bytes=0 "* && $st == *" cache_fill=0/"* ]]; then done=1; fi
		;;
	drbd-*)
		st=$(drbd_status)
		up=0 done=0
		case $st in
		*cs:StandAlone* | *cs:Disconnecting* | *cs:Unconnected* | *cs:Timeout* | \
			*cs:BrokenPipe* | *cs:NetworkFailure* | *cs:ProtocolError* | *cs:TearDown* | \
			*cs:WFConnection* | *cs:WFReportParams* | "") up=0 ;;
		*) up=1 ;;
		esac
		if [[ $st == *cs:Connected* && $st == *ds:UpToDate/UpToDate* && $st == *" oos:0"* &&
			$st == *" pe:0 "* && $st == *" ap:0 "* && $st == *" lo:0 "* ]]; then done=1; fi
		;;
	*) echo "watch.sh: unknown kind $kind" >&2; exit 2 ;;
	esac
	if [[ $up == 1 && -z $t_conn ]]; then
		t_conn=$(since "$t0")
		conn_status=$st
		fast=0 # what `connected to` announced: no more fast reads until the next message
	fi
	if [[ $done == 1 ]]; then
		t_done=$(since "$t0")
		echo "t_conn=${t_conn:-$t_done}"
		echo "t_done=$t_done"
		echo "conn_status=$conn_status"
		echo "status=$st"
		echo "polls=$polls"
		echo ok=1
		exit 0
	fi
	if ((SECONDS >= deadline)); then
		echo "t_conn=$t_conn"
		echo "t_done="
		echo "conn_status=$conn_status"
		echo "status=$st"
		echo "polls=$polls"
		echo ok=0
		exit 1
	fi
	if [[ -n $km ]]; then knap; else nap; fi
done
