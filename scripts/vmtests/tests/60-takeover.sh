# shellcheck shell=bash
# Takeover, reverse resync, failback and split brain, decided by the generation ids
# of the handshake: a crashed primary's secondary is promoted and the old primary
# rejoins as a secondary (its unconfirmed writes rolled back by the bitmap resync,
# not a full copy), a planned switchover, a split brain refused on both sides until
# the operator resolves it, a blank replaced secondary (full copy), an old image of
# the secondary (never trusted silently), and promotion of an inconsistent
# secondary (refused without --force).
# Both VMs carry both addresses (lib/takeover.sh); every test ends on whole-device
# sha256 of the lower data disks.

TEST_TIMEOUT=600
TIMEOUT_test_takeover_and_failback=900
# shellcheck source=../lib/pair.sh
. "$RCOPY_ROOT/scripts/vmtests/lib/pair.sh"
# shellcheck source=../lib/safety.sh
. "$RCOPY_ROOT/scripts/vmtests/lib/safety.sh"
# shellcheck source=../lib/takeover.sh
. "$RCOPY_ROOT/scripts/vmtests/lib/takeover.sh"

# resync_figures VM SENT0: the figures of a resync just finished on primary VM:
# prints its status line and sets R_PT (peer_tracks), R_TOTAL (sync_total), R_SENT
# (sent_bytes - SENT0), R_DECISION
resync_figures() {
	local s
	s=$(st "$1")
	echo "$1 after the resync: $s"
	R_PT=$(status_key "$s" peer_tracks)
	R_TOTAL=$(status_key "$s" sync_total)
	R_SENT=$(($(status_key "$s" sent_bytes) - $2))
	R_DECISION=$(status_key "$s" decision)
}

# added_tracks VM N: the tracks the peer's bitmap added to VM's at its last
# handshake after the first N kernel log lines ("... (K more to copy here)"; 0 if
# the peer sent no marks)
added_tracks() {
	local n
	n=$(klog_since "$1" "$2" | sed -n 's/.*never had confirmed (\([0-9]*\) more to copy here).*/\1/p' | tail -n 1)
	echo "${n:-0}"
}

