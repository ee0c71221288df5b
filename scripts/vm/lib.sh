# shellcheck shell=bash
# Host-side library for rcopy VM tests. Source it from bash:  . scripts/vm/lib.sh
#
# A VM boots $RCOPY_KERNEL under QEMU/TCG with the host's root filesystem shared
# read-only over 9p (so fio, dmsetup, tc and the repo's build outputs are usable at the
# same paths inside), plus a writable 9p "control" share through which an agent
# (scripts/vm/init.sh, PID 1) runs commands. All state lives in files under
# $VM_RUN_DIR/vms/<name>/, so every function works from any subshell or process.
# API and semantics: scripts/vm/README.md. Safe to use under `set -e`.

[[ -n ${_VM_LIB_LOADED:-} ]] && return 0
_VM_LIB_LOADED=1

VM_LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../common.sh
. "$VM_LIB_DIR/../common.sh"

: "${VM_QEMU:=qemu-system-x86_64}"
: "${VM_MEM:=1024}"              # MiB per VM
: "${VM_SMP:=1}"
: "${VM_BOOT_TIMEOUT:=120}"      # s, boot to agent-ready
: "${VM_LIFETIME:=3600}"         # s, hard cap on every QEMU process (timeout -s KILL)
: "${VM_RUN_TIMEOUT:=600}"       # s, default for vm_run / vm_wait
: "${VM_STOP_TIMEOUT:=30}"       # s, clean shutdown before falling back to SIGKILL
: "${VM_DISK_CACHE:=unsafe}"     # host page cache; survives SIGKILL of QEMU like writeback
: "${VM_ROOT_CACHE:=loose}"      # 9p cache mode of the read-only root
: "${VM_TRACE:=1}"               # log "[vm]$ cmd" lines on stderr
# Kernel log lines that fail vm_check_dmesg (extended regex).
: "${VM_DMESG_BAD:=Oops|BUG:|kernel BUG|Kernel panic|Call Trace|WARNING:|general protection fault|Unable to handle|UBSAN:|KASAN:|soft lockup|hard LOCKUP|blocked for more than|detected stall|panicked at|segfault at|rcvm-init: agent died}"
: "${VM_DMESG_IGNORE:=}"          # extended regex of lines to ignore (empty: none)

_vm_err() { printf 'vm: %s\n' "$*" >&2; }
_vm_log() { [[ $VM_TRACE == 0 ]] || printf '%s\n' "$*" >&2; }

# ---------------------------------------------------------------- run dir
# vm_setup_run_dir [DIR]: choose the directory holding VM state. Without DIR and without
# $VM_RUN_DIR, makes ${TMPDIR:-/tmp}/rcopy-vm.XXXXXX and removes it (after stopping its
# VMs) when the shell exits, unless KEEP_VMS=1. Called implicitly by vm_start.
vm_setup_run_dir() {
	if [[ -n ${1:-} ]]; then
		VM_RUN_DIR=$1
	elif [[ -z ${VM_RUN_DIR:-} ]]; then
		VM_RUN_DIR=$(mktemp -d "${TMPDIR:-/tmp}/rcopy-vm.XXXXXX") || return 1
		_VM_OWN_RUN_DIR=1
		: "${VM_OWNER_PID:=$$}"
		export VM_OWNER_PID
		trap '_vm_exit_cleanup' EXIT
	fi
	mkdir -p "$VM_RUN_DIR/vms" "$VM_RUN_DIR/nets" || return 1
	VM_RUN_DIR=$(cd "$VM_RUN_DIR" && pwd)
	export VM_RUN_DIR
}

_vm_exit_cleanup() {
	vm_cleanup_all
	if [[ ${_VM_OWN_RUN_DIR:-0} == 1 ]]; then
		if [[ ${KEEP_VMS:-0} == 1 ]]; then
			_vm_err "KEEP_VMS=1: kept $VM_RUN_DIR"
		else
			rm -rf "$VM_RUN_DIR"
		fi
	fi
}

_vm_need_run_dir() {
	if [[ -z ${VM_RUN_DIR:-} || ! -d $VM_RUN_DIR/vms ]]; then vm_setup_run_dir || return 1; fi
}

_vm_dir() { printf '%s/vms/%s' "$VM_RUN_DIR" "$1"; }

_vm_check_name() {
	[[ $1 =~ ^[A-Za-z0-9][A-Za-z0-9_-]*$ ]] || { _vm_err "bad VM name '$1'"; return 2; }
}

# The kernel: $RCOPY_KERNEL (a bzImage), else the cached test kernel of build-kernel.sh.
_vm_kernel() {
	if [[ -z ${RCOPY_KERNEL:-} ]]; then
		local tree
		tree=$("$RCOPY_ROOT/scripts/build-kernel.sh") || { _vm_err "build-kernel.sh failed"; return 1; }
		RCOPY_KERNEL=$tree/arch/x86/boot/bzImage
		export RCOPY_KERNEL
	fi
	[[ -f $RCOPY_KERNEL ]] || { _vm_err "kernel '$RCOPY_KERNEL' not found (set RCOPY_KERNEL to a bzImage)"; return 1; }
}

