# shellcheck shell=bash
# The rcopy target standalone (simplex): module load/unload, dmsetup create/remove,
# data integrity through the target, flush/FUA/discard/write-zeroes pass-through,
# every bad table line with its error text, status and messages, and rcopyctl.
# One VM, s, with a 256 MiB data disk (vda), an 8 MiB metadata disk (vdb), a 4 MiB
# disk too small for the metadata of vda (vdc), and a spare 64 MiB disk (vdd).

TEST_TIMEOUT=600

fail() {
	echo "FAIL: $*" >&2
	return 1
}

# in VM s: load the module if it is not loaded
load() { vm_run s "grep -q '^dm_rcopy ' /proc/modules || insmod $RCOPY_MODULE"; }
# in VM s: remove every device-mapper device, then the module
unload_all() { vm_run s 'dmsetup remove_all; ! grep -q "^dm_rcopy " /proc/modules || rmmod dm_rcopy'; }
sectors() { vm_run s "blockdev --getsz $1"; }
# create_r0 [OPTIONS]: r0 over vda (data) and vdb (metadata)
create_r0() { vm_run s "dmsetup create r0 --table \"0 \$(blockdev --getsz /dev/vda) rcopy /dev/vda /dev/vdb $*\""; }
# status_field DEV KEY: one key of the status line
status_field() { vm_run s "dmsetup status $1 | tr ' ' '\n' | sed -n 's/^$2=//p'"; }

setup_file() {
	vm_start s --disk 256 --disk 8 --disk 4 --disk 64
	vm_run s 'head -c 256M /dev/urandom | dd of=/dev/vda bs=1M oflag=direct status=none'
}

test_insmod_rmmod_cycles() {
	unload_all
	local i
	for i in 1 2 3; do
		vm_run s "insmod $RCOPY_MODULE"
		assert_contains "$(vm_run s 'dmsetup targets')" "rcopy"
		create_r0
		assert_fail --contains "in use" vm_run s 'rmmod dm_rcopy'
		vm_run s 'dmsetup remove r0'
		vm_run s 'rmmod dm_rcopy'
		assert_not_contains "$(vm_run s 'dmsetup targets')" "rcopy"
		assert_not_contains "$(vm_run s 'cat /proc/modules')" "dm_rcopy"
	done
}

test_create_remove_cycles_leak_nothing() {
	load
	local i before after
	before=$(vm_run s "awk '/^Slab:/ {print \$2}' /proc/meminfo")
	for i in $(seq 20); do
		create_r0
		vm_run s 'dmsetup remove r0'
	done
	# the devices are free again (a leaked claim would refuse this), and the module's
	# use count is back to zero (rmmod works)
	create_r0
	vm_run s 'dmsetup remove r0'
	after=$(vm_run s "awk '/^Slab:/ {print \$2}' /proc/meminfo")
	echo "slab before=${before}k after=${after}k"
	# 20 leaked targets would leave well over 20 * (target + devices + bitmaps) behind
	((after - before < 2048)) || fail "slab grew by $((after - before)) KiB over 20 cycles"
	vm_run s 'rmmod dm_rcopy'
}

test_fio_verify_and_checksums() {
	load
	create_r0
	local out
	out=$(vm_run s --timeout 400 -- fio --name=rand4k --filename=/dev/mapper/r0 --rw=randwrite \
		--bs=4k --size=64M --ioengine=libaio --iodepth=16 --direct=1 --verify=crc32c \
		--verify_fatal=1 --randrepeat=0)
	assert_contains "$out" "err= 0"
	out=$(vm_run s --timeout 400 -- fio --name=seq1m --filename=/dev/mapper/r0 --rw=write \
		--bs=1M --offset=64M --size=128M --ioengine=libaio --iodepth=8 --direct=1 \
		--verify=crc32c --verify_fatal=1)
	assert_contains "$out" "err= 0"
	# the target is an identity map: whole-device checksums agree
	local dm lower
	dm=$(vm_run s 'sha256sum </dev/mapper/r0')
	lower=$(vm_run s 'sha256sum </dev/vda')
	assert_eq "$lower" "$dm" "sha256 of /dev/mapper/r0 vs /dev/vda"
	# and a write through the target lands at the same offset below
	vm_run s 'head -c 1M /dev/urandom >/tmp/blk; dd if=/tmp/blk of=/dev/mapper/r0 bs=1M seek=77 oflag=direct status=none'
	assert_eq "$(vm_run s 'sha256sum </tmp/blk')" \
		"$(vm_run s 'dd if=/dev/vda bs=1M skip=77 count=1 iflag=direct status=none | sha256sum')" \
		"block written at 77 MiB through r0 read back from vda"
	vm_run s 'dmsetup remove r0'
}

