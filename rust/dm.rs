// SPDX-License-Identifier: GPL-2.0

//! Device-mapper glue: the generated DM bindings and the few safe wrappers over them.
//!
//! This is the only file that touches raw device-mapper FFI. A target implements
//! [`TargetOps`]; [`Registration`] registers it with DM and routes every DM callback to
//! it through `extern "C"` trampolines that turn raw pointers into the safe types here.

use core::marker::PhantomData;
use core::ptr;
use kernel::bindings;
use kernel::ffi;
use kernel::prelude::*;
use kernel::str::CStrExt;

/// The generated bindings for `linux/device-mapper.h`, `dm-io.h` and `dm-kcopyd.h`.
/// Types those headers only use (`bio`, `block_device`, ...) come from
/// `kernel::bindings`, so they are the kernel crate's own types.
#[allow(
    clippy::all,
    clippy::as_underscore,
    clippy::cast_lossless,
    clippy::ptr_as_ptr,
    clippy::ref_as_ptr,
    clippy::undocumented_unsafe_blocks,
    dead_code,
    missing_docs,
    non_camel_case_types,
    non_upper_case_globals,
    non_snake_case,
    improper_ctypes,
    unreachable_pub,
    unsafe_op_in_unsafe_fn
)]
pub(crate) mod raw {
    use kernel::bindings::*;
    use kernel::ffi;
    use pin_init::MaybeZeroable;
    include!("dm_bindings_generated.rs");
}

/// What a constructor failure tells DM: an errno and a reason for `ti->error`.
pub(crate) struct CtrError {
    pub(crate) err: Error,
    pub(crate) reason: &'static CStr,
}

impl CtrError {
    pub(crate) fn inval(reason: &'static CStr) -> Self {
        Self {
            err: EINVAL,
            reason,
        }
    }
}

/// The kind of status DM asks for.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum StatusKind {
    Info,
    Table,
    Ima,
}

/// How a bio left `map`.
pub(crate) enum MapResult {
    /// Remapped to a lower device: DM submits it.
    Remapped,
    /// Failed with an I/O error.
    Kill,
    /// Kept by the target, which submits it later with [`Bio::submit_remapped`].
    Submitted,
}

/// What `end_io` tells DM.
pub(crate) enum EndIo {
    /// Complete the bio now.
    Done,
    /// The target completes it later, with [`Bio::endio`].
    Incomplete,
}

/// The operations a device-mapper target provides. `Self` is the per-target context
/// stored in `ti->private`; it is created by `new` and dropped by the destructor.
pub(crate) trait TargetOps: Sized + Send + Sync {
    /// Target name, as in the table line.
    const NAME: &'static CStr;
    /// Target version, reported by `dmsetup targets`.
    const VERSION: [u32; 3];

    /// The constructor. `args` are the table words after the target name.
    fn new(ti: &mut Target<'_>, args: &[&CStr]) -> Result<KBox<Self>, CtrError>;
    /// Maps one bio.
    fn map(&self, ti: &Target<'_>, bio: &mut Bio<'_>) -> MapResult;
    /// Sees one bio completing with `status` (0 is success).
    fn end_io(&self, bio: &Bio<'_>, status: u8) -> EndIo;
    /// Writes a status line of the given kind.
    fn status(&self, ti: &Target<'_>, kind: StatusKind, out: &mut OutBuf<'_>);
    /// Handles a message. Returns `Ok(true)` when it wrote a reply into `out`.
    fn message(&self, ti: &Target<'_>, args: &[&CStr], out: &mut OutBuf<'_>) -> Result<bool>;
    /// Calls `f` for every lower device with the range of it the target uses.
    fn iterate_devices(&self, ti: &Target<'_>, f: &mut DevCallout<'_>) -> i32;
    /// Adjusts the stacked queue limits.
    fn io_hints(&self, limits: &mut bindings::queue_limits);
    /// Before the table goes live (process context, no I/O of this table in
    /// flight): start background work. An error fails the resume.
    fn preresume(&self) -> Result;
    /// After the table was suspended and all its I/O completed: stop background
    /// work and write out state.
    fn postsuspend(&self);
}

/// A borrowed `struct dm_target`, valid for the duration of one DM callback.
pub(crate) struct Target<'a> {
    raw: *mut raw::dm_target,
    _p: PhantomData<&'a mut raw::dm_target>,
}

impl<'a> Target<'a> {
    /// # Safety
    ///
    /// `raw` must point to a live `dm_target` for `'a`, and DM must not change the
    /// fields read here concurrently (true inside ctr/dtr/map/status/message).
    unsafe fn from_raw(raw: *mut raw::dm_target) -> Self {
        Self {
            raw,
            _p: PhantomData,
        }
    }

