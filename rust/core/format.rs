// SPDX-License-Identifier: GPL-2.0

//! The on-disk metadata format: a 4 KiB superblock at offset 0 of the metadata
//! device, then the dirty-track bitmap, one bit per track, in 4 KiB blocks.
//!
//! All integers are little endian. The superblock carries a CRC-32C over its 4096
//! bytes (with the CRC field zeroed). Bitmap block `i` (at byte
//! `BITMAP_OFFSET + i * 4096`) holds tracks `i * 32768 .. (i + 1) * 32768`, as 512
//! little-endian 64-bit words, track `t` being bit `t % 64` of word `t / 64`.
//! The activity log follows the bitmap (version 2; see [`super::activity`] and
//! [`super::geometry::al_offset`]). See `Documentation/rcopy.rst`, *On-disk format*.
//!
//! The superblock also holds the pair's name in clear ([`PairName`]): the table's
//! `pair_id` word that `pair_id` is the hash of, so a tool can say whose metadata
//! it is. Metadata made before names were stored has zeroes there: no name.

use super::crc32c::{crc32c, Crc32c};
use super::le::{get, put, u32_at, u64_at};
use super::proto::pair_id_from_name;
use super::table::MAX_PAIR_ID;
use core::fmt;

/// Magic at byte 0.
pub const META_MAGIC: [u8; 8] = *b"RCPYMETA";
/// Format version.
pub const META_VERSION: u32 = 2;
/// Superblock size in bytes.
pub const SB_BYTES: usize = 4096;
/// Byte offset of the bitmap on the metadata device.
pub const BITMAP_OFFSET: u64 = 4096;
/// Bitmap block size in bytes.
pub const BITMAP_BLOCK: usize = 4096;
/// 64-bit words per bitmap block.
pub const WORDS_PER_BLOCK: usize = BITMAP_BLOCK / 8;
/// Tracks per bitmap block.
pub const TRACKS_PER_BLOCK: u64 = (BITMAP_BLOCK as u64) * 8;

/// The initial full copy to the peer has finished: the bitmap alone says what the
/// peer lacks.
pub const SB_SYNCED: u32 = 1 << 0;
/// The initial full copy has started: tracks not yet copied have their bits set.
pub const SB_COPY_STARTED: u32 = 1 << 1;
/// This side's data is a usable, crash-consistent image (a secondary clears it while
/// a copy or resync writes tracks out of order).
pub const SB_CONSISTENT: u32 = 1 << 2;
/// This side was last the primary.
pub const SB_PRIMARY: u32 = 1 << 3;
/// The device was stopped cleanly (postsuspend): the activity log is empty and the
/// bitmap holds every track the peer may lack. Cleared while the device runs.
pub const SB_CLEAN: u32 = 1 << 4;
/// Every flag this version knows.
pub const SB_FLAGS: u32 = SB_SYNCED | SB_COPY_STARTED | SB_CONSISTENT | SB_PRIMARY | SB_CLEAN;

// Field offsets in the superblock.
const O_MAGIC: usize = 0;
const O_VERSION: usize = 8;
const O_FLAGS: usize = 12;
const O_PAIR_ID: usize = 16;
const O_NODE_ID: usize = 32;
const O_SIZE: usize = 40;
const O_TRACK: usize = 48;
const O_CRC: usize = 52;
const O_GEN_CURRENT: usize = 56;
const O_GEN_BITMAP: usize = 64;
const O_GEN_HISTORY: usize = 72;
const O_DIRTY: usize = 88;
const O_GEN_PEER_PREV: usize = 96;
const O_NAME: usize = 104;
/// Bytes of the superblock in use; the rest must be zero.
const USED: usize = O_NAME + NAME_BYTES;

/// Size of the superblock's name field: the longest `pair_id` word the table
/// accepts, so every name fits.
pub const NAME_BYTES: usize = MAX_PAIR_ID;

/// Whether `name` is a pair name the superblock can hold: 1 to [`NAME_BYTES`]
/// bytes of UTF-8 with no whitespace, control character (NUL among them) or
/// backslash, the words `rcopyctl` accepts for `--pair-id`. The table itself
/// takes any bytes: a word outside this set is kept as its hash only, unnamed.
pub fn pair_name_valid(name: &[u8]) -> bool {
    !name.is_empty()
        && name.len() <= NAME_BYTES
        && core::str::from_utf8(name).is_ok_and(|s| {
            !s.chars()
                .any(|c| c.is_whitespace() || c.is_control() || c == '\\')
        })
}