# ---------------------------------------------------------------- processes
# _vm_pid NAME: print the PID of NAME's QEMU if it is running (checked against its
# command line, so a recycled PID is never taken for ours).
_vm_pid() {
	local d pid
	d=$(_vm_dir "$1")
	[[ -r $d/qemu.pid ]] || return 1
	read -r pid 2>/dev/null <"$d/qemu.pid" || return 1
	[[ $pid =~ ^[0-9]+$ ]] || return 1
	local -a argv=()
	mapfile -d '' argv 2>/dev/null </proc/"$pid"/cmdline || return 1
	[[ " ${argv[*]} " == *" -pidfile $d/qemu.pid "* ]] || return 1
	printf '%s\n' "$pid"
}

# _vm_proc_running PID: PID exists and is not a zombie.
_vm_proc_running() {
	local st=""
	read -r st 2>/dev/null </proc/"$1"/stat || return 1
	st=${st##*) }
	[[ ${st:0:1} != Z ]]
}

# vm_alive NAME: true if NAME's QEMU is running.
vm_alive() { _vm_pid "$1" >/dev/null; }

# ---------------------------------------------------------------- networks
# Two VMs on the same NETNAME are joined by a pair of UDP sockets on 127.0.0.1 (QEMU
# -netdev socket,udp=...,localaddr=...): connectionless, so either side can be killed and
# restarted. A VM keeps its slot (and ports) on a net across restarts.
_vm_free_udp_ports() {
	python3 -c '
import socket
s = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(2)]
for x in s: x.bind(("127.0.0.1", 0))
print(*[x.getsockname()[1] for x in s])'
}

# _vm_net_join NET NAME -> prints "SLOT MYPORT PEERPORT"
_vm_net_join() {
	local net=$1 name=$2 nd out
	nd=$VM_RUN_DIR/nets/$net
	mkdir -p "$nd" || return 1
	out=$(
		exec 9>"$nd/lock"
		flock -w 30 9 || exit 1
		if [[ ! -s $nd/ports ]]; then
			_vm_free_udp_ports >"$nd/ports.tmp" && mv "$nd/ports.tmp" "$nd/ports" || exit 1
		fi
		read -r p0 p1 <"$nd/ports"
		slot=
		for s in 0 1; do
			if [[ -f $nd/member.$s && $(<"$nd/member.$s") == "$name" ]]; then slot=$s; break; fi
		done
		if [[ -z $slot ]]; then
			for s in 0 1; do
				if [[ ! -f $nd/member.$s ]]; then echo "$name" >"$nd/member.$s"; slot=$s; break; fi
			done
		fi
		[[ -n $slot ]] || { echo "net '$net' already has two VMs: $(cat "$nd"/member.*)" >&2; exit 1; }
		if [[ $slot == 0 ]]; then echo "0 $p0 $p1"; else echo "1 $p1 $p0"; fi
	) || { _vm_err "cannot join net '$net'"; return 1; }
	printf '%s\n' "$out"
}

