#!/usr/bin/env bash
# `make demo`: boot two QEMU VMs of the test kernel on a private network, pair their
# disks with rcopy, and show the initial copy, sync and async replication, a link cut
# with automatic resync, the secondary refusing local writes, a takeover after a crash
# of the primary, and the failback: the old primary rejoins as the secondary (only
# the changed tracks are copied back) and a planned switchover returns the roles.
set -euo pipefail
. "$(dirname "$0")/common.sh"
KTREE=${KDIR:-$("$RCOPY_ROOT/scripts/build-kernel.sh")}
export RCOPY_KERNEL=${RCOPY_KERNEL:-$KTREE/arch/x86/boot/bzImage}
MODULE=$RCOPY_ROOT/rust/dm_rcopy.ko
RCOPYCTL=$RCOPY_ROOT/userspace-tools/target/x86_64-unknown-linux-gnu/release/rcopyctl
. "$RCOPY_ROOT/scripts/vm/lib.sh"
vm_setup_run_dir
VM_TRACE=0

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
show() { printf '\033[2m[%s]$ %s\033[0m\n' "$1" "$2"; vm_run "$1" "$2"; }
sum() { vm_run "$1" 'dd if=/dev/vda bs=1M iflag=direct status=none | sha256sum | cut -c1-16'; }
# same WHEN: the lower data disks of alpha and beta hold the same bytes (exit if not)
same() {
	local sa sb
	sa=$(sum alpha) sb=$(sum beta)
	echo "lower disks $1: alpha $sa  beta $sb"
	[ "$sa" = "$sb" ] || { echo "the disks differ"; exit 1; }
	echo "identical"
}

step "booting VMs 'alpha' (10.77.0.1) and 'beta' (10.77.0.2), each with a 256 MiB data disk and a 16 MiB metadata disk"
vm_start_many "alpha --disk 256 --disk 16 --net n0 --ip 10.77.0.1/24" \
	"beta --disk 256 --disk 16 --net n0 --ip 10.77.0.2/24"
for v in alpha beta; do vm_run "$v" "insmod $MODULE && echo demo-secret-$$ >/tmp/rcopy.key"; done
show alpha "mkfs.ext4 -q /dev/vda && mount /dev/vda /mnt && head -c 32M /dev/urandom >/mnt/before-pairing && umount /mnt && echo 'alpha has a filesystem with data'"

step "pairing: beta is the secondary (listens), alpha the primary (connects), sync mode"
# each side's table carries both addresses: a later promote or demote keeps them
show beta "$RCOPYCTL pair r0 --data /dev/vda --meta /dev/vdb --role secondary --local 10.77.0.2:7788 --peer 10.77.0.1:7788 --secret-file /tmp/rcopy.key"
show alpha "$RCOPYCTL pair r0 --data /dev/vda --meta /dev/vdb --role primary --peer 10.77.0.2:7788 --local 10.77.0.1:7788 --secret-file /tmp/rcopy.key --mode sync"
show alpha "sleep 2; $RCOPYCTL status r0"
show alpha "$RCOPYCTL wait r0 --state duplex --timeout 600 && echo 'initial copy done'"

step "writing on the primary: every write is on beta before it completes"
show alpha "mount /dev/mapper/r0 /mnt && head -c 48M /dev/urandom >/mnt/file && sync && sha256sum /mnt/file | cut -c1-16"
show alpha "$RCOPYCTL status r0"
show beta "$RCOPYCTL status r0"
show beta "mount -o ro,noload /dev/mapper/r0 /mnt && sha256sum /mnt/file | cut -c1-16 && umount /mnt && echo '(the same file, read on the secondary through a read-only mount)'"

step "the secondary refuses local writes"
show beta "dd if=/dev/zero of=/dev/mapper/r0 bs=4k count=1 oflag=direct 2>&1 | head -1; dmesg | grep 'write refused' | tail -1"

