# shellcheck shell=bash
# Dirty-track bitmaps on the metadata device and resync of only what changed: link
# outages, a crash of the primary while disconnected, writes during a resync, a
# flapping lossy link, async cache overflow, the resync rate limit, and metadata that
# is not this pair's.

TEST_TIMEOUT=900
# shellcheck source=../lib/pair.sh
. "$RCOPY_ROOT/scripts/vmtests/lib/pair.sh"

TRACK=65536

# write_tracks N SEED: one 4 KiB write into each of N distinct random tracks of r0
write_tracks() { vm_run a "python3 $RCOPY_ROOT/scripts/vmtests/lib/tracks.py /dev/mapper/r0 $1 $2"; }

# an established sync pair with random data, in duplex
setup_pair() {
	pair_boot 64
	vm_run a 'head -c 64M /dev/urandom | dd of=/dev/vda bs=1M oflag=direct status=none'
	pair_secondary
	pair_primary "$@"
	wait_state a duplex 300
}

cut_link() {
	vm_link a down
	wait_state a suspended 60
}

# The bitmap marks whole tracks; the sub-track map remembers which 4 KiB of them
# were written, so the resync sends those, not the 64 KiB tracks.
test_outage_resyncs_only_marked_tracks() {
	setup_pair
	cut_link
	local n=37 s0 s1 dirty
	write_tracks $n 1
	dirty=$(field a dirty_bytes)
	assert_eq $((n * TRACK)) "$dirty" "dirty bytes after writing $n tracks"
	s0=$(field a sent_bytes)
	vm_link a up
	wait_drained 300
	s1=$(field a sent_bytes)
	echo "resync sent $((s1 - s0)) bytes for $n writes of 4096 in $n tracks of $TRACK"
	assert_eq $((n * 4096)) $((s1 - s0)) "resync bytes for $n 4 KiB writes"
	assert_pair_identical
}

# 4 KiB random writes all over the device during an outage (2048 of them over 1024
# tracks, so nearly every track is dirty): the resync sends at most 1.5 times what
# was written (whole tracks would be about 10 times), and the disks end identical.
test_random_outage_resyncs_what_was_written() {
	setup_pair
	cut_link
	local out s0 s1 written=$((8 << 20))
	out=$(vm_run a --timeout 600 -- fio --name=outage --filename=/dev/mapper/r0 --rw=randwrite \
		--bs=4k --io_size=$written --size=64M --ioengine=libaio --iodepth=8 --direct=1 \
		--randseed=7 --output-format=terse)
	[[ -n $out ]] || fail "fio during the outage failed"
	echo "dirty after the outage: $(field a dirty_bytes) bytes"
	s0=$(field a sent_bytes)
	vm_link a up
	wait_drained 300
	s1=$(field a sent_bytes)
	echo "resync sent $((s1 - s0)) bytes for $written written ($(((s1 - s0) * 100 / written))%)"
	(((s1 - s0) * 2 <= written * 3)) ||
		fail "resync sent $((s1 - s0)) bytes for $written written (more than 1.5x)"
	assert_pair_identical
}

test_crash_during_outage_keeps_the_bitmap() {
	setup_pair
	cut_link
	local n=23
	write_tracks $n 2
	assert_eq $((n * TRACK)) "$(field a dirty_bytes)" "dirty before the crash"
	vm_kill a
	vm_restart a
	vm_run a "insmod $RCOPY_MODULE"
	# the bitmap on the metadata device still holds every unsent write
	vm_run a "$RCOPYCTL inspect-md /dev/vdb" || true
	pair_primary
	wait_drained 300
	local sent
	sent=$(field a sent_bytes)
	echo "after restart: resync sent $sent bytes for $n tracks"
	((sent * 10 <= n * TRACK * 11 && sent * 10 >= n * TRACK * 9)) ||
		fail "resync after restart sent $sent bytes, expected about $((n * TRACK)) (not a full copy)"
	assert_pair_identical
}

test_writes_during_resync() {
	setup_pair
	cut_link
	vm_run a 'dd if=/dev/urandom of=/dev/mapper/r0 bs=1M count=40 seek=8 oflag=direct status=none'
	vm_link a up
	local out
	out=$(vm_run a --timeout 600 -- fio --name=during --filename=/dev/mapper/r0 --rw=randwrite \
		--bs=4k --size=24M --offset=16M --ioengine=libaio --iodepth=8 --direct=1 \
		--verify=crc32c --verify_fatal=1 --randrepeat=0)
	assert_contains "$out" "err= 0"
	wait_drained 300
	assert_pair_identical
}

