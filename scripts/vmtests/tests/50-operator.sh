# shellcheck shell=bash
# Operator experience with rcopyctl: a pair from one resource file (up, down, adjust),
# status --check exit codes in healthy, degraded and inconsistent states, status
# --json and metrics parsed, disconnect/connect, the DM UUID; create-md refusing an
# ext4 filesystem, --dry-run hiding the secret, usage errors exiting 2.

TEST_TIMEOUT=900
# shellcheck source=../lib/pair.sh
. "$RCOPY_ROOT/scripts/vmtests/lib/pair.sh"

RES=/tmp/rcopy.d

# write_res VM RESYNC_RATE: the same resource file on every host (only the rate varies)
write_res() {
	vm_run "$1" - <<EOF
mkdir -p $RES
echo $PAIR_SECRET >$RES/r0.key
chmod 600 $RES/r0.key
cat >$RES/r0.toml <<'TOML'
# r0: a replicates to b
pair_id = "r0"
mode = "sync"
secret_file = "$RES/r0.key"
resync_rate = "$2"

[host.a]
role = "primary"
data = "/dev/vda"
meta = "/dev/vdb"
address = "10.77.0.1:$PAIR_PORT"

[host.b]
role = "secondary"
data = "/dev/vda"
meta = "/dev/vdb"
address = "10.77.0.2:$PAIR_PORT"
TOML
EOF
}

# ctl VM ARGS...: rcopyctl in VM with the resource directory and VM's host section
ctl() {
	local vm=$1
	shift
	vm_run "$vm" "$RCOPYCTL $* --config-dir $RES --host $vm"
}

# check_rc VM: the exit code of `rcopyctl status r0 --check` in VM (its output must be empty)
check_rc() {
	local rc=0 out
	out=$(vm_run "$1" "$RCOPYCTL status r0 --check") || rc=$?
	[[ -z $out ]] || { echo "status --check printed: $out"; return 0; }
	echo "$rc"
}

# json_field VM KEY: KEY of the first object of `status r0 --json`, as Python prints it
json_field() {
	local out
	out=$(vm_run "$1" "$RCOPYCTL status r0 --json")
	python3 -c 'import json,sys; d=json.loads(sys.argv[1]); assert isinstance(d, list) and len(d) == 1, d; assert d[0]["schema_version"] == 2, d; print(d[0][sys.argv[2]])' "$out" "$2"
}

# check_metrics TEXT: a strict parse of the Prometheus text format; prints "name{labels} value" lines
check_metrics() {
	python3 - "$1" <<'PY'
import re, sys
typed, helped, seen = {}, set(), set()
name = r'[a-zA-Z_:][a-zA-Z0-9_:]*'
sample = re.compile(r'^(' + name + r')(\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*",?)*\})? (-?[0-9.eE+]+|NaN|[+-]Inf)$')
for line in sys.argv[1].splitlines():
    if line.startswith('# HELP '):
        n = line.split()[2]; assert n not in helped, line; helped.add(n); continue
    if line.startswith('# TYPE '):
        _, _, n, t = line.split(); assert t in ('gauge', 'counter'), line; typed[n] = t; continue
    m = sample.match(line)
    assert m, 'bad line: %r' % line
    assert m.group(1) in typed and m.group(1) in helped, 'undeclared: %r' % line
    assert line.rsplit(' ', 1)[0] not in seen, 'repeated: %r' % line
    seen.add(line.rsplit(' ', 1)[0])
    float(m.group(3))
    print(line)
assert seen, 'no samples'
PY
}