    /// Target length, in sectors.
    pub(crate) fn len(&self) -> u64 {
        // SAFETY: `self.raw` is valid for `'a` (type invariant).
        unsafe { (*self.raw).len }
    }

    /// Target start within the mapped device, in sectors.
    pub(crate) fn begin(&self) -> u64 {
        // SAFETY: `self.raw` is valid for `'a` (type invariant).
        unsafe { (*self.raw).begin }
    }

    /// Asks DM to send this many empty flush bios, discard and write-zeroes bios to
    /// `map` for each such request on the mapped device.
    pub(crate) fn set_special_bios(&mut self, flush: u32, discard: u32, write_zeroes: u32) {
        // SAFETY: `self.raw` is valid, and the constructor (the only holder of a
        // `&mut Target`) may set these fields.
        unsafe {
            (*self.raw).num_flush_bios = flush;
            (*self.raw).num_discard_bios = discard;
            (*self.raw).num_write_zeroes_bios = write_zeroes;
        }
    }

    /// Opens a lower device by path or `major:minor`, with the table's mode.
    pub(crate) fn get_device(&mut self, path: &CStr) -> Result<DmDev> {
        let mut dev: *mut raw::dm_dev = ptr::null_mut();
        // SAFETY: `self.raw` is a live target being constructed; its table is valid.
        let mode = unsafe { raw::dm_table_get_mode((*self.raw).table) };
        // SAFETY: `path` is NUL-terminated, `dev` is a valid out pointer.
        let ret = unsafe { raw::dm_get_device(self.raw, path.as_char_ptr(), mode, &mut dev) };
        if ret != 0 {
            return Err(Error::from_errno(ret));
        }
        Ok(DmDev { ti: self.raw, dev })
    }

    /// An identity for the mapped device this target belongs to (stable across table
    /// reloads of that device).
    pub(crate) fn md_id(&self) -> usize {
        // SAFETY: `self.raw` and its table are valid for `'a`.
        unsafe { raw::dm_table_get_md((*self.raw).table) as usize }
    }

    /// The table this target belongs to, for raising events later.
    pub(crate) fn table(&self) -> TableRef {
        // SAFETY: `self.raw` is valid for `'a`.
        TableRef(unsafe { (*self.raw).table })
    }

    /// Sets the size of the per-bio data `map` and `end_io` get (see [`per_bio`]).
    pub(crate) fn set_per_bio_data<T>(&mut self) {
        // SAFETY: the constructor may set this field.
        unsafe { (*self.raw).per_io_data_size = core::mem::size_of::<T>() as u32 };
    }

    /// Splits bios so that none is longer than `sectors`.
    pub(crate) fn set_max_io_len(&mut self, sectors: u64) -> Result {
        // SAFETY: `self.raw` is a target being constructed.
        let r = unsafe { raw::dm_set_target_max_io_len(self.raw, sectors) };
        if r != 0 {
            return Err(Error::from_errno(r));
        }
        Ok(())
    }