# Writes during the resync of scattered 4 KiB blocks: the copier then has up to 16
# short runs claimed, their reads in flight (`rust/resync.rs`), while fio rewrites and
# verifies the same area. A write issued after a claim must reach the peer after that
# copy, or the copy's older data overwrites it there. fio verifies as it goes (a
# backlog), so it writes until it ends; the primary's kernel log must show the link
# back while fio ran (else the test proved nothing), and the disks end identical.
test_writes_during_scattered_resync() {
	setup_pair
	cut_link
	vm_run a --timeout 600 -- fio --name=outage --filename=/dev/mapper/r0 --rw=randwrite \
		--bs=4k --io_size=16M --size=64M --ioengine=libaio --iodepth=8 --direct=1 \
		--randseed=11 --output=/dev/null || fail "fio during the outage failed"
	local job out log
	job=$(vm_spawn a --timeout 600 "echo 'rcopy-test: fio starts' >/dev/kmsg; fio --name=during \
--filename=/dev/mapper/r0 --rw=randwrite --bs=4k --size=16M --offset=8M --ioengine=libaio \
--iodepth=8 --direct=1 --verify=crc32c --verify_fatal=1 --verify_backlog=256 --randrepeat=0; \
rc=\$?; echo 'rcopy-test: fio ends' >/dev/kmsg; exit \$rc")
	vm_wait_until a 60 "dmesg | grep -q 'rcopy-test: fio starts'" || fail "fio did not start"
	vm_link a up
	out=$(vm_wait a "$job" 600)
	assert_contains "$out" "err= 0"
	wait_drained 300
	log=$(vm_run a 'dmesg | grep -E "rcopy-test: fio|r0: connected to|r0: peer is in sync" | tail -n 4')
	echo "$log"
	[[ $(grep -o 'fio starts\|connected to\|fio ends' <<<"$log" | tr '\n' ,) == "fio starts,connected to,fio ends," ]] ||
		fail "the link did not come back while fio wrote: $log"
	assert_pair_identical
}

# plug_back VM LABEL PATTERN: plugs VM's cable back in, waits for duplex, and prints
# the seconds from the carrier's return (written into VM's kernel log by
# carrierwatch.py) to the first line of VM's kernel log after it matching PATTERN
plug_back() {
	local vm=$1 label=$2 pattern=$3
	vm_run "$vm" "nohup python3 $RCOPY_ROOT/scripts/vmtests/lib/carrierwatch.py eth0 $label >/dev/null 2>&1 & true"
	vm_wait_until "$vm" 30 "dmesg | grep -q 'rcopy-test: watching $label\$'" ||
		fail "the carrier watcher did not start"
	vm_link "$vm" up
	wait_state a duplex 60
	vm_run "$vm" dmesg | awk -F'[][]' -v m="rcopy-test: carrier back $label" -v c="$pattern" '
		$0 ~ (m "$") { b = $2 + 0 }
		b && $0 ~ c { printf "%.3f", $2 - b; exit }'
}

# A cable pulled out of the primary and plugged back in: the primary sends nothing
# while its carrier is down and, the moment the carrier returns, asks for the peer's
# address itself. Before, its first packets waited for the kernel's next ARP probe,
# which the lost ones had left pending: connected 0.5 to 1.5 s after the carrier
# (once 6.5 s). Three rounds, each pulled 1 s after the primary noticed the loss (so
# that probe is pending), each timed on the guest kernel's clock from the carrier's
# return to "connected"; every round within 0.4 s, then a resync to identical disks.
test_cable_back_reconnects_at_once() {
	setup_pair
	local i t slow=0
	for i in 1 2 3; do
		cut_link
		vm_run a 'dd if=/dev/urandom of=/dev/mapper/r0 bs=64k count=4 seek='$((i * 50))' oflag=direct status=none'
		sleep 1
		t=$(plug_back a "r$i" ' r0: connected to ')
		[[ -n $t ]] || fail "round $i: no carrier-back mark followed by a connection in the kernel log"
		echo "round $i: connected $t s after the carrier returned"
		awk -v t="$t" 'BEGIN { exit !(t < 0.4) }' || slow=$((slow + 1))
	done
	((slow == 0)) || fail "$slow of 3 reconnections took 0.4 s or more after the carrier returned"
	wait_drained 300
	assert_pair_identical
}

