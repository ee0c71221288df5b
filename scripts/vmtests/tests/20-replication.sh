# shellcheck shell=bash
# Replication between two kernels: VM a (primary) and VM b (secondary) over a private
# QEMU network. Initial copy, sync and async modes with fio --verify and whole-device
# checksums, the sync guarantee across a crash of the primary, the crash-consistent
# prefix in async mode, a stalled peer, authentication, hostile input on the port, and
# link cuts.

TEST_TIMEOUT=900
# shellcheck source=../lib/pair.sh
. "$RCOPY_ROOT/scripts/vmtests/lib/pair.sh"

# fill the primary's data disk with random bytes so the initial copy has work to do
fill_primary() { vm_run a 'head -c $(blockdev --getsize64 /dev/vda) /dev/urandom | dd of=/dev/vda bs=1M oflag=direct status=none'; }

fio_verify() {
	local out
	out=$(vm_run a --timeout 600 -- fio --name=rand4k --filename=/dev/mapper/r0 --rw=randwrite \
		--bs=4k --size=16M --ioengine=libaio --iodepth=16 --direct=1 --verify=crc32c \
		--verify_fatal=1 --randrepeat=0)
	assert_contains "$out" "err= 0"
	out=$(vm_run a --timeout 600 -- fio --name=seq1m --filename=/dev/mapper/r0 --rw=write \
		--bs=1M --offset=32M --size=24M --ioengine=libaio --iodepth=8 --direct=1 \
		--verify=crc32c --verify_fatal=1)
	assert_contains "$out" "err= 0"
	# sizes from 512 bytes to 1 MiB in buffers aligned to 512 bytes, not to pages: the
	# cache keeps payloads above 32 KiB in pages of its own (rust/pagebuf.rs), so this
	# crosses page boundaries inside bio segments and ends frames on partial pages
	out=$(vm_run a --timeout 600 -- fio --name=mixed --filename=/dev/mapper/r0 --rw=write \
		--bsrange=512-1m --blockalign=512 --iomem_align=512 --offset=56M --size=8M \
		--ioengine=libaio --iodepth=4 --direct=1 --verify=crc32c --verify_fatal=1)
	assert_contains "$out" "err= 0"
}

replicate_mode() {
	local mode=$1
	pair_boot 64
	fill_primary
	pair_secondary
	pair_primary mode "$mode"
	# simplex -> copying -> duplex, with progress
	wait_state a duplex 300
	wait_state b duplex 60
	assert_eq "$(field a size)" "$(field a sync_total)" "initial copy covered the whole device"
	assert_eq "$(field a sync_total)" "$(field a sync_done)" "initial copy progress"
	assert_contains "$(vm_run a 'dmsetup status r0')" "role=primary mode=$mode conn=connected peer=10.77.0.2:7788"
	assert_contains "$(vm_run b 'dmsetup status r0')" "role=secondary mode=$mode conn=connected peer=10.77.0.1:"
	assert_pair_identical
	fio_verify
	vm_run a 'blkdiscard -z -o $((8 << 20)) -l $((1 << 20)) /dev/mapper/r0'
	vm_run a 'python3 -c "import os; f=os.open(\"/dev/mapper/r0\", os.O_WRONLY); os.fsync(f)"'
	wait_drained 300
	assert_pair_identical
	assert_eq "$(field a sent_bytes)" "$(field a acked_bytes)" "every byte sent was acknowledged"
}

test_sync_mode_fio_and_checksums() { replicate_mode sync; }

test_async_mode_fio_and_checksums() { replicate_mode async; }

test_secondary_refuses_local_writes() {
	pair_boot 32
	pair_secondary
	pair_primary
	wait_state a duplex 200
	local before out
	before=$(lower_sum b)
	out=$(vm_run b 'dmesg -C; dd if=/dev/zero of=/dev/mapper/r0 bs=4k count=1 oflag=direct 2>&1; echo rc=$?; dmesg')
	assert_not_contains "$out" "rc=0"
	assert_contains "$out" "write refused: this device is the secondary of its pair"
	# reads work
	vm_run b 'dd if=/dev/mapper/r0 of=/dev/null bs=1M count=4 iflag=direct status=none'
	assert_eq "$before" "$(lower_sum b)" "secondary unchanged by the refused write"
}

