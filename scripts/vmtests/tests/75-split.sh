# shellcheck shell=bash
# The local split copy (table option split_dev) of a standalone device: a second
# disk that follows the device (forming, formed) and is frozen by `split` as the
# device's image of that moment while writes go on (each track copied before its
# first overwrite), brought up to date extent by extent (`refresh`) and joined
# again (`rejoin`) by copying only the tracks written since; its state and bitmaps
# live on the disk (a reload, a remove and create, a crash in the middle of a
# split). Every check is on data: sha256 of the copy's image (the first 64 MiB of
# the split disk, read with O_DIRECT) against the device, or against its image
# saved at the split.
# One VM, sp: a 64 MiB data disk (vda, random data), an 8 MiB metadata disk (vdb),
# a 72 MiB split disk (vdc). The tests run in order on the same device r0 (each
# starts from the state the one before left); the split copy device is sd, vdc
# under dm-delay, so that a split takes long enough to be overwritten meanwhile
# (and crashed in). test_crash_during_splitting also runs alone (make torture):
# ROUNDS kill moments (default 1).

TEST_TIMEOUT=600
CRASH_ROUNDS=${ROUNDS:-1}
TIMEOUT_test_crash_during_splitting=$((300 + CRASH_ROUNDS * 400))
# shellcheck source=../lib/pair.sh
. "$RCOPY_ROOT/scripts/vmtests/lib/pair.sh"
# shellcheck source=../lib/safety.sh
. "$RCOPY_ROOT/scripts/vmtests/lib/safety.sh"
# shellcheck source=../lib/takeover.sh
. "$RCOPY_ROOT/scripts/vmtests/lib/takeover.sh"

TRACKDIFF_PY=$RCOPY_ROOT/scripts/vmtests/lib/trackdiff.py
# the image at the split, on the host share (it outlives a crash of the VM)
VM_SHARE_X=/run/vm/share/x.img
# the image at the split, on the host share (it outlives a crash of the VM)
# 64 MiB in tracks of 64 KiB (TRACK, lib/takeover.sh)
TRACKS=1024
SD=/dev/mapper/sd
# fio's json: "error=N write_max_ms=X" (the writer's worst write latency)
FIOJSON_PY='import json, sys
t = sys.stdin.read()
j = json.loads(t[t.index("{"):])["jobs"][0]
w = j["write"].get("lat_ns") or j["write"]["clat_ns"]
print("error=%d write_ios=%d write_max_ms=%.1f" % (j["error"], j["write"]["total_ios"], w["max"] / 1e6))'

setup_file() {
	vm_start sp --disk 64 --disk 8 --disk 72
	vm_run sp "insmod $RCOPY_MODULE"
	vm_run sp 'head -c 64M /dev/urandom | dd of=/dev/vda bs=1M oflag=direct status=none'
}

