// SPDX-License-Identifier: GPL-2.0

//! The local split copy (JP2000-132343 embodiment 7): its state machine, its three
//! track bitmaps and its on-disk format.
//!
//! A table option names a second local device, the *copy*. Its first `data_bytes`
//! hold the image; its metadata sits after that, at a 4 KiB boundary:
//!
//! ```text
//! [image ... ][header copy 0][header copy 1][CREATE][SPLIT][UPDATE]
//! ```
//!
//! Each bitmap holds one bit per track (bit `t % 8` of byte `t / 8`), padded to
//! whole 4 KiB blocks. In memory the three bitmaps are one buffer laid out exactly
//! as on disk, so a changed bit is made durable by writing the block that holds it.
//!
//! Meaning of the bits (1 = the copy may differ from the original there):
//! - CREATE: while forming or formed, the track was written since the copy last
//!   took it; while splitting, the copy still has to take it (as it was at the split).
//! - SPLIT: the track was written since the split (or since its last refresh).
//! - UPDATE: during a refresh of a range, the track was written since the refresh
//!   was asked for; folded into SPLIT when the refresh ends.
//!
//! Every bit is set durably *before* the write it describes is let down, and
//! cleared durably only *after* the copy it stands for is durable. So the bitmaps
//! on disk are always a superset of the truth, and a crash anywhere loses nothing:
//! see [`write_work`] and `Documentation/rcopy-snapshots.rst`, *Local split copy*.

use super::crc32c::crc32c;
use super::le::{put, u32_at, u64_at};
use core::ops::Range;

/// Header and bitmap block size.
pub const BLOCK: usize = 4096;
/// Header magic.
pub const MAGIC: [u8; 8] = *b"RCPYSPLT";
/// On-disk format version.
pub const VERSION: u32 = 1;

const O_MAGIC: usize = 0;
const O_VERSION: usize = 8;
const O_STATE: usize = 12;
const O_SEQ: usize = 16;
const O_DATA: usize = 24;
const O_TRACK: usize = 32;
const O_RSTART: usize = 40;
const O_REND: usize = 48;
const O_SPLITS: usize = 56;
const O_COPIED: usize = 64;
const O_SPLIT_AT: usize = 72;
const O_CRC: usize = 80;
const USED: usize = 84;

/// Where the pair of copy and original stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SplitState {
    /// The copy is being filled (every CREATE track is copied, then formed).
    Forming,
    /// The copy equals the original except the CREATE tracks; nothing is copied
    /// until a split (the patent's choice, its gap 17: a formed pair costs one
    /// durable bit per newly written track and no data).
    Formed,
    /// A split was asked for: the CREATE tracks are copied as they were at the
    /// request, each before its first overwrite.
    Splitting,
    /// The copy is frozen: the original's image at the split (plus refreshed ranges).
    Split,
}

impl SplitState {
    /// The word shown in the status line.
    pub fn as_str(self) -> &'static str {
        match self {
            SplitState::Forming => "forming",
            SplitState::Formed => "formed",
            SplitState::Splitting => "splitting",
            SplitState::Split => "split",
        }
    }

    fn code(self) -> u32 {
        match self {
            SplitState::Forming => 1,
            SplitState::Formed => 2,
            SplitState::Splitting => 3,
            SplitState::Split => 4,
        }
    }

    fn from_code(c: u32) -> Option<Self> {
        Some(match c {
            1 => SplitState::Forming,
            2 => SplitState::Formed,
            3 => SplitState::Splitting,
            4 => SplitState::Split,
            _ => return None,
        })
    }
}

/// One of the three bitmaps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Map {
    /// Written since the copy took the track (see the module text).
    Create = 0,
    /// Written since the split.
    Split = 1,
    /// Written since a refresh of its range was asked for.
    Update = 2,
}

/// The state plus the range a refresh is working on (tracks, end exclusive).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mode {
    /// The state.
    pub state: SplitState,
    /// A refresh in progress (only while split).
    pub refresh: Option<Range<u64>>,
}