    /// The mapped device's name (as `dmsetup ls` shows it), copied into `buf`; the
    /// `major:minor` name if that fails.
    pub(crate) fn device_name<'b>(&self, buf: &'b mut [u8; 128]) -> &'b str {
        // SAFETY: the table and its mapped device are valid for `'a`; `buf` has room
        // for DM_NAME_LEN (128) bytes, and a null uuid pointer is allowed.
        unsafe {
            let md = raw::dm_table_get_md((*self.raw).table);
            if raw::dm_copy_name_and_uuid(md, buf.as_mut_ptr().cast(), ptr::null_mut()) != 0 {
                let name = CStr::from_char_ptr(raw::dm_device_name(md)).to_bytes();
                let n = name.len().min(buf.len() - 1);
                buf[..n].copy_from_slice(&name[..n]);
                buf[n] = 0;
            }
        }
        let len = buf.iter().position(|&c| c == 0).unwrap_or(buf.len());
        core::str::from_utf8(&buf[..len]).unwrap_or("rcopy")
    }
}

/// A target's table, used to raise DM events (`dmsetup wait`) from engine threads.
///
/// Invariant: whoever holds one uses it only while the table lives. The engine holds
/// the live table's: its threads are stopped by the destructor before DM frees that
/// table, and a reload that keeps the engine swaps in the new table's at `preresume`,
/// before DM frees the old one (`Pair::retune`).
#[derive(Clone, Copy)]
pub(crate) struct TableRef(*mut raw::dm_table);

// SAFETY: `dm_table_event` may be called from any thread in process context.
unsafe impl Send for TableRef {}
// SAFETY: as above.
unsafe impl Sync for TableRef {}

impl TableRef {
    /// Raises a DM event. Process context only.
    pub(crate) fn event(&self) {
        // SAFETY: the table is valid (type invariant).
        unsafe { raw::dm_table_event(self.0) };
    }
}

/// This bio's per-bio data, sized by [`Target::set_per_bio_data`]. It is
/// uninitialised until the target writes it in `map`.
pub(crate) fn per_bio_ptr<T>(bio: &Bio<'_>) -> *mut T {
    // SAFETY: DM allocated `size_of::<T>()` bytes of per-bio data for every bio it
    // passes to this target.
    unsafe { raw::dm_per_bio_data(bio.raw, core::mem::size_of::<T>()).cast() }
}

/// This bio's per-bio data, initialised by `map`.
pub(crate) fn per_bio<'b, T>(bio: &'b Bio<'_>) -> &'b T {
    // SAFETY: `map` initialised the data before the bio could reach `end_io` or any
    // other user, and it lives as long as the bio.
    unsafe { &*per_bio_ptr::<T>(bio) }
}

/// A lower device opened with `dm_get_device`, released on drop.
///
/// Invariant: `ti` is the target that opened `dev` and outlives this value (a `DmDev`
/// lives in the target's context, which the destructor drops while `ti` is live).
pub(crate) struct DmDev {
    ti: *mut raw::dm_target,
    dev: *mut raw::dm_dev,
}

// SAFETY: a `dm_dev` is reference counted by DM and may be used from any thread.
unsafe impl Send for DmDev {}
// SAFETY: only immutable fields are read through `&DmDev`.
unsafe impl Sync for DmDev {}

impl DmDev {
    pub(crate) fn bdev(&self) -> *mut bindings::block_device {
        // SAFETY: `self.dev` is valid while `self` exists (type invariant).
        unsafe { (*self.dev).bdev }
    }

    /// The device number.
    pub(crate) fn devt(&self) -> u32 {
        // SAFETY: the block device stays open while `self` exists.
        unsafe { (*self.bdev()).bd_dev }
    }

    /// Size in sectors.
    pub(crate) fn sectors(&self) -> u64 {
        // SAFETY: the block device stays open while `self` exists; a racy read of the
        // size is what `bdev_nr_sectors()` does too.
        unsafe { ptr::read_volatile(&(*self.bdev()).bd_nr_sectors) }
    }

    /// DM's name for the device, `major:minor`.
    pub(crate) fn name(&self) -> &CStr {
        // SAFETY: `name` is a NUL-terminated array that DM fills when opening the
        // device and never changes afterwards.
        unsafe { CStr::from_char_ptr((*self.dev).name.as_ptr()) }
    }
}