# The checker writes numbered blocks on the primary and reports each completed write
# to the host; the primary is killed mid-run; every reported block must be on the
# secondary.
test_sync_guarantee_survives_primary_crash() {
	pair_boot 32
	pair_secondary
	pair_primary mode sync
	wait_state a duplex 200
	local share report job
	share=$(vm_share_dir a)
	report=/run/vm/share/done
	: >"$share/done"
	job=$(vm_spawn a --timeout 300 "python3 $BLOCKS_PY write /dev/mapper/r0 1 4000 $report")
	# let it run for a while, then pull the plug
	local i
	for i in $(seq 60); do
		(($(wc -l <"$share/done") >= 150)) && break
		sleep 0.5
	done
	vm_kill a
	local n
	n=$(wc -l <"$share/done")
	echo "primary killed after $n acknowledged writes"
	((n >= 20)) || fail "only $n writes completed before the kill"
	cp "$share/done" "$(vm_share_dir b)/done.a"
	# what the secondary holds, read from inside it
	local out
	out=$(vm_run b "python3 $BLOCKS_PY check /dev/vda --max 4100 --prefix --expect /run/vm/share/done.a")
	echo "$out"
	assert_contains "$out" "reported=$n"
}

# Async mode over a slow link: at any moment the secondary holds a prefix of the
# primary's write order.
test_async_prefix_under_delay() {
	pair_boot 32
	pair_secondary
	pair_primary mode async
	wait_state a duplex 200
	vm_run a 'tc qdisc add dev eth0 root netem delay 40ms'
	local share job disk i out
	share=$(vm_share_dir a)
	: >"$share/done"
	job=$(vm_spawn a --timeout 300 "python3 $BLOCKS_PY write /dev/mapper/r0 1 3000 /run/vm/share/done")
	disk=$(vm_disk b 0)
	for i in 1 2 3 4 5; do
		sleep "0.$((RANDOM % 9 + 1))"
		vm_qmp b stop >/dev/null
		out=$(python3 "$BLOCKS_PY" check "$disk" --max 3100 --prefix) || {
			vm_qmp b cont >/dev/null
			fail "secondary frozen at moment $i: $out"
		}
		echo "freeze $i: $out"
		vm_qmp b cont >/dev/null
	done
	echo "primary acknowledged $(wc -l <"$share/done") writes; lag $(field a lag_bytes) bytes"
	vm_kill a
	sleep 2
	out=$(python3 "$BLOCKS_PY" check "$disk" --max 3100 --prefix) || fail "after primary crash: $out"
	echo "after primary crash: $out"
	# an empty image is trivially a prefix: the secondary must hold some of the writes
	[[ $out =~ present=([0-9]+) ]] && ((BASH_REMATCH[1] > 0)) ||
		fail "the secondary holds none of the primary's writes: $out"
}

# With the secondary's disk stalled, sync writes on the primary stay pending until it
# resumes; async writes complete at once.
stalled_peer() {
	local mode=$1
	pair_boot 32
	vm_run b 'dmsetup create slow --table "0 $(blockdev --getsz /dev/vda) linear /dev/vda 0"'
	pair_secondary /dev/mapper/slow timeout_ms 60000
	pair_primary mode "$mode" timeout_ms 60000
	wait_state a duplex 200
	vm_run b 'dmsetup suspend slow'
	vm_run a 'dd if=/dev/urandom of=/tmp/blk bs=4k count=1 status=none
		(dd if=/tmp/blk of=/dev/mapper/r0 bs=4k seek=100 count=1 oflag=direct status=none; echo $? >/tmp/dd.rc) &
		echo $! >/tmp/dd.pid'
	sleep 6
	local pending
	pending=$(vm_run a 'test -s /tmp/dd.rc && echo done || echo pending')
	vm_run b 'dmsetup resume slow'
	if [[ $mode == sync ]]; then
		assert_eq pending "$pending" "sync write while the peer's disk is stalled"
	else
		assert_eq done "$pending" "async write while the peer's disk is stalled"
	fi
	vm_wait_until a 60 'test -s /tmp/dd.rc' || fail "write never completed after the peer resumed"
	assert_eq 0 "$(vm_run a 'cat /tmp/dd.rc')" "write status"
	wait_drained 120
	assert_pair_identical
}