impl Mode {
    /// The word for the status line: the state, or `refreshing`.
    pub fn as_str(&self) -> &'static str {
        if self.refresh.is_some() {
            "refreshing"
        } else {
            self.state.as_str()
        }
    }

    /// Whether a refresh covers track `t`.
    pub fn refreshing(&self, t: u64) -> bool {
        self.refresh.as_ref().is_some_and(|r| r.contains(&t))
    }

    /// Whether a split may start now (from forming or formed; a split supersedes
    /// the initial copy, its gap 18).
    pub fn can_split(&self) -> bool {
        matches!(self.state, SplitState::Forming | SplitState::Formed)
    }

    /// Whether a rejoin or a refresh may start now (split, no refresh running).
    pub fn can_rejoin(&self) -> bool {
        self.state == SplitState::Split && self.refresh.is_none()
    }

    /// The bitmap and track range the background copier works through now, if any.
    pub fn copy_work(&self, tracks: u64) -> Option<(Map, Range<u64>)> {
        match (self.state, &self.refresh) {
            (SplitState::Forming | SplitState::Splitting, _) => Some((Map::Create, 0..tracks)),
            (SplitState::Split, Some(r)) => Some((Map::Split, r.clone())),
            _ => None,
        }
    }

    /// The mode once the copier has no more work: forming ends formed, splitting
    /// ends split, a refresh ends (the caller folds UPDATE into SPLIT first).
    pub fn settled(&self) -> Mode {
        let state = match self.state {
            SplitState::Forming => SplitState::Formed,
            SplitState::Splitting => SplitState::Split,
            s => s,
        };
        Mode {
            state,
            refresh: None,
        }
    }
}

/// What a write to one track needs before it may go down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Work {
    /// Copy the track's old data to the copy first, then clear this bitmap's bit.
    pub cow_from: Option<Map>,
    /// Then this bitmap's bit must be set (durably).
    pub mark: Map,
}

/// What a write to track `t` needs (embodiment 7, steps 1900-1912, with the
/// digest's decisions 15 and 16):
/// - forming, formed: mark CREATE;
/// - splitting: if CREATE is set, copy the old track and clear it; mark SPLIT;
/// - split, in a range being refreshed: if SPLIT is set, copy the old track and
///   clear it; mark UPDATE;
/// - split elsewhere: mark SPLIT.
pub fn write_work(mode: &Mode, l: &Layout, maps: &[u8], t: u64) -> Work {
    match mode.state {
        SplitState::Forming | SplitState::Formed => Work {
            cow_from: None,
            mark: Map::Create,
        },
        SplitState::Splitting => Work {
            cow_from: l.get(maps, Map::Create, t).then_some(Map::Create),
            mark: Map::Split,
        },
        SplitState::Split if mode.refreshing(t) => Work {
            cow_from: l.get(maps, Map::Split, t).then_some(Map::Split),
            mark: Map::Update,
        },
        SplitState::Split => Work {
            cow_from: None,
            mark: Map::Split,
        },
    }
}

/// Whether a write to track `t` may go down at once: it needs no copy and its bit
/// is already set (so nothing needs to be made durable first).
pub fn admits(mode: &Mode, l: &Layout, maps: &[u8], t: u64) -> bool {
    let w = write_work(mode, l, maps, t);
    w.cow_from.is_none() && l.get(maps, w.mark, t)
}

/// Where things are on the copy device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// Tracks of the image.
    pub tracks: u64,
    /// Bytes of one bitmap, padded to whole blocks.
    pub map_bytes: u64,
    /// Byte offset of the first header copy (the image's size, rounded up to a block).
    pub start: u64,
}

