# shellcheck shell=bash
# Helpers for two-VM rcopy tests: VM a (10.77.0.1, primary) and VM b (10.77.0.2,
# secondary) on net n0, each with a data disk (vda) and a metadata disk (vdb).

PAIR_SECRET=${PAIR_SECRET:-s3cret-for-tests}
PAIR_PORT=7788
BLOCKS_PY=$RCOPY_ROOT/scripts/vmtests/lib/blocks.py
GARBAGE_PY=$RCOPY_ROOT/scripts/vmtests/lib/garbage.py

# pair_boot DATA_MiB [EXTRA_VM_ARGS]: boot a and b, load the module on both.
pair_boot() {
	local mb=${1:-64}
	vm_start_many "a --disk $mb --disk 8 --net n0 --ip 10.77.0.1/24 ${2:-}" \
		"b --disk $mb --disk 8 --net n0 --ip 10.77.0.2/24 ${2:-}"
	vm_run a "insmod $RCOPY_MODULE"
	vm_run b "insmod $RCOPY_MODULE"
}

# pair_secondary [DATA_DEV] [OPTION WORDS...]: create r0 on b as the secondary.
pair_secondary() {
	local dev=${1:-/dev/vda}
	shift || true
	local opts="role secondary local 10.77.0.2:$PAIR_PORT secret $PAIR_SECRET $*"
	local n
	n=$(wc -w <<<"$opts")
	vm_run b "dmsetup create r0 --table \"0 \$(blockdev --getsz $dev) rcopy $dev /dev/vdb $n $opts\""
}

# pair_primary [OPTION WORDS...]: create r0 on a as the primary.
pair_primary() {
	local opts="role primary peer 10.77.0.2:$PAIR_PORT secret $PAIR_SECRET $*"
	local n
	n=$(wc -w <<<"$opts")
	vm_run a "dmsetup create r0 --table \"0 \$(blockdev --getsz /dev/vda) rcopy /dev/vda /dev/vdb $n $opts\""
}

# field VM KEY: one key of r0's status line in VM
field() { vm_run "$1" "dmsetup status r0 | tr ' ' '\n' | sed -n 's/^$2=//p'"; }

# wait_state VM STATE [TIMEOUT]
wait_state() {
	vm_wait_until "$1" "${3:-300}" "dmsetup status r0 | grep -q 'state=$2 '" ||
		fail "r0 on $1 did not reach state $2: $(vm_run "$1" 'dmsetup status r0')"
}

# wait_drained [TIMEOUT]: primary duplex with nothing unacknowledged or dirty
wait_drained() {
	vm_wait_until a "${1:-300}" "dmsetup status r0 | grep 'state=duplex ' | grep ' dirty_bytes=0 ' | grep -q ' lag_bytes=0 '" ||
		fail "pair did not drain: $(vm_run a 'dmsetup status r0')"
}

# lower_sum VM: sha256 of the VM's data disk, read with O_DIRECT (no stale page cache)
lower_sum() { vm_run "$1" 'dd if=/dev/vda bs=1M iflag=direct status=none | sha256sum | cut -d" " -f1'; }

# assert_pair_identical: the lower devices of a and b hold the same bytes
assert_pair_identical() {
	local sa sb
	sa=$(lower_sum a)
	sb=$(lower_sum b)
	echo "sha256 a=$sa b=$sb"
	assert_eq "$sa" "$sb" "sha256 of the primary's and the secondary's data disks"
}

fail() {
	echo "FAIL: $*" >&2
	return 1
}