test_flush_fua_discard_write_zeroes() {
	load
	create_r0
	vm_run s 'dmsetup message r0 0 stats_reset'
	# flush: an fsync on the block device sends an empty REQ_PREFLUSH bio
	vm_run s 'python3 -c "import os; f=os.open(\"/dev/mapper/r0\", os.O_WRONLY); os.fsync(f)"'
	assert_ne 0 "$(status_field r0 flushes)" "flushes after fsync"
	# FUA and the volatile write cache are advertised like the lower device's
	assert_eq "$(vm_run s 'cat /sys/block/vda/queue/write_cache /sys/block/vda/queue/fua')" \
		"$(vm_run s 'cat /sys/block/dm-0/queue/write_cache /sys/block/dm-0/queue/fua')" \
		"write_cache and fua of dm-0 vs vda"
	# write-zeroes reaches the data device
	vm_run s 'dd if=/dev/urandom of=/dev/mapper/r0 bs=1M count=2 seek=10 oflag=direct status=none'
	vm_run s 'blkdiscard -z -o $((10 << 20)) -l $((2 << 20)) /dev/mapper/r0'
	assert_eq 1 "$(status_field r0 write_zeroes)" "write_zeroes counter"
	assert_eq "$(vm_run s 'head -c 2M /dev/zero | sha256sum')" \
		"$(vm_run s 'dd if=/dev/vda bs=1M skip=10 count=2 iflag=direct status=none | sha256sum')" \
		"zeroed range on vda"
	# discard is supported when the lower device supports it, and passed down
	assert_eq "$(vm_run s 'cat /sys/block/vda/queue/discard_max_bytes')" \
		"$(vm_run s 'cat /sys/block/dm-0/queue/discard_max_bytes')" "discard_max_bytes"
	vm_run s 'blkdiscard -o $((20 << 20)) -l $((1 << 20)) /dev/mapper/r0'
	assert_eq 1 "$(status_field r0 discards)" "discards counter"
	# limits are stacked from the data device
	assert_eq "$(vm_run s 'cat /sys/block/vda/queue/logical_block_size')" \
		"$(vm_run s 'cat /sys/block/dm-0/queue/logical_block_size')" "logical_block_size"
	vm_run s 'dmsetup remove r0'
}

# bad_table TABLE_ARGS LENGTH EXPECTED_REASON: dmsetup create must fail, the kernel must
# log the reason, and no device may be left behind.
bad_table() {
	local args=$1 len=$2 reason=$3 out
	out=$(vm_run s "dmesg -C; dmsetup create bad --table \"0 $len rcopy $args\" 2>&1; echo rc=\$?; dmesg")
	assert_not_contains "$out" "rc=0" "create with '$args' must fail"
	assert_contains "$out" "rcopy: $reason" "kernel reason for '$args'"
	assert_not_contains "$(vm_run s 'dmsetup ls')" "bad" "no device left behind by '$args'"
}

test_bad_table_lines() {
	load
	local n
	n=$(sectors /dev/vda)
	bad_table "" "$n" "Invalid argument count"
	bad_table "/dev/vda" "$n" "Invalid argument count"
	bad_table "/dev/vda /dev/vdb 0 extra" "$n" "Invalid argument count"
	bad_table "/dev/vda /dev/vdb x" "$n" "Invalid optional argument count"
	bad_table "/dev/vda /dev/vdb 3 track_size 65536" "$n" "Invalid optional argument count"
	bad_table "/dev/vda /dev/vdb 2 colour blue" "$n" "Unknown optional argument"
	bad_table "/dev/vda /dev/vdb 1 track_size" "$n" "Missing value for optional argument"
	bad_table "/dev/vda /dev/vdb 2 track_size 1000" "$n" "Invalid track_size"
	bad_table "/dev/vda /dev/vdb 2 track_size 2048" "$n" "Invalid track_size"
	bad_table "/dev/vda /dev/vdb 2 track_size 65536x" "$n" "Invalid track_size"
	bad_table "/dev/nonexistent /dev/vdb" "$n" "Data device lookup failed"
	bad_table "/dev/vda /dev/nonexistent" "$n" "Metadata device lookup failed"
	bad_table "/dev/vda /dev/vda" "$n" "Data and metadata devices must differ"
	bad_table "254:0 /dev/vda" "$n" "Data and metadata devices must differ"
	bad_table "/dev/vda /dev/vdb" "$((n + 8))" "Device length exceeds data device size"
	# 256 MiB in 64 KiB tracks needs 4 KiB of superblock + 4 KiB of bitmap: 4 KiB is short
	vm_run s 'dmsetup create tinymeta --table "0 8 linear /dev/vdd 0"'
	bad_table "/dev/vda /dev/mapper/tinymeta" "$n" "Metadata device too small"
	vm_run s 'dmsetup remove tinymeta'
	# a device already held by another rcopy target, as data or as metadata
	create_r0
	bad_table "/dev/vda /dev/vdd" "$n" "Device already used by another rcopy target"
	bad_table "/dev/vdd /dev/vdb" "$(sectors /dev/vdd)" "Device already used by another rcopy target"
	# the refused creates did not disturb r0
	assert_contains "$(vm_run s 'dmsetup status r0')" "state=simplex"
	vm_run s 'dmsetup remove r0'
}