test_pair_from_a_resource_file() {
	pair_boot 32
	write_res a 512K
	write_res b 512K
	local out rc
	# up on both hosts from the one file: secondary first, then primary
	assert_eq "r0: up" "$(ctl b up r0)"
	assert_eq "r0: up" "$(ctl a up r0)"
	assert_eq "RCOPY-r0" "$(vm_run a 'dmsetup info -c --noheadings -o uuid r0')" "DM UUID"
	assert_contains "$(vm_run a 'dmsetup table r0')" "role primary peer 10.77.0.2:$PAIR_PORT secret"
	assert_contains "$(vm_run a 'dmsetup table r0')" "resync_rate 524288"
	assert_contains "$(vm_run b 'dmsetup table r0')" "role secondary local 10.77.0.2:$PAIR_PORT secret"
	# the kernel shows the secret as '-' unless asked for (a message), and refuses
	# a copied table line that still says '-'
	assert_contains "$(vm_run a 'dmsetup table r0')" "secret - "
	assert_eq "$PAIR_SECRET" "$(vm_run a 'dmsetup message r0 0 secret')" "secret on request"
	assert_fail vm_run a 'dmsetup create r0x --table "0 $(blockdev --getsz /dev/vda) rcopy $(dmsetup table r0 | cut -d" " -f4-)"'
	assert_contains "$(vm_run a 'dmesg | tail -n 20')" "hides the secret"
	assert_not_contains "$(vm_run a 'dmsetup ls')" "r0x"
	# up again, adjust with nothing changed: nothing is touched
	assert_eq "r0: already up" "$(ctl a up r0)"
	assert_eq "r0: unchanged" "$(ctl b adjust r0)"
	assert_eq "r0: unchanged" "$(ctl a adjust --all)"

	# the initial copy at 512 KiB/s (a minute): the primary is degraded, the secondary inconsistent
	wait_state a copying 60
	assert_eq 1 "$(check_rc a)" "status --check on the copying primary"
	assert_eq 2 "$(check_rc b)" "status --check on the secondary during the copy"
	assert_eq False "$(json_field b consistent)"
	assert_eq True "$(json_field a consistent)"
	out=$(vm_run b "$RCOPYCTL status r0")
	assert_contains "$out" "r0 role:secondary mode:sync state:copying conn:connected"
	assert_contains "$out" "consistent:no"
	out=$(vm_run a "$RCOPYCTL status")
	assert_contains "$out" "state:copying"
	assert_contains "$out" "progress:"
	echo "$out"
	out=$(vm_run a "$RCOPYCTL status r0 --verbose")
	assert_contains "$out" "  consistent: yes"
	json_field a sync_rate >/dev/null
	json_field a eta_s >/dev/null

	# adjust after a resync_rate change: a table reload of the primary only
	write_res a 0
	write_res b 0
	assert_contains "$(ctl a adjust r0 --dry-run)" "r0: would reload:"
	assert_contains "$(vm_run a 'dmsetup table r0')" "resync_rate 524288"
	# The reload keeps the connection and the copy in progress: no new handshake on
	# either side, the byte counters go on (a new engine would start them at 0), and
	# the kernel says it changed the option in place.
	local sent_before conn_a conn_b
	sent_before=$(field a sent_bytes)
	conn_a=$(vm_run a "dmesg | grep -c 'r0: connected to'")
	conn_b=$(vm_run b "dmesg | grep -c 'r0: primary .* connected'")
	out=$(ctl a adjust r0)
	assert_eq "r0: reloaded (resync_rate 524288 -> (default))" "$out"
	assert_not_contains "$(vm_run a 'dmsetup table r0')" "resync_rate"
	# the secondary's table carries the option too; its reload is the same
	assert_eq "r0: reloaded (resync_rate 524288 -> (default))" "$(ctl b adjust r0)"
	assert_not_contains "$(vm_run b 'dmsetup table r0')" "resync_rate"
	assert_eq "r0: unchanged" "$(ctl b adjust r0)"
	assert_contains "$(vm_run a 'dmesg')" "r0: options changed in place: resync_rate 524288 -> 0"
	assert_contains "$(vm_run b 'dmesg')" "r0: options changed in place: resync_rate 524288 -> 0"
	local sent_after
	sent_after=$(field a sent_bytes)
	echo "sent_bytes before the reload $sent_before, after $sent_after; status $(vm_run a 'dmsetup status r0')"
	[ "$sent_after" -ge "$sent_before" ] || fail "sent_bytes went back from $sent_before to $sent_after: the reload restarted the engine"
	wait_state a duplex 200
	wait_state b duplex 60
	assert_eq "$conn_a" "$(vm_run a "dmesg | grep -c 'r0: connected to'")" "handshakes on a after the adjust"
	assert_eq "$conn_b" "$(vm_run b "dmesg | grep -c 'r0: primary .* connected'")" "handshakes on b after the adjust"
	assert_pair_identical

	# healthy: exit 0 on both; JSON and metrics parse
	assert_eq 0 "$(check_rc a)"
	assert_eq 0 "$(check_rc b)"
	assert_eq True "$(json_field b consistent)"
	assert_eq duplex "$(json_field a state)"
	out=$(check_metrics "$(vm_run a "$RCOPYCTL metrics")")
	assert_contains "$out" 'rcopy_state{device="r0",state="duplex"} 1'
	assert_contains "$out" 'rcopy_connected{device="r0"} 1'
	assert_contains "$out" 'rcopy_consistent{device="r0"} 1'
	assert_contains "$out" 'rcopy_health{device="r0"} 0'
	assert_contains "$out" 'rcopy_sent_bytes_total{device="r0"} '
	assert_contains "$out" 'rcopy_acked_bytes_total{device="r0"} '

	# events: the current state, then a link cut and the reconnect as they happen
	out=$(vm_run a "$RCOPYCTL events --now --json")
	assert_eq "exists r0 duplex connected" "$(python3 -c 'import json,sys; e=json.loads(sys.argv[1]); assert e["schema_version"] == 1; print(e["type"], e["name"], e["status"]["state"], e["status"]["conn"])' "$out")"
	local job
	job=$(vm_spawn a --timeout 300 "$RCOPYCTL events r0")
	sleep 1
	vm_link a down
	wait_state a suspended 60
	vm_link a up
	wait_state a duplex 120
	sleep 1
	vm_job_kill a "$job"
	out=$(vm_wait a "$job" 30) || true
	echo "$out"
	assert_contains "$out" " exists r0 role:primary mode:sync state:duplex conn:connected peer:10.77.0.2:$PAIR_PORT consistent:yes"
	assert_contains "$out" "state:duplex->suspended"
	assert_contains "$out" "conn:connected->connecting"
	assert_contains "$out" "conn:connecting->connected"
	assert_contains "$out" "->duplex"

	# disconnect (the old name suspend is an alias): degraded on both sides, then connect
	vm_run a "$RCOPYCTL disconnect r0"
	wait_state a suspended 30
	wait_state b suspended 60
	assert_eq 1 "$(check_rc a)" "status --check on the disconnected primary"
	assert_eq 1 "$(check_rc b)" "status --check on the disconnected (consistent) secondary"
	out=$(check_metrics "$(vm_run a "$RCOPYCTL metrics r0")")
	assert_contains "$out" 'rcopy_connected{device="r0"} 0'
	assert_contains "$out" 'rcopy_health{device="r0"} 1'
	vm_run a "$RCOPYCTL connect r0"
	wait_state a duplex 120
	assert_eq 0 "$(check_rc a)"
	vm_run a "$RCOPYCTL suspend r0"
	wait_state a suspended 30
	vm_run a "$RCOPYCTL resume r0"
	wait_state a duplex 120

	# down on both; a second down is a no-op
	assert_eq "r0: down" "$(ctl a down r0)"
	assert_eq "r0: down" "$(ctl b down --all)"
	assert_eq "r0: already down" "$(ctl a down r0)"
	assert_not_contains "$(vm_run a 'dmsetup ls')" "r0"
	assert_not_contains "$(vm_run b 'dmsetup ls')" "r0"
	rc=0
	vm_run a "$RCOPYCTL status r0 --check" || rc=$?
	assert_eq 4 "$rc" "status --check on a device that is gone"
	assert_eq "[]" "$(vm_run a "$RCOPYCTL status --json")"
	# a bad resource file: exit 2, file:line:column, nothing created
	vm_run a "sed -i 's/role = \"primary\"/role = \"primry\"/' $RES/r0.toml"
	rc=0
	out=$(ctl a up r0) || rc=$?
	assert_eq 2 "$rc" "up with a bad resource file"
	assert_contains "$out" "$RES/r0.toml:8:8: role \"primry\": must be primary or secondary; did you mean \"primary\"?"
	assert_not_contains "$(vm_run a 'dmsetup ls')" "r0"
}

