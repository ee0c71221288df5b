#!/bin/bash
# PID 1 of an rcopy test VM (booted by scripts/vm/lib.sh). The root filesystem is the
# host's, shared read-only over 9p: mount the usual pseudo filesystems and tmpfs where
# tools write, configure the network from the kernel command line (rcvm.*), mount the
# VM's control share (9p tag "ctl") on /run/vm and run the command agent.
#
# Agent protocol (host side: lib.sh). In /run/vm (the host's <vmdir>/ctl):
#   q/cmd.ID      bash script; first line "#timeout=S". Written by the host with rename.
#   q/kill.ID     request: SIGTERM the job's process group (SIGKILL 10 s later).
#   jobs/out.ID   stdout+stderr of the job, jobs/pid.ID its PID (= process group),
#   jobs/timedout.ID  present if the agent killed it at its timeout (then SIGKILL
#                 10 s later),
#   jobs/rc.ID    exit code, written last.
#   ready         written when the agent starts polling.
# After writing a request the host writes a newline to the VM's second serial port
# (/dev/ttyS1, a FIFO on the host), which wakes the agent; it also rescans every
# rcvm.poll seconds (default 1).
# Every job runs in the background, so several may run at once.

export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/tmp LANG=C LC_ALL=C TERM=dumb SHELL=/bin/bash
export DM_DISABLE_UDEV=1 # no udev: dmsetup creates /dev/mapper nodes itself
RCOPY_ROOT=${BASH_SOURCE[0]%/scripts/vm/init.sh}
export RCOPY_ROOT
export VM_SHARE=/run/vm/share
umask 022
cd /

say() { echo "rcvm-init: $*" >/dev/console; }

if [[ -x /bin/busybox ]]; then
	BB=/bin/busybox
else
	BB=
fi
m() { $BB mount "$@" || say "mount $* failed"; }

m -t proc proc /proc
m -t sysfs sysfs /sys
[[ -c /dev/null ]] || m -t devtmpfs devtmpfs /dev
$BB mkdir -p /dev/pts /dev/shm
m -t devpts -o gid=5,mode=620,ptmxmode=666 devpts /dev/pts
m -t tmpfs -o mode=1777 tmpfs /dev/shm
for d in /tmp /var/tmp; do m -t tmpfs -o mode=1777 tmpfs "$d"; done
for d in /run /var/log /var/lib /var/cache /mnt; do
	[[ -d $d ]] && m -t tmpfs -o mode=755 tmpfs "$d"
done
$BB mkdir -p /run/lock /run/vm /var/lib/drbd /tmp/.rcvm
# The checkout may live under a directory a tmpfs now hides (a clone in /tmp, say):
# mount the host's export of it (9p tag "repo") back at the same path.
if [[ ! -e $RCOPY_ROOT/scripts/vm/init.sh ]]; then
	$BB mkdir -p "$RCOPY_ROOT"
	m -t 9p -o trans=virtio,version=9p2000.L,msize=262144,ro repo "$RCOPY_ROOT"
fi
[[ -e /dev/fd ]] || ln -s /proc/self/fd /dev/fd

