# shellcheck shell=bash
# Self-test of the VM harness (scripts/vm/lib.sh): networking between two VMs, link
# cuts, block I/O with verification, device-mapper without udev, crash and restart
# keeping disk contents, command timeouts and background jobs.
# Two VMs, a (10.77.0.1) and b (10.77.0.2) on net n0, one 64 MiB disk each, are shared
# by the tests of this file.

TEST_TIMEOUT=300

setup_file() {
	vm_start_many "a --disk 64 --net n0 --ip 10.77.0.1/24" "b --disk 64 --net n0 --ip 10.77.0.2/24"
	echo "boot ms: a=$(vm_boot_ms a) b=$(vm_boot_ms b)"
}

test_exit_code_and_output() {
	local out rc=0
	out=$(vm_run a -- sh -c 'echo to-stdout; echo to-stderr >&2; exit 7') || rc=$?
	assert_eq 7 "$rc" "exit code"
	assert_contains "$out" to-stdout
	assert_contains "$out" to-stderr
	out=$(vm_run a 'echo "$VM_NAME $(hostname) $DM_DISABLE_UDEV"; test -w /tmp && test ! -w /usr')
	assert_eq "a a 1" "$out" "guest environment"
	# one-word scripts run with bash; several words are a quoted command
	out=$(vm_run b -- printf '%s|' 'x y' '$HOME')
	assert_eq 'x y|$HOME|' "$out" "argument quoting"
	out=$(vm_run b - <<-'EOF'
		for i in 1 2 3; do echo -n $i; done
	EOF
	)
	assert_eq 123 "$out" "script from stdin"
}

test_ping() {
	local out
	out=$(vm_run a -- ping -c 3 -W 2 10.77.0.2)
	assert_contains "$out" "3 received"
	out=$(vm_run b -- ping -c 1 -W 2 "$(vm_ip a)")
	assert_contains "$out" "1 received"
	# nobody there: must fail
	assert_fail vm_run a -- ping -c 1 -W 1 10.77.0.99
}

test_tcp_transfer() {
	local job tx rx
	job=$(vm_spawn b --timeout 120 'nc -l 5000 >/tmp/rx')
	tx=$(vm_run a 'head -c 8M /dev/urandom >/tmp/tx && sha256sum </tmp/tx')
	# the listener may not be up yet: retry the connection
	vm_run a --timeout 60 'for i in $(seq 100); do
		if (cat /tmp/tx >/dev/tcp/10.77.0.2/5000) 2>/dev/null; then exit 0; fi
		sleep 0.2
	done; exit 1'
	vm_wait b "$job" 60
	rx=$(vm_run b 'sha256sum </tmp/rx')
	assert_eq "$tx" "$rx" "sha256 of the 8 MiB sent a -> b"
	assert_ne "$(vm_run a 'head -c 8M /dev/zero | sha256sum')" "$rx" "received data is not zeros"
}

test_link_down_up() {
	vm_run a -- ping -c 1 -W 2 10.77.0.2
	vm_link a down
	assert_fail vm_run a -- ping -c 2 -W 1 10.77.0.2
	assert_fail vm_run b -- ping -c 2 -W 1 10.77.0.1
	vm_link a up
	vm_wait_until a 20 'ping -c 1 -W 1 10.77.0.2'
	vm_run b -- ping -c 1 -W 2 10.77.0.1
}

test_fio_verify() {
	local out
	out=$(vm_run a --timeout 240 -- fio --name=verify --filename=/dev/vda --rw=randwrite --bs=4k \
		--size=32M --ioengine=libaio --iodepth=16 --direct=1 --verify=crc32c --do_verify=1 \
		--verify_fatal=1 --randrepeat=0)
	assert_contains "$out" "err= 0"
	# the verification must be able to fail: corrupt a block behind fio's back
	assert_fail vm_run a --timeout 240 - <<-'EOF'
		fio --name=w --filename=/dev/vda --rw=write --bs=64k --size=4M --direct=1 \
		    --verify=crc32c --do_verify=0 >/dev/null || exit 0
		dd if=/dev/urandom of=/dev/vda bs=4k count=1 seek=100 oflag=direct conv=notrunc 2>/dev/null
		fio --name=w --filename=/dev/vda --rw=write --bs=64k --size=4M --direct=1 \
		    --verify=crc32c --verify_only=1 --verify_fatal=1
	EOF
}

test_fio_iops() {
	local out iops
	out=$(vm_run b --timeout 120 -- fio --name=iops --filename=/dev/vda --rw=randwrite --bs=4k \
		--size=64M --ioengine=libaio --iodepth=32 --direct=1 --time_based --runtime=10 \
		--output-format=terse --terse-version=3)
	# terse v3: field 49 = write IOPS
	iops=$(cut -d';' -f49 <<<"$out")
	echo "fio 4k randwrite QD32 in VM b: $iops IOPS"
	[[ $iops =~ ^[0-9]+$ ]] && ((iops > 100)) || assert_eq ">100 IOPS" "$iops" "fio randwrite IOPS"
}