# The peer's cable pulled instead (the primary's carrier stays up, so it keeps
# trying): however long the outage, the primary starts a new connection attempt
# every 250 ms, each still waiting up to 4 s for a slow path. Before, an attempt
# waited longer the longer the outage lasted (up to timeout_ms), with TCP's own SYN
# retransmits inside it, so 20 s into an outage it started one about every 2 s.
# Counted from /proc/net/snmp's ActiveOpens over 5 s, 15 s into each of two
# outages; then each reconnection, timed on b's clock from its carrier's return to
# "primary ... connected", within 0.6 s, and identical disks at the end.
test_peer_cable_back_reconnects_at_once() {
	setup_pair
	local i n0 n1 t opens='awk '\''$1 == "Tcp:" && $6 ~ /^[0-9]+$/ { print $6 }'\'' /proc/net/snmp'
	for i in 1 2; do
		vm_link b down
		wait_state a suspended 60
		vm_run a 'dd if=/dev/urandom of=/dev/mapper/r0 bs=64k count=4 seek='$((i * 70))' oflag=direct status=none'
		sleep 15
		n0=$(vm_run a "$opens")
		sleep 5
		n1=$(vm_run a "$opens")
		echo "round $i: $((n1 - n0)) connection attempts started in 5 s, 20 s into the outage"
		((n1 - n0 >= 10)) || fail "round $i: only $((n1 - n0)) connection attempts in 5 s (expected about 20)"
		t=$(plug_back b "p$i" ' r0: primary .* connected')
		[[ -n $t ]] || fail "round $i: no carrier-back mark followed by a connection in b's kernel log"
		echo "round $i: connected $t s after b's carrier returned"
		awk -v t="$t" 'BEGIN { exit !(t < 0.6) }' || fail "round $i: connected $t s after b's carrier returned"
	done
	wait_drained 300
	assert_pair_identical
}

test_flapping_lossy_link() {
	setup_pair
	vm_run a 'tc qdisc add dev eth0 root netem loss 20%'
	local job i
	job=$(vm_spawn a --timeout 800 -- fio --name=flap --filename=/dev/mapper/r0 --rw=randwrite \
		--bs=4k --size=16M --ioengine=libaio --iodepth=4 --direct=1 --verify=crc32c \
		--verify_fatal=1 --randrepeat=0)
	for i in $(seq 10); do
		sleep "$((RANDOM % 3 + 1))"
		vm_link a down
		sleep "$((RANDOM % 3 + 1))"
		vm_link a up
	done
	local out
	out=$(vm_wait a "$job" 800)
	assert_contains "$out" "err= 0"
	vm_run a 'tc qdisc del dev eth0 root'
	wait_drained 600
	assert_pair_identical
}

test_async_overflow_falls_back_to_marking() {
	setup_pair mode async cache_size 1048576
	vm_run a 'tc qdisc add dev eth0 root netem delay 50ms rate 4mbit'
	local out t0 t1
	t0=$(date +%s)
	out=$(vm_run a --timeout 600 -- fio --name=burst --filename=/dev/mapper/r0 --rw=write \
		--bs=64k --size=24M --ioengine=libaio --iodepth=8 --direct=1 --verify=crc32c --verify_fatal=1)
	t1=$(date +%s)
	assert_contains "$out" "err= 0"
	local dirty
	dirty=$(field a dirty_bytes)
	echo "fio took $((t1 - t0)) s; dirty now $dirty bytes; status: $(vm_run a 'dmsetup status r0')"
	# 24 MiB over a 4 Mbit/s link takes 50 s: the writes did not wait for it
	((dirty > 0)) || fail "no fallback to marking with a 1 MiB cache and a slow link"
	vm_run a 'tc qdisc del dev eth0 root'
	wait_drained 600
	assert_pair_identical
}

test_resync_rate_limit() {
	setup_pair resync_rate 2097152
	cut_link
	vm_run a 'dd if=/dev/urandom of=/dev/mapper/r0 bs=1M count=12 oflag=direct status=none'
	vm_link a up
	wait_state a resyncing 60
	sleep 3
	local st rate eta
	st=$(vm_run a 'dmsetup status r0')
	rate=$(tr ' ' '\n' <<<"$st" | sed -n 's/^sync_rate=//p')
	eta=$(tr ' ' '\n' <<<"$st" | sed -n 's/^eta_s=//p')
	echo "resyncing at $rate B/s, ETA $eta s"
	((rate > 0 && rate <= 2097152 * 13 / 10)) || fail "sync_rate $rate not within the 2 MiB/s limit"
	((eta > 0)) || fail "no ETA while resyncing"
	assert_contains "$(vm_run b 'dmsetup status r0')" "consistent=no"
	wait_drained 300
	vm_wait_until b 30 'dmsetup status r0 | grep -q "state=duplex .*consistent=yes"' ||
		fail "secondary not consistent after the resync: $(vm_run b 'dmsetup status r0')"
	assert_pair_identical
}

