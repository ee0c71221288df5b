# shellcheck shell=bash
# Issue 7, "Trustworthy pairs": no completed write is ever silently lost, and a pair
# that says consistent is. Each test names the defect of issue 7 it catches:
# crashes of the primary while connected (sync and async), a power loss of the
# secondary's disk (dm-log-writes and userspace-tools/logreplay), a table reload under
# load during an outage, link flaps over a slow local disk (dm-delay), the consistency
# flag during an async cache overflow, a failing disk under the secondary
# (dm-flakey), and large configurations.
# ROUNDS (default 2) is the number of kill moments of each crash test;
# scripts/torture.sh repeats those tests.

TEST_TIMEOUT=600
CRASH_ROUNDS=${ROUNDS:-2}
TIMEOUT_test_primary_crash_while_connected_sync=$((240 + CRASH_ROUNDS * 150))
TIMEOUT_test_primary_crash_while_connected_async=$((240 + CRASH_ROUNDS * 150))
TIMEOUT_test_primary_crash_during_resync=$((240 + ${ROUNDS:-1} * 240))
# shellcheck source=../lib/pair.sh
. "$RCOPY_ROOT/scripts/vmtests/lib/pair.sh"
# shellcheck source=../lib/safety.sh
. "$RCOPY_ROOT/scripts/vmtests/lib/safety.sh"

# Kill the primary at random moments under fio random writes, boot it again with the
# same table: once drained, both data disks must be identical. Writes shipped but not
# yet acknowledged at the crash are recorded nowhere (no activity log) and the
# restarted primary resyncs nothing.
primary_crash_rounds() {
	local mode=$1 r job s0 s1 t
	pair_boot 64
	pair_secondary
	pair_primary mode "$mode"
	wait_state a duplex 300
	for ((r = 1; r <= CRASH_ROUNDS; r++)); do
		s0=$(field a sent_bytes)
		job=$(fio_bg a 120)
		t=$(rand_sleep 10 40)
		# make sure writes are being shipped when the plug is pulled
		s1=$(field a sent_bytes)
		if ((s1 == s0)); then
			vm_wait_until a 30 "[ \$(dmsetup status r0 | tr ' ' '\n' | sed -n 's/^sent_bytes=//p') -gt $s1 ]" ||
				fail "round $r: fio shipped nothing"
		fi
		echo "round $r: killing the primary ${t}s into fio ($mode)"
		vm_kill a
		vm_restart a
		vm_run a "insmod $RCOPY_MODULE"
		pair_primary mode "$mode"
		wait_drained 300
		echo "round $r: primary $(vm_run a 'dmsetup status r0')"
		echo "round $r: secondary $(vm_run b 'dmsetup status r0')"
		sums_equal || fail "round $r of $CRASH_ROUNDS: the data disks differ after the primary crashed and drained"
	done
}

# defect 1 (no activity log; sync-mode fail_inflight sets bits in memory only)
test_primary_crash_while_connected_sync() { primary_crash_rounds sync; }

# defect 1 (no activity log; an async crash in duplex with a full cache loses its tracks)
test_primary_crash_while_connected_async() { primary_crash_rounds async; }