/// The pair's name as the superblock holds it: a valid name (see
/// [`pair_name_valid`]) NUL-padded to [`NAME_BYTES`], or all zeroes for none.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PairName {
    bytes: [u8; NAME_BYTES],
}

impl PairName {
    /// No name (metadata made before names were stored).
    pub const NONE: PairName = PairName {
        bytes: [0; NAME_BYTES],
    };

    /// The name `name`, if valid.
    pub fn new(name: &[u8]) -> Option<PairName> {
        if !pair_name_valid(name) {
            return None;
        }
        let mut bytes = [0u8; NAME_BYTES];
        bytes.get_mut(..name.len())?.copy_from_slice(name);
        Some(PairName { bytes })
    }

    /// Reads the on-disk field: a valid name NUL-padded with nothing after the
    /// first NUL, or all zeroes.
    fn from_field(bytes: [u8; NAME_BYTES]) -> Option<PairName> {
        let len = bytes.iter().position(|&c| c == 0).unwrap_or(NAME_BYTES);
        let (name, pad) = bytes.split_at(len);
        if pad.iter().any(|&c| c != 0) || (len != 0 && !pair_name_valid(name)) {
            return None;
        }
        Some(PairName { bytes })
    }

    /// The name's bytes (empty for none).
    pub fn as_bytes(&self) -> &[u8] {
        let len = self
            .bytes
            .iter()
            .position(|&c| c == 0)
            .unwrap_or(NAME_BYTES);
        self.bytes.get(..len).unwrap_or(&[])
    }

    /// The name (empty for none; a name is always UTF-8).
    pub fn as_str(&self) -> &str {
        core::str::from_utf8(self.as_bytes()).unwrap_or("")
    }

    /// Whether there is no name.
    pub fn is_empty(&self) -> bool {
        self.as_bytes().is_empty()
    }
}

impl fmt::Debug for PairName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

/// Why metadata was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetaError {
    /// No superblock: the first block is all zeroes.
    NotFormatted,
    /// Something that is not rcopy metadata.
    BadMagic,
    /// A format version this module does not know.
    BadVersion,
    /// The superblock's checksum does not match.
    BadChecksum,
    /// A field out of range, or unknown flags, or non-zero reserved bytes.
    BadField,
    /// The metadata was made for a device of another size.
    WrongSize,
    /// The metadata was made with another track size.
    WrongTrackSize,
    /// The metadata belongs to another pair.
    WrongPair,
}

impl MetaError {
    /// The reason, NUL-terminated for the kernel's `ti->error`.
    pub fn reason(&self) -> &'static core::ffi::CStr {
        match self {
            MetaError::NotFormatted => c"Metadata device is not formatted",
            MetaError::BadMagic => c"Metadata device holds something else (bad magic)",
            MetaError::BadVersion => c"Metadata format version not supported",
            MetaError::BadChecksum => c"Metadata superblock is corrupt (bad checksum)",
            MetaError::BadField => c"Metadata superblock is corrupt (bad field)",
            MetaError::WrongSize => c"Metadata was made for a device of another size",
            MetaError::WrongTrackSize => c"Metadata was made with another track size",
            MetaError::WrongPair => c"Metadata belongs to another pair",
        }
    }

    /// The reason as a string slice.
    pub fn message(&self) -> &'static str {
        self.reason().to_str().unwrap_or("")
    }
}

impl fmt::Display for MetaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