test_sync_write_waits_for_stalled_peer() { stalled_peer sync; }

test_async_write_ignores_stalled_peer() { stalled_peer async; }

test_wrong_secret_is_refused() {
	pair_boot 32
	fill_primary
	local before
	before=$(lower_sum b)
	pair_secondary
	PAIR_SECRET=not-the-secret pair_primary
	sleep 8
	assert_contains "$(field a conn) $(field b conn)" "connecting connecting"
	assert_contains "$(vm_run a 'dmesg')" "authentication failed"
	assert_contains "$(vm_run b 'dmesg')" "refused connection: authentication failed"
	assert_eq 0 "$(field a sent_bytes)" "no data sent to an unauthenticated peer"
	assert_eq "$before" "$(lower_sum b)" "secondary's disk untouched"
}

test_garbage_on_the_port() {
	pair_boot 32
	fill_primary
	pair_secondary
	local before c out
	before=$(lower_sum b)
	for c in random oversized badcrc write-before-auth hello-flood; do
		out=$(vm_run a "python3 $GARBAGE_PY 10.77.0.2 $PAIR_PORT $c")
		echo "$c: $out"
		assert_eq closed "$out" "secondary closes the connection on '$c'"
	done
	out=$(vm_run b 'dmesg')
	assert_contains "$out" "malformed frame"
	assert_eq "$before" "$(lower_sum b)" "secondary's disk untouched by garbage"
	assert_contains "$(vm_run b 'dmsetup status r0')" "conn=connecting"
	# the real primary still gets through afterwards
	pair_primary
	wait_state a duplex 200
	assert_pair_identical
}

test_link_cut_and_restore_during_fio() {
	pair_boot 64
	pair_secondary
	pair_primary mode sync
	wait_state a duplex 300
	local ev0 job
	ev0=$(vm_run a 'dmsetup info -c --noheadings -o events r0')
	job=$(vm_spawn a --timeout 600 -- fio --name=cut --filename=/dev/mapper/r0 --rw=randwrite \
		--bs=4k --size=48M --ioengine=libaio --iodepth=8 --direct=1 --verify=crc32c \
		--verify_fatal=1 --randrepeat=0)
	sleep 4
	vm_link a down
	wait_state a suspended 60
	sleep 3
	vm_link a up
	vm_wait_until a 120 'dmesg | grep -c "connected to 10.77.0.2" | grep -qv "^1$"' ||
		fail "primary did not reconnect: $(vm_run a 'dmesg | tail -20')"
	local out
	out=$(vm_wait a "$job" 600)
	assert_contains "$out" "err= 0"
	wait_drained 300
	assert_pair_identical
	local ev1
	ev1=$(vm_run a 'dmsetup info -c --noheadings -o events r0')
	((ev1 > ev0)) || fail "no DM event for the state changes (events $ev0 -> $ev1)"
	assert_contains "$(vm_run a 'dmesg')" "replication link down"
}