# A primary killed during a resync comes back and resyncs whatever the peer may lack.
# The copier clears a track's bit before it sends the track, so only the bits on the
# metadata disk survive the crash. The whole device is dirty after an outage by the
# operator; a slow link (netem on a, 5 MB/s) makes the resync last, with copies
# queued on a when the plug is pulled, 1 to 4 s in. fio writes all along to the
# first 2 MiB (64 KiB blocks, async mode, 1 MiB cache), which the copier has already
# copied: writes overflow the cache and set bits again during the resync, so bitmap
# blocks are written while the copier's bits are cleared in memory. Once drained, both
# data disks must be identical. Not a proof of `persist`'s rule (a block write never
# clears on disk a bit the peer has not confirmed): with that rule removed, 2 rounds
# still passed (the tracks cleared on disk had reached the peer by the kill); it
# checks the crash itself. One kill moment (ROUNDS sets more; scripts/torture.sh
# repeats it).
test_primary_crash_during_resync() {
	local r t job rounds=${ROUNDS:-1}
	pair_boot 64
	pair_secondary
	pair_primary mode async cache_size 1048576
	wait_state a duplex 300
	for ((r = 1; r <= rounds; r++)); do
		vm_run a 'dmsetup message r0 0 disconnect'
		wait_state a suspended 60
		vm_run a 'dd if=/dev/urandom of=/dev/mapper/r0 bs=1M count=64 oflag=direct status=none'
		vm_run a 'tc qdisc add dev eth0 root netem rate 40mbit'
		vm_run a 'dmsetup message r0 0 connect'
		wait_state a resyncing 60
		job=$(fio_bg a 120 --bs=64k --offset=0 --size=2M)
		t=$(rand_sleep 10 40)
		echo "round $r: killing the primary ${t}s into the resync: $(vm_run a 'dmsetup status r0' | grep -o 'state=[a-z]* .*sync_done=[0-9]* sync_total=[0-9]*' | sed 's/ conn.*cache_fill=[^ ]*//')"
		vm_kill a
		vm_restart a
		vm_run a "insmod $RCOPY_MODULE"
		pair_primary mode async cache_size 1048576
		wait_drained 300
		echo "round $r: primary $(vm_run a 'dmsetup status r0')"
		sums_equal || fail "round $r: the data disks differ after the primary crashed during the resync and drained"
	done
}

# defect 2 (an ACK is not durability). dm-log-writes under the secondary's data disk
# records what reached it and which flushes covered what; after a "power loss" the
# disk is rebuilt from the log up to the last flush/FUA, as a disk that loses its
# volatile cache. Every write whose flush or FUA completed on the primary must be
# there, and after the secondary restarts from that image the pair must converge.
test_secondary_power_loss() {
	[[ -x $LOGREPLAY ]] || fail "no logreplay at $LOGREPLAY: run 'make tools'"
	vm_start_many "a --disk 32 --disk 8 --net n0 --ip 10.77.0.1/24" \
		"b --disk 32 --disk 8 --disk 256 --net n0 --ip 10.77.0.2/24"
	vm_run a "insmod $RCOPY_MODULE"
	vm_run b "insmod $RCOPY_MODULE"
	vm_run b 'dmsetup create lw --table "0 $(blockdev --getsz /dev/vda) log-writes /dev/vda /dev/vdc"'
	pair_secondary /dev/mapper/lw
	pair_primary mode sync
	wait_state a duplex 300
	local share job out t
	share=$(vm_share_dir a)
	: >"$share/durable"
	# numbered 4 KiB blocks (first 6 MiB) with flushes and FUA writes; each block is
	# reported once a flush or FUA made it durable on the primary
	vm_run a --timeout 300 "python3 $FLUSHWRITER_PY /dev/mapper/r0 1 1500 /run/vm/share/durable"
	# then writes that no flush covers, acknowledged by the secondary but in its disk's
	# volatile cache: random ones at 24-32 MiB that run across the power loss, and 12
	# MiB written sequentially at 8-20 MiB before it (no later write marks their tracks)
	job=$(vm_spawn a --timeout 300 -- fio --name=inflight --filename=/dev/mapper/r0 --rw=randwrite \
		--bs=4k --offset=24M --size=8M --ioengine=libaio --iodepth=4 --direct=1 --randrepeat=0 \
		--time_based --runtime=10)
	vm_run a --timeout 300 -- fio --name=unflushed --filename=/dev/mapper/r0 --rw=write \
		--bs=64k --offset=8M --size=12M --ioengine=libaio --iodepth=4 --direct=1 | grep -E "err=|WRITE:"
	t=$(rand_sleep 0 15)
	cp "$share/durable" "$share/durable.at-cut"
	echo "power loss of the secondary ${t}s after the unflushed writes; $(wc -l <"$share/durable.at-cut") blocks durable"
	# cut the secondary off first: no acknowledgement leaves it from now on; then let
	# dm-log-writes finish logging what was flushed, and pull the plug
	vm_link b down
	sleep 3
	vm_run b --timeout 30 'dmsetup message lw 0 mark powerloss; dmsetup status lw'
	vm_kill b
	out=$(vm_wait a "$job" 200) || true
	echo "primary: $(vm_run a 'dmsetup status r0')"
	# rebuild the secondary's data disk: zeroes (as when the log started) + the log up
	# to the last flush or FUA
	local data log size
	data=$(vm_disk b 0)
	log=$(vm_disk b 2)
	size=$(stat -c %s "$data")
	truncate -s 0 "$data"
	truncate -s "$size" "$data"
	"$LOGREPLAY" "$log" "$data"
	out=$(python3 "$BLOCKS_PY" check "$data" --max 1600 --expect "$share/durable.at-cut") ||
		check "every write made durable on the primary is on the secondary after its power loss" false
	echo "replayed secondary: $out"
	# the secondary comes back from that image, without dm-log-writes
	vm_restart b
	vm_run b "insmod $RCOPY_MODULE"
	pair_secondary /dev/vda
	wait_drained 300
	echo "secondary: $(vm_run b 'dmsetup status r0')"
	check "the pair converges after the secondary's power loss" sums_equal
	checks_done
}