step "cutting the link for 10 s while alpha keeps writing"
vm_link alpha down
show alpha "head -c 16M /dev/urandom >/mnt/during-outage && sync && sleep 8 && $RCOPYCTL status r0 | grep -E 'state|dirty'"
vm_link alpha up
show alpha "$RCOPYCTL wait r0 --state duplex --timeout 300 && $RCOPYCTL status r0 | grep -E 'state|sent'"
show alpha "dmesg | grep rcopy | tail -4"

step "async mode: writes complete locally and are shipped in order"
show alpha "umount /mnt && $RCOPYCTL remove r0"
show alpha "$RCOPYCTL pair r0 --data /dev/vda --meta /dev/vdb --role primary --peer 10.77.0.2:7788 --local 10.77.0.1:7788 --secret-file /tmp/rcopy.key --mode async"
show alpha "$RCOPYCTL wait r0 --state duplex --timeout 600 && mount /dev/mapper/r0 /mnt && head -c 32M /dev/urandom >/mnt/async && sync && umount /mnt && $RCOPYCTL status r0 | grep -E 'mode|cache|lag'"
vm_run alpha "until dmsetup status r0 | grep -q ' lag_bytes=0 '; do sleep 0.5; done"
same "after drain"

step "takeover: alpha crashes under load (its VM is killed), beta is promoted"
vm_spawn alpha "mount /dev/mapper/r0 /mnt && i=0 && while :; do head -c 2M /dev/urandom >/mnt/load.\$i; sync; i=\$((i + 1)); done" >/dev/null
sleep 5
show alpha "$RCOPYCTL status r0 | grep -E 'state|lag'"
vm_kill alpha
echo "(alpha is gone, with async writes beta may never have had)"
show beta "until ! dmsetup status r0 | grep -q ' conn=connected '; do sleep 0.5; done; $RCOPYCTL status r0"
show beta "$RCOPYCTL promote r0"
show beta "mount /dev/mapper/r0 /mnt && ls /mnt && head -c 16M /dev/urandom >/mnt/written-on-beta && sync && sha256sum /mnt/written-on-beta | cut -c1-16 && umount /mnt"
show beta "$RCOPYCTL status r0"
echo "beta's data disk (the new primary): $(sum beta)"

step "failback, 1: alpha boots again and rejoins as the secondary: its unconfirmed writes are rolled back"
vm_restart alpha
vm_run alpha "insmod $MODULE && echo demo-secret-$$ >/tmp/rcopy.key"
echo "alpha's data disk before it rejoins: $(sum alpha) (it holds writes beta never had)"
show alpha "$RCOPYCTL pair r0 --data /dev/vda --meta /dev/vdb --role secondary --local 10.77.0.1:7788 --peer 10.77.0.2:7788 --secret-file /tmp/rcopy.key"
show beta "$RCOPYCTL wait r0 --state duplex --timeout 600 && until dmsetup status r0 | grep -q ' lag_bytes=0 '; do sleep 0.5; done; $RCOPYCTL status r0 --verbose | grep -E 'decision|generation|peer marks|progress|dirty'"
show beta "dmesg | grep -E 'rcopy|r0:' | grep -E 'handshake|peer marked|in sync' | tail -3"
same "after the reverse resync"

step "failback, 2: a planned switchover gives alpha its role back"
show beta "$RCOPYCTL switchover r0"
show alpha "$RCOPYCTL promote r0"
show alpha "$RCOPYCTL wait r0 --state duplex --timeout 300 && $RCOPYCTL status r0"
show beta "$RCOPYCTL status r0"
show alpha "mount /dev/mapper/r0 /mnt && sha256sum /mnt/written-on-beta | cut -c1-16 && umount /mnt && echo '(the file written on beta during the takeover, read on alpha)'"
same "after the failback"

step "clean up"
vm_run alpha "$RCOPYCTL remove r0 && rmmod dm_rcopy" && vm_run beta "$RCOPYCTL remove r0 && rmmod dm_rcopy"
vm_stop alpha
vm_stop beta
echo
echo "demo finished"
