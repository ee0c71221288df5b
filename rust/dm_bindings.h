/* SPDX-License-Identifier: GPL-2.0 */
/* Headers whose declarations scripts/gen-dm-bindings.sh turns into Rust (rust/dm.rs). */
#include <linux/device-mapper.h>
#include <linux/dm-io.h>
#include <linux/dm-kcopyd.h>
/* Socket option setters the kernel crate's bindings do not include. */
#include <net/sock.h>
#include <linux/tcp.h>
/* The CRC-32C library function (arch-optimised), for the frames' payload CRC. */
#include <linux/crc32.h>
/* The way to the peer: route lookup, its device's carrier, an ARP request (rust/route.rs). */
#include <net/route.h>
#include <net/ip6_route.h>
#include <net/arp.h>