# in sp: load the module if it is not loaded (after a crash, say)
load() { vm_run sp "grep -q '^dm_rcopy ' /proc/modules || insmod $RCOPY_MODULE"; }
# key KEY: one key of r0's status line
key() { field sp "$1"; }
# up_r0 SPLIT_DEV: create the standalone r0 over vda (vdb metadata) with rcopyctl
up_r0() { ctl sp create r0 --data /dev/vda --meta /dev/vdb --split-dev "$1"; }
# down_r0: remove r0 if it exists
down_r0() { vm_run sp 'if dmsetup info r0 >/dev/null 2>&1; then dmsetup remove r0; fi'; }
# split_delay MS: sd is vdc with MS ms added to every write (made, or reloaded in place)
split_delay() {
	vm_run sp "t=\"0 \$(blockdev --getsz /dev/vdc) delay /dev/vdc 0 0 /dev/vdc 0 $1\"
if dmsetup info sd >/dev/null 2>&1; then
	dmsetup reload sd --table \"\$t\" && dmsetup suspend sd && dmsetup resume sd
else
	dmsetup create sd --table \"\$t\"
fi"
}
# range_sum DEV FIRST_MiB COUNT_MiB: sha256 of that range of DEV (a device is read
# with O_DIRECT: never a stale page cache)
range_sum() {
	local direct=""
	[[ $1 != /dev/* ]] || direct="iflag=direct"
	vm_run sp "dd if=$1 bs=1M skip=$2 count=$3 $direct status=none | sha256sum | cut -d' ' -f1"
}
# copy_sum: sha256 of the split copy's image (the first 64 MiB of the split disk)
copy_sum() { range_sum /dev/vdc 0 64; }
# dev_sum: sha256 of the device
dev_sum() { range_sum /dev/mapper/r0 0 64; }
# write_tracks_at T...: one 4 KiB random write into each track T of r0 (its third block)
write_tracks_at() {
	vm_run sp "for t in $*; do dd if=/dev/urandom of=/dev/mapper/r0 bs=4k count=1 seek=\$((t * 16 + 2)) oflag=direct conv=notrunc status=none || exit 1; done"
}
# fill_r0: random data over the whole of r0
fill_r0() { vm_run sp 'head -c 64M /dev/urandom | dd of=/dev/mapper/r0 bs=1M oflag=direct status=none'; }
# gated_writer FIO_OPTIONS...: fio random 4 KiB writes on r0, started in the
# background but held before its first write until /tmp/go exists (so that nothing is
# written between the image taken as X and the split); returns once it waits there;
# prints the job id
gated_writer() {
	local job
	vm_run sp 'rm -f /tmp/go /tmp/ready' || return 1
	# (in /tmp: fio writes the prerun's output to w.prerun.txt in its directory)
	job=$(vm_spawn sp --timeout 600 -- bash -c 'cd /tmp && exec fio "$@"' fio --name=w \
		--filename=/dev/mapper/r0 --rw=randwrite \
		--bs=4k --ioengine=libaio --direct=1 --randrepeat=0 \
		"--exec_prerun=sh -c 'touch /tmp/ready; while [ ! -e /tmp/go ]; do sleep 0.02; done'" "$@") || return 1
	# (a command substitution does not inherit set -e: return the failure)
	if ! vm_wait_until sp 60 'test -e /tmp/ready' >&2; then
		fail "the writer did not start: $(vm_job_output sp "$job")"
		return 1
	fi
	echo "$job"
}

# bad_table TABLE_ARGS EXPECTED_REASON: dmsetup create must fail with the kernel's
# reason, leaving no device behind
bad_table() {
	local out
	out=$(vm_run sp "dmesg -C; dmsetup create bad --table \"0 \$(blockdev --getsz /dev/vda) rcopy $1\" 2>&1; echo rc=\$?; dmesg")
	assert_not_contains "$out" "rc=0" "create with '$1' must fail"
	assert_contains "$out" "rcopy: $2" "kernel reason for '$1'"
	assert_not_contains "$(vm_run sp 'dmsetup ls')" "bad" "no device left behind by '$1'"
}

test_split_dev_refusals() {
	load
	# 64 MiB: the image fits, its headers and bitmaps (20 KiB more) do not
	vm_run sp 'dmsetup create small --table "0 131072 linear /dev/vdc 0"'
	bad_table "/dev/vda /dev/vdb 2 split_dev /dev/mapper/small" "Split copy device too small"
	assert_fail --rc 1 --contains "split copy device /dev/mapper/small too small: 67108864 bytes, needs 67129344 bytes" \
		ctl sp create r0 --data /dev/vda --meta /dev/vdb --split-dev /dev/mapper/small
	vm_run sp 'dmsetup remove small'
	# not on a secondary (its writes come from the primary)
	bad_table "/dev/vda /dev/vdb 8 role secondary local 10.77.0.2:7788 secret k split_dev /dev/vdc" \
		"split_dev is for a standalone device or a primary, not a secondary"
	assert_fail --rc 2 --contains "--split-dev \"/dev/vdc\": split_dev is for a standalone device or a primary, not a secondary" \
		ctl sp create r0 --data /dev/vda --meta /dev/vdb --role secondary --local 10.77.0.2:7788 --secret k --split-dev /dev/vdc
	# nothing was written to the split disk: it is still blank for the next test
	vm_run sp 'cmp -n $((72 << 20)) /dev/vdc /dev/zero'
}

test_split_copy_is_frozen_under_writes() {
	load
	local x job out s fio_out
	split_delay 20
	# a blank split disk: formatted, then every track is copied (forming), then formed
	up_r0 "$SD"
	echo "after create: $(st sp)"
	wait_key sp split formed 300
	assert_eq "$(dev_sum)" "$(copy_sum)" "the copy's image once formed vs the device"
	# formed: a write only marks its track (CREATE); nothing is copied before a split
	local p0
	p0=$(key split_copied)
	fill_r0
	s=$(st sp)
	echo "after writing every track while formed: $s"
	assert_eq formed "$(status_key "$s" split)" "state after the writes"
	assert_eq "$TRACKS" "$(status_key "$s" split_create)" "tracks marked CREATE after writing every track"
	assert_eq "$p0" "$(status_key "$s" split_copied)" "tracks copied while formed"
	# X: the image at the split, kept in the VM for the next tests
	x=$(dev_sum)
	assert_eq "$x" "$(vm_run sp "dd if=/dev/mapper/r0 of=/tmp/x.img bs=1M iflag=direct status=none && sha256sum </tmp/x.img | cut -d' ' -f1")" "the saved image X"
	# ~20 s of random writes over 0-32 MiB (every 4 KiB block once, then verified),
	# released right after the split request: they overwrite tracks the split still
	# has to copy
	job=$(gated_writer --offset=0 --size=32M --iodepth=16 --rate_iops=400 --verify=crc32c \
		--verify_fatal=1 --output-format=json --output=/tmp/fio.json)
	out=$(vm_run sp "$RCOPYCTL split r0 && touch /tmp/go")
	echo "$out"
	assert_contains "$out" "r0: split requested"
	wait_key sp split split 300
	echo "split: $(st sp)"
	if vm_job_done sp "$job"; then echo "note: the writer ended before the split did"; else echo "the writer still runs"; fi
	assert_eq "$x" "$(copy_sum)" "the copy's image right after the split (writer running) vs X"
	assert_contains "$(ctl sp status r0)" "split:split split_create:0"
	vm_wait sp "$job" 300 >/dev/null
	fio_out=$(vm_run sp 'cat /tmp/fio.json' | python3 -c "$FIOJSON_PY")
	echo "writer: $fio_out (its worst write latency, during the split; not asserted)"
	assert_contains "$fio_out" "error=0 "
	assert_eq "$x" "$(copy_sum)" "the copy's image after the writer ended vs X"
	s=$(st sp)
	echo "after the writer: $s"
	ctl sp status r0 --verbose
	echo "split_cow=$(status_key "$s" split_cow) split_changed=$(status_key "$s" split_changed) split_copied=$(status_key "$s" split_copied)"
	(($(status_key "$s" split_cow) > 0)) || fail "no track was copied before an overwrite (split_cow=0)"
	(($(status_key "$s" split_changed) > 0)) || fail "no track written since the split (split_changed=0)"
	(($(status_key "$s" split_changed) <= TRACKS / 2)) || fail "more tracks changed than the writer touched: $s"
	assert_eq 0 "$(status_key "$s" split_create)" "CREATE once split"
	# the writes since went to the device only
	assert_ne "$x" "$(dev_sum)" "the device after the writer"
	split_delay 0
}

test_refresh_copies_one_extent() {
	load
	local s c0 p0 out exp
	s=$(st sp)
	assert_eq split "$(status_key "$s" split)" "state before the refresh"
	c0=$(status_key "$s" split_changed)
	p0=$(status_key "$s" split_copied)
	# A = 40-41 MiB (tracks 640-655): 8 tracks written; B = 48-49 MiB (768-783): 3.
	# The writer kept to 0-32 MiB: neither was written since the split.
	write_tracks_at 640 642 644 646 648 650 652 654 770 775 781
	assert_eq $((c0 + 11)) "$(key split_changed)" "tracks written since the split, 11 more"
	# a split is refused while split, by the kernel and by rcopyctl
	assert_fail vm_run sp 'dmsetup message r0 0 split'
	assert_fail --rc 1 --contains "cannot split r0: its split copy is split" ctl sp split r0
	out=$(ctl sp refresh r0 --offset 40M --length 1M --wait --timeout 120)
	echo "$out"
	assert_contains "$out" ": 8 tracks copied;"
	s=$(st sp)
	echo "after the refresh: $s"
	assert_eq split "$(status_key "$s" split)" "state after the refresh"
	assert_eq $((p0 + 8)) "$(status_key "$s" split_copied)" "tracks copied by the refresh of A"
	assert_eq $((c0 + 3)) "$(status_key "$s" split_changed)" "tracks written since the split, after the refresh"
	assert_eq "$(range_sum /dev/mapper/r0 40 1)" "$(range_sum /dev/vdc 40 1)" "range A: the copy vs the device"
	assert_eq "$(range_sum /tmp/x.img 48 1)" "$(range_sum /dev/vdc 48 1)" "range B: the copy vs X"
	assert_ne "$(range_sum /dev/mapper/r0 48 1)" "$(range_sum /dev/vdc 48 1)" "range B: the copy vs the device"
	# the whole copy: X with range A as the device has it
	exp=$(vm_run sp "cp /tmp/x.img /tmp/exp.img && dd if=/dev/mapper/r0 of=/tmp/exp.img bs=1M skip=40 seek=40 count=1 iflag=direct conv=notrunc status=none && sha256sum </tmp/exp.img | cut -d' ' -f1; rm -f /tmp/exp.img")
	assert_eq "$exp" "$(copy_sum)" "the copy's image: X with range A refreshed"
}

test_rejoin_copies_only_changed_tracks() {
	load
	local s n p0 out
	s=$(st sp)
	assert_eq split "$(status_key "$s" split)" "state before the rejoin"
	n=$(status_key "$s" split_changed)
	p0=$(status_key "$s" split_copied)
	((n > 1)) || fail "nothing to rejoin: $s"
	out=$(ctl sp rejoin r0 --wait --timeout 300)
	echo "$out"
	assert_contains "$out" "the copy is formed again ($n tracks copied)"
	s=$(st sp)
	echo "after the rejoin: $s"
	assert_eq formed "$(status_key "$s" split)" "state after the rejoin"
	assert_eq $((p0 + n)) "$(status_key "$s" split_copied)" "tracks copied by the rejoin: the $n written since the split"
	assert_eq 0 "$(status_key "$s" split_changed)" "split_changed after the rejoin"
	assert_eq 0 "$(status_key "$s" split_create)" "split_create after the rejoin"
	assert_eq "$(dev_sum)" "$(copy_sum)" "the copy's image after the rejoin vs the device"
	assert_fail vm_run sp 'dmsetup message r0 0 rejoin'
	assert_fail --rc 1 --contains "a rejoin needs the state split" ctl sp rejoin r0
}

test_split_state_survives_reload() {
	load
	local x s out
	assert_eq formed "$(key split)" "state before the split"
	x=$(dev_sum)
	out=$(ctl sp split r0 --wait --timeout 120)
	echo "$out"
	assert_contains "$out" "r0: split in"
	assert_eq "$x" "$(copy_sum)" "the copy's image after the split vs the device at the split"
	write_tracks sp 5 7501
	assert_eq 5 "$(key split_changed)" "tracks written since the split"
	# a table reload (the same table swapped in: suspend, resume)
	vm_run sp 'dmsetup table r0 >/tmp/t && dmsetup reload r0 --table "$(cat /tmp/t)" && dmsetup resume r0'
	s=$(st sp)
	echo "after a reload: $s"
	assert_eq "split 5 0" "$(status_key "$s" split) $(status_key "$s" split_changed) $(status_key "$s" split_create)" "state, split_changed, split_create after a reload"
	assert_eq "$x" "$(copy_sum)" "the copy's image after a reload"
	# removed and created again: the state and bitmaps come from the split disk
	vm_run sp 'dmsetup remove r0'
	# (not as the copy of a device of another track size)
	assert_fail --rc 1 --contains "holds a split copy of another device" \
		ctl sp create r0 --data /dev/vda --meta /dev/vdb --track-size 128K --split-dev "$SD"
	bad_table "/dev/vda /dev/vdb 4 track_size 131072 split_dev $SD" \
		"Split copy device too small, or it holds a split copy of another size or track size"
	up_r0 "$SD"
	s=$(st sp)
	echo "created again: $s"
	assert_eq "split 5 0 0" "$(status_key "$s" split) $(status_key "$s" split_changed) $(status_key "$s" split_create) $(status_key "$s" split_copied)" \
		"state, split_changed, split_create, split_copied after remove and create"
	assert_eq "$x" "$(copy_sum)" "the copy's image after remove and create"
	assert_contains "$(vm_run sp 'dmsetup table r0')" " split_dev "
}

# The VM is frozen and killed while the split copies (the split disk 10 ms slower per
# write and flush, a writer overwriting tracks meanwhile), at a random moment when 20% to 90% of
# the tracks are left to copy; after the restart the device is created again (on vdc
# itself): the split ends, and the copy is the image at the split request. Every
# track where the device now differs from that image is counted in split_changed
# (marked before its write went down).
test_crash_during_splitting() {
	load
	local round x thr job share s d rc
	share=$(vm_share_dir sp)
	for ((round = 1; round <= CRASH_ROUNDS; round++)); do
		# formed (from any state: alone, as in make torture, the split disk is blank)
		down_r0
		split_delay 0
		up_r0 "$SD"
		if [[ $(key split) == split ]]; then ctl sp rejoin r0 --wait --timeout 300; fi
		wait_key sp split formed 300
		split_delay 10
		fill_r0
		assert_eq "$TRACKS" "$(key split_create)" "round $round: tracks to copy at the split"
		x=$(dev_sum)
		vm_run sp "dd if=/dev/mapper/r0 of=$VM_SHARE_X bs=1M iflag=direct status=none"
		assert_eq "$x" "$(sha256sum <"$share/x.img" | cut -d' ' -f1)" "round $round: X saved on the host"
		rm -f "$share/at_kill"
		job=$(gated_writer --iodepth=4 --rate_iops=200 --time_based --runtime=300)
		thr=$((TRACKS * (20 + RANDOM % 71) / 100))
		vm_run sp "$RCOPYCTL split r0 && touch /tmp/go"
		# the moment: splitting, with at most thr tracks left to copy (read every 20 ms)
		rc=0
		vm_run sp --timeout 270 "end=\$((SECONDS + 240))
while [ \$SECONDS -lt \$end ]; do
	s=\$(dmsetup status r0)
	case \$s in
	*' split=splitting '*) c=\${s##* split_create=}; [ \${c%% *} -gt $thr ] || { echo \"\$s\" >/run/vm/share/at_kill; exit 0; } ;;
	*' split=split '*) echo \"\$s\"; exit 2 ;;
	esac
	sleep 0.02
done
exit 3" || rc=$?
		if ((rc == 0)); then
			vm_qmp sp stop >/dev/null
			vm_kill sp
		fi
		((rc != 2)) || fail "round $round: the split ended before the crash moment ($thr tracks left)"
		((rc == 0)) || fail "round $round: never saw splitting with at most $thr tracks left: $(st sp)"
		echo "round $round: killed while splitting: $(cat "$share/at_kill")"
		vm_restart sp
		load
		up_r0 /dev/vdc
		echo "round $round: created again after the crash: $(st sp)"
		wait_key sp split split 300
		s=$(st sp)
		echo "round $round: $s"
		assert_eq "$x" "$(copy_sum)" "round $round: the copy's image after the crash vs X"
		d=$(vm_run sp "python3 $TRACKDIFF_PY /dev/vda $VM_SHARE_X $((64 << 20))")
		echo "round $round: tracks where the device differs from X: ${d#differ=}; split_changed=$(status_key "$s" split_changed)"
		((${d#differ=} <= $(status_key "$s" split_changed))) ||
			fail "round $round: ${d#differ=} tracks differ from the image at the split, only $(status_key "$s" split_changed) marked"
	done
	rm -f "$share/x.img" "$share/at_kill"
}

# A primary with a split copy: a write that must wait for the split thread (its
# track's bit, or a copy of the old track) is handed back to the replication engine
# afterwards, so the pair stays identical while the copy is frozen.
test_split_on_a_primary_keeps_the_pair_identical() {
	vm_destroy sp
	pair_boot 64 "--disk 72"
	tk_create b secondary
	tk_create a primary split_dev /dev/vdc
	wait_state a duplex 300
	wait_key a split formed 300
	vm_run a 'head -c 32M /dev/urandom | dd of=/dev/mapper/r0 bs=1M oflag=direct status=none'
	local x job pa pb s
	x=$(vm_run a "dd if=/dev/mapper/r0 bs=1M count=64 iflag=direct status=none | sha256sum | cut -d' ' -f1")
	# the writer starts after the request: nothing it writes is in the image
	ctl a split r0
	job=$(vm_spawn a --timeout 300 -- fio --name=w --filename=/dev/mapper/r0 --rw=randwrite --bs=64k \
		--size=64M --ioengine=libaio --iodepth=8 --direct=1 --time_based --runtime=15 --randrepeat=0)
	wait_key a split split 300
	vm_wait a "$job" 300 >/dev/null
	s=$(st a)
	echo "primary: $s"
	assert_eq "$x" "$(vm_run a "dd if=/dev/vdc bs=1M count=64 iflag=direct status=none | sha256sum | cut -d' ' -f1")" \
		"the primary's split copy vs its image at the split"
	(($(status_key "$s" split_changed) > 0)) || fail "no track written since the split: $s"
	drained_on a 300
	pa=$(vm_run a "dd if=/dev/mapper/r0 bs=1M count=64 iflag=direct status=none | sha256sum | cut -d' ' -f1")
	pb=$(vm_run b "dd if=/dev/vda bs=1M count=64 iflag=direct status=none | sha256sum | cut -d' ' -f1")
	assert_eq "$pa" "$pb" "primary vs secondary after writes through the split copy"
	assert_ne "$x" "$pa" "the device after the writer"
}