impl Drop for DmDev {
    fn drop(&mut self) {
        // SAFETY: `ti` opened `dev` and is still live (type invariant).
        unsafe { raw::dm_put_device(self.ti, self.dev) };
    }
}

/// The operation of a bio.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Read,
    Write,
    Flush,
    Discard,
    WriteZeroes,
    Other,
}

/// A bio handed to the target by DM.
pub(crate) struct Bio<'a> {
    raw: *mut bindings::bio,
    _p: PhantomData<&'a mut bindings::bio>,
}

impl<'a> Bio<'a> {
    /// # Safety
    ///
    /// `raw` must be a live bio owned by the caller for `'a`.
    unsafe fn from_raw(raw: *mut bindings::bio) -> Self {
        Self {
            raw,
            _p: PhantomData,
        }
    }

    fn opf(&self) -> u32 {
        // SAFETY: `self.raw` is live for `'a` (type invariant).
        unsafe { (*self.raw).bi_opf }
    }

    pub(crate) fn op(&self) -> Op {
        match self.opf() & ((1 << bindings::REQ_OP_BITS) - 1) {
            bindings::req_op_REQ_OP_READ => Op::Read,
            bindings::req_op_REQ_OP_WRITE => Op::Write,
            bindings::req_op_REQ_OP_FLUSH => Op::Flush,
            bindings::req_op_REQ_OP_DISCARD => Op::Discard,
            bindings::req_op_REQ_OP_WRITE_ZEROES => Op::WriteZeroes,
            _ => Op::Other,
        }
    }

    /// `REQ_FUA`: the write must be on stable storage when it completes.
    pub(crate) fn is_fua(&self) -> bool {
        self.opf() & (1 << bindings::req_flag_bits___REQ_FUA) != 0
    }

    /// The raw bio, to complete it later (see [`Bio::from_raw_waiting`]).
    pub(crate) fn as_raw(&self) -> *mut bindings::bio {
        self.raw
    }

    /// A bio this target kept by returning [`EndIo::Incomplete`] (or that is still in
    /// flight and will reach `end_io`).
    ///
    /// # Safety
    ///
    /// `raw` must be such a bio, still owned by this target.
    pub(crate) unsafe fn from_raw_waiting(raw: *mut bindings::bio) -> Bio<'static> {
        Bio {
            raw,
            _p: PhantomData,
        }
    }

    /// Submits a remapped bio that `map` kept ([`MapResult::Submitted`]).
    pub(crate) fn submit_remapped(self) {
        // SAFETY: the bio is live, remapped, and ours to submit.
        unsafe { raw::dm_submit_bio_remap(self.raw, ptr::null_mut()) };
    }

    /// Completes the bio again after `end_io` returned [`EndIo::Incomplete`]; DM calls
    /// `end_io` once more.
    pub(crate) fn endio(self) {
        // SAFETY: the bio is live and ours (see `from_raw_waiting`).
        unsafe { bindings::bio_endio(self.raw) };
    }

    /// Calls `f(page, offset_in_page, len)` for every single-page piece of the data the
    /// bio still carries (from its current iterator position).
    pub(crate) fn for_each_segment(
        &self,
        mut f: impl FnMut(*mut bindings::page, u32, u32) -> Result,
    ) -> Result {
        const PAGE: u32 = kernel::page::PAGE_SIZE as u32;
        // SAFETY: `self.raw` is live; its bvec array holds the segments its iterator
        // walks, as `bio_for_each_segment` assumes.
        unsafe {
            let b = &*self.raw;
            let mut idx = b.bi_iter.bi_idx as usize;
            let mut done = b.bi_iter.bi_offset;
            let mut left = b.bi_iter.bi_size;
            while left > 0 {
                let bv = &*b.bi_io_vec.add(idx);
                let mut n = (bv.bv_len - done).min(left);
                let mut pos = bv.bv_offset + done;
                while n > 0 {
                    let page = bv.bv_page.add((pos / PAGE) as usize);
                    let off = pos % PAGE;
                    let len = n.min(PAGE - off);
                    f(page, off, len)?;
                    pos += len;
                    n -= len;
                    left -= len;
                }
                idx += 1;
                done = 0;
            }
        }
        Ok(())
    }

    /// `REQ_PREFLUSH`: flush the device cache before this bio.
    pub(crate) fn is_preflush(&self) -> bool {
        self.opf() & (1 << bindings::req_flag_bits___REQ_PREFLUSH) != 0
    }

    /// Start sector.
    pub(crate) fn sector(&self) -> u64 {
        // SAFETY: `self.raw` is live (type invariant).
        unsafe { (*self.raw).bi_iter.bi_sector }
    }

    /// Size in bytes.
    pub(crate) fn size(&self) -> u32 {
        // SAFETY: `self.raw` is live (type invariant).
        unsafe { (*self.raw).bi_iter.bi_size }
    }

    /// Sends the bio to `dev` at `sector`, as `bio_set_dev()` does.
    pub(crate) fn remap(&mut self, dev: &DmDev, sector: u64) {
        let bdev = dev.bdev();
        // SAFETY: the caller owns the live bio (type invariant); `bdev` is open.
        unsafe {
            let b = &mut *self.raw;
            b.bi_flags &= !(1u16 << bindings::BIO_REMAPPED);
            if b.bi_bdev != bdev {
                b.bi_flags &= !(1u16 << bindings::BIO_BPS_THROTTLED);
            }
            b.bi_bdev = bdev;
            b.bi_iter.bi_sector = sector;
        }
    }
}