_vm_net_leave() {
	local name=$1 nd s
	for nd in "$VM_RUN_DIR"/nets/*/; do
		[[ -d $nd ]] || continue
		for s in 0 1; do
			if [[ -f $nd/member.$s && $(<"$nd/member.$s") == "$name" ]]; then rm -f "$nd/member.$s"; fi
		done
		if ! compgen -G "$nd/member.*" >/dev/null; then rm -rf "$nd"; fi
	done
	return 0
}

# ---------------------------------------------------------------- start / stop
# vm_start NAME [--disk SIZE_MiB]... [--net NETNAME --ip ADDR[/PREFIX]]... [--mem MiB]
#          [--smp N] [--append KERNEL_ARGS] [--fresh-disks] [--keep-disks]
# Boots NAME in the background and returns once its agent answers (<= VM_BOOT_TIMEOUT s).
# Disks are raw files <dir>/disk<i>.raw -> /dev/vda, /dev/vdb, ... in order; they are
# created (sparse) only if absent, so restarting NAME keeps their contents
# (--fresh-disks recreates them). The i-th --net becomes eth<i> with the i-th --ip
# (/24 if no prefix). Fails with the console tail if the VM does not come up.
vm_start() {
	local name=${1:-}
	[[ -n $name ]] || { _vm_err "usage: vm_start NAME [--disk MiB]... [--net NET --ip ADDR]... [--mem MiB]"; return 2; }
	shift
	_vm_check_name "$name" || return 2
	local -a disks=() nets=() ips=() saved=()
	local mem=$VM_MEM smp=$VM_SMP fresh=0 append=""
	while (($#)); do
		case $1 in
		--disk) disks+=("${2:-}"); saved+=("$1" "${2:-}"); shift 2 || return 2 ;;
		--net) nets+=("${2:-}"); saved+=("$1" "${2:-}"); shift 2 || return 2 ;;
		--ip) ips+=("${2:-}"); saved+=("$1" "${2:-}"); shift 2 || return 2 ;;
		--mem) mem=${2:-}; saved+=("$1" "${2:-}"); shift 2 || return 2 ;;
		--smp) smp=${2:-}; saved+=("$1" "${2:-}"); shift 2 || return 2 ;;
		--append) append+=" ${2:-}"; saved+=("$1" "${2:-}"); shift 2 || return 2 ;;
		--fresh-disks) fresh=1; shift ;;
		--keep-disks) shift ;;
		*) _vm_err "vm_start: unknown option '$1'"; return 2 ;;
		esac
	done
	if ((${#nets[@]} != ${#ips[@]})); then _vm_err "vm_start: --net and --ip come in pairs"; return 2; fi
	local x
	for x in "${disks[@]}" "$mem" "$smp"; do
		[[ $x =~ ^[1-9][0-9]*$ ]] || { _vm_err "vm_start: bad number '$x'"; return 2; }
	done
	for x in "${nets[@]}"; do
		[[ $x =~ ^[A-Za-z0-9_-]+$ ]] || { _vm_err "vm_start: bad net name '$x'"; return 2; }
	done
	_vm_need_run_dir || return 1
	_vm_kernel || return 1
	[[ $VM_LIB_DIR != *[[:space:],]* ]] || { _vm_err "repo path '$VM_LIB_DIR' must not contain spaces or commas"; return 1; }
	command -v "$VM_QEMU" >/dev/null || { _vm_err "$VM_QEMU not installed"; return 1; }

	local d
	d=$(_vm_dir "$name")
	if vm_alive "$name"; then _vm_err "VM $name is already running"; return 1; fi
	mkdir -p "$d/ctl/q" "$d/ctl/jobs" "$d/ctl/share" || return 1
	rm -f "$d/ctl/ready" "$d/ctl/tmp."* "$d/qemu.pid" "$d/ctl/q/"* "$d/ctl/jobs/"*
	# ttyS1 of the guest: QEMU reads wake.in (a FIFO we write to), writes to wake.out
	rm -f "$d/wake.in" "$d/wake.out"
	mkfifo "$d/wake.in" && ln -s /dev/null "$d/wake.out" || return 1
	# keep the console of earlier boots (vm_console / vm_check_dmesg read them all)
	local boot=0
	while [[ -e $d/console.$boot.log ]]; do boot=$((boot + 1)); done
	if [[ -e $d/console.log ]]; then mv "$d/console.log" "$d/console.$boot.log"; fi
	printf '%q ' "${saved[@]}" >"$d/args"

	local dd=${d//,/,,}
	local -a q=(
		"$VM_QEMU" -name "$name" -nodefaults -no-user-config
		-machine pc -accel tcg,thread=multi -cpu max -m "$mem" -smp "$smp"
		-display none -no-reboot
		-kernel "$RCOPY_KERNEL"
		-serial "file:$dd/console.log"
		-chardev "pipe,id=wake,path=$dd/wake" -serial chardev:wake
		-qmp "unix:$dd/qmp.sock,server=on,wait=off"
		-pidfile "$d/qemu.pid"
		-fsdev "local,id=root,path=/,security_model=none,readonly=on,multidevs=remap"
		-device "virtio-9p-pci,fsdev=root,mount_tag=/dev/root"
		-fsdev "local,id=repo,path=$RCOPY_ROOT,security_model=none,readonly=on"
		-device "virtio-9p-pci,fsdev=repo,mount_tag=repo"
		-fsdev "local,id=ctl,path=$dd/ctl,security_model=none"
		-device "virtio-9p-pci,fsdev=ctl,mount_tag=ctl"
		-device virtio-rng-pci
	)
	local i f
	for i in "${!disks[@]}"; do
		f=$d/disk$i.raw
		if [[ $fresh == 1 || ! -f $f ]]; then
			rm -f "$f"
			truncate -s "${disks[$i]}M" "$f" || return 1
		fi
		q+=(-drive "file=${f//,/,,},format=raw,if=virtio,cache=$VM_DISK_CACHE,discard=unmap")
	done
	local cmdline="console=ttyS0 root=/dev/root rootfstype=9p"
	cmdline+=" rootflags=trans=virtio,version=9p2000.L,msize=262144,cache=$VM_ROOT_CACHE ro"
	cmdline+=" init=$VM_LIB_DIR/init.sh panic=-1 no_timer_check rcvm.name=$name"
	cmdline+=" rcvm.ktree=${RCOPY_KERNEL%/arch/x86/boot/bzImage}"
	: >"$d/nics"
	local slot myport peerport ip mac hash
	for i in "${!nets[@]}"; do
		slot="" myport="" peerport=""
		read -r slot myport peerport < <(_vm_net_join "${nets[$i]}" "$name") || true
		[[ -n ${peerport:-} ]] || return 1
		ip=${ips[$i]}
		[[ $ip == */* ]] || ip=$ip/24
		hash=$(printf '%s' "${nets[$i]}" | cksum | cut -d' ' -f1)
		mac=$(printf '52:54:00:%02x:%02x:%02x' $((hash % 256)) $((slot + 1)) "$i")
		q+=(-netdev "socket,id=n$i,udp=127.0.0.1:$peerport,localaddr=127.0.0.1:$myport"
			-device "virtio-net-pci,netdev=n$i,mac=$mac")
		cmdline+=" rcvm.ip=eth$i,$ip"
		printf '%s %s %s\n' "$i" "${nets[$i]}" "$ip" >>"$d/nics"
	done
	cmdline+=$append
	q+=(-append "$cmdline")
	printf '%q ' timeout -s KILL "$VM_LIFETIME" "${q[@]}" >"$d/qemu.cmd"
	echo >>"$d/qemu.cmd"

	_vm_log "[$name] booting (${#disks[@]} disk(s), nets: ${nets[*]:-none})"
	local t0=$EPOCHREALTIME
	# started from a subshell: not our job, so no "Killed" notices from bash on vm_kill
	rm -f "$d/timeout.pid"
	(timeout -s KILL "$VM_LIFETIME" "${q[@]}" </dev/null >>"$d/qemu.log" 2>&1 &
		echo $! >"$d/timeout.pid")
	local tpid
	read -r tpid <"$d/timeout.pid" || { _vm_err "cannot start QEMU"; return 1; }
	_vm_watchdog "$name"
	local deadline=$((SECONDS + VM_BOOT_TIMEOUT)) started=0
	while [[ ! -e $d/ctl/ready ]]; do
		if vm_alive "$name"; then
			started=1
		elif [[ $started == 1 ]] || ! _vm_proc_running "$tpid"; then
			_vm_err "VM $name: QEMU exited during boot"
			_vm_boot_failure "$name"
			return 1
		fi
		if ((SECONDS >= deadline)); then
			_vm_err "VM $name: agent not ready after ${VM_BOOT_TIMEOUT}s"
			vm_kill "$name"
			_vm_boot_failure "$name"
			return 1
		fi
		sleep 0.05
	done
	local ms=$(((${EPOCHREALTIME/./} - ${t0/./}) / 1000))
	echo "$ms" >"$d/boot_ms"
	_vm_log "[$name] up in ${ms} ms"
}

