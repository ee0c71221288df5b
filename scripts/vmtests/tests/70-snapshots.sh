# shellcheck shell=bash
# Point-in-time images on the secondary: a snapshot requested on the primary travels
# in the ordered stream and is taken by the secondary exactly there (checked from
# sequence stamps: the snapshot is a prefix of the write order, at a point between
# the request and its confirmation), stays that image while replication overwrites
# the tracks, survives a restart of the secondary, and is deleted; a snapshot taken
# automatically before a resync lets the secondary be promoted onto the consistent
# image after the primary dies mid-resync.
# Both VMs have a third disk (vdc) as the snapshot store, and carry both addresses
# (lib/takeover.sh).

TEST_TIMEOUT=900
# shellcheck source=../lib/pair.sh
. "$RCOPY_ROOT/scripts/vmtests/lib/pair.sh"
# shellcheck source=../lib/safety.sh
. "$RCOPY_ROOT/scripts/vmtests/lib/safety.sh"
# shellcheck source=../lib/takeover.sh
. "$RCOPY_ROOT/scripts/vmtests/lib/takeover.sh"

STAMPS_PY=$RCOPY_ROOT/scripts/vmtests/lib/stamps.py
# Blocks of 4 KiB the stamp writer spreads over: 32 MiB, 512 tracks of 64 KiB.
STAMP_BLOCKS=8192

# snap_boot: both VMs with a 64 MiB data disk, the metadata disk and a 64 MiB
# snapshot store (vdc), formatted for r0
snap_boot() {
	pair_boot 64 "--disk 64"
	local vm
	for vm in a b; do
		vm_run "$vm" "$RCOPYCTL create-store /dev/vdc --data /dev/vda --pair-id default" >/dev/null
	done
}

# snap_device VM EPOCH: create r0-snap (read-only) for snapshot EPOCH of r0 in VM
snap_device() {
	vm_run "$1" "dmsetup create --readonly r0-snap --table \"0 \$(blockdev --getsz /dev/vda) rcopy-snap /dev/vdc $2\""
}

