#!/usr/bin/env bash
# `make demo`: boot a QEMU VM of the test kernel, load dm_rcopy, create an rcopy device
# with rcopyctl, put a filesystem on it and show its status.
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

step "booting VM 'alpha' (TCG) with a 512 MiB data disk (vda) and a 16 MiB metadata disk (vdb)"
vm_start alpha --disk 512 --disk 16
echo "up in $(vm_boot_ms alpha) ms"

step "loading the module"
show alpha "insmod $MODULE && dmsetup targets | grep rcopy"

step "creating the rcopy device r0"
show alpha "$RCOPYCTL create r0 --data /dev/vda --meta /dev/vdb"
show alpha "dmsetup table r0"

step "a filesystem on /dev/mapper/r0"
show alpha "mkfs.ext4 -q /dev/mapper/r0 && mkdir -p /mnt/r0 && mount /dev/mapper/r0 /mnt/r0"
show alpha "head -c 64M /dev/urandom >/mnt/r0/data && sync && sha256sum /mnt/r0/data && df -h /mnt/r0 | tail -1"

step "status"
show alpha "$RCOPYCTL status r0"
show alpha "$RCOPYCTL status r0 --json"
show alpha "dmsetup status r0"

step "bad input is refused with a clear reason"
show alpha "$RCOPYCTL create r1 --data /dev/vdb --meta /dev/vdb || true"
show alpha "dmsetup create r1 --table '0 8 rcopy /dev/vda /dev/vdb' 2>&1 || dmesg | grep 'table:' | tail -1"

step "clean up"
show alpha "umount /mnt/r0 && $RCOPYCTL remove r0 && rmmod dm_rcopy && echo removed"
vm_stop alpha
echo
echo "demo finished"