impl Layout {
    /// The layout for an image of `data_bytes` at `track_size`; `None` for a zero
    /// track size or sizes that overflow.
    pub fn new(data_bytes: u64, track_size: u32) -> Option<Layout> {
        if track_size == 0 {
            return None;
        }
        let tracks = data_bytes.div_ceil(u64::from(track_size));
        let map_bytes = tracks.div_ceil(8).div_ceil(BLOCK as u64) * BLOCK as u64;
        let start = data_bytes
            .div_ceil(BLOCK as u64)
            .checked_mul(BLOCK as u64)?;
        let l = Layout {
            tracks,
            map_bytes: map_bytes.max(BLOCK as u64),
            start,
        };
        l.device_bytes()?;
        Some(l)
    }

    /// Byte offset of header copy `i` (0 or 1).
    pub fn header_offset(&self, i: usize) -> u64 {
        self.start + (i as u64 & 1) * BLOCK as u64
    }

    /// Byte offset of the bitmaps (CREATE, SPLIT, UPDATE, each `map_bytes`).
    pub fn maps_offset(&self) -> u64 {
        self.start + 2 * BLOCK as u64
    }

    /// Length of the in-memory bitmaps buffer (all three).
    pub fn maps_len(&self) -> u64 {
        3 * self.map_bytes
    }

    /// The size the copy device needs (`None` past `u64`; [`Layout::new`]
    /// refuses such a layout, so the offsets above never overflow).
    pub fn device_bytes(&self) -> Option<u64> {
        self.start
            .checked_add(2 * BLOCK as u64)?
            .checked_add(self.map_bytes.checked_mul(3)?)
    }

    /// Where bit `t` of bitmap `m` is in the bitmaps buffer: byte index and mask
    /// (`None` past the last track).
    pub fn pos(&self, m: Map, t: u64) -> Option<(usize, u8)> {
        if t >= self.tracks {
            return None;
        }
        let byte = (m as u64) * self.map_bytes + t / 8;
        Some((usize::try_from(byte).ok()?, 1u8 << (t % 8)))
    }

    /// Bit `t` of bitmap `m` (false out of range).
    pub fn get(&self, maps: &[u8], m: Map, t: u64) -> bool {
        self.pos(m, t)
            .and_then(|(b, mask)| maps.get(b).map(|v| v & mask != 0))
            .unwrap_or(false)
    }

    /// Sets or clears bit `t` of bitmap `m`; returns whether it changed.
    pub fn put(&self, maps: &mut [u8], m: Map, t: u64, v: bool) -> bool {
        let Some((b, mask)) = self.pos(m, t) else {
            return false;
        };
        let Some(byte) = maps.get_mut(b) else {
            return false;
        };
        let old = *byte & mask != 0;
        if v {
            *byte |= mask;
        } else {
            *byte &= !mask;
        }
        old != v
    }

    /// The block (index into the buffer, in [`BLOCK`]s) that holds bit `t` of `m`.
    pub fn block_of(&self, m: Map, t: u64) -> usize {
        self.pos(m, t).map_or(0, |(b, _)| b / BLOCK)
    }

    /// The blocks of bitmap `m`.
    pub fn blocks(&self, m: Map) -> Range<usize> {
        let per = (self.map_bytes / BLOCK as u64) as usize;
        let first = m as usize * per;
        first..first + per
    }

    /// Set bits of `m` in `range`.
    pub fn count(&self, maps: &[u8], m: Map, range: Range<u64>) -> u64 {
        range.filter(|&t| self.get(maps, m, t)).count() as u64
    }

    /// Set bits of `m` over the whole image.
    pub fn count_all(&self, maps: &[u8], m: Map) -> u64 {
        let base = (m as u64 * self.map_bytes) as usize;
        let used = self.tracks.div_ceil(8) as usize;
        let full = maps
            .get(base..base + used)
            .unwrap_or(&[])
            .iter()
            .map(|b| u64::from(b.count_ones()))
            .sum::<u64>();
        // Bits past the last track are never set (`put` refuses them).
        full
    }