# 1. The primary dies under fio; the secondary (consistent) is promoted and written;
# the old primary boots again and rejoins as a secondary: the reverse resync copies
# the union of the new primary's bitmap and the old primary's own (its writes the
# new primary never confirmed, from its activity log), not the whole device. Then
# a planned switchover back.
test_takeover_and_failback() {
	pair_boot 64
	fill_random a
	tk_pair mode sync
	local size s0 out sb raw_a b_dirty b_sent0 merged added nb
	size=$(field a size)
	# the old primary writes to 0-8 MiB until it dies
	s0=$(field a sent_bytes)
	fio_bg a 120 --offset=0 --size=8M >/dev/null
	grown a sent_bytes "$s0" 30
	sleep 2
	echo "killing the primary under fio: $(st a)"
	vm_kill a

	# takeover: b notices the loss, is promoted and written (32-40 MiB)
	wait_not_key b conn connected 30
	echo "secondary after the crash: $(st b)"
	check "the secondary is consistent after the primary's crash" test "$(field b consistent)" = yes
	ctl b promote r0
	check "b is primary after promote" role_is b primary
	local fio_b=(--name=onb --filename=/dev/mapper/r0 --rw=randwrite --bs=4k --offset=32M --size=8M
		--ioengine=libaio --iodepth=8 --direct=1 --verify=crc32c --verify_fatal=1 --randseed=4711)
	out=$(vm_run b --timeout 300 -- fio "${fio_b[@]}")
	check "fio with verify on the promoted side" assert_contains "$out" "err= 0"
	sb=$(lower_sum b)
	b_dirty=$(field b dirty_bytes)
	b_sent0=$(field b sent_bytes)
	echo "new primary before the old one rejoins: $(st b)"
	check "the new primary marked its 8 MiB of writes" test "$b_dirty" -ge $((8 << 20))

	# the old primary boots again (same disks) and rejoins as a secondary
	boot_again a
	raw_a=$(lower_sum a)
	echo "old primary's disk before it rejoins: $raw_a; new primary's: $sb"
	nb=$(klog_lines b)
	tk_create a secondary mode sync
	drained_on b 300
	resync_figures b "$b_sent0"
	echo "old primary (secondary): $(st a)"
	# merged bits: the new primary's own plus those of the old primary's it lacked
	added=$(added_tracks b "$nb")
	merged=$((b_dirty / TRACK + added))
	echo "reverse resync: new primary's bitmap $((b_dirty / TRACK)) tracks; old primary's peer_tracks=$R_PT" \
		"($added not marked on the new primary) = $merged merged tracks ($((merged * TRACK)) bytes);" \
		"copied sync_total=$R_TOTAL, sent $R_SENT bytes; device $size bytes"
	check "decision=bitmap on the new primary" test "$R_DECISION" = bitmap
	check "decision=bitmap on the old primary" test "$(field a decision)" = bitmap
	check "the old primary's unconfirmed writes are rolled back (peer_tracks > 0)" test "$R_PT" -gt 0
	check "merged tracks are at most own + peer_tracks" test "$merged" -le $((b_dirty / TRACK + R_PT))
	check "bytes copied (sync_total) within 10% of merged tracks x track_size" \
		within_pct "$R_TOTAL" $((merged * TRACK)) 10
	check "bytes sent within 10% of merged tracks x track_size" within_pct "$R_SENT" $((merged * TRACK)) 10
	check "the reverse resync is not a full copy" test "$R_TOTAL" -lt "$size"
	check "the old primary is consistent after the reverse resync" test "$(field a consistent)" = yes
	check "identical disks after the reverse resync" sums_equal
	check "the reverse resync left the new primary's disk alone" test "$(lower_sum b)" = "$sb"

	# failback: planned switchover on b, promotion of a
	local a_sent0
	out=$(ctl b switchover r0)
	echo "switchover on b: $out"
	check "b is secondary after switchover" role_is b secondary
	a_sent0=$(field a sent_bytes)
	ctl a promote r0
	check "a is primary again" role_is a primary
	drained_on a 300
	resync_figures a "$a_sent0"
	echo "b: $(st b)"
	echo "failback: decision $R_DECISION, copied $R_TOTAL bytes, sent $R_SENT bytes"
	check "failback after a switchover copies (almost) nothing" test "$R_TOTAL" -le $((1 << 20))
	check "identical disks after failback" sums_equal
	out=$(vm_run a --timeout 300 -- fio "${fio_b[@]}" --verify_only)
	check "the data written on b during the takeover reads back on a" assert_contains "$out" "err= 0"
	checks_done
}