/// A lock-free list of bios a target holds, linked through `bi_next` (which belongs
/// to the bio's current owner). Push from any context; one consumer takes them all.
pub(crate) struct BioList {
    head: core::sync::atomic::AtomicPtr<bindings::bio>,
}

impl BioList {
    pub(crate) const fn new() -> Self {
        Self {
            head: core::sync::atomic::AtomicPtr::new(ptr::null_mut()),
        }
    }

    /// Adds a bio the target owns (kept from `map`, or `end_io` said `Incomplete`).
    pub(crate) fn push(&self, bio: &Bio<'_>) {
        use core::sync::atomic::Ordering::{AcqRel, Acquire};
        let mut old = self.head.load(Acquire);
        loop {
            // SAFETY: the bio is owned by the target, so `bi_next` is ours to use.
            unsafe { (*bio.raw).bi_next = old };
            match self.head.compare_exchange(old, bio.raw, AcqRel, Acquire) {
                Ok(_) => return,
                Err(cur) => old = cur,
            }
        }
    }

    /// Whether the list is empty.
    pub(crate) fn is_empty(&self) -> bool {
        self.head
            .load(core::sync::atomic::Ordering::Acquire)
            .is_null()
    }

    /// Calls `f` on every bio without taking them. Only for a list no other thread
    /// pushes to or drains (a private batch).
    pub(crate) fn for_each(&self, mut f: impl FnMut(&Bio<'_>)) {
        let mut cur = self.head.load(core::sync::atomic::Ordering::Acquire);
        while !cur.is_null() {
            // SAFETY: every pushed bio is live and owned by the target; the list is
            // private to the caller, so nothing unlinks it meanwhile.
            unsafe {
                let next = (*cur).bi_next;
                f(&Bio::from_raw_waiting(cur));
                cur = next;
            }
        }
    }

    /// Takes every bio, calling `f` on each (in no particular order).
    pub(crate) fn drain(&self, mut f: impl FnMut(Bio<'static>)) {
        let mut cur = self
            .head
            .swap(ptr::null_mut(), core::sync::atomic::Ordering::AcqRel);
        while !cur.is_null() {
            // SAFETY: every pushed bio is live and owned by the target until handed on.
            unsafe {
                let next = (*cur).bi_next;
                (*cur).bi_next = ptr::null_mut();
                f(Bio::from_raw_waiting(cur));
                cur = next;
            }
        }
    }
}

/// A reply buffer handed by DM to `status` and `message`. Output that does not fit
/// is cut short, as DM's own `DMEMIT` does; the buffer always stays NUL-terminated.
pub(crate) struct OutBuf<'a> {
    buf: &'a mut [u8],
    len: usize,
}

impl<'a> OutBuf<'a> {
    /// # Safety
    ///
    /// `ptr` must be valid for writes of `maxlen` bytes for `'a`.
    unsafe fn from_raw(ptr: *mut ffi::c_char, maxlen: u32) -> Option<Self> {
        if ptr.is_null() || maxlen == 0 {
            return None;
        }
        // SAFETY: guaranteed by the caller.
        let buf = unsafe { core::slice::from_raw_parts_mut(ptr.cast::<u8>(), maxlen as usize) };
        buf[0] = 0;
        Some(Self { buf, len: 0 })
    }
}

impl core::fmt::Write for OutBuf<'_> {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let room = self.buf.len().saturating_sub(self.len + 1);
        let n = s.len().min(room);
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        self.buf[self.len] = 0;
        if n < s.len() {
            Err(core::fmt::Error)
        } else {
            Ok(())
        }
    }
}