# progress VM: the last stamp the writer in VM completed (0 before the first)
progress() {
	local p
	p=$(cat "$(vm_share_dir "$1")/progress" 2>/dev/null | tr -d ' \n')
	echo $((10#${p:-0}))
}

test_snapshot_is_a_point_in_the_stream() {
	snap_boot
	tk_pair mode async snap_store /dev/vdc
	local job before out after epoch cut sum1 sum2 n
	# A writer that stamps every block with its place in the write order, on the
	# primary, while the snapshot is requested.
	job=$(vm_spawn a --timeout 600 -- python3 "$STAMPS_PY" write /dev/mapper/r0 "$STAMP_BLOCKS" 6000 /run/vm/share/progress)
	vm_wait_until a 120 "test -s /run/vm/share/progress && [ \$(cat /run/vm/share/progress) -ge 1500 ]" ||
		fail "the writer did not get going"
	before=$(progress a)
	out=$(ctl a snapshot r0 nightly-1) || fail "snapshot refused: $out"
	after=$(progress a)
	echo "$out (writer at stamp $before when requested, $after when confirmed)"
	epoch=$(sed -n 's/.*snapshot \([0-9]*\).*/\1/p' <<<"$out")
	[[ -n $epoch ]] || fail "no snapshot id in: $out"
	assert_contains "$(vm_run b "dmsetup message r0 0 snapshots")" "$epoch nightly-1 ready"
	ctl b snapshots r0
	# The snapshot is the image of one point of the write order, between the request
	# and the confirmation.
	snap_device b "$epoch"
	out=$(vm_run b "python3 $STAMPS_PY cut /dev/mapper/r0-snap $STAMP_BLOCKS") ||
		fail "the snapshot is not a point in time: $out"
	cut=${out#cut=}
	echo "snapshot cut at stamp $cut"
	((cut >= before && cut <= after)) || fail "cut $cut outside [$before, $after]"
	sum1=$(vm_run b 'dd if=/dev/mapper/r0-snap bs=1M iflag=direct status=none | sha256sum | cut -d" " -f1')
	# Replication goes on and overwrites the tracks while the snapshot is read over
	# and over: every read sees the same image.
	local reader sums
	reader=$(vm_spawn b --timeout 600 -- sh -c 'for i in $(seq 12); do dd if=/dev/mapper/r0-snap bs=64k iflag=direct status=none | sha256sum | cut -d" " -f1; done')
	out=$(vm_wait a "$job" 600)
	echo "writer: $out"
	sums=$(vm_wait b "$reader" 600)
	echo "snapshot read $(wc -l <<<"$sums") times during the writes: $(sort -u <<<"$sums" | wc -l) distinct sha256"
	assert_eq "$sum1" "$(sort -u <<<"$sums")" "every read of the snapshot during the writes"
	wait_drained 300
	assert_pair_identical
	sum2=$(vm_run b 'dd if=/dev/mapper/r0-snap bs=1M iflag=direct status=none | sha256sum | cut -d" " -f1')
	assert_eq "$sum1" "$sum2" "the snapshot's sha256 after 4500 more writes"
	out=$(vm_run b "python3 $STAMPS_PY cut /dev/mapper/r0-snap $STAMP_BLOCKS")
	assert_eq "cut=$cut" "$out" "the snapshot's cut after more writes"
	# A snapshot device holds the snapshot: it cannot be deleted meanwhile.
	if vm_run b "dmsetup message r0 0 snapshot-delete $epoch" 2>/dev/null; then
		fail "a snapshot in use was deleted"
	fi
	# It survives a restart of the secondary's device (the store is read again).
	vm_run b 'dmsetup remove r0-snap && dmsetup remove r0'
	tk_create b secondary snap_store /dev/vdc
	wait_state a duplex 300
	ctl b snapshot-activate r0 nightly-1
	sum2=$(vm_run b "dd if=/dev/mapper/r0-snap-$epoch bs=1M iflag=direct status=none | sha256sum | cut -d' ' -f1")
	assert_eq "$sum1" "$sum2" "the snapshot's sha256 after the secondary's restart"
	ctl b snapshot-deactivate "r0-snap-$epoch"
	ctl b snapshot-delete r0 nightly-1
	assert_eq "" "$(vm_run b "dmsetup message r0 0 snapshots")" "snapshots after the deletion"

	# A store too small for what changes after a snapshot (2 MiB: about 30 tracks
	# of 64 KiB) invalidates the snapshot and replication goes on.
	vm_run b 'dmsetup remove r0 && dmsetup create small --table "0 4096 linear /dev/vdc 0"'
	vm_run b "$RCOPYCTL create-store /dev/mapper/small --data /dev/vda --force"
	tk_create b secondary snap_store /dev/mapper/small
	wait_state a duplex 300
	out=$(ctl a snapshot r0 full-1) || fail "snapshot refused: $out"
	epoch=$(sed -n 's/.*snapshot \([0-9]*\).*/\1/p' <<<"$out")
	n=$(klog_lines b)
	vm_run a "python3 $STAMPS_PY write /dev/mapper/r0 $STAMP_BLOCKS 600 /run/vm/share/progress --start 6000" >/dev/null
	wait_drained 300
	assert_pair_identical
	assert_contains "$(vm_run b "dmsetup message r0 0 snapshots")" "$epoch full-1 invalid"
	assert_contains "$(klog_since b "$n")" "snapshot $epoch is no longer valid: the store is full"
	if ctl b snapshot-activate r0 full-1 2>/dev/null; then
		fail "an invalid snapshot was activated"
	fi
	vm_run b 'dmsetup remove r0 && dmsetup remove small'
}

# snapshot --verify: the primary sums its image at the snapshot's point of the stream
# while the stamp writer goes on, and the sum is recorded with the snapshot on b, where
# snapshot-verify reads the snapshot and finds the same sum (through a temporary
# snapshot device, and through an active one). Then 64 KiB written straight to b's
# data disk where the writer never writes (so the snapshot reads it from there) must
# make the check fail.
test_snapshot_verify_matches_the_primary() {
	snap_boot
	tk_pair mode async snap_store /dev/vdc
	local share job before after out line id sum rc=0
	share=$(vm_share_dir a)
	job=$(vm_spawn a --timeout 600 -- python3 "$STAMPS_PY" write /dev/mapper/r0 "$STAMP_BLOCKS" 6000 \
		/run/vm/share/progress --latencies /run/vm/share/latencies)
	vm_wait_until a 120 "test -s /run/vm/share/progress && [ \$(cat /run/vm/share/progress) -ge 1500 ]" ||
		fail "the writer did not get going"
	before=$(progress a)
	out=$(ctl a snapshot r0 v1 --verify --timeout 300) || fail "snapshot --verify failed: $out"
	after=$(progress a)
	echo "$out"
	echo "writer at stamp $before when the verify was requested, $after when it answered"
	line=$(grep -E '^r0: snapshot [0-9]+ \(v1\) taken on the peer; primary image sum [0-9a-f]{64} recorded' <<<"$out") ||
		fail "no snapshot id and sum in: $out"
	id=$(sed -n 's/^r0: snapshot \([0-9]*\) .*/\1/p' <<<"$line")
	sum=$(grep -oE '[0-9a-f]{64}' <<<"$line")
	out=$(vm_wait a "$job" 600)
	echo "writer: $out"
	awk -v a="$before" -v b="$after" '$1 > a && $1 <= b + 1 { n++; if ($2 > m) m = $2 }
		END { printf "writes during the verify: %d, max latency %.1f ms (report only)\n", n, m / 1000 }' \
		"$share/latencies"
	out=$(vm_run b "dmsetup message r0 0 snapshots")
	assert_contains "$out" "$id v1 ready" "the snapshots message on b"
	assert_contains "$out" " $sum" "the snapshots message on b (the sum column)"
	ctl b snapshots r0
	# b sums the snapshot through a temporary snapshot device, removed afterwards.
	out=$(ctl b snapshot-verify r0 "$id") || fail "snapshot-verify failed: $out"
	echo "$out"
	assert_contains "$out" "r0: snapshot $id (v1): verified (sum $sum)"
	assert_eq "$sum" "$(ctl b snapshot-verify r0 v1 --sum-only)" "b's sum of the snapshot (--sum-only)"
	assert_eq "" "$(vm_run b 'dmsetup ls | grep -- -verify || true')" "temporary devices left on b"
	# And through the snapshot device that shows it already, which stays.
	ctl b snapshot-activate r0 "$id"
	assert_eq "$sum" "$(ctl b snapshot-verify r0 "$id" --sum-only)" "b's sum through the active snapshot device"
	vm_run b "test -b /dev/mapper/r0-snap-$id"
	ctl b snapshot-deactivate "r0-snap-$id"
	# The writer writes only the first STAMP_BLOCKS * 4 KiB (32 MiB): the track at 48
	# MiB was never overwritten, so the snapshot reads it from b's data disk.
	vm_run b "dd if=/dev/urandom of=/dev/vda bs=64k seek=768 count=1 iflag=fullblock oflag=direct status=none"
	out=$(ctl b snapshot-verify r0 "$id") || rc=$?
	echo "$out"
	assert_eq 1 "$rc" "snapshot-verify's exit code after b's data disk changed under the snapshot"
	assert_contains "$out" "r0: snapshot $id (v1): MISMATCH: image sum "
	assert_contains "$out" ", primary's sum $sum"
	assert_ne "$sum" "$(ctl b snapshot-verify r0 "$id" --sum-only)" "b's sum after the change"
}

test_snapshot_before_resync_can_be_promoted() {
	snap_boot
	tk_pair mode sync snap_store /dev/vdc resync_rate 1048576
	local out sum_cut n
	# A consistent image on both sides, then a link cut and writes that only the
	# primary has.
	vm_run a "python3 $STAMPS_PY write /dev/mapper/r0 $STAMP_BLOCKS 2000 /run/vm/share/progress" >/dev/null
	wait_drained 120
	sum_cut=$(lower_sum b)
	vm_link a down
	wait_state a suspended 60
	vm_run a "python3 $STAMPS_PY write /dev/mapper/r0 $STAMP_BLOCKS 3000 /run/vm/share/progress --start 2000" >/dev/null
	echo "primary before the resync: $(st a)"
	n=$(klog_lines b)
	vm_link a up
	# The resync (1 MiB/s) starts; the secondary keeps its consistent image first.
	wait_key a state resyncing 120
	vm_wait_until b 60 "dmsetup message r0 0 snapshots | grep -q 'pre-resync ready before-resync'" ||
		fail "no pre-resync snapshot: $(vm_run b 'dmsetup message r0 0 snapshots')"
	klog_since b "$n" | grep 'pre-resync' || true
	sleep 3
	assert_eq no "$(field b consistent)" "the secondary during the resync"
	# The primary dies mid-resync.
	vm_kill a
	wait_not_key b conn connected 30
	out=$(ctl b promote r0 --rollback) || fail "promote --rollback refused: $out"
	echo "$out"
	assert_eq primary "$(field b role)" "b's role after the promotion"
	assert_eq yes "$(field b consistent)" "b after the rollback"
	assert_eq "$sum_cut" "$(lower_sum b)" "b's data after the rollback: the image before the resync"
	out=$(vm_run b "python3 $STAMPS_PY cut /dev/mapper/r0 $STAMP_BLOCKS")
	assert_eq "cut=2000" "$out" "the promoted image's cut"
}

# Consistency points: the primary's writer asks for a point after every 300th stamp.
# The secondary is frozen (QMP stop) at a random moment and killed; restarted with its
# link down, its image must be exactly one of the points (stamps 1..s for a point
# asked after stamp s), never between two. Then the link returns and the pair
# converges (what the rollback undid is resynced). ROUNDS kill moments (default 1 in
# make check, to keep it short; make torture repeats the test with fresh VMs).
test_consistency_points_survive_a_frozen_killed_secondary() {
	snap_boot
	tk_pair mode async snap_store /dev/vdc
	local share round job t out cut p0 start=0
	share=$(vm_share_dir a)
	: >"$share/points"
	# rcopyctl mark waits for the peer's confirmation; status shows the point.
	out=$(ctl a mark r0) || fail "mark refused: $out"
	assert_contains "$out" "r0: consistency point"
	assert_eq "$(field a point)" "$(field b point)" "the point on both sides"
	echo 0 >>"$share/points"
	for ((round = 1; round <= ${ROUNDS:-1}; round++)); do
		p0=$(field b point)
		job=$(vm_spawn a --timeout 900 -- python3 "$STAMPS_PY" write /dev/mapper/r0 "$STAMP_BLOCKS" 100000 \
			/run/vm/share/progress --start "$start" --point-every 300 /run/vm/share/points)
		vm_wait_until b 120 "dmsetup status r0 | tr ' ' '\n' | grep '^point=' | grep -vqx 'point=$p0'" ||
			fail "no new consistency point on b: $(st b)"
		t=$(rand_sleep 10 50)
		vm_qmp b stop >/dev/null
		sleep 1
		vm_kill b
		vm_job_kill a "$job"
		vm_wait a "$job" 120 >/dev/null || true
		start=$(progress a)
		echo "round $round: b frozen and killed ${t}s after its first point; writer at stamp $start; $(wc -l <"$share/points") points asked so far"
		boot_again b
		vm_link b down
		tk_create b secondary snap_store /dev/vdc
		out=$(vm_run b "python3 $STAMPS_PY cut /dev/vda $STAMP_BLOCKS") || fail "b's image is not a point of the write order: $out"
		cut=${out#cut=}
		echo "round $round: b's image after its restart: stamps 1..$cut; $(st b)"
		grep -qx "$cut" "$share/points" || fail "b's image (stamps 1..$cut) is not a consistency point"
		assert_eq yes "$(field b consistent)" "b after returning to its point"
		vm_link b up
		wait_drained 300
		assert_pair_identical
	done
}