# _vm_watchdog NAME: if VM_OWNER_PID is set (run.sh sets it), kill NAME's QEMU when that
# process is gone, so that a runner killed with SIGKILL leaves no VM behind.
_vm_watchdog() {
	[[ ${VM_OWNER_PID:-} =~ ^[0-9]+$ ]] || return 0
	local name=$1 owner=$VM_OWNER_PID
	(
		exec </dev/null >/dev/null 2>&1
		# survive signals to the test's process group: exit only when the VM is gone
		trap - EXIT
		trap '' TERM INT HUP
		deadline=$((SECONDS + 10))
		until pid=$(_vm_pid "$name"); do
			((SECONDS < deadline)) || exit 0
			sleep 0.2
		done
		while kill -0 "$owner" && [[ $(_vm_pid "$name") == "$pid" ]]; do sleep 2; done
		[[ $(_vm_pid "$name") == "$pid" ]] && kill -KILL "$pid"
	) &
}

_vm_boot_failure() {
	local d
	d=$(_vm_dir "$1")
	if [[ -s $d/qemu.log ]]; then
		echo "--- qemu output of $1 ---" >&2
		tail -n 20 "$d/qemu.log" >&2
	fi
	echo "--- console of $1 (last 40 lines) ---" >&2
	tail -n 40 "$d/console.log" >&2 2>/dev/null || true
	echo "--- end ---" >&2
}

# vm_start_many "NAME ARGS..." ...: boot several VMs in parallel (word-split specs);
# fails if any fails.
vm_start_many() {
	_vm_need_run_dir || return 1
	_vm_kernel || return 1
	local spec rc=0
	local -a pids=()
	for spec in "$@"; do
		# shellcheck disable=SC2086
		vm_start $spec &
		pids+=($!)
	done
	local p
	for p in "${pids[@]}"; do wait "$p" || rc=1; done
	return $rc
}