/// The superblock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Superblock {
    /// `SB_*` flags.
    pub flags: u32,
    /// The pair this metadata belongs to.
    pub pair_id: [u8; 16],
    /// The pair's name, whose hash `pair_id` is ([`PairName::NONE`] if unknown).
    pub name: PairName,
    /// This side's node id (random, made with the metadata).
    pub node_id: u64,
    /// Size of the replicated device in bytes.
    pub size_bytes: u64,
    /// Track size in bytes.
    pub track_size: u32,
    /// The generation of this side's data. A new one starts whenever this side
    /// writes while its peer cannot follow (see `Documentation/rcopy.rst`).
    pub gen_current: u64,
    /// The peer's generation: the peer holds that generation's data, and the
    /// bitmap marks every track where this side may differ from it. 0: no peer
    /// known yet. See [`super::gens`].
    pub gen_bitmap: u64,
    /// The peer's generation before it confirmed the current `gen_bitmap` (kept
    /// to recognise a shared ancestor). 0: none.
    pub gen_peer_prev: u64,
    /// Earlier generations, newest first.
    pub gen_history: [u64; 2],
    /// Set bits in the bitmap when the superblock was written (informational).
    pub dirty_tracks: u64,
}

impl Superblock {
    /// A new superblock for a device of `size_bytes` in `track_size` tracks, of
    /// pair `pair_id`, with no name.
    pub fn new(
        pair_id: [u8; 16],
        node_id: u64,
        gen: u64,
        size_bytes: u64,
        track_size: u32,
    ) -> Self {
        Superblock {
            flags: 0,
            pair_id,
            name: PairName::NONE,
            node_id,
            size_bytes,
            track_size,
            gen_current: gen,
            gen_bitmap: 0,
            gen_peer_prev: 0,
            gen_history: [0; 2],
            dirty_tracks: 0,
        }
    }

    /// A new superblock of the pair named `word` (the table's `pair_id` word):
    /// its hash as `pair_id`, and the word as the name if the superblock can hold
    /// it (see [`pair_name_valid`]; none otherwise).
    pub fn for_pair(word: &[u8], node_id: u64, gen: u64, size_bytes: u64, track_size: u32) -> Self {
        Superblock {
            name: PairName::new(word).unwrap_or(PairName::NONE),
            ..Superblock::new(
                pair_id_from_name(word),
                node_id,
                gen,
                size_bytes,
                track_size,
            )
        }
    }

    /// The 4096-byte block, with its checksum.
    pub fn encode(&self) -> [u8; SB_BYTES] {
        let mut b = [0u8; SB_BYTES];
        self.encode_into(&mut b);
        b
    }

    /// Writes the 4096-byte block, with its checksum, into `b` (kernel stacks are too
    /// small for [`Superblock::encode`]'s return value).
    pub fn encode_into(&self, b: &mut [u8; SB_BYTES]) {
        b.fill(0);
        put(b, O_MAGIC, &META_MAGIC);
        put(b, O_VERSION, &META_VERSION.to_le_bytes());
        put(b, O_FLAGS, &self.flags.to_le_bytes());
        put(b, O_PAIR_ID, &self.pair_id);
        put(b, O_NODE_ID, &self.node_id.to_le_bytes());
        put(b, O_SIZE, &self.size_bytes.to_le_bytes());
        put(b, O_TRACK, &self.track_size.to_le_bytes());
        put(b, O_GEN_CURRENT, &self.gen_current.to_le_bytes());
        put(b, O_GEN_BITMAP, &self.gen_bitmap.to_le_bytes());
        put(b, O_GEN_HISTORY, &self.gen_history[0].to_le_bytes());
        put(b, O_GEN_HISTORY + 8, &self.gen_history[1].to_le_bytes());
        put(b, O_DIRTY, &self.dirty_tracks.to_le_bytes());
        put(b, O_GEN_PEER_PREV, &self.gen_peer_prev.to_le_bytes());
        put(b, O_NAME, &self.name.bytes);
        let crc = crc32c(b);
        put(b, O_CRC, &crc.to_le_bytes());
    }