# defect 4 (a table reload runs two engines on one metadata device). During an
# outage and under fio (0-16 MiB throughout): load a table with another option (its
# constructor runs while the old table is live), write to tracks not dirty before
# (32-48 MiB) while both tables exist, swap the new one in with suspend/resume,
# suspend/resume once more; then restore the link. The tracks written between the
# load and the swap must be resynced too: identical disks, and one replication
# connection on each side. Run twice: a changed cache size (the new table builds its
# own engine, started when the old one has stopped) and a changed resync rate (the
# new table keeps the running engine).
test_reload_under_load_during_outage() {
	reload_under_load_during_outage cache_size 33554432
}

test_reload_tunables_under_load_during_outage() {
	reload_under_load_during_outage resync_rate 16777216
	local log
	log=$(vm_run a 'dmesg')
	check "the engine was kept" assert_contains "$log" "r0: table loaded with the running engine kept"
	# A loaded table that kept the engine and is then cleared lets go of it: the
	# engine runs on under the live table, a suspend stops it, a resume restarts it.
	reload_primary /dev/vda mode sync resync_rate 8388608
	vm_run a 'dmsetup clear r0'
	check "still duplex after a cleared reload" assert_eq duplex "$(field a state)"
	vm_run a --timeout 120 'dmsetup suspend r0'
	check "a suspend after a cleared reload stops the engine" assert_eq 0 \
		"$(vm_run a 'pgrep -c "^rcopy-r0$" || true')"
	vm_run a --timeout 120 'dmsetup resume r0'
	wait_state a duplex 120
	# Removing a device with a loaded table that kept the engine stops it once.
	reload_primary /dev/vda mode sync resync_rate 8388608
	vm_run a --timeout 120 'dmsetup remove r0'
	check "no engine thread left after remove" assert_eq 0 \
		"$(vm_run a 'pgrep -c "^rcopy-" || true')"
	check "the module unloads" assert_eq ok "$(vm_run a 'rmmod dm_rcopy && echo ok')"
	checks_done
}