# rcvm.name=NAME rcvm.ip=ethN,ADDR/PREFIX (repeatable) rcvm.ktree=DIR rcvm.poll=SECONDS
VM_NAME=vm POLL=1
ips=()
read -r -a words </proc/cmdline
for w in "${words[@]}"; do
	case $w in
	rcvm.name=*) VM_NAME=${w#*=} ;;
	rcvm.ip=*) ips+=("${w#*=}") ;;
	rcvm.ktree=*) export RCOPY_KTREE=${w#*=} ;;
	rcvm.poll=*) POLL=${w#*=} ;;
	esac
done
export VM_NAME
echo "$VM_NAME" >/proc/sys/kernel/hostname
echo 1 >/proc/sys/kernel/sysrq

# Network: only the addresses the host asked for; no IPv6 (no stray RS/DAD traffic).
for f in /proc/sys/net/ipv6/conf/{all,default}/disable_ipv6; do
	[[ -w $f ]] && echo 1 >"$f"
done
{
	echo "link set lo up"
	for spec in "${ips[@]}"; do
		dev=${spec%%,*} addr=${spec#*,}
		echo "addr add $addr dev $dev"
		echo "link set $dev up"
	done
} | ip -batch - || say "network setup failed"

m -t 9p -o trans=virtio,version=9p2000.L,msize=262144,cache=none ctl /run/vm
$BB mkdir -p /run/vm/q /run/vm/jobs /run/vm/share

Q=/run/vm/q
J=/run/vm/jobs

# runjob ID (in a background subshell): run the script in its own process group
# (set -m), so that a timeout or kill request reaches everything it started.
runjob() {
	local id=$1 jp rc
	exec 9>&-
	set -m
	bash "$Q/cmd.$id" </dev/null >"$J/out.$id" 2>&1 &
	jp=$!
	set +m
	echo "$jp" >"$J/pid.$id"
	wait "$jp"
	rc=$?
	echo "$rc" >"$J/rc.$id"
}

agent() {
	local f id pid hdr t now
	local -A seen=() killed=() deadline=() killat=()
	shopt -s nullglob
	# The host writes a newline to the second serial port after each request, so the
	# agent wakes at once; without it (no ttyS1) `read -t` on a FIFO is a plain sleep.
	if [[ -c /dev/ttyS1 ]] && exec 9<>/dev/ttyS1 && stty raw -echo <&9; then
		:
	else
		say "no wakeup port, polling every ${POLL}s"
		$BB mkfifo /tmp/.rcvm/tick 2>/dev/null
		exec 9<>/tmp/.rcvm/tick
	fi
	# term ID: SIGTERM job ID's process group now, SIGKILL in 10 s
	term() {
		local pid=""
		read -r pid 2>/dev/null <"$J/pid.$1" || return 1
		[[ -e $J/rc.$1 ]] || kill -TERM -- "-$pid" 2>/dev/null
		killat[$1]=$((now + 10))
	}
	read -r up _ </proc/uptime
	echo "$up" >/run/vm/ready
	say "agent ready after ${up}s"
	while :; do
		now=${EPOCHREALTIME%.*}
		# one directory read per round
		for f in "$Q"/*; do
			case ${f##*/} in
			cmd.*)
				id=${f##*/cmd.}
				[[ -n ${seen[$id]:-} ]] && continue
				seen[$id]=1
				t=3600
				IFS= read -r hdr <"$f" && [[ $hdr =~ ^#timeout=([0-9]+)$ ]] && t=${BASH_REMATCH[1]}
				deadline[$id]=$((now + t))
				runjob "$id" &
				;;
			kill.*)
				id=${f##*/kill.}
				[[ -n ${killed[$id]:-} ]] && continue
				term "$id" && killed[$id]=1
				;;
			esac
		done
		for id in "${!deadline[@]}"; do
			((now >= deadline[$id])) || continue
			if [[ -e $J/rc.$id ]]; then
				unset "deadline[$id]"
			elif term "$id"; then
				: >"$J/timedout.$id"
				unset "deadline[$id]"
			fi
		done
		for id in "${!killat[@]}"; do
			((now >= killat[$id])) || continue
			unset "killat[$id]"
			[[ -e $J/rc.$id ]] && continue
			read -r pid 2>/dev/null <"$J/pid.$id" && kill -KILL -- "-$pid" 2>/dev/null
		done
		# sleep until the host writes a line to ttyS1, at most POLL s
		read -r -t "$POLL" -u 9 _
	done
}

# PID 1 must never exit (that panics the kernel): rerun the agent if it dies; the
# waiting bash also reaps orphaned processes.
while :; do
	(agent)
	say "agent died (rc=$?), restarting"
	read -r -t 1 _ </dev/null 2>/dev/null || true
	$BB sleep 1
done