# A pair over IPv6 (unique local addresses on the private network): the initial copy
# and a fio run reach the secondary; both status lines show IPv6 peers.
test_ipv6_pair() {
	pair_boot 64
	vm_run a "sysctl -qw net.ipv6.conf.all.disable_ipv6=0 net.ipv6.conf.eth0.disable_ipv6=0 && ip -6 addr add fd77::1/64 dev eth0 nodad"
	vm_run b "sysctl -qw net.ipv6.conf.all.disable_ipv6=0 net.ipv6.conf.eth0.disable_ipv6=0 && ip -6 addr add fd77::2/64 dev eth0 nodad"
	fill_primary
	vm_run b "dmsetup create r0 --table \"0 \$(blockdev --getsz /dev/vda) rcopy /dev/vda /dev/vdb 6 role secondary local [fd77::2]:$PAIR_PORT secret $PAIR_SECRET\""
	vm_run a "dmsetup create r0 --table \"0 \$(blockdev --getsz /dev/vda) rcopy /dev/vda /dev/vdb 6 role primary peer [fd77::2]:$PAIR_PORT secret $PAIR_SECRET\""
	wait_state a duplex 300
	assert_contains "$(vm_run a 'dmsetup table r0')" "peer [fd77::2]:$PAIR_PORT"
	assert_contains "$(vm_run a 'dmsetup status r0')" "conn=connected peer=[fd77::2]:$PAIR_PORT"
	assert_contains "$(vm_run b 'dmsetup status r0')" "conn=connected peer=[fd77::1]:"
	vm_run a --timeout 300 -- fio --name=v6 --filename=/dev/mapper/r0 --rw=randwrite --bs=4k \
		--size=8M --ioengine=libaio --iodepth=8 --direct=1 --randrepeat=0 >/dev/null
	wait_drained 120
	assert_pair_identical
}

# ext4 on the pair, files written and synced in a loop: jbd2's commits include empty
# PREFLUSH|FUA bios, which must travel as a flush (the secondary once refused them as
# malformed and dropped the link at every commit). No link drop, and the pair drains.
test_ext4_sync_loop_keeps_the_link() {
	pair_boot 64
	pair_secondary
	pair_primary mode sync
	wait_state a duplex 300
	local before
	before=$(vm_run b 'dmesg | grep -c "replication link down" || true')
	vm_run a --timeout 600 'mkfs.ext4 -q -F /dev/mapper/r0 && mkdir -p /mnt/r && mount /dev/mapper/r0 /mnt/r &&
		for i in $(seq 1 12); do head -c 2M /dev/urandom >/mnt/r/f$i && sync; done && umount /mnt/r'
	wait_drained 120
	assert_eq "$before" "$(vm_run b 'dmesg | grep -c "replication link down" || true')" "no link drop on the secondary"
	assert_not_contains "$(vm_run b 'dmesg')" "malformed frame"
	assert_eq "yes" "$(field b consistent)" "the secondary is consistent"
	assert_pair_identical
}

# Barriers (a flush on the secondary, then a durable ACK) follow the writes they
# cover by 10 ms; one is not started again while the last is on its way. Counted on
# the secondary's data disk (flushes completed, /proc/diskstats) over 10 s of 4 KiB
# random writes at queue depth 16: at most one per 10 ms (1000), with a tenth and 5 to
# spare. The engine before this rule aged only the oldest unconfirmed entry, which a
# barrier in flight leaves in place: it sent one after nearly every write (2459 flushes
# on b in 10 s at 621 IOPS, one per 2.5 writes; now 769 at 707 IOPS).
test_barriers_are_spaced() {
	pair_boot 64
	pair_secondary
	pair_primary mode sync
	wait_state a duplex 300
	local flushes="awk '\$3 == \"vda\" { print \$19 }' /proc/diskstats" f0 f1 out n
	f0=$(vm_run b "$flushes")
	out=$(vm_run a --timeout 120 -- fio --name=r16 --filename=/dev/mapper/r0 --rw=randwrite --bs=4k \
		--ioengine=libaio --iodepth=16 --direct=1 --time_based --runtime=10 --size=48M \
		--randrepeat=0 --norandommap)
	assert_contains "$out" "err= 0"
	f1=$(vm_run b "$flushes")
	n=$((f1 - f0))
	echo "flushes on b during 10 s of QD16 writes: $n ($(grep -o 'IOPS=[^,]*' <<<"$out"))"
	((n > 0)) || fail "no barrier reached b in 10 s of writes"
	((n <= 1105)) || fail "$n flushes on b in 10 s: barriers are not spaced 10 ms apart"
	wait_drained 120
	assert_pair_identical
}
