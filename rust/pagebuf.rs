// SPDX-License-Identifier: GPL-2.0

//! A write's payload in whole pages of its own, so the link hands the pages to TCP
//! instead of copying them into socket buffers (`MSG_SPLICE_PAGES`,
//! [`crate::net::Socket::send_pages`]), as DRBD sends bio pages.
//!
//! Why TCP may keep pointing at these pages after the send returns: TCP takes its own
//! reference on every page it queues and drops it when the data is acknowledged or
//! the socket is freed. A [`PageBuf`] is written once, by [`PageBuf::from_bio`], before
//! it is shared; dropping it only drops our reference (`__free_pages` frees a page when
//! its count reaches zero). So TCP never sends a page that changed or was reused, and
//! the frame CRC, computed before the send, always matches what goes on the wire.
//!
//! What if the link drops with pages queued: the dead socket releases them when it is
//! freed. What if the machine dies: the pages held a copy; the activity log and the
//! bitmap say what to resync. What if allocation fails: [`PageBuf::from_bio`] returns
//! `ENOMEM` and the caller marks the write instead of shipping it.

use crate::blk::GFP_NOIO;
use crate::dm::Bio;
use core::ptr;
use kernel::bindings;
use kernel::prelude::*;

const PAGE: usize = bindings::PAGE_SIZE;

/// Payloads of at most this many pages are kept in one buffer and copied into the
/// socket, as before splicing existed. Measured (TCG guests, sync mode, one boot, old and new
/// module interleaved): splicing 1 MiB writes cut the primary's CPU per MiB by a
/// fifth, but splicing 4 KiB ones raised it by a third (a frame becomes a copied
/// header and a page fragment that the next frame's header cannot share a buffer
/// with), and moving 4 KiB payloads from a slab buffer to pages of their own looked
/// no better; so small payloads stay as they were.
const COPY_PAGES: usize = 8;

/// `len` bytes: a small payload in one `kvmalloc` buffer, a large one in order-0
/// pages (byte `i` at offset `i % PAGE` of page `i / PAGE`).
///
/// Invariant: exactly one of `linear` and `pages` is non-null. `linear`: a `kvmalloc`
/// buffer of `len` bytes owned here. `pages`: a `kvmalloc` array of
/// `len.div_ceil(PAGE)` page pointers owned here, each non-null one a page from the
/// page allocator on which this value owns one reference. Once [`PageBuf::from_bio`]
/// returns it, no page pointer is null and all `len` bytes are initialised and never
/// written again.
pub(crate) struct PageBuf {
    linear: *mut u8,
    pages: *mut *mut bindings::page,
    len: usize,
}

// SAFETY: the memory is plain memory this value owns (or holds a reference on);
// nothing in it is tied to a thread.
unsafe impl Send for PageBuf {}
// SAFETY: `&PageBuf` only reads the bytes, which are never written after creation.
unsafe impl Sync for PageBuf {}

/// `kvmalloc(bytes, GFP_NOIO | extra)`, null on failure.
fn kvmalloc_noio(bytes: usize, align: usize, extra: bindings::gfp_t) -> *mut u8 {
    // SAFETY: allocating has no preconditions.
    unsafe {
        bindings::kvrealloc_node_align_noprof(
            ptr::null(),
            bytes.max(1),
            align,
            GFP_NOIO | extra,
            bindings::NUMA_NO_NODE,
        )
    }
    .cast()
}