    /// The first set bit of `m` in `range`.
    pub fn next_set(&self, maps: &[u8], m: Map, range: Range<u64>) -> Option<u64> {
        let mut t = range.start;
        let end = range.end.min(self.tracks);
        while t < end {
            // Skip a whole zero byte at once.
            if t % 8 == 0 {
                if let Some((b, _)) = self.pos(m, t) {
                    if maps.get(b) == Some(&0) {
                        t += 8;
                        continue;
                    }
                }
            }
            if self.get(maps, m, t) {
                return Some(t);
            }
            t += 1;
        }
        None
    }

    /// Clears every bit past the last track, in all three bitmaps.
    pub fn clear_tail(&self, maps: &mut [u8]) {
        for m in [Map::Create, Map::Split, Map::Update] {
            let base = (m as u64 * self.map_bytes) as usize;
            let end = base + self.map_bytes as usize;
            let first = self.tracks / 8;
            if first >= self.map_bytes {
                continue;
            }
            if let Some(b) = maps.get_mut(base + first as usize) {
                *b &= ((1u16 << (self.tracks % 8)) - 1) as u8;
            }
            for b in maps
                .get_mut(base + first as usize + 1..end)
                .into_iter()
                .flatten()
            {
                *b = 0;
            }
        }
    }

    /// Every bit of CREATE set (the state of a new copy: it must take everything).
    pub fn fill_create(&self, maps: &mut [u8]) {
        for t in 0..self.tracks {
            self.put(maps, Map::Create, t, true);
        }
    }

    /// A rejoin: [`Layout::create_changed`], then [`Layout::clear_changed`]. The
    /// kernel writes CREATE between the two (and the state), so it calls them
    /// apart.
    pub fn rejoin(&self, maps: &mut [u8]) {
        self.create_changed(maps);
        self.clear_changed(maps);
    }

    /// The first half of a rejoin: CREATE |= SPLIT | UPDATE.
    pub fn create_changed(&self, maps: &mut [u8]) {
        for t in 0..self.tracks {
            if self.get(maps, Map::Split, t) || self.get(maps, Map::Update, t) {
                self.put(maps, Map::Create, t, true);
            }
        }
    }

    /// The second half of a rejoin: SPLIT and UPDATE cleared.
    pub fn clear_changed(&self, maps: &mut [u8]) {
        for t in 0..self.tracks {
            self.put(maps, Map::Split, t, false);
            self.put(maps, Map::Update, t, false);
        }
    }

    /// The end of a refresh: SPLIT |= UPDATE, then UPDATE cleared (over the whole
    /// image: UPDATE is only ever set inside the range).
    pub fn fold_update(&self, maps: &mut [u8]) {
        for t in 0..self.tracks {
            if self.get(maps, Map::Update, t) {
                self.put(maps, Map::Split, t, true);
                self.put(maps, Map::Update, t, false);
            }
        }
    }

    /// The tracks that sectors `start .. start + nr` touch, at `track_size` (none
    /// for `nr` 0).
    pub fn tracks_of(&self, start: u64, nr: u64, track_size: u32) -> Range<u64> {
        if nr == 0 {
            return 0..0;
        }
        let ts = u64::from(track_size.max(512));
        let a = start.saturating_mul(512) / ts;
        let b = start.saturating_add(nr).saturating_mul(512).div_ceil(ts);
        a.min(self.tracks)..b.min(self.tracks)
    }
}

/// Why a header was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SplitError {
    /// All zero: a device never used as a split copy.
    Blank,
    /// Not a split copy header (magic or version).
    Foreign,
    /// The CRC does not match (a torn write).
    Torn,
    /// A field out of range.
    BadField,
    /// A header of a copy of another size or track size.
    Geometry,
}

/// The header: the state, the geometry it was made for, counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Write sequence: the copy with the higher one is current.
    pub seq: u64,
    /// State and refresh range.
    pub mode: Mode,
    /// Image size in bytes.
    pub data_bytes: u64,
    /// Track size in bytes.
    pub track_size: u32,
    /// Splits taken so far.
    pub splits: u64,
    /// Tracks copied so far (every copy: initial, split, refresh, rejoin).
    pub copied: u64,
    /// Wall-clock time of the last split request, ns since the epoch (0: none).
    pub split_at_ns: u64,
}

