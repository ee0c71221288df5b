// SPDX-License-Identifier: GPL-2.0

//! The way to the peer: the route a packet to it would take, whether that route's
//! device has a carrier, and asking the next hop for its link-layer address.
//!
//! Why the primary cares, when the link is down and it keeps connecting: a packet
//! for the peer (a SYN, or the dead connection's retransmits and its final
//! FIN or RST) that finds no resolved neighbour entry starts ARP (or neighbour
//! discovery), and the entry then sits in `INCOMPLETE`, probing once a second, for
//! three seconds at a time; with the carrier down, every probe is lost. When the
//! carrier returns inside such a window, nothing reaches the peer until the next
//! probe: up to a second (measured: 0.5 to 1.0 s from the carrier's return, with
//! the connection 4 ms after the ARP reply). So the primary
//! - sends no SYN while the route's device has no carrier ([`Route::has_carrier`]);
//! - when the carrier returns, asks the next hop at once ([`Route::solicit`]): the
//!   reply completes the waiting entry, and the queued SYN leaves with it.
//!
//! A carrier lost further away (a switch port, a router) is not seen here, and the
//! primary keeps trying as before. IPv6 gets the first half only: neighbour
//! solicitations have no exported sender.

use crate::dm::raw;
use crate::rcore::addr::{Ip, SockAddr};
use core::ptr;
use kernel::bindings;

/// `ARPOP_REQUEST` (`include/uapi/linux/if_arp.h`).
const ARPOP_REQUEST: i32 = 1;

/// A route from this host to the peer, with the reference the lookup took on it.
///
/// Invariant: `dst` is a live route on which this value holds one reference.
pub(crate) struct Route {
    dst: *mut raw::dst_entry,
    /// IPv4 only: (this host's source address, the next hop), network byte order.
    v4: Option<(u32, u32)>,
}

impl Route {
    /// The route a packet to `addr` would take now in the initial network namespace,
    /// or `None` if there is none (connecting then fails with the reason).
    ///
    /// Context: process or softirq context, no lock needed (RCU inside the lookup).
    pub(crate) fn lookup(addr: &SockAddr) -> Option<Route> {
        match addr.ip {
            Ip::V4(ip) => {
                let daddr = u32::from_ne_bytes(ip);
                let mut fl4 = bindings::flowi4 {
                    daddr,
                    ..Default::default()
                };
                // SAFETY: `init_net` lives forever; `fl4` is a valid, initialised flow;
                // a null socket is allowed (it is what `ip_route_output_key` passes).
                let rt = unsafe {
                    raw::ip_route_output_flow(&raw mut bindings::init_net, &mut fl4, ptr::null())
                };
                let rt = kernel::error::from_err_ptr(rt)
                    .ok()
                    .filter(|r| !r.is_null())?;
                // SAFETY: a live IPv4 route; the gateway union holds `rt_gw4` when the
                // gateway family says AF_INET.
                let hop = unsafe {
                    if (*rt).rt_gw_family == bindings::AF_INET as u8 {
                        *(*rt).__bindgen_anon_1.rt_gw4.as_ref()
                    } else {
                        daddr
                    }
                };
                Some(Route {
                    // `dst` is the first member of `struct rtable` (route.h asserts it
                    // in `ip_rt_put`, which is `dst_release(&rt->dst)`).
                    dst: rt.cast(),
                    v4: Some((fl4.saddr, hop)),
                })
            }
            Ip::V6(ip) => {
                let mut fl6 = bindings::flowi6::default();
                fl6.daddr.in6_u.u6_addr8 = ip;
                // SAFETY: as above; the lookup never returns null (a failed one is a
                // route with `error` set, released like any other).
                let dst = unsafe {
                    raw::ip6_route_output_flags(
                        &raw mut bindings::init_net,
                        ptr::null(),
                        &mut fl6,
                        0,
                    )
                };
                if dst.is_null() {
                    return None;
                }
                let route = Route { dst, v4: None };
                // SAFETY: a live route (the invariant).
                (unsafe { (*dst).error } == 0).then_some(route)
            }
        }
    }

    /// The flags `ip link` shows for the route's device (`IFF_*`), if it has one.
    fn dev_flags(&self) -> Option<u32> {
        // SAFETY: the reference on `dst` keeps its device registered, so reading
        // `dev` and the device's flags is valid while `self` lives.
        unsafe {
            let dev = (*self.dst).__bindgen_anon_1.dev;
            (!dev.is_null()).then(|| raw::netif_get_flags(dev))
        }
    }

    /// Whether the route's device can send: its carrier is up (devices that do not
    /// track one, such as loopback, always have it), or it has no device.
    pub(crate) fn has_carrier(&self) -> bool {
        self.dev_flags()
            .is_none_or(|f| f & bindings::net_device_flags_IFF_LOWER_UP != 0)
    }

    /// Sends one ARP request for the next hop (IPv4 over a device that uses ARP; a
    /// no-op otherwise). The reply updates the neighbour entry like the kernel's own
    /// probe would, without waiting for that probe's timer.
    ///
    /// Context: process or softirq context, no lock held.
    pub(crate) fn solicit(&self) {
        let (Some((saddr, hop)), Some(flags)) = (self.v4, self.dev_flags()) else {
            return;
        };
        let skip = bindings::net_device_flags_IFF_LOOPBACK | bindings::net_device_flags_IFF_NOARP;
        if flags & skip != 0 || flags & bindings::net_device_flags_IFF_LOWER_UP == 0 {
            return;
        }
        // SAFETY: the device is kept registered by our route reference; null
        // hardware addresses ask for the broadcast, the device's own address and
        // an all-zero target, as `arp_solicit` does.
        unsafe {
            let dev = (*self.dst).__bindgen_anon_1.dev;
            raw::arp_send(
                ARPOP_REQUEST,
                bindings::ETH_P_ARP as i32,
                hop,
                dev,
                saddr,
                ptr::null(),
                ptr::null(),
                ptr::null(),
            );
        }
    }
}

impl Drop for Route {
    fn drop(&mut self) {
        // SAFETY: the one reference this value holds (the invariant), dropped once.
        unsafe { raw::dst_release(self.dst) };
    }
}

/// What [`CarrierWatch::check`] found.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Carrier {
    /// The way to the peer has a carrier (or no route: trying says why).
    Up,
    /// No carrier, and there was one at the previous check.
    Lost,
    /// Still no carrier.
    Down,
}

/// The carrier on the way to a peer, followed across calls.
///
/// Used by one thread only (the pair's main thread), so it needs no lock.
pub(crate) struct CarrierWatch {
    down: bool,
}

impl CarrierWatch {
    pub(crate) fn new() -> CarrierWatch {
        CarrierWatch { down: false }
    }

    /// Looks up the route to `addr` and reads its device's carrier. On the first
    /// check that finds the carrier back after a loss, it also asks the next hop for
    /// its address ([`Route::solicit`]).
    ///
    /// Context: process context, no lock held.
    pub(crate) fn check(&mut self, addr: &SockAddr) -> Carrier {
        let way = Route::lookup(addr);
        if way.as_ref().is_some_and(|r| !r.has_carrier()) {
            return if core::mem::replace(&mut self.down, true) {
                Carrier::Down
            } else {
                Carrier::Lost
            };
        }
        if core::mem::replace(&mut self.down, false) {
            if let Some(r) = &way {
                r.solicit();
            }
        }
        Carrier::Up
    }
}