# vm_restart NAME: boot NAME again with the options of its last vm_start (same disks,
# nets and addresses). If it is running it is killed first (a crash).
vm_restart() {
	local name=${1:?usage: vm_restart NAME} d
	d=$(_vm_dir "$name")
	[[ -f $d/args ]] || { _vm_err "VM $name was never started"; return 1; }
	if vm_alive "$name"; then vm_kill "$name"; fi
	local -a args=()
	eval "args=($(<"$d/args"))"
	vm_start "$name" "${args[@]}"
}

# vm_kill NAME: SIGKILL NAME's QEMU (a crash: guest page cache is lost, everything the
# virtual disk already accepted is kept). No-op if it is not running.
vm_kill() {
	local name=${1:?usage: vm_kill NAME} pid d
	d=$(_vm_dir "$name")
	pid=$(_vm_pid "$name") || return 0
	_vm_log "[$name] kill -9 QEMU (pid $pid)"
	kill -KILL "$pid" 2>/dev/null || true
	local deadline=$((SECONDS + 15))
	while vm_alive "$name"; do
		((SECONDS < deadline)) || { _vm_err "VM $name: QEMU $pid survives SIGKILL"; return 1; }
		sleep 0.05
	done
	# the timeout(1) wrapper exits with its child
	local tpid
	if read -r tpid 2>/dev/null <"$d/timeout.pid"; then
		while kill -0 "$tpid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.05; done
	fi
	return 0
}

# vm_stop NAME [TIMEOUT]: clean shutdown: the guest syncs and reboots (QEMU runs with
# -no-reboot, so it exits). Falls back to vm_kill after TIMEOUT (VM_STOP_TIMEOUT) s.
vm_stop() {
	local name=${1:?usage: vm_stop NAME [TIMEOUT]} t=${2:-$VM_STOP_TIMEOUT}
	vm_alive "$name" || return 0
	_vm_log "[$name] stop"
	_vm_submit "$name" 60 'sync; busybox reboot -f || echo b >/proc/sysrq-trigger' >/dev/null || true
	local deadline=$((SECONDS + t))
	while vm_alive "$name"; do
		if ((SECONDS >= deadline)); then
			_vm_err "VM $name did not shut down in ${t}s; killing it"
			vm_kill "$name"
			return 0
		fi
		sleep 0.1
	done
	return 0
}

# vm_destroy NAME: kill NAME, free its net slots and delete its directory (disks too).
# With KEEP_VMS=1 the directory is kept, renamed to NAME.destroyed.N.
vm_destroy() {
	local name=${1:?usage: vm_destroy NAME} d n=0
	d=$(_vm_dir "$name")
	[[ -d $d ]] || return 0
	vm_kill "$name" || true
	_vm_net_leave "$name"
	if [[ ${KEEP_VMS:-0} == 1 ]]; then
		while [[ -e $d.destroyed.$n ]]; do n=$((n + 1)); done
		mv "$d" "$d.destroyed.$n"
	else
		rm -rf "$d"
	fi
	return 0
}

# vm_list: names of the VMs in the run dir (running or not).
vm_list() {
	[[ -n ${VM_RUN_DIR:-} && -d $VM_RUN_DIR/vms ]] || return 0
	local d
	for d in "$VM_RUN_DIR"/vms/*/; do
		[[ -d $d && $d != *.destroyed.*/ ]] || continue
		d=${d%/}
		printf '%s\n' "${d##*/}"
	done
}

# vm_cleanup_all: vm_destroy every VM of the run dir.
vm_cleanup_all() {
	local n
	for n in $(vm_list); do vm_destroy "$n"; done
	return 0
}

# ---------------------------------------------------------------- commands
_vm_next_job() {
	local d=$1 n
	(
		exec 9>>"$d/job.lock"
		flock -w 30 9 || exit 1
		n=0
		[[ -s $d/job.seq ]] && read -r n <"$d/job.seq"
		n=$((n + 1))
		echo "$n" >"$d/job.seq"
		echo "$n"
	)
}

# _vm_submit NAME TIMEOUT SCRIPT -> prints job id. The agent runs SCRIPT with bash in a
# process group of its own, SIGTERMs that group after TIMEOUT s and SIGKILLs it 10 s later.
_vm_submit() {
	local name=$1 t=$2 script=$3 d job
	d=$(_vm_dir "$name")
	[[ -d $d/ctl/q ]] || { _vm_err "no VM named $name"; return 1; }
	[[ $t =~ ^[0-9]+$ ]] || { _vm_err "bad timeout '$t'"; return 2; }
	job=$(_vm_next_job "$d") || { _vm_err "cannot allocate a job id"; return 1; }
	printf '#timeout=%s\n%s\n' "$t" "$script" >"$d/ctl/tmp.$job" || return 1
	mv "$d/ctl/tmp.$job" "$d/ctl/q/cmd.$job" || return 1
	_vm_wake "$name"
	printf '%s\n' "$job"
}