test_safety_rails_and_usage_errors() {
	vm_start s --disk 64 --disk 8
	vm_run s "insmod $RCOPY_MODULE"
	local out
	# create-md refuses an ext4 filesystem, which survives; --force overwrites it
	vm_run s 'mkfs.ext4 -q -F -L keepme /dev/vdb'
	assert_fail --rc 1 --contains "/dev/vdb holds an ext4 filesystem (label \"keepme\"): refusing to overwrite it (use --force to overwrite)" \
		vm_run s "$RCOPYCTL create-md /dev/vdb --data /dev/vda"
	assert_contains "$(vm_run s 'blkid /dev/vdb')" 'TYPE="ext4"'
	vm_run s "$RCOPYCTL create-md /dev/vdb --data /dev/vda --force"
	assert_contains "$(vm_run s "$RCOPYCTL inspect-md /dev/vdb")" "pair_id default"
	# and swap
	vm_run s 'mkswap /dev/vdb >/dev/null'
	assert_fail --rc 1 --contains "holds swap space" vm_run s "$RCOPYCTL create-md /dev/vdb --data /dev/vda"
	vm_run s 'wipefs -a /dev/vdb >/dev/null'

	# --dry-run shows the secret as '-' unless asked for
	local pair="$RCOPYCTL pair r0 --data /dev/vda --meta /dev/vdb --role primary --peer 10.77.0.9:7788 --secret t0p-s3cr3t"
	out=$(vm_run s "$pair --dry-run")
	assert_contains "$out" "role primary peer 10.77.0.9:7788 secret -"
	assert_not_contains "$out" "t0p-s3cr3t"
	assert_contains "$(vm_run s "$pair --dry-run --show-secret")" "secret t0p-s3cr3t"
	assert_not_contains "$(vm_run s 'dmsetup ls')" "r0"
	# a host name is resolved to its IPv4 address; IPv6 in brackets is taken, a zone
	# index is a usage error
	assert_contains "$(vm_run s "${pair/10.77.0.9/localhost} --dry-run")" "role primary peer 127.0.0.1:7788 secret -"
	assert_contains "$(vm_run s "${pair/10.77.0.9:7788/[::1]:7788} --dry-run")" "role primary peer [::1]:7788 secret -"
	assert_fail --rc 2 vm_run s "${pair/10.77.0.9:7788/[fe80::1%eth0]:7788} --dry-run"

	# usage errors exit 2 and quote what was typed; a missing device exits 1
	assert_fail --rc 2 --contains '--role "primry": Invalid role: must be primary or secondary; did you mean "primary"?' \
		vm_run s "$RCOPYCTL pair r0 --data /dev/vda --meta /dev/vdb --role primry --peer 10.77.0.9:7788 --secret k"
	assert_fail --rc 2 --contains '--timeout-ms "5s"' vm_run s "$pair --timeout-ms 5s"
	assert_fail --rc 2 --contains '--track-size "3000"' vm_run s "$pair --track-size 3000"
	assert_fail --rc 2 --contains "'1.5M'" vm_run s "$pair --track-size 1.5M"
	assert_fail --rc 2 --contains '--cache-size "100G"' vm_run s "$pair --cache-size 100G"
	assert_fail --rc 2 --contains "--json" vm_run s "$RCOPYCTL status --jsno"
	assert_fail --rc 1 --contains "r9 does not exist" vm_run s "$RCOPYCTL wait r9 --state duplex --timeout 1"
	# wait's timeout is exit 3; status --json and --check of a standalone device
	vm_run s "$RCOPYCTL create r1 --data /dev/vda --meta /dev/vdb"
	assert_eq "RCOPY-r1" "$(vm_run s 'dmsetup info -c --noheadings -o uuid r1')"
	assert_fail --rc 3 --contains "r1: still simplex after 1 s" vm_run s "$RCOPYCTL wait r1 --state duplex --timeout 1"
	assert_eq "r1 standalone state:simplex consistent:yes" "$(vm_run s "$RCOPYCTL status")"
	assert_eq 0 "$(check_rc_dev s r1)"
	vm_run s "$RCOPYCTL remove r1"
}