/// The callout DM passes to `iterate_devices`.
pub(crate) struct DevCallout<'a> {
    ti: *mut raw::dm_target,
    f: raw::iterate_devices_callout_fn,
    data: *mut ffi::c_void,
    _p: PhantomData<&'a ()>,
}

impl DevCallout<'_> {
    /// Reports that the target uses `len` sectors of `dev` from `start`.
    pub(crate) fn call(&mut self, dev: &DmDev, start: u64, len: u64) -> i32 {
        match self.f {
            // SAFETY: DM gave us `f` and `data` for this very target and device set.
            Some(f) => unsafe { f(self.ti, dev.dev, start, len, self.data) },
            None => 0,
        }
    }
}

/// Borrows the argument words DM passes to `ctr` and `message`.
///
/// # Safety
///
/// `argv` must hold `argc` valid NUL-terminated strings that outlive the result.
unsafe fn args_vec<'a>(argc: u32, argv: *mut *mut ffi::c_char) -> Result<KVec<&'a CStr>> {
    let mut v = KVec::with_capacity(argc as usize, GFP_KERNEL)?;
    for i in 0..argc as usize {
        // SAFETY: `i < argc` and the strings are valid (caller's guarantee).
        let s = unsafe { CStr::from_char_ptr(*argv.add(i)) };
        v.push(s, GFP_KERNEL)?;
    }
    Ok(v)
}

/// # Safety
///
/// `ti->private` must hold a `KBox<T>` made by `ctr::<T>`, not yet freed.
unsafe fn context<'a, T: TargetOps>(ti: *mut raw::dm_target) -> &'a T {
    // SAFETY: guaranteed by the caller.
    unsafe { &*((*ti).private as *const T) }
}

/// DM's `ctr` callback for targets of type `T`.
///
/// # Safety
///
/// Called only by device-mapper, with the pointers it documents for `ctr`.
unsafe extern "C" fn ctr<T: TargetOps>(
    ti: *mut raw::dm_target,
    argc: u32,
    argv: *mut *mut ffi::c_char,
) -> ffi::c_int {
    // SAFETY: DM calls ctr with a live target and `argc` valid strings.
    let args = match unsafe { args_vec(argc, argv) } {
        Ok(a) => a,
        Err(e) => return e.to_errno(),
    };
    // SAFETY: `ti` is live and being constructed.
    let mut target = unsafe { Target::from_raw(ti) };
    match T::new(&mut target, &args) {
        Ok(ctx) => {
            // SAFETY: `ti` is live; DM hands `private` back to every callback.
            unsafe { (*ti).private = KBox::into_raw(ctx).cast() };
            0
        }
        Err(e) => {
            // SAFETY: `ti` is live; `reason` is static, so DM may print it at any time.
            unsafe { (*ti).error = e.reason.as_char_ptr().cast_mut() };
            e.err.to_errno()
        }
    }
}