    /// Reads a superblock, checking magic, version, checksum and fields.
    pub fn decode(b: &[u8; SB_BYTES]) -> Result<Superblock, MetaError> {
        if b.iter().all(|&c| c == 0) {
            return Err(MetaError::NotFormatted);
        }
        if get::<8>(b, O_MAGIC) != META_MAGIC {
            return Err(MetaError::BadMagic);
        }
        if u32_at(b, O_VERSION) != META_VERSION {
            return Err(MetaError::BadVersion);
        }
        // The CRC covers the block with the CRC field zeroed.
        let crc = Crc32c::new()
            .update(b.get(..O_CRC).unwrap_or(&[]))
            .update(&[0; 4])
            .update(b.get(O_CRC + 4..).unwrap_or(&[]))
            .finish();
        if crc != u32_at(b, O_CRC) {
            return Err(MetaError::BadChecksum);
        }
        let name = PairName::from_field(get(b, O_NAME)).ok_or(MetaError::BadField)?;
        let sb = Superblock {
            flags: u32_at(b, O_FLAGS),
            pair_id: get(b, O_PAIR_ID),
            name,
            node_id: u64_at(b, O_NODE_ID),
            size_bytes: u64_at(b, O_SIZE),
            track_size: u32_at(b, O_TRACK),
            gen_current: u64_at(b, O_GEN_CURRENT),
            gen_bitmap: u64_at(b, O_GEN_BITMAP),
            gen_history: [u64_at(b, O_GEN_HISTORY), u64_at(b, O_GEN_HISTORY + 8)],
            dirty_tracks: u64_at(b, O_DIRTY),
            gen_peer_prev: u64_at(b, O_GEN_PEER_PREV),
        };
        let ts_ok = sb.track_size.is_power_of_two()
            && (super::table::MIN_TRACK_SIZE..=super::table::MAX_TRACK_SIZE)
                .contains(&sb.track_size);
        if sb.flags & !SB_FLAGS != 0
            || !ts_ok
            || sb.size_bytes % 512 != 0
            || sb.gen_current == 0
            || b.get(USED..).is_some_and(|r| r.iter().any(|&c| c != 0))
            // A name must be the one `pair_id` was made from. The block is
            // checksummed, so a mismatch is no bit rot but a writer's bug or a hand
            // edit, and a name that may name another pair is worse than none.
            || (!name.is_empty() && pair_id_from_name(name.as_bytes()) != sb.pair_id)
        {
            return Err(MetaError::BadField);
        }
        Ok(sb)
    }

    /// Checks the superblock against the table line.
    pub fn check(
        &self,
        size_bytes: u64,
        track_size: u32,
        pair_id: &[u8; 16],
    ) -> Result<(), MetaError> {
        if self.pair_id != *pair_id {
            return Err(MetaError::WrongPair);
        }
        if self.size_bytes != size_bytes {
            return Err(MetaError::WrongSize);
        }
        if self.track_size != track_size {
            return Err(MetaError::WrongTrackSize);
        }
        Ok(())
    }

    /// Starts a new generation `gen` (this side goes on writing what its peer
    /// will lack): the current one moves to history. The peer's generation
    /// (`gen_bitmap`) stays: the bitmap still counts from it.
    pub fn new_generation(&mut self, gen: u64) {
        self.gen_history = [self.gen_current, self.gen_history[0]];
        self.gen_current = gen;
    }

    /// The peer confirmed it holds generation `gen` (it adopted it when the copy or
    /// resync from this side completed); the generation it held before is kept in
    /// `gen_peer_prev` (for split-brain detection).
    pub fn peer_caught_up(&mut self, gen: u64) {
        if self.gen_bitmap != gen {
            self.gen_peer_prev = self.gen_bitmap;
            self.gen_bitmap = gen;
        }
    }

    /// The handshake found the peer at generation `peer` (from which the bitmap
    /// counts): records it.
    pub fn peer_is_at(&mut self, peer: u64) {
        self.gen_bitmap = peer;
        self.gen_peer_prev = 0;
    }

    /// This secondary now holds the primary's generation `gen` (a copy or
    /// resync from it completed and was flushed).
    pub fn adopt(&mut self, gen: u64) {
        if self.gen_current != gen {
            self.new_generation(gen);
        }
        self.gen_bitmap = 0;
        self.gen_peer_prev = 0;
    }

    /// This secondary becomes primary (takeover): its peer holds at most the
    /// generation it followed (plus what the peer's own bitmap marks), and
    /// writes from now on are a new generation `gen`.
    pub fn promote(&mut self, gen: u64) {
        self.gen_bitmap = self.gen_current;
        self.gen_peer_prev = 0;
        self.new_generation(gen);
    }