# reload_under_load_during_outage OPTION VALUE: the scenario above, reloading with
# the option changed
reload_under_load_during_outage() {
	pair_boot 64
	pair_secondary
	pair_primary mode sync
	wait_state a duplex 300
	vm_link a down
	wait_state a suspended 60
	local job out d0 d1
	job=$(fio_bg a 16 --iodepth=8 --offset=0 --size=16M)
	sleep 3
	reload_primary /dev/vda mode sync "$1" "$2"
	d0=$(field a dirty_bytes)
	out=$(vm_run a --timeout 120 -- fio --name=between --filename=/dev/mapper/r0 --rw=randwrite \
		--bs=4k --offset=32M --size=16M --ioengine=libaio --iodepth=8 --direct=1 --randrepeat=0 \
		--time_based --runtime=3)
	check "fio between the load and the swap ran without errors" assert_contains "$out" "err= 0"
	d1=$(field a dirty_bytes)
	echo "dirty bytes with both tables: $d0 before the writes to 32-48 MiB, $d1 after"
	vm_run a --timeout 120 'dmsetup suspend r0 && dmsetup resume r0'
	echo "after the swap: $(vm_run a 'dmsetup status r0')"
	sleep 2
	vm_run a --timeout 120 'dmsetup suspend r0 && dmsetup resume r0'
	out=$(vm_wait a "$job" 300)
	check "fio ran without errors across the reload" assert_contains "$out" "err= 0"
	echo "after the reload: $(vm_run a 'dmsetup table r0 | sed "s/secret [^ ]*/secret -/"')"
	echo "primary: $(vm_run a 'dmsetup status r0')"
	vm_link a up
	wait_drained 300
	sleep 3
	local ca cb
	ca=$(established a remote)
	cb=$(established b local)
	echo "established replication connections: primary $ca, secondary $cb"
	check "one replication connection on the primary" assert_eq 1 "$ca"
	check "one replication connection on the secondary" assert_eq 1 "$cb"
	check "identical disks after a reload under load during an outage" sums_equal
	if [ "$1" = cache_size ]; then
		check "a new engine for a changed cache size" assert_not_contains "$(vm_run a 'dmesg')" \
			"running engine kept"
		checks_done
	fi
}

# defect 5 (a resync copy can overwrite a newer write; in-flight writes at a link
# loss; overlapping writes in flight), with defect 1's in-memory marking: a slow
# local disk (dm-delay, 40 ms per read and write) under the primary keeps writes and
# resync reads in flight while the link flaps every second under fio on a small hot region (2 MiB, 32
# tracks, QD 16), so that resync copies and overlapping writes meet in-flight ones.
test_link_flap_with_slow_local_disk() {
	pair_boot 64
	vm_run a 'dmsetup create slow --table "0 $(blockdev --getsz /dev/vda) delay /dev/vda 0 40"'
	pair_secondary /dev/vda timeout_ms 800
	primary_on /dev/mapper/slow mode sync timeout_ms 800
	wait_state a duplex 300
	local job out i
	job=$(fio_bg a 22 --offset=4M --size=2M)
	sleep 2
	for i in $(seq 10); do
		vm_link a down
		sleep 1
		vm_link a up
		sleep 1
	done
	out=$(vm_wait a "$job" 300)
	check "fio ran without errors over the flapping link" assert_contains "$out" "err= 0"
	echo "links lost: $(vm_run a 'dmesg | grep -c "replication link down"')"
	wait_drained 300
	check "identical disks after link flaps over a slow local disk" sums_equal
	checks_done
}