# 2. Async pair over a slow link: the primary's writes wait in its cache when it
# dies. The promoted secondary's image wins: after the old primary rejoins, its
# unconfirmed writes are rolled back (peer_tracks > 0) and both disks hold the new
# primary's image.
test_unconfirmed_async_writes_rolled_back() {
	pair_boot 64
	tk_pair mode async
	vm_run a 'tc qdisc add dev eth0 root netem delay 100ms rate 2mbit'
	# a known pattern at 16-24 MiB, complete (and flushed) on the primary
	vm_run a 'head -c 8M /dev/urandom >/tmp/pattern && dd if=/tmp/pattern of=/dev/mapper/r0 bs=1M seek=16 oflag=direct conv=fsync status=none'
	local s lag sb raw_a b_dirty b_sent0 merged added nb
	s=$(st a)
	echo "primary with the pattern written: $s"
	lag=$(status_key "$s" lag_bytes)
	((lag > 0)) || fail "the pattern was already shipped (lag_bytes=0): the test proves nothing"
	vm_kill a
	wait_not_key b conn connected 30
	echo "secondary after the crash: $(st b)"
	check "the secondary is consistent (a prefix) after the crash" test "$(field b consistent)" = yes
	ctl b promote r0
	check "b is primary after promote" role_is b primary
	sb=$(lower_sum b)
	b_dirty=$(field b dirty_bytes)
	b_sent0=$(field b sent_bytes)
	boot_again a
	raw_a=$(lower_sum a)
	echo "old primary's disk before it rejoins: $raw_a; new primary's: $sb"
	[[ $raw_a != "$sb" ]] || fail "the old primary holds nothing the new one lacks: the test proves nothing"
	nb=$(klog_lines b)
	tk_create a secondary mode async
	drained_on b 300
	resync_figures b "$b_sent0"
	added=$(added_tracks b "$nb")
	merged=$((b_dirty / TRACK + added))
	echo "rollback: peer_tracks=$R_PT ($((R_PT * TRACK)) bytes; lag at the crash was $lag bytes)," \
		"new primary's own bitmap $((b_dirty / TRACK)) tracks, merged $merged; copied sync_total=$R_TOTAL, sent $R_SENT bytes"
	check "the new primary reports the old primary's unconfirmed tracks (peer_tracks > 0)" test "$R_PT" -gt 0
	check "bytes copied within 10% of merged tracks x track_size" within_pct "$R_TOTAL" $((merged * TRACK)) 10
	check "bytes sent within 10% of merged tracks x track_size" within_pct "$R_SENT" $((merged * TRACK)) 10
	check "identical disks after the rollback" sums_equal
	check "the rollback left the new primary's disk alone" test "$(lower_sum b)" = "$sb"
	checks_done
}

# 3. Both sides written while apart: the handshake refuses on both sides (status and
# kernel log), neither disk changes while the primary retries; `resolve
# --discard-local` on the secondary then overwrites it with the union of both
# bitmaps, not a full copy.
test_split_brain_refused_then_resolved() {
	pair_boot 64
	tk_pair mode sync
	local size na nb sa0 sb0 sa1 sb1 out u s
	size=$(field a size)
	vm_link a down
	wait_state a suspended 60
	wait_not_key b conn connected 30
	write_tracks a 40 1
	ctl b promote r0
	check "b is primary after promote" role_is b primary
	write_tracks b 30 2
	na=$(klog_lines a)
	nb=$(klog_lines b)
	vm_link a up
	# two primaries: a steps down, so b connects to it
	ctl a demote r0
	check "a is secondary after demote" role_is a secondary
	wait_key b decision split-brain 60
	wait_key a decision split-brain 30
	sa0=$(lower_sum a)
	sb0=$(lower_sum b)
	sleep 8
	echo "a (secondary): $(st a)"
	echo "b (primary):   $(st b)"
	sa1=$(lower_sum a)
	sb1=$(lower_sum b)
	echo "during the refusal: a $sa0 -> $sa1, b $sb0 -> $sb1"
	check "the disks differ (both sides wrote)" test "$sa0" != "$sb0"
	check "a's disk unchanged while refused" test "$sa0" = "$sa1"
	check "b's disk unchanged while refused" test "$sb0" = "$sb1"
	check "still split-brain on a after retries" test "$(field a decision)" = split-brain
	check "still split-brain on b after retries" test "$(field b decision)" = split-brain
	check "b is not in duplex" test "$(field b state)" != duplex
	check "a's kernel log says refused, split brain" refused_in_log a "$na" 'split.brain'
	check "b's kernel log says refused, split brain" refused_in_log b "$nb" 'split.brain'
	klog_since b "$nb" | grep -i rcopy | tail -n 4 || true

	# resolve: a's writes are discarded
	out=$(ctl a resolve r0 --discard-local)
	echo "resolve on a: $out"
	drained_on b 300
	resync_figures b 0
	u=$(tracks_union "$size" "$TRACK" "40 1" "30 2")
	echo "after resolve: decision $R_DECISION, copied sync_total=$R_TOTAL; union of both bitmaps" \
		"$u tracks = $((u * TRACK)) bytes; device $size bytes"
	check "bytes copied at most the union of both bitmaps" test "$R_TOTAL" -le $((u * TRACK))
	check "not a full copy" test "$R_TOTAL" -lt "$size"
	check "identical disks after resolve" sums_equal
	check "a holds b's image from before the resolve" test "$(lower_sum a)" = "$sb0"
	checks_done
}