test_dmsetup_linear() {
	local sz out h_dev h_dm h_off
	vm_run b 'dd if=/dev/urandom of=/dev/vda bs=1M count=64 oflag=direct 2>/dev/null'
	sz=$(vm_run b -- blockdev --getsz /dev/vda)
	assert_eq 131072 "$sz" "sectors of /dev/vda"
	vm_run b -- dmsetup create lin --table "0 $sz linear /dev/vda 0"
	vm_run b -- dmsetup create lin8 --table "0 $((sz - 8)) linear /dev/vda 8"
	out=$(vm_run b -- dmsetup table lin)
	assert_contains "$out" "0 131072 linear"
	h_dev=$(vm_run b 'sha256sum </dev/vda')
	h_dm=$(vm_run b 'sha256sum </dev/mapper/lin')
	h_off=$(vm_run b 'sha256sum </dev/mapper/lin8')
	assert_eq "$h_dev" "$h_dm" "sha256 of /dev/vda vs linear dm over it"
	assert_ne "$h_dev" "$h_off" "an offset mapping must differ"
	vm_run b -- dmsetup remove lin
	vm_run b -- dmsetup remove lin8
	assert_eq "" "$(vm_run b 'ls /dev/mapper | grep -v control || true')" "no dm devices left"
}

test_timeout_and_jobs() {
	local job out rc=0 t0
	t0=$SECONDS
	assert_fail --rc 124 vm_run a --timeout 2 -- sleep 60
	((SECONDS - t0 < 30)) || assert_eq "<30s" "$((SECONDS - t0))s" "time to report a timeout"
	vm_wait_until a 15 '! pgrep -x sleep'
	# a background job does not block other commands
	job=$(vm_spawn a 'sleep 2; echo spawned-done; exit 3')
	assert_eq pong "$(vm_run a 'echo pong')"
	out=$(vm_wait a "$job" 30) || rc=$?
	assert_eq 3 "$rc" "exit code of the spawned job"
	assert_contains "$out" spawned-done
	# vm_wait gives up (and kills the job) after its timeout
	job=$(vm_spawn a 'sleep 100')
	assert_fail --rc 124 vm_wait a "$job" 2
	vm_wait_until a 20 '! pgrep -x sleep'
}

test_kill_restart_keeps_data() {
	local h h2 zeros
	vm_start c --disk 32
	assert_eq /dev/vda "$(vm_run c 'ls /dev/vd*')" "one disk, /dev/vda"
	h=$(vm_run c 'head -c 1M /dev/urandom >/tmp/blk && dd if=/tmp/blk of=/dev/vda bs=1M seek=3 oflag=direct conv=fsync 2>/dev/null && sync && sha256sum </tmp/blk')
	zeros=$(vm_run c 'head -c 1M /dev/zero | sha256sum')
	vm_kill c
	assert_fail vm_alive c
	assert_fail --rc 255 vm_run c true
	vm_restart c
	h2=$(vm_run c 'dd if=/dev/vda bs=1M skip=3 count=1 2>/dev/null | sha256sum')
	assert_eq "$h" "$h2" "data written and synced before vm_kill"
	assert_ne "$zeros" "$h2"
	# clean stop, then a boot with fresh disks really starts from zeros
	vm_stop c
	assert_fail vm_alive c
	vm_start c --disk 32 --fresh-disks
	assert_eq "$zeros" "$(vm_run c 'dd if=/dev/vda bs=1M skip=3 count=1 2>/dev/null | sha256sum')" "fresh disk"
	assert_eq 3 "$(ls "$(dirname "$(vm_disk c 0)")"/console*.log | wc -l)" "console logs kept across boots"
}

test_dmesg_check_detects_warnings() {
	# vm_check_dmesg must notice a kernel warning (faked through /dev/kmsg); a VM of its
	# own, destroyed here, so that the runner's own check of this test's VMs passes.
	vm_start d
	vm_check_dmesg d
	vm_run d 'echo "WARNING: CPU: 0 PID: 1 at fake/harness.c:1 selftest" >/dev/kmsg'
	wait_until 10 grep -q 'fake/harness.c' "$(dirname "$(vm_disk d 0)")/console.log"
	assert_fail vm_check_dmesg d
	VM_DMESG_IGNORE='fake/harness\.c' vm_check_dmesg d
	vm_destroy d
}

teardown_file() {
	vm_stop a
	vm_stop b
}