test_table_reload_keeps_devices() {
	load
	create_r0
	vm_run s 'dmsetup table r0 | tee /tmp/t; dmsetup reload r0 --table "$(cat /tmp/t) 2 track_size 1048576"'
	vm_run s 'dmsetup resume r0'
	assert_contains "$(vm_run s 'dmsetup table r0')" "2 track_size 1048576"
	assert_contains "$(vm_run s 'dmsetup status r0')" "track_size=1048576"
	vm_run s 'dmsetup remove r0'
}

test_status_and_messages() {
	load
	create_r0 "2 track_size 131072"
	local st n
	n=$(sectors /dev/vda)
	st=$(vm_run s 'dmsetup status r0')
	assert_contains "$st" "0 $n rcopy state=simplex role=primary mode=sync conn=standalone peer=- track_size=131072 size=$((n * 512)) dirty_bytes=0"
	assert_eq "0 $n rcopy 254:0 254:16 2 track_size 131072" "$(vm_run s 'dmsetup table r0')" "table line"
	vm_run s 'dd if=/dev/mapper/r0 of=/dev/null bs=4k count=10 iflag=direct status=none'
	vm_run s 'dd if=/dev/zero of=/dev/mapper/r0 bs=4k count=3 oflag=direct status=none'
	assert_eq 10 "$(status_field r0 reads)" "reads"
	assert_eq 3 "$(status_field r0 writes)" "writes"
	vm_run s 'dmsetup message r0 0 stats_reset'
	assert_eq "0 0" "$(status_field r0 reads) $(status_field r0 writes)" "counters after stats_reset"
	assert_eq "rcopy 0.1.0 protocol 2 metadata 2" "$(vm_run s 'dmsetup message r0 0 version')" "version message"
	local out
	out=$(vm_run s 'dmesg -C; dmsetup message r0 0 frobnicate 2>&1; echo rc=$?; dmesg')
	assert_not_contains "$out" "rc=0"
	assert_contains "$out" "unknown message: frobnicate"
	out=$(vm_run s 'dmesg -C; dmsetup message r0 0 stats_reset now 2>&1; echo rc=$?; dmesg')
	assert_not_contains "$out" "rc=0"
	assert_contains "$out" "stats_reset: wrong number of arguments"
	vm_run s 'dmsetup remove r0'
}

test_filesystem_on_target() {
	load
	create_r0
	vm_run s --timeout 300 - <<-'EOF'
		set -e
		mkfs.ext4 -q -F /dev/mapper/r0
		mkdir -p /tmp/mnt && mount /dev/mapper/r0 /tmp/mnt
		head -c 20M /dev/urandom >/tmp/mnt/f && sha256sum </tmp/mnt/f >/tmp/sum
		umount /tmp/mnt
		fsck.ext4 -fn /dev/mapper/r0
		mount -o ro /dev/mapper/r0 /tmp/mnt
		[ "$(sha256sum </tmp/mnt/f)" = "$(cat /tmp/sum)" ]
		umount /tmp/mnt
	EOF
	vm_run s 'dmsetup remove r0'
}

test_rcopyctl() {
	load
	local out
	out=$(vm_run s "$RCOPYCTL version")
	assert_contains "$out" "kernel target: rcopy 0.1.0"
	vm_run s "$RCOPYCTL create r1 --data /dev/vda --meta /dev/vdb --track-size 256K"
	assert_contains "$(vm_run s 'dmsetup table r1')" "rcopy 254:0 254:16 2 track_size 262144"
	out=$(vm_run s "$RCOPYCTL status r1")
	assert_contains "$out" "simplex"
	out=$(vm_run s "$RCOPYCTL status --json")
	assert_eq "r1 simplex 262144" "$(python3 -c 'import json,sys; d=json.loads(sys.argv[1]); print(d[0]["name"], d[0]["state"], d[0]["track_size"])' "$out")" "json status"
	# errors a person understands, and nothing created by a refused command
	assert_fail --contains "must differ" vm_run s "$RCOPYCTL create r2 --data /dev/vdd --meta /dev/vdd"
	assert_fail --contains "/dev/vdz" vm_run s "$RCOPYCTL create r2 --data /dev/vdz --meta /dev/vdc"
	assert_fail --contains "in use" vm_run s "$RCOPYCTL create r2 --data /dev/vda --meta /dev/vdd"
	assert_fail --contains "track" vm_run s "$RCOPYCTL create r2 --data /dev/vdd --meta /dev/vdc --track-size 3000"
	assert_fail vm_run s "$RCOPYCTL creat r2"
	assert_not_contains "$(vm_run s 'dmsetup ls')" "r2"
	vm_run s "$RCOPYCTL remove r1"
	assert_fail --contains "r1" vm_run s "$RCOPYCTL remove r1"
	assert_not_contains "$(vm_run s 'dmsetup ls')" "r1"
}