# 4. The secondary's disks are replaced (fresh metadata from create-md, part of the
# data zeroed): the handshake decides a full copy.
test_blank_replaced_secondary() {
	pair_boot 64
	fill_random a
	tk_pair mode sync
	drained_on a
	local size a_sent0 d
	size=$(field a size)
	vm_run b 'dmsetup remove r0'
	wait_state a suspended 60
	write_tracks a 20 5
	vm_run b "dd if=/dev/zero of=/dev/vdb bs=1M count=\$((\$(blockdev --getsize64 /dev/vdb) >> 20)) oflag=direct status=none &&
		$RCOPYCTL create-md /dev/vdb --data /dev/vda &&
		dd if=/dev/zero of=/dev/vda bs=1M seek=8 count=16 oflag=direct status=none"
	vm_run b "$RCOPYCTL inspect-md /dev/vdb"
	a_sent0=$(field a sent_bytes)
	tk_create b secondary mode sync
	d=$(wait_decided b 120)
	echo "decision with the blank secondary: $d"
	check "decision=full on the blank secondary" test "$d" = full
	drained_on a 300
	resync_figures a "$a_sent0"
	echo "full copy: copied sync_total=$R_TOTAL, sent $R_SENT bytes; device $size bytes"
	check "decision=full on the primary" test "$R_DECISION" = full
	check "a full copy (sync_total = device size)" test "$R_TOTAL" = "$size"
	check "identical disks after the full copy" sums_equal
	checks_done
}

# 5. An old image of the secondary (both disks, taken in duplex) is put back after
# the primary moved on (writes, a link cut, writes, a resync): it must not be
# resynced from the primary's bitmap as if current. A full copy, or a refusal that
# `resolve --discard-local` on it fixes.
test_old_image_is_not_trusted() {
	pair_boot 64
	fill_random a
	tk_pair mode sync
	drained_on a
	vm_run b 'dd if=/dev/vda of=/tmp/old-vda bs=1M iflag=direct status=none &&
		dd if=/dev/vdb of=/tmp/old-vdb bs=1M iflag=direct status=none'
	echo "b's metadata in the old image:"
	vm_run b "$RCOPYCTL inspect-md /tmp/old-vdb"
	write_tracks a 20 3
	vm_link a down
	wait_state a suspended 60
	write_tracks a 20 4
	vm_link a up
	drained_on a 300
	check "identical disks before the old image is put back" sums_equal
	echo "a: $(st a)"
	echo "b: $(st b)"
	vm_run b 'dmsetup remove r0 &&
		dd if=/tmp/old-vda of=/dev/vda bs=1M oflag=direct status=none &&
		dd if=/tmp/old-vdb of=/dev/vdb bs=1M oflag=direct status=none'
	local old na d a_sent0
	old=$(lower_sum b)
	check "the old image differs from the primary's" test "$old" != "$(lower_sum a)"
	na=$(klog_lines a)
	a_sent0=$(field a sent_bytes)
	tk_create b secondary mode sync
	d=$(wait_decided b 120)
	echo "decision with the old image: $d"
	echo "a: $(st a)"
	echo "b: $(st b)"
	check "the old image is not resynced from the bitmap (decision=$d)" test "$d" != bitmap
	case $d in
	full | bitmap) ;;
	split-brain | unrelated | stale-primary)
		check "the refusal is in the primary's kernel log" refused_in_log a "$na" "$d"
		ctl b resolve r0 --discard-local
		;;
	*) check "a known decision ($d)" false ;;
	esac
	drained_on a 300
	resync_figures a "$a_sent0"
	echo "after the old image: decision $R_DECISION, copied sync_total=$R_TOTAL, sent $R_SENT bytes"
	check "identical disks after the old image was overwritten" sums_equal
	checks_done
}

