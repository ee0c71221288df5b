# shellcheck shell=bash
# Helpers for the takeover / failback / split-brain tests (tests/60-takeover.sh), on
# top of pair.sh and safety.sh. Both VMs carry both addresses in their tables, so a
# role change is a table reload with only the role word changed:
#   a: local 10.77.0.1:7788 peer 10.77.0.2:7788
#   b: local 10.77.0.2:7788 peer 10.77.0.1:7788

TRACK=65536

# addr_of VM: VM's replication address
addr_of() {
	case $1 in
	a) echo "10.77.0.1:$PAIR_PORT" ;;
	b) echo "10.77.0.2:$PAIR_PORT" ;;
	*) fail "no address for VM $1" ;;
	esac
}

# other VM: the other side of the pair
other() { if [[ $1 == a ]]; then echo b; else echo a; fi; }

# tk_table VM ROLE [OPTION WORDS...]: r0's table line for VM (its size is computed in
# the VM), with both addresses
tk_table() {
	local vm=$1 role=$2
	shift 2
	local opts n
	opts="role $role local $(addr_of "$vm") peer $(addr_of "$(other "$vm")") secret $PAIR_SECRET $*"
	n=$(wc -w <<<"$opts")
	printf '0 $(blockdev --getsz /dev/vda) rcopy /dev/vda /dev/vdb %s %s' "$n" "$opts"
}

# tk_create VM ROLE [OPTION WORDS...]: create r0 on VM
tk_create() {
	local vm=$1
	shift
	vm_run "$vm" "dmsetup create r0 --table \"$(tk_table "$vm" "$@")\""
}

# tk_pair [OPTION WORDS...]: b secondary, a primary, both with the same options;
# waits for duplex
tk_pair() {
	tk_create b secondary "$@"
	tk_create a primary "$@"
	wait_state a duplex 300
}

# ctl VM ARGS...: rcopyctl in VM (prints its output, returns its exit code)
ctl() {
	local vm=$1
	shift
	vm_run "$vm" "$RCOPYCTL $*"
}

# st VM: r0's status line in VM
st() { vm_run "$1" 'dmsetup status r0'; }

# wait_key VM KEY VALUE [TIMEOUT]: until r0's status in VM has KEY=VALUE
wait_key() {
	vm_wait_until "$1" "${4:-120}" "dmsetup status r0 | tr ' ' '\n' | grep -qx '$2=$3'" ||
		fail "r0 on $1 never showed $2=$3: $(st "$1")"
}

# wait_not_key VM KEY VALUE [TIMEOUT]: until r0's status in VM no longer has KEY=VALUE
wait_not_key() {
	vm_wait_until "$1" "${4:-120}" "! dmsetup status r0 | tr ' ' '\n' | grep -qx '$2=$3'" ||
		fail "r0 on $1 still shows $2=$3: $(st "$1")"
}

# drained_on VM [TIMEOUT]: VM is a primary in duplex with nothing unacknowledged or
# dirty, and its peer says consistent
drained_on() {
	vm_wait_until "$1" "${2:-300}" "dmsetup status r0 | grep 'state=duplex ' | grep ' dirty_bytes=0 ' | grep -q ' lag_bytes=0 '" ||
		fail "r0 on $1 did not drain: $(st "$1")"
	wait_key "$(other "$1")" consistent yes 60
}

# wait_decided VM [TIMEOUT]: until r0 on VM shows a handshake decision; prints it
wait_decided() {
	wait_not_key "$1" decision none "${2:-120}" >/dev/null || return 1
	field "$1" decision
}

# grown VM KEY FROM [TIMEOUT]: until KEY on VM exceeds FROM
grown() {
	vm_wait_until "$1" "${4:-30}" "[ \$(dmsetup status r0 | tr ' ' '\n' | sed -n 's/^$2=//p') -gt $3 ]" ||
		fail "$2 on $1 did not grow past $3: $(st "$1")"
}

# boot_again VM: crash-restart VM (same disks) and load the module
boot_again() {
	vm_restart "$1"
	vm_run "$1" "insmod $RCOPY_MODULE"
}

# fill_random VM: random data over VM's whole data disk (before pairing)
fill_random() { vm_run "$1" 'head -c $(blockdev --getsize64 /dev/vda) /dev/urandom | dd of=/dev/vda bs=1M oflag=direct status=none'; }

# tracks_union SIZE TRACK "N SEED"...: how many distinct tracks the tracks.py runs
# (N tracks chosen with SEED each) write together
tracks_union() {
	local size=$1 track=$2
	shift 2
	python3 - "$size" "$track" "$@" <<'PY'
import random, sys
size, track = int(sys.argv[1]), int(sys.argv[2])
u = set()
for spec in sys.argv[3:]:
    n, seed = map(int, spec.split())
    u |= set(random.Random(seed).sample(range(size // track), n))
print(len(u))
PY
}

# write_tracks VM N SEED: one 4 KiB write into each of N random tracks of r0 on VM
write_tracks() { vm_run "$1" "python3 $RCOPY_ROOT/scripts/vmtests/lib/tracks.py /dev/mapper/r0 $2 $3"; }

# within_pct ACTUAL EXPECTED PCT: |ACTUAL - EXPECTED| <= PCT% of EXPECTED
within_pct() { (($1 * 100 >= $2 * (100 - $3) && $1 * 100 <= $2 * (100 + $3))); }

# role_is VM ROLE: r0's status and table on VM both say ROLE
role_is() {
	[[ $(field "$1" role) == "$2" ]] && vm_run "$1" 'dmsetup table r0' | grep -q " role $2 "
}

# refused_in_log VM N REGEX: a kernel log line after the first N says "refused" and
# matches REGEX (extended, any case)
refused_in_log() { klog_since "$1" "$2" | grep -i 'refused' | grep -qiE -- "$3"; }