# refused METADATA_WORDS REASON: creating the primary must fail with REASON, and the
# metadata device must be left untouched
refused() {
	local reason=$1
	shift
	local before out
	before=$(vm_run a 'dd if=/dev/vdb bs=1M iflag=direct status=none | sha256sum')
	out=$(vm_run a "dmesg -C; dmsetup create r0 --table \"$*\" 2>&1; echo rc=\$?; dmesg")
	assert_not_contains "$out" "rc=0"
	assert_contains "$out" "$reason"
	assert_eq "$before" "$(vm_run a 'dd if=/dev/vdb bs=1M iflag=direct status=none | sha256sum')" \
		"metadata untouched after '$reason'"
	assert_not_contains "$(vm_run a 'dmsetup ls')" "r0"
}

test_bad_metadata_is_refused() {
	pair_boot 64
	local n opts
	n=$(vm_run a 'blockdev --getsz /dev/vda')
	opts="role primary peer 10.77.0.2:7788 secret $PAIR_SECRET"
	# format the metadata for pair "alpha" by creating and removing a device
	vm_run a "dmsetup create r0 --table \"0 $n rcopy /dev/vda /dev/vdb 8 $opts pair_id alpha\" && dmsetup remove r0"
	refused "Metadata belongs to another pair" "0 $n rcopy /dev/vda /dev/vdb 8 $opts pair_id beta"
	refused "Metadata was made for a device of another size" "0 $((n / 2)) rcopy /dev/vda /dev/vdb 8 $opts pair_id alpha"
	refused "Metadata was made with another track size" "0 $n rcopy /dev/vda /dev/vdb 10 $opts pair_id alpha track_size 131072"
	# corrupt one byte of the superblock
	vm_run a 'printf "\xff" | dd of=/dev/vdb bs=1 seek=200 conv=notrunc status=none; sync'
	refused "Metadata superblock is corrupt (bad checksum)" "0 $n rcopy /dev/vda /dev/vdb 8 $opts pair_id alpha"
	# something that is not rcopy metadata at all
	vm_run a 'mkfs.ext4 -q -F /dev/vdb'
	refused "Metadata device holds something else" "0 $n rcopy /dev/vda /dev/vdb 8 $opts pair_id alpha"
	# rcopyctl create-md refuses valid metadata unless forced, and inspect-md reads it
	vm_run a "dd if=/dev/zero of=/dev/vdb bs=1M count=1 oflag=direct status=none"
	vm_run a "$RCOPYCTL create-md /dev/vdb --data /dev/vda --pair-id alpha"
	assert_fail --contains "already holds rcopy metadata" vm_run a "$RCOPYCTL create-md /dev/vdb --data /dev/vda --pair-id beta"
	vm_run a "$RCOPYCTL create-md /dev/vdb --data /dev/vda --pair-id beta --force"
	assert_contains "$(vm_run a "$RCOPYCTL inspect-md /dev/vdb")" "(1024 tracks)"
	refused "Metadata belongs to another pair" "0 $n rcopy /dev/vda /dev/vdb 8 $opts pair_id alpha"
}

test_operator_suspend_and_resume() {
	setup_pair
	local before s0 s1 n=11
	before=$(lower_sum b)
	vm_run a "$RCOPYCTL suspend r0"
	wait_state a suspended 30
	assert_contains "$(vm_run a 'dmsetup status r0')" "conn=standalone"
	write_tracks $n 3
	assert_eq $((n * TRACK)) "$(field a dirty_bytes)" "dirty bytes while suspended"
	sleep 3
	assert_contains "$(vm_run a 'dmsetup status r0')" "state=suspended"
	assert_eq "$before" "$(lower_sum b)" "nothing shipped while suspended"
	# only the primary suspends
	assert_fail vm_run b "$RCOPYCTL suspend r0"
	s0=$(field a sent_bytes)
	vm_run a "$RCOPYCTL resume r0"
	wait_drained 300
	s1=$(field a sent_bytes)
	echo "resume resynced $((s1 - s0)) bytes for $n 4 KiB writes in $n tracks"
	# the sub-track map: what was written, not whole tracks
	assert_eq $((n * 4096)) $((s1 - s0)) "resume resync bytes for $n 4 KiB writes"
	assert_pair_identical
}