# 6. Promotion of a secondary in its initial copy (not consistent) is refused
# without --force, and done with it.
test_promote_refuses_inconsistent_secondary() {
	pair_boot 64
	tk_create b secondary mode sync resync_rate 1048576
	tk_create a primary mode sync resync_rate 1048576
	wait_state a copying 60
	wait_key b consistent no 30
	echo "secondary during the initial copy: $(st b)"
	local rc=0 out
	out=$(ctl b promote r0) || rc=$?
	echo "promote without --force: exit $rc: $out"
	check "promote of an inconsistent secondary exits 1" test "$rc" = 1
	check "the refusal mentions consistency" grep -qi consistent <<<"$out"
	check "b is still secondary" role_is b secondary
	out=$(ctl b promote r0 --force)
	echo "promote --force: $out"
	check "b is primary after promote --force" role_is b primary
	out=$(vm_run b 'dd if=/dev/zero of=/dev/mapper/r0 bs=4k count=1 oflag=direct status=none && echo written')
	check "the forced primary takes writes" assert_contains "$out" written
	checks_done
}

# 7. Planned switchover of an async pair under load: fio (with verify) on the
# primary, then a burst of known data that is still in the cache (slow link) when
# the switchover starts: the switchover drains it and reports the pause, the peer
# is promoted, both disks agree, and fio's data and the burst read back on the new
# primary.
test_planned_switchover_under_fio() {
	pair_boot 64
	tk_pair mode async
	# a slow link, so that the cache still holds writes when the switchover starts
	vm_run a 'tc qdisc add dev eth0 root netem delay 20ms rate 16mbit'
	local fio_a=(--name=sw --filename=/dev/mapper/r0 --rw=randwrite --bs=4k --offset=0 --size=16M
		--ioengine=libaio --iodepth=16 --direct=1 --verify=crc32c --verify_fatal=1 --randseed=9090)
	local out t0 ms s lag pause burst
	out=$(vm_run a --timeout 400 -- fio "${fio_a[@]}")
	check "fio with verify on the primary ran without errors" assert_contains "$out" "err= 0"
	burst=$(vm_run a 'head -c 8M /dev/urandom >/tmp/burst &&
		dd if=/tmp/burst of=/dev/mapper/r0 bs=1M seek=32 oflag=direct status=none && sha256sum </tmp/burst | cut -d" " -f1')
	s=$(st a)
	echo "primary when the writes ended: $s"
	lag=$(status_key "$s" lag_bytes)
	check "the switchover has writes to drain (lag_bytes > 0)" test "$lag" -gt 0
	t0=$EPOCHREALTIME
	out=$(ctl a switchover r0)
	ms=$(((${EPOCHREALTIME/./} - ${t0/./}) / 1000))
	echo "switchover on a ($ms ms round trip): $out"
	pause=$(sed -n 's/.*I\/O pause: *\([0-9.]*\) s.*/\1/p' <<<"$out")
	echo "switchover figures: lag when the writes ended $lag bytes; I/O pause ${pause:-?} s"
	check "switchover reports the I/O pause" test -n "$pause"
	check "a is secondary after switchover" role_is a secondary
	ctl b promote r0
	check "b is primary after promote" role_is b primary
	drained_on b 300
	echo "a: $(st a)"
	echo "b: $(st b)"
	check "decision=bitmap after the switchover" test "$(field b decision)" = bitmap
	check "identical disks after the switchover" sums_equal
	out=$(vm_run b --timeout 300 -- fio "${fio_a[@]}" --verify_only)
	check "fio's data reads back verified on the new primary" assert_contains "$out" "err= 0"
	check "the burst written just before the switchover is on the new primary" test "$burst" = \
		"$(vm_run b 'dd if=/dev/mapper/r0 bs=1M skip=32 count=8 iflag=direct status=none | sha256sum | cut -d" " -f1')"
	out=$(vm_run a 'dd if=/dev/zero of=/dev/mapper/r0 bs=4k count=1 oflag=direct 2>&1 || echo refused')
	check "the demoted side refuses local writes" assert_contains "$out" refused
	checks_done
}