# _vm_wake NAME: nudge NAME's agent (a newline on its ttyS1). Opening the FIFO read-write
# never blocks, and one byte always fits, so this cannot hang.
_vm_wake() {
	local d fd
	d=$(_vm_dir "$1")
	vm_alive "$1" || return 0
	{ exec {fd}<>"$d/wake.in" && printf '\n' >&"$fd" && exec {fd}>&-; } 2>/dev/null || true
}

# _vm_script ARGS...: one argument is a bash script; several are a command and its
# arguments (quoted); "-" reads the script from stdin.
_vm_script() {
	if (($# == 1)) && [[ $1 == - ]]; then
		cat
	elif (($# == 1)); then
		printf '%s\n' "$1"
	else
		printf '%q ' "$@"
		echo
	fi
}

# _vm_wait_job NAME JOB HOST_TIMEOUT LABEL: wait for JOB's exit code, print its output.
_vm_wait_job() {
	local name=$1 job=$2 t=$3 label=$4 d rc
	d=$(_vm_dir "$name")
	local rcf=$d/ctl/jobs/rc.$job out=$d/ctl/jobs/out.$job
	local deadline=$((SECONDS + t)) n=0
	while :; do
		if [[ -s $rcf ]] && read -r rc 2>/dev/null <"$rcf" && [[ $rc =~ ^[0-9]+$ ]]; then break; fi
		n=$((n + 1))
		# now and then: is the VM still there?
		if ((n % 20 == 0)) && ! vm_alive "$name"; then
			if [[ -s $rcf ]] && read -r rc 2>/dev/null <"$rcf" && [[ $rc =~ ^[0-9]+$ ]]; then break; fi
			cat "$out" 2>/dev/null || true
			_vm_err "[$name] VM is not running (job $job: $label)"
			return 255
		fi
		if ((SECONDS >= deadline)); then
			cat "$out" 2>/dev/null || true
			_vm_err "[$name] timed out after ${t}s waiting for job $job: $label"
			vm_job_kill "$name" "$job" 2>/dev/null || true
			return 124
		fi
		if ((n < 100)); then sleep 0.01; else sleep 0.05; fi
	done
	cat "$out" 2>/dev/null || true
	rm -f "$d/ctl/q/cmd.$job"
	if [[ -e $d/ctl/jobs/timedout.$job ]]; then
		_vm_err "[$name] command timed out in the VM: $label"
		return 124
	fi
	if ((rc != 0)); then
		_vm_log "[$name] exit $rc: $label"
		# output captured by $(...) would be lost with the test: copy it to the log
		if [[ $VM_TRACE != 0 && ! /proc/self/fd/1 -ef /proc/self/fd/2 ]]; then
			tail -n 30 "$out" 2>/dev/null | sed 's/^/  | /' >&2 || true
		fi
	fi
	return "$rc"
}

_vm_label() {
	local s=${1%%$'\n'*}
	((${#s} <= 100)) || s="${s:0:97}..."
	[[ $1 == *$'\n'* ]] && s+=" ..."
	printf '%s' "$s"
}

# vm_run NAME [--timeout S] [--] CMD...
# Runs CMD in NAME with bash and prints its combined stdout+stderr; returns its exit
# code. One word is a bash script ("a | b; c"); several words are a command with
# arguments; "-" reads the script from stdin (vm_run a - <<'EOF' ... EOF).
# On timeout (default VM_RUN_TIMEOUT) the command is killed and 124 is returned;
# 255 if the VM is not running.
vm_run() {
	local name=${1:?usage: vm_run NAME [--timeout S] [--] CMD...}
	shift
	local t=$VM_RUN_TIMEOUT
	while (($#)); do
		case $1 in
		--timeout) t=${2:-}; shift 2 || return 2 ;;
		--) shift; break ;;
		*) break ;;
		esac
	done
	(($#)) || { _vm_err "vm_run: no command"; return 2; }
	local script job label
	script=$(_vm_script "$@")
	label=$(_vm_label "$script")
	_vm_log "[$name]\$ $label"
	vm_alive "$name" || { _vm_err "[$name] VM is not running"; return 255; }
	job=$(_vm_submit "$name" "$t" "$script") || return 255
	_vm_wait_job "$name" "$job" $((t + 20)) "$label"
}

# vm_spawn NAME [--timeout S] [--] CMD... -> prints a job id; CMD runs in the background
# (killed after S s, default VM_LIFETIME). Collect it with vm_wait.
vm_spawn() {
	local name=${1:?usage: vm_spawn NAME [--timeout S] [--] CMD...}
	shift
	local t=$VM_LIFETIME
	while (($#)); do
		case $1 in
		--timeout) t=${2:-}; shift 2 || return 2 ;;
		--) shift; break ;;
		*) break ;;
		esac
	done
	(($#)) || { _vm_err "vm_spawn: no command"; return 2; }
	local script job
	script=$(_vm_script "$@")
	vm_alive "$name" || { _vm_err "[$name] VM is not running"; return 255; }
	job=$(_vm_submit "$name" "$t" "$script") || return 255
	_vm_log "[$name]& (job $job) $(_vm_label "$script")"
	printf '%s\n' "$job"
}

# vm_wait NAME JOB [TIMEOUT]: wait for a spawned job, print its output, return its exit
# code; after TIMEOUT (default VM_RUN_TIMEOUT) s kill the job and return 124.
vm_wait() {
	local name=${1:?usage: vm_wait NAME JOB [TIMEOUT]} job=${2:?usage: vm_wait NAME JOB [TIMEOUT]}
	_vm_wait_job "$name" "$job" "${3:-$VM_RUN_TIMEOUT}" "job $job"
}

# vm_job_done NAME JOB: true once JOB has exited.
vm_job_done() { [[ -s $(_vm_dir "$1")/ctl/jobs/rc.$2 ]]; }

# vm_job_output NAME JOB: the output JOB has written so far.
vm_job_output() { cat "$(_vm_dir "$1")/ctl/jobs/out.$2" 2>/dev/null || true; }

# vm_job_kill NAME JOB: SIGTERM the job's process group (SIGKILL 10 s later).
vm_job_kill() { : >"$(_vm_dir "$1")/ctl/q/kill.$2" && _vm_wake "$1"; }

# vm_wait_until NAME TIMEOUT CMD: inside NAME, retry the bash script CMD every 0.2 s
# until it succeeds (0) or TIMEOUT s pass (1). One round trip to the VM.
vm_wait_until() {
	local name=$1 t=$2 cmd=$3
	vm_run "$name" --timeout $((t + 30)) "end=\$((SECONDS + $t)); until ( $cmd ) >/dev/null 2>&1; do
  if [ \$SECONDS -ge \$end ]; then echo 'condition not met after ${t}s: $(_vm_label "${cmd//\'/}")'; exit 1; fi
  sleep 0.2
done"
}

# wait_until TIMEOUT CMD...: on the host, retry CMD every 0.2 s until it succeeds.
wait_until() {
	local t=$1 deadline
	shift
	deadline=$((SECONDS + t))
	until "$@" >/dev/null 2>&1; do
		((SECONDS < deadline)) || { _vm_err "wait_until: '$*' still failing after ${t}s"; return 1; }
		sleep 0.2
	done
}

# ---------------------------------------------------------------- QEMU monitor, logs
# vm_qmp NAME COMMAND [JSON_ARGUMENTS]: send one QMP command, print the JSON reply.
vm_qmp() {
	local d
	d=$(_vm_dir "$1")
	vm_alive "$1" || { _vm_err "[$1] VM is not running"; return 1; }
	timeout 20 python3 "$VM_LIB_DIR/qmp.py" "$d/qmp.sock" "$2" "${3:-}"
}

# vm_link NAME up|down [NETNAME]: plug/unplug the virtual cable of NAME's NIC on NETNAME
# (all its NICs without NETNAME). The guest sees carrier loss; frames are dropped.
vm_link() {
	local name=${1:?usage: vm_link NAME up|down [NET]} state=${2:-} net=${3:-} up i n ip any=0
	case $state in up) up=true ;; down) up=false ;; *) _vm_err "vm_link: state must be up or down"; return 2 ;; esac
	local d
	d=$(_vm_dir "$name")
	while read -r i n ip; do
		[[ -z $net || $n == "$net" ]] || continue
		any=1
		_vm_log "[$name] link $n (eth$i) $state"
		vm_qmp "$name" set_link "{\"name\": \"n$i\", \"up\": $up}" >/dev/null || return 1
	done <"$d/nics"
	[[ $any == 1 ]] || { _vm_err "VM $name has no NIC${net:+ on net $net}"; return 1; }
}

# vm_ip NAME [NETNAME]: NAME's address (without prefix) on NETNAME (default: first NIC).
vm_ip() {
	local d i n ip
	d=$(_vm_dir "$1")
	while read -r i n ip; do
		if [[ -z ${2:-} || $n == "$2" ]]; then printf '%s\n' "${ip%/*}"; return 0; fi
	done <"$d/nics"
	return 1
}

# vm_share_dir NAME: host directory that NAME sees as /run/vm/share (read-write).
vm_share_dir() { printf '%s/ctl/share\n' "$(_vm_dir "$1")"; }

# vm_disk NAME INDEX: host path of NAME's INDEX-th disk (/dev/vd<a+INDEX> in the guest).
vm_disk() { printf '%s/disk%s.raw\n' "$(_vm_dir "$1")" "$2"; }

# vm_boot_ms NAME: milliseconds the last vm_start of NAME took.
vm_boot_ms() { cat "$(_vm_dir "$1")/boot_ms"; }

# _vm_consoles NAME: console log files of NAME, oldest boot first.
_vm_consoles() {
	local d b=0
	d=$(_vm_dir "$1")
	while [[ -e $d/console.$b.log ]]; do printf '%s\n' "$d/console.$b.log"; b=$((b + 1)); done
	if [[ -e $d/console.log ]]; then printf '%s\n' "$d/console.log"; fi
}

# vm_console NAME: print NAME's serial console, every boot.
vm_console() {
	local f b=0
	while read -r f; do
		echo "=== $1: boot $b ($(basename "$f")) ==="
		cat "$f"
		b=$((b + 1))
	done < <(_vm_consoles "$1")
}

# vm_check_dmesg NAME: fail (1) and print the offending lines if NAME's console, in any
# boot, shows an Oops, BUG, panic, WARNING, call trace, lockup or stall
# (VM_DMESG_BAD; lines matching VM_DMESG_IGNORE are skipped).
vm_check_dmesg() {
	local name=${1:?usage: vm_check_dmesg NAME} f hits="" h
	while read -r f; do
		h=$(grep -naE -- "$VM_DMESG_BAD" "$f" || true)
		if [[ -n $h && -n $VM_DMESG_IGNORE ]]; then h=$(grep -vaE -- "$VM_DMESG_IGNORE" <<<"$h" || true); fi
		if [[ -n $h ]]; then hits+="--- $(basename "$f") ---"$'\n'"$h"$'\n'; fi
	done < <(_vm_consoles "$name")
	[[ -z $hits ]] && return 0
	_vm_err "kernel problems in the console of $name:"
	printf '%s' "$hits" | head -n 60 >&2
	return 1
}

# ---------------------------------------------------------------- assertions
# Each prints "ASSERTION FAILED (file:line): ..." and returns 1 on failure.
_assert_failed() {
	local i=1
	# report the test's line, not the library's
	while [[ ${BASH_SOURCE[$i]:-} == "${BASH_SOURCE[0]}" ]]; do i=$((i + 1)); done
	printf 'ASSERTION FAILED (%s:%s): %s\n' "$(basename "${BASH_SOURCE[$i]:-?}")" "${BASH_LINENO[$((i - 1))]:-?}" "$*" >&2
	return 1
}

# assert_eq EXPECTED ACTUAL [MESSAGE]
assert_eq() {
	[[ "$1" == "$2" ]] && return 0
	_assert_failed "${3:+$3: }expected '$1', got '$2'"
}

# assert_ne UNEXPECTED ACTUAL [MESSAGE]
assert_ne() {
	[[ "$1" != "$2" ]] && return 0
	_assert_failed "${3:+$3: }did not expect '$2'"
}

# assert_contains HAYSTACK NEEDLE [MESSAGE]
assert_contains() {
	[[ "$1" == *"$2"* ]] && return 0
	_assert_failed "${3:+$3: }'$2' not found in: $(_vm_label "$1")$( [[ ${#1} -gt 100 || $1 == *$'\n'* ]] && printf '\n%s' "$1")"
}

# assert_not_contains HAYSTACK NEEDLE [MESSAGE]
assert_not_contains() {
	[[ "$1" != *"$2"* ]] && return 0
	_assert_failed "${3:+$3: }'$2' unexpectedly found in: $1"
}

# assert_ok CMD...: CMD must succeed (prints its output).
assert_ok() {
	local out rc=0
	out=$("$@" 2>&1) || rc=$?
	[[ -z $out ]] || printf '%s\n' "$out"
	((rc == 0)) && return 0
	_assert_failed "expected success, got exit $rc: $*"
}

# assert_fail [--contains STR] [--rc N] CMD...: CMD must exit non-zero (exactly N with
# --rc) and, with --contains, print STR (stdout or stderr).
assert_fail() {
	local want="" wantrc="" out rc=0
	while (($#)); do
		case $1 in
		--contains) want=$2; shift 2 ;;
		--rc) wantrc=$2; shift 2 ;;
		--) shift; break ;;
		*) break ;;
		esac
	done
	out=$("$@" 2>&1) || rc=$?
	[[ -z $out ]] || printf '%s\n' "$out"
	if ((rc == 0)); then _assert_failed "expected failure, but it succeeded: $*"; return 1; fi
	if [[ -n $wantrc && $rc != "$wantrc" ]]; then _assert_failed "expected exit $wantrc, got $rc: $*"; return 1; fi
	if [[ -n $want && $out != *"$want"* ]]; then _assert_failed "output of failing '$*' lacks '$want'"; return 1; fi
	return 0
}

# vmtest_skip REASON: end the current test as skipped (use sparingly).
vmtest_skip() {
	echo "SKIP: $*" >&2
	exit 77
}
