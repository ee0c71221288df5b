#!/usr/bin/env bash
# gen-dm-bindings.sh KDIR HEADER OUT
# Generates Rust bindings for the device-mapper headers against an unmodified, built
# kernel tree, by re-running the kernel's own bindgen command (saved by kbuild in
# rust/bindings/.bindings_generated.rs.cmd) on HEADER, limited to the DM headers.
# Types the DM headers merely use (struct bio, ...) are not generated: the output
# expects `kernel::bindings::*` to be in scope, so they are the kernel crate's types.
set -euo pipefail
. "$(dirname "$0")/common.sh"
KDIR=$(cd "$1" && pwd) HEADER=$(realpath "$2") OUT=$(realpath -m "$3")
cmdfile=$KDIR/rust/bindings/.bindings_generated.rs.cmd
[ -f "$cmdfile" ] || die "$cmdfile not found: KDIR must be a built kernel tree with CONFIG_RUST=y"
cmd=$(sed -n 's/^savedcmd_[^ ]* := //p' "$cmdfile")
cmd=${cmd%%; sed *}                               # drop the kernel's own post-processing
cmd=${cmd//'$(pound)'/#}                          # a make variable in the saved command
cmd=${cmd//rust\/bindings\/bindings_helper.h/$HEADER}
cmd=${cmd//-o rust\/bindings\/bindings_generated.rs/-o $OUT.tmp}
cmd=$(sed -E 's/-Wp,-MMD,[^ ]+//' <<<"$cmd")
allow="--allowlist-file '.*/linux/device-mapper\\.h' --allowlist-file '.*/linux/dm-io\\.h'"
allow+=" --allowlist-file '.*/linux/dm-kcopyd\\.h' --no-recursive-allowlist"
allow+=" --blocklist-function dm_early_create" # uses uapi dm-ioctl types we do not need
allow+=" --allowlist-function sock_set_reuseaddr --allowlist-function tcp_sock_set_nodelay"
allow+=" --allowlist-function sock_set_keepalive --allowlist-function tcp_sock_set_user_timeout"
allow+=" --allowlist-function crc32c" # the frames' CRC, with the CPU's instruction
allow+=" --allowlist-type dst_entry --allowlist-type rtable --allowlist-function ip_route_output_flow"
allow+=" --allowlist-function ip6_route_output_flags --allowlist-function dst_release --allowlist-function arp_send"
allow+=" --allowlist-function netif_get_flags" # the route to the peer and its device's carrier
allow+=" --allowlist-type uncached_list --opaque-type uncached_list" # pointed to by dst_entry
allow+=" --allowlist-type lwtunnel_state --opaque-type lwtunnel_state"
cmd=${cmd/ -- / $allow -- }
(cd "$KDIR" && eval "$cmd")
mv "$OUT.tmp" "$OUT"