impl PageBuf {
    /// A copy of the data a write bio carries (`len > 0`). Calling context: the write
    /// path (`map`), so it allocates with `GFP_NOIO`; may sleep.
    pub(crate) fn from_bio(bio: &Bio<'_>) -> Result<PageBuf> {
        let len = bio.size() as usize;
        let buf = if len <= COPY_PAGES * PAGE {
            let linear = kvmalloc_noio(len, 1, 0);
            if linear.is_null() {
                return Err(ENOMEM);
            }
            // INVARIANT: filled below before it is handed out.
            PageBuf {
                linear,
                pages: ptr::null_mut(),
                len,
            }
        } else {
            let n = len.div_ceil(PAGE);
            let slot = core::mem::size_of::<*mut bindings::page>();
            // `__GFP_ZERO`: every entry starts null.
            let pages = kvmalloc_noio(n * slot, slot, 1 << bindings::___GFP_ZERO_BIT)
                .cast::<*mut bindings::page>();
            if pages.is_null() {
                return Err(ENOMEM);
            }
            // INVARIANT: `n` null entries; filled below (`Drop` skips null ones).
            let buf = PageBuf {
                linear: ptr::null_mut(),
                pages,
                len,
            };
            // SAFETY: the array has `n` entries, all null; the allocator fills only
            // null entries with pages it hands over and returns how many are filled.
            let got = unsafe {
                bindings::alloc_pages_bulk_noprof(
                    GFP_NOIO,
                    bindings::NUMA_NO_NODE,
                    ptr::null_mut(),
                    n as i32,
                    buf.pages,
                )
            };
            if got as usize != n || buf.slots().iter().any(|p| p.is_null()) {
                return Err(ENOMEM);
            }
            buf
        };
        let mut at = 0usize;
        let r = bio.for_each_segment(|page, offset, seg_len| {
            let (off, seg) = (offset as usize, seg_len as usize);
            if at + seg > len || off + seg > PAGE {
                return Err(EINVAL);
            }
            let mut done = 0;
            while done < seg {
                let pos = at + done;
                // Where byte `pos` goes, and how many fit there contiguously.
                let k = if buf.linear.is_null() {
                    (seg - done).min(PAGE - pos % PAGE)
                } else {
                    seg - done
                };
                // SAFETY: a bio segment lies within one page (`off + seg <= PAGE`),
                // alive while the bio is in flight; the destination is ours and not
                // yet shared: `linear` has `len >= pos + k` bytes, or page
                // `pos / PAGE` is mapped for the copy and `pos % PAGE + k <= PAGE`.
                unsafe {
                    let s = bindings::kmap_local_page(page).cast::<u8>();
                    if buf.linear.is_null() {
                        let d = bindings::kmap_local_page(buf.slots()[pos / PAGE]).cast::<u8>();
                        ptr::copy_nonoverlapping(s.add(off + done), d.add(pos % PAGE), k);
                        bindings::kunmap_local(d.cast());
                    } else {
                        ptr::copy_nonoverlapping(s.add(off + done), buf.linear.add(pos), k);
                    }
                    bindings::kunmap_local(s.cast());
                }
                done += k;
            }
            at += seg;
            Ok(())
        });
        if r.is_err() || at != len {
            return Err(EINVAL);
        }
        Ok(buf)
    }

    /// The page pointers.
    fn slots(&self) -> &[*mut bindings::page] {
        if self.pages.is_null() {
            return &[];
        }
        // SAFETY: `pages` points to `len.div_ceil(PAGE)` entries (type invariant).
        unsafe { core::slice::from_raw_parts(self.pages, self.len.div_ceil(PAGE)) }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The pages and how many bytes of each are used, in order.
    pub(crate) fn segments(
        &self,
    ) -> impl Iterator<Item = (*mut bindings::page, usize)> + Clone + '_ {
        let len = self.len;
        self.slots()
            .iter()
            .enumerate()
            .map(move |(i, &p)| (p, len.saturating_sub(i * PAGE).min(PAGE)))
    }

    /// A small payload's bytes (the link copies them into the socket); `None` for a
    /// large one, whose pages the link splices ([`PageBuf::segments`]).
    pub(crate) fn bytes(&self) -> Option<&[u8]> {
        // SAFETY: a non-null `linear` holds `len` initialised bytes (type invariant).
        (!self.linear.is_null())
            .then(|| unsafe { core::slice::from_raw_parts(self.linear, self.len) })
    }

    /// Calls `f` on the bytes of each page in order (to checksum them).
    pub(crate) fn for_each_chunk(&self, mut f: impl FnMut(&[u8])) {
        if let Some(b) = self.bytes() {
            return f(b);
        }
        for (page, n) in self.segments() {
            // SAFETY: `page` is ours (type invariant), mapped for the call; its first
            // `n` bytes are initialised and not written while shared.
            unsafe {
                let p = bindings::kmap_local_page(page).cast::<u8>();
                f(core::slice::from_raw_parts(p, n));
                bindings::kunmap_local(p.cast());
            }
        }
    }
}

impl Drop for PageBuf {
    fn drop(&mut self) {
        for &p in self.slots().iter().filter(|p| !p.is_null()) {
            // SAFETY: we own one reference on `p` (type invariant). `__free_pages` drops
            // it and frees the page only if nobody else (TCP) still holds one.
            unsafe { bindings::__free_pages(p, 0) };
        }
        // SAFETY: whichever of the two is non-null came from kvmalloc and is freed once
        // (`kvfree` ignores null).
        unsafe {
            bindings::kvfree(self.pages.cast());
            bindings::kvfree(self.linear.cast());
        }
    }
}