impl Header {
    /// A new copy: forming, sequence 1.
    pub fn new(data_bytes: u64, track_size: u32) -> Header {
        Header {
            seq: 1,
            mode: Mode {
                state: SplitState::Forming,
                refresh: None,
            },
            data_bytes,
            track_size,
            splits: 0,
            copied: 0,
            split_at_ns: 0,
        }
    }

    /// Writes the block, with its CRC, into `b`.
    pub fn encode_into(&self, b: &mut [u8; BLOCK]) {
        b.fill(0);
        put(b, O_MAGIC, &MAGIC);
        put(b, O_VERSION, &VERSION.to_le_bytes());
        put(b, O_STATE, &self.mode.state.code().to_le_bytes());
        put(b, O_SEQ, &self.seq.to_le_bytes());
        put(b, O_DATA, &self.data_bytes.to_le_bytes());
        put(b, O_TRACK, &self.track_size.to_le_bytes());
        let (rs, re) = self
            .mode
            .refresh
            .as_ref()
            .map_or((0, 0), |r| (r.start, r.end));
        put(b, O_RSTART, &rs.to_le_bytes());
        put(b, O_REND, &re.to_le_bytes());
        put(b, O_SPLITS, &self.splits.to_le_bytes());
        put(b, O_COPIED, &self.copied.to_le_bytes());
        put(b, O_SPLIT_AT, &self.split_at_ns.to_le_bytes());
        let crc = crc32c(b.get(..O_CRC).unwrap_or(&[]));
        put(b, O_CRC, &crc.to_le_bytes());
    }

    /// Reads a header copy for an image of `data_bytes` at `track_size`.
    pub fn decode(b: &[u8; BLOCK], data_bytes: u64, track_size: u32) -> Result<Header, SplitError> {
        if b.iter().all(|&v| v == 0) {
            return Err(SplitError::Blank);
        }
        if b.get(..8) != Some(&MAGIC[..]) || u32_at(b, O_VERSION) != VERSION {
            return Err(SplitError::Foreign);
        }
        if crc32c(b.get(..O_CRC).unwrap_or(&[])) != u32_at(b, O_CRC) {
            return Err(SplitError::Torn);
        }
        // Bytes 36..40 (after the track size) and everything past the CRC are
        // unused: zero.
        if b.get(USED..).is_some_and(|r| r.iter().any(|&v| v != 0))
            || b.get(O_TRACK + 4..O_RSTART)
                .is_some_and(|r| r.iter().any(|&v| v != 0))
        {
            return Err(SplitError::BadField);
        }
        let state = SplitState::from_code(u32_at(b, O_STATE)).ok_or(SplitError::BadField)?;
        let (rs, re) = (u64_at(b, O_RSTART), u64_at(b, O_REND));
        let refresh = match (state, rs, re) {
            (_, 0, 0) => None,
            (SplitState::Split, s, e) if s < e => Some(s..e),
            _ => return Err(SplitError::BadField),
        };
        let h = Header {
            seq: u64_at(b, O_SEQ),
            mode: Mode { state, refresh },
            data_bytes: u64_at(b, O_DATA),
            track_size: u32_at(b, O_TRACK),
            splits: u64_at(b, O_SPLITS),
            copied: u64_at(b, O_COPIED),
            split_at_ns: u64_at(b, O_SPLIT_AT),
        };
        if h.data_bytes != data_bytes || h.track_size != track_size {
            return Err(SplitError::Geometry);
        }
        let tracks = data_bytes.div_ceil(u64::from(track_size.max(1)));
        if h.mode.refresh.as_ref().is_some_and(|r| r.end > tracks) {
            return Err(SplitError::BadField);
        }
        Ok(h)
    }
}

/// What loading the two header copies found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Loaded {
    /// Both copies blank: a new copy device, to be formatted.
    Blank,
    /// The current header (the valid copy with the higher sequence).
    Header(Header),
}