/// DM's `dtr` callback for targets of type `T`.
///
/// # Safety
///
/// Called only by device-mapper, with the pointers it documents for `dtr`.
unsafe extern "C" fn dtr<T: TargetOps>(ti: *mut raw::dm_target) {
    // SAFETY: a successful ctr stored a `KBox<T>` in `private`; dtr runs once.
    drop(unsafe { KBox::from_raw((*ti).private.cast::<T>()) });
}

/// DM's `map` callback for targets of type `T`.
///
/// # Safety
///
/// Called only by device-mapper, with the pointers it documents for `map`.
unsafe extern "C" fn map<T: TargetOps>(
    ti: *mut raw::dm_target,
    bio: *mut bindings::bio,
) -> ffi::c_int {
    // SAFETY: DM calls map on a constructed target with a bio it hands to us.
    let (ctx, target, mut bio) =
        unsafe { (context::<T>(ti), Target::from_raw(ti), Bio::from_raw(bio)) };
    match ctx.map(&target, &mut bio) {
        MapResult::Remapped => raw::DM_MAPIO_REMAPPED as ffi::c_int,
        MapResult::Kill => raw::DM_MAPIO_KILL as ffi::c_int,
        MapResult::Submitted => raw::DM_MAPIO_SUBMITTED as ffi::c_int,
    }
}

/// DM's `end_io` callback for targets of type `T`.
///
/// # Safety
///
/// Called only by device-mapper, with the pointers it documents for `end_io`.
unsafe extern "C" fn end_io<T: TargetOps>(
    ti: *mut raw::dm_target,
    bio: *mut bindings::bio,
    error: *mut bindings::blk_status_t,
) -> ffi::c_int {
    // SAFETY: DM calls end_io on a constructed target, with a live bio and status.
    let (ctx, bio, status) = unsafe { (context::<T>(ti), Bio::from_raw(bio), *error) };
    match ctx.end_io(&bio, status) {
        EndIo::Done => raw::DM_ENDIO_DONE as ffi::c_int,
        EndIo::Incomplete => raw::DM_ENDIO_INCOMPLETE as ffi::c_int,
    }
}

/// DM's `status` callback for targets of type `T`.
///
/// # Safety
///
/// Called only by device-mapper, with the pointers it documents for `status`.
unsafe extern "C" fn status<T: TargetOps>(
    ti: *mut raw::dm_target,
    kind: raw::status_type_t,
    _flags: u32,
    result: *mut ffi::c_char,
    maxlen: u32,
) {
    let kind = match kind {
        raw::status_type_t_STATUSTYPE_INFO => StatusKind::Info,
        raw::status_type_t_STATUSTYPE_TABLE => StatusKind::Table,
        _ => StatusKind::Ima,
    };
    // SAFETY: DM passes a constructed target and a buffer of `maxlen` bytes.
    let (ctx, target, out) = unsafe {
        (
            context::<T>(ti),
            Target::from_raw(ti),
            OutBuf::from_raw(result, maxlen),
        )
    };
    if let Some(mut out) = out {
        ctx.status(&target, kind, &mut out);
    }
}

/// DM's `message` callback for targets of type `T`.
///
/// # Safety
///
/// Called only by device-mapper, with the pointers it documents for `message`.
unsafe extern "C" fn message<T: TargetOps>(
    ti: *mut raw::dm_target,
    argc: u32,
    argv: *mut *mut ffi::c_char,
    result: *mut ffi::c_char,
    maxlen: u32,
) -> ffi::c_int {
    // SAFETY: DM passes `argc` valid strings for the duration of the call.
    let args = match unsafe { args_vec(argc, argv) } {
        Ok(a) => a,
        Err(e) => return e.to_errno(),
    };
    // SAFETY: DM passes a constructed target and a buffer of `maxlen` bytes.
    let (ctx, target, out) = unsafe {
        (
            context::<T>(ti),
            Target::from_raw(ti),
            OutBuf::from_raw(result, maxlen),
        )
    };
    let Some(mut out) = out else {
        return EINVAL.to_errno();
    };
    match ctx.message(&target, &args, &mut out) {
        Ok(true) => 1,
        Ok(false) => 0,
        Err(e) => e.to_errno(),
    }
}