# defect 6 (after a cache overflow the secondary is no longer a prefix but still says
# consistent). Async pair, 1 MiB cache, slow link, numbered sequential writes: the
# secondary is frozen (QMP stop) at random moments; every frozen image whose status,
# read just before and just after, says consistent=yes must be a prefix of the
# primary's writes; while the primary holds marked tracks the secondary must say
# consistent=no, and consistent=yes again once drained.
test_overflow_consistent_means_prefix() {
	pair_boot 32
	pair_secondary
	pair_primary mode async cache_size 1048576
	wait_state a duplex 300
	vm_run a 'tc qdisc add dev eth0 root netem delay 20ms rate 4mbit'
	local share job disk i c1 c2 rc out claimed=0 broken=0
	share=$(vm_share_dir a)
	: >"$share/done"
	job=$(vm_spawn a --timeout 400 "python3 $BLOCKS_PY write /dev/mapper/r0 1 6000 /run/vm/share/done")
	disk=$(vm_disk b 0)
	for i in $(seq 10); do
		# the first moments after the overflow matter most: sample them densely
		if ((i <= 5)); then rand_sleep 1 5 >/dev/null; else rand_sleep 3 12 >/dev/null; fi
		c1=$(field b consistent)
		vm_qmp b stop >/dev/null
		rc=0
		out=$(python3 "$BLOCKS_PY" check "$disk" --max 6100 --prefix) || rc=$?
		vm_qmp b cont >/dev/null
		c2=$(field b consistent)
		echo "freeze $i: consistent=$c1/$c2, $(wc -l <"$share/done") written; ${out//$'\n'/; }"
		((rc == 0)) || broken=$((broken + 1))
		if [[ $c1 == yes && $c2 == yes ]]; then
			claimed=$((claimed + 1))
			((rc == 0)) || check "frozen image $i says consistent=yes and is a prefix" false
		fi
	done
	echo "$claimed frozen images claimed consistent, $broken were not prefixes"
	vm_wait a "$job" 400 >/dev/null
	local sa sa2 cb dirty seen=0
	sa=$(vm_run a 'dmsetup status r0')
	dirty=$(status_key "$sa" dirty_bytes)
	echo "writer done; primary: $sa"
	# the overflow itself is the precondition (the primary logs its first marked
	# write); whether tracks are still dirty when the writer ends depends only on how
	# fast the copy keeps up, and an engine that sends fewer barriers catches up first
	[[ $(vm_run a dmesg) == *"a write was marked instead of shipped"* ]] ||
		fail "the 1 MiB cache never overflowed (no marked write in a's kernel log; dirty_bytes=$dirty): the test proves nothing"
	for i in $(seq 5); do
		sa=$(vm_run a 'dmsetup status r0')
		cb=$(field b consistent)
		sa2=$(vm_run a 'dmsetup status r0')
		if [[ $sa != *" dirty_bytes=0 "* && $sa2 != *" dirty_bytes=0 "* ]]; then
			seen=$((seen + 1))
			echo "primary dirty $(status_key "$sa" dirty_bytes) -> $(status_key "$sa2" dirty_bytes) ($(status_key "$sa2" state)); secondary consistent=$cb"
			[[ $cb == no ]] || check "secondary says consistent=no while the primary holds marked tracks (sample $i)" false
		fi
		sleep 1
	done
	((seen > 0)) || echo "the primary drained before the secondary could be sampled"
	vm_run a 'tc qdisc del dev eth0 root'
	wait_drained 300
	vm_wait_until b 30 'dmsetup status r0 | grep -q "consistent=yes"' ||
		check "secondary says consistent=yes once drained" false
	check "identical disks after the overflow" sums_equal
	checks_done
}

# defect 6 (the secondary keeps applying after a failed write) and defect 2 (a failed
# write on the secondary is not marked): dm-flakey under the secondary's data disk
# fails writes under fio; the error must show on both sides, and once the fault is
# gone the pair converges.
test_failed_write_on_secondary() {
	pair_boot 64
	vm_run b 'dmsetup create flaky --table "0 $(blockdev --getsz /dev/vda) linear /dev/vda 0"'
	pair_secondary /dev/mapper/flaky
	pair_primary mode sync
	wait_state a duplex 300
	local na nb job out sa sb la lb
	na=$(klog_lines a)
	nb=$(klog_lines b)
	job=$(fio_bg a 20 --iodepth=8)
	sleep 3
	vm_run b 'dmsetup load flaky --table "0 $(blockdev --getsz /dev/vda) flakey /dev/vda 0 0 3600 1 error_writes" &&
		dmsetup suspend flaky && dmsetup resume flaky && dmsetup table flaky'
	sleep 5
	sa=$(vm_run a 'dmsetup status r0')
	sb=$(vm_run b 'dmsetup status r0')
	la=$(klog_since a "$na")
	lb=$(klog_since b "$nb")
	echo "with the fault: primary: $sa"
	echo "with the fault: secondary: $sb"
	vm_run b 'dmsetup load flaky --table "0 $(blockdev --getsz /dev/vda) linear /dev/vda 0" &&
		dmsetup suspend flaky && dmsetup resume flaky'
	out=$(vm_wait a "$job" 300) || true
	echo "fio on the primary: $(grep -E 'err=|error' <<<"$out" | head -3)"
	echo "--- primary kernel log ---"
	grep -i rcopy <<<"$la" | tail -n 8 || true
	echo "--- secondary kernel log ---"
	grep -i rcopy <<<"$lb" | tail -n 8 || true
	check "the secondary says consistent=no after a failed write" assert_contains "$sb" "consistent=no"
	check "the primary shows dirty tracks or a non-duplex state" \
		test "$(status_key "$sa" dirty_bytes)" != 0 -o "$(status_key "$sa" state)" != duplex
	check "the primary's kernel log has an error line" grep -qiE 'rcopy.*(error|fail|errno)' <<<"$la"
	check "the secondary's kernel log has an error line" grep -qiE 'rcopy.*(error|fail|errno)' <<<"$lb"
	wait_drained 180
	check "identical disks once the fault is gone" sums_equal
	checks_done
}