# check_rc_dev VM NAME: exit code of `rcopyctl status NAME --check`
check_rc_dev() {
	local rc=0
	vm_run "$1" "$RCOPYCTL status $2 --check" >/dev/null || rc=$?
	echo "$rc"
}

# md_facts VM: inspect-md --json of /dev/vdb in VM as "pair flags_raw sb_dirty_tracks gen_current"
md_facts() {
	local out
	out=$(vm_run "$1" "$RCOPYCTL inspect-md /dev/vdb --json")
	python3 -c 'import json,sys; d=json.loads(sys.argv[1]); print(d["pair"], d["flags_raw"], d["sb_dirty_tracks"], d["gen_current"])' "$out"
}

test_metadata_names_its_pair() {
	vm_start m --disk 64 --disk 8
	vm_run m "insmod $RCOPY_MODULE"
	local out before after
	# a primary whose peer never answers: the kernel owns the metadata, every write
	# marks its track, and the superblock is rewritten at start and at the clean stop
	local pair="$RCOPYCTL pair r7 --data /dev/vda --meta /dev/vdb --role primary --peer 127.0.0.1:7799 --secret k --pair-id r7"
	local write='dd if=/dev/urandom of=/dev/mapper/r7 bs=64K count=8 seek=3 oflag=direct status=none'

	# 1. create-md stores the name; the kernel keeps it through its rewrites
	vm_run m "$RCOPYCTL create-md /dev/vdb --data /dev/vda --pair-id r7"
	out=$(vm_run m "$RCOPYCTL inspect-md /dev/vdb")
	assert_contains "$out" "  pair:          r7"
	before=$(md_facts m)
	assert_eq "r7 0 0" "$(cut -d' ' -f1-3 <<<"$before")" "fresh metadata: name, no flags, no dirty track"
	vm_run m "$pair"
	vm_run m "$write"
	vm_run m "$RCOPYCTL remove r7"
	after=$(md_facts m)
	echo "superblock before: $before, after: $after"
	read -r name flags dirty _ <<<"$after"
	assert_eq r7 "$name" "the name after the kernel rewrote the superblock"
	assert_eq 16 "$((flags & 16))" "the kernel wrote the clean stop (flags $flags)"
	((dirty >= 8)) || fail "the kernel recorded $dirty dirty tracks, not the 8 written"
	assert_contains "$(vm_run m "$RCOPYCTL inspect-md /dev/vdb")" "  pair:          r7"
	# create-md refuses to overwrite it, naming the pair it belongs to
	assert_fail --rc 1 --contains "/dev/vdb already holds rcopy metadata of pair r7 (" \
		vm_run m "$RCOPYCTL create-md /dev/vdb --data /dev/vda --pair-id r8"
	assert_eq "$after" "$(md_facts m)" "nothing written by the refused create-md"

	# 2. metadata from before names (the name field zeroed, the checksum made again):
	# the kernel rewrites it and invents no name
	vm_run m - <<'EOF'
python3 - /dev/vdb <<'PY'
import os, struct, sys
fd = os.open(sys.argv[1], os.O_RDWR)
b = bytearray(os.pread(fd, 4096, 0))
b[104:168] = bytes(64)
b[52:56] = bytes(4)
crc = 0xFFFFFFFF
for x in b:
    crc ^= x
    for _ in range(8):
        crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
b[52:56] = struct.pack('<I', crc ^ 0xFFFFFFFF)
os.pwrite(fd, bytes(b), 0)
os.fsync(fd)
PY
EOF
	assert_contains "$(vm_run m "$RCOPYCTL inspect-md /dev/vdb")" "  pair:          - (none recorded: the metadata predates pair names)"
	before=$(md_facts m)
	vm_run m "$pair"
	vm_run m "${write/seek=3/seek=40}"
	vm_run m "$RCOPYCTL remove r7"
	after=$(md_facts m)
	echo "superblock before: $before, after: $after"
	read -r name flags dirty _ <<<"$after"
	assert_eq None "$name" "no name invented for metadata that holds none"
	((dirty > $(cut -d' ' -f3 <<<"$before"))) || fail "the kernel did not rewrite the superblock ($before, then $after)"
	assert_fail --rc 1 --contains "/dev/vdb already holds rcopy metadata of pair " \
		vm_run m "$RCOPYCTL create-md /dev/vdb --data /dev/vda --pair-id r7"

	# 3. a blank metadata device: the kernel formats it with the table's pair_id word
	vm_run m 'dd if=/dev/zero of=/dev/vdb bs=1M count=8 oflag=direct status=none'
	vm_run m "${pair//r7/r9}"
	vm_run m "$RCOPYCTL remove r9"
	assert_contains "$(vm_run m "$RCOPYCTL inspect-md /dev/vdb")" "  pair:          r9"
	assert_fail --rc 1 --contains "/dev/vdb already holds rcopy metadata of pair r9 (" \
		vm_run m "$RCOPYCTL create-md /dev/vdb --data /dev/vda"
}