/// DM's `iterate_devices` callback for targets of type `T`.
///
/// # Safety
///
/// Called only by device-mapper, with the pointers it documents for `iterate_devices`.
unsafe extern "C" fn iterate_devices<T: TargetOps>(
    ti: *mut raw::dm_target,
    f: raw::iterate_devices_callout_fn,
    data: *mut ffi::c_void,
) -> ffi::c_int {
    // SAFETY: DM calls this on a constructed target.
    let (ctx, target) = unsafe { (context::<T>(ti), Target::from_raw(ti)) };
    let mut callout = DevCallout {
        ti,
        f,
        data,
        _p: PhantomData,
    };
    ctx.iterate_devices(&target, &mut callout)
}

/// DM's `io_hints` callback for targets of type `T`.
///
/// # Safety
///
/// Called only by device-mapper, with the pointers it documents for `io_hints`.
unsafe extern "C" fn io_hints<T: TargetOps>(
    ti: *mut raw::dm_target,
    limits: *mut bindings::queue_limits,
) {
    // SAFETY: DM calls this on a constructed target with limits it owns for the call.
    let (ctx, limits) = unsafe { (context::<T>(ti), &mut *limits) };
    ctx.io_hints(limits);
}

/// DM's `preresume` callback for targets of type `T`.
///
/// # Safety
///
/// Called only by device-mapper, with the pointers it documents for `preresume`.
unsafe extern "C" fn preresume<T: TargetOps>(ti: *mut raw::dm_target) -> ffi::c_int {
    // SAFETY: DM calls this on a constructed target.
    let ctx = unsafe { context::<T>(ti) };
    match ctx.preresume() {
        Ok(()) => 0,
        Err(e) => e.to_errno(),
    }
}

/// DM's `postsuspend` callback for targets of type `T`.
///
/// # Safety
///
/// Called only by device-mapper, with the pointers it documents for `postsuspend`.
unsafe extern "C" fn postsuspend<T: TargetOps>(ti: *mut raw::dm_target) {
    // SAFETY: DM calls this on a constructed target.
    let ctx = unsafe { context::<T>(ti) };
    ctx.postsuspend();
}

/// A registered target type; unregistered on drop.
pub(crate) struct Registration {
    tt: KBox<raw::target_type>,
}

// SAFETY: after registration DM owns the `target_type` list linkage; we only pass the
// pointer back to `dm_unregister_target`, which may be done from any thread.
unsafe impl Send for Registration {}
// SAFETY: `&Registration` gives no access to the target type.
unsafe impl Sync for Registration {}

impl Registration {
    pub(crate) fn new<T: TargetOps>(module: &'static ThisModule) -> Result<Self> {
        let mut tt = KBox::new(raw::target_type::default(), GFP_KERNEL)?;
        tt.name = T::NAME.as_char_ptr();
        tt.module = module.as_ptr();
        tt.version = T::VERSION;
        tt.ctr = Some(ctr::<T>);
        tt.dtr = Some(dtr::<T>);
        tt.map = Some(map::<T>);
        tt.end_io = Some(end_io::<T>);
        tt.status = Some(status::<T>);
        tt.message = Some(message::<T>);
        tt.iterate_devices = Some(iterate_devices::<T>);
        tt.io_hints = Some(io_hints::<T>);
        tt.preresume = Some(preresume::<T>);
        tt.postsuspend = Some(postsuspend::<T>);
        // SAFETY: `tt` is fully initialised and lives until `drop` unregisters it.
        let ret = unsafe { raw::dm_register_target(&mut *tt) };
        if ret != 0 {
            return Err(Error::from_errno(ret));
        }
        Ok(Self { tt })
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        // SAFETY: `self.tt` was registered in `new`; DM holds a module reference for
        // every live target, so none exists when the module is unloaded.
        unsafe { raw::dm_unregister_target(&mut *self.tt) };
    }
}