# defect 7 (kmalloc-backed ring): a primary with a 1 GiB cache loads and works
test_large_cache_1g() {
	pair_boot 64 "--mem 2048"
	pair_secondary
	pair_primary mode async cache_size 1073741824
	wait_state a duplex 300
	local out
	out=$(vm_run a --timeout 400 -- fio --name=big --filename=/dev/mapper/r0 --rw=randwrite \
		--bs=4k --size=16M --ioengine=libaio --iodepth=16 --direct=1 --verify=crc32c \
		--verify_fatal=1 --randrepeat=0)
	assert_contains "$out" "err= 0"
	wait_drained 300
	assert_pair_identical
}

# defect 7 (kmalloc-backed bitmaps): a 4 TiB sparse data device (a loop device over a
# sparse file on the VM's tmpfs) loads as a primary with 64 KiB tracks (8 MiB of
# bitmap) and passes I/O at its start and its end
test_4tib_sparse_device() {
	vm_start a --disk 16 --net n0 --ip 10.77.0.1/24
	vm_run a "insmod $RCOPY_MODULE"
	local loop n out
	loop=$(vm_run a 'truncate -s 4T /tmp/big && losetup -f --show /tmp/big')
	n=$(vm_run a "blockdev --getsz $loop")
	assert_eq $((4 << 20)) "$((n / 2048))" "MiB of the sparse device"
	vm_run a "dmsetup create r0 --table \"0 $n rcopy $loop /dev/vda 8 role primary peer 10.77.0.2:$PAIR_PORT secret $PAIR_SECRET track_size 65536\""
	out=$(vm_run a 'dmsetup status r0')
	echo "$out"
	assert_contains "$out" "size=$((n * 512))"
	out=$(vm_run a --timeout 120 - <<-EOF
		set -e
		head -c 1M /dev/urandom >/tmp/blk1
		head -c 1M /dev/urandom >/tmp/blk2
		dd if=/tmp/blk1 of=/dev/mapper/r0 bs=1M oflag=direct status=none
		dd if=/tmp/blk2 of=/dev/mapper/r0 bs=1M seek=\$(( $n / 2048 - 1 )) oflag=direct status=none
		a=\$(dd if=/dev/mapper/r0 bs=1M count=1 iflag=direct status=none | sha256sum)
		b=\$(dd if=/dev/mapper/r0 bs=1M skip=\$(( $n / 2048 - 1 )) count=1 iflag=direct status=none | sha256sum)
		c=\$(dd if=$loop bs=1M skip=\$(( $n / 2048 - 1 )) count=1 iflag=direct status=none | sha256sum)
		[ "\$a" = "\$(sha256sum </tmp/blk1)" ] && echo start-ok
		[ "\$b" = "\$(sha256sum </tmp/blk2)" ] && echo end-ok
		[ "\$c" = "\$b" ] && echo lower-ok
		dmsetup status r0
	EOF
	)
	echo "$out"
	assert_contains "$out" start-ok
	assert_contains "$out" end-ok
	assert_contains "$out" lower-ok
	vm_run a 'dmsetup remove r0'
}