/// Chooses between the two header copies. A torn copy falls back to the other;
/// a foreign or mismatched one refuses the device (it is not ours to overwrite).
pub fn pick(
    a: Result<Header, SplitError>,
    b: Result<Header, SplitError>,
) -> Result<Loaded, SplitError> {
    for r in [&a, &b] {
        if let Err(e @ (SplitError::Foreign | SplitError::BadField | SplitError::Geometry)) = r {
            return Err(*e);
        }
    }
    match (a, b) {
        (Ok(x), Ok(y)) => Ok(Loaded::Header(if y.seq > x.seq { y } else { x })),
        (Ok(x), Err(_)) | (Err(_), Ok(x)) => Ok(Loaded::Header(x)),
        // Blank and torn: the first format write tore; nothing was ever recorded.
        (Err(SplitError::Blank), Err(_)) | (Err(_), Err(SplitError::Blank)) => Ok(Loaded::Blank),
        _ => Err(SplitError::Torn),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_places_metadata_after_the_image() {
        let l = Layout::new(64 << 20, 65536).unwrap_or(Layout {
            tracks: 0,
            map_bytes: 0,
            start: 0,
        });
        assert_eq!(l.tracks, 1024);
        assert_eq!(l.map_bytes, 4096);
        assert_eq!(l.start, 64 << 20);
        assert_eq!(l.device_bytes(), Some((64 << 20) + 2 * 4096 + 3 * 4096));
        assert_eq!(l.blocks(Map::Split), 1..2);
        assert_eq!(l.block_of(Map::Update, 1023), 2);
    }

    #[test]
    fn clear_tail_keeps_every_track_and_nothing_else() {
        for tracks in [1u64, 7, 8, 9, 32768] {
            let l = Layout::new(tracks * 4096, 4096).unwrap_or(Layout {
                tracks: 0,
                map_bytes: 0,
                start: 0,
            });
            let mut maps = [0xffu8; 3 * 4096];
            l.clear_tail(&mut maps);
            for m in [Map::Create, Map::Split, Map::Update] {
                assert_eq!(l.count_all(&maps, m), tracks, "{tracks}");
                let total: u32 = maps[l.blocks(m).start * BLOCK..l.blocks(m).end * BLOCK]
                    .iter()
                    .map(|b| b.count_ones())
                    .sum();
                assert_eq!(u64::from(total), tracks, "{tracks}");
            }
        }
    }

    #[test]
    fn header_round_trips_and_refuses_damage() {
        let mut h = Header::new(1 << 30, 65536);
        h.seq = 7;
        h.mode = Mode {
            state: SplitState::Split,
            refresh: Some(3..9),
        };
        h.copied = 12;
        let mut b = [0u8; BLOCK];
        h.encode_into(&mut b);
        assert_eq!(Header::decode(&b, 1 << 30, 65536), Ok(h.clone()));
        assert_eq!(
            Header::decode(&b, 1 << 29, 65536),
            Err(SplitError::Geometry)
        );
        b[20] ^= 1;
        assert_eq!(Header::decode(&b, 1 << 30, 65536), Err(SplitError::Torn));
        assert_eq!(
            Header::decode(&[0; BLOCK], 1 << 30, 65536),
            Err(SplitError::Blank)
        );
    }

    #[test]
    fn pick_prefers_the_newer_valid_copy() {
        let mut a = Header::new(4096, 4096);
        let mut b = a.clone();
        a.seq = 3;
        b.seq = 4;
        assert_eq!(pick(Ok(a.clone()), Ok(b.clone())), Ok(Loaded::Header(b)));
        assert_eq!(
            pick(Ok(a.clone()), Err(SplitError::Torn)),
            Ok(Loaded::Header(a.clone()))
        );
        assert_eq!(
            pick(Err(SplitError::Blank), Err(SplitError::Blank)),
            Ok(Loaded::Blank)
        );
        assert_eq!(
            pick(Ok(a), Err(SplitError::Foreign)),
            Err(SplitError::Foreign)
        );
    }
}