    /// The generation facts this side sends in its HELLO.
    pub fn gen_info(&self, flags: u32) -> super::gens::GenInfo {
        super::gens::GenInfo {
            current: self.gen_current,
            peer: self.gen_bitmap,
            peer_prev: self.gen_peer_prev,
            history: self.gen_history,
            flags,
        }
    }
}

/// Number of bitmap blocks for `tracks` tracks.
pub fn bitmap_blocks(tracks: u64) -> u64 {
    tracks.div_ceil(TRACKS_PER_BLOCK)
}

/// The bitmap block holding `track`.
pub fn block_of_track(track: u64) -> u64 {
    track / TRACKS_PER_BLOCK
}

/// Byte offset of bitmap block `block` on the metadata device.
pub fn block_offset(block: u64) -> u64 {
    BITMAP_OFFSET + block * BITMAP_BLOCK as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_errors() {
        let mut sb = Superblock::new([7; 16], 42, 0x1234, 1 << 30, 65536);
        sb.flags = SB_SYNCED | SB_CONSISTENT;
        let b = sb.encode();
        assert_eq!(Superblock::decode(&b), Ok(sb));
        assert_eq!(
            Superblock::decode(&[0; SB_BYTES]),
            Err(MetaError::NotFormatted)
        );
        let mut bad = b;
        bad[100] = 1;
        assert_eq!(Superblock::decode(&bad), Err(MetaError::BadChecksum));
        let mut bad = b;
        bad[0] = b'X';
        assert_eq!(Superblock::decode(&bad), Err(MetaError::BadMagic));
        assert_eq!(sb.check(1 << 30, 65536, &[7; 16]), Ok(()));
        assert_eq!(
            sb.check(1 << 29, 65536, &[7; 16]),
            Err(MetaError::WrongSize)
        );
        assert_eq!(
            sb.check(1 << 30, 4096, &[7; 16]),
            Err(MetaError::WrongTrackSize)
        );
        assert_eq!(
            sb.check(1 << 30, 65536, &[8; 16]),
            Err(MetaError::WrongPair)
        );
    }

    #[test]
    fn names() {
        let sb = Superblock::for_pair(b"r0", 1, 2, 1 << 30, 65536);
        assert_eq!(sb.pair_id, pair_id_from_name(b"r0"));
        assert_eq!(sb.name.as_str(), "r0");
        let b = sb.encode();
        assert_eq!(&b[O_NAME..O_NAME + 3], b"r0\0");
        assert_eq!(Superblock::decode(&b), Ok(sb));
        // A word the field cannot hold: the hash, no name.
        let sb = Superblock::for_pair(b"a b", 1, 2, 1 << 30, 65536);
        assert_eq!(
            (sb.pair_id, sb.name),
            (pair_id_from_name(b"a b"), PairName::NONE)
        );
        assert!(PairName::NONE.is_empty() && PairName::NONE.as_bytes().is_empty());
        assert!(PairName::new(&[b'p'; NAME_BYTES]).is_some());
        for bad in [
            &b""[..],
            &[b'p'; NAME_BYTES + 1],
            b"a\0b",
            b"a\\b",
            b"\xff",
            b"a\tb",
        ] {
            assert_eq!(PairName::new(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn generations() {
        let mut sb = Superblock::new([0; 16], 1, 10, 4096, 4096);
        sb.peer_is_at(10);
        sb.new_generation(11);
        assert_eq!(
            (sb.gen_current, sb.gen_bitmap, sb.gen_history),
            (11, 10, [10, 0])
        );
        sb.new_generation(12);
        assert_eq!(
            (sb.gen_current, sb.gen_bitmap, sb.gen_history),
            (12, 10, [11, 10])
        );
        sb.peer_caught_up(12);
        assert_eq!((sb.gen_bitmap, sb.gen_peer_prev), (12, 10));
        sb.adopt(20);
        assert_eq!(
            (sb.gen_current, sb.gen_bitmap, sb.gen_history),
            (20, 0, [12, 11])
        );
        sb.promote(21);
        assert_eq!(
            (sb.gen_current, sb.gen_bitmap, sb.gen_history),
            (21, 20, [20, 12])
        );
        assert_eq!(bitmap_blocks(32769), 2);
        assert_eq!(block_offset(block_of_track(32768)), 8192);
    }
}
