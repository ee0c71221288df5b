//! Command-line syntax.

use std::time::Duration;

use clap::{ArgGroup, Args, Parser, Subcommand};
use rcopy_core::status::State;

use crate::dm_ioctl::DM_NAME_LEN;
use crate::size::{parse_size_arg, Size};
use crate::suggest;

/// Set up and inspect rcopy replicated block devices.
#[derive(Debug, Parser)]
#[command(name = "rcopyctl", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create an rcopy device over a data device and a metadata device.
    ///
    /// Without --role the device is standalone (simplex). With --role it is
    /// one side of a replicated pair; `rcopyctl pair` is the same with --role
    /// required.
    Create {
        #[command(flatten)]
        dev: DeviceArgs,
        /// Make the device one side of a replicated pair: primary or secondary.
        #[arg(long, value_name = "ROLE")]
        role: Option<String>,
        #[command(flatten)]
        link: LinkArgs,
    },
    /// Set up one side of a replicated pair (create with --role required).
    ///
    /// Run it on the secondary first (it listens on --local), then on the
    /// primary (it connects to --peer). Both sides need the same secret, the
    /// same --pair-id and --track-size, and data devices of the same size.
    /// The primary then copies its whole device to the secondary; wait for
    /// the end of that copy with `rcopyctl wait NAME --state duplex`.
    #[command(after_help = PAIR_EXAMPLES)]
    Pair {
        #[command(flatten)]
        dev: DeviceArgs,
        /// This side's role: primary (takes writes, ships them to --peer) or
        /// secondary (listens on --local, applies the primary's writes).
        #[arg(long, value_name = "ROLE")]
        role: String,
        #[command(flatten)]
        link: LinkArgs,
    },
    /// Write fresh rcopy metadata to a metadata device.
    ///
    /// Writes a superblock (the data device's size, the track size, the pair
    /// id and its word as the pair's name, a new random node id and
    /// generation, no flags) and zeroes the
    /// dirty-track bitmap. --track-size and --pair-id must be those of the
    /// table that will use the device. Refuses a device that already holds
    /// rcopy metadata, or that is in use, unless --force is given.
    #[command(name = "create-md")]
    CreateMd {
        /// The metadata device (a regular file, an image, is accepted too).
        #[arg(value_name = "META_DEV", value_parser = parse_path)]
        meta: String,
        /// The data device the metadata is for: its size is recorded.
        #[arg(long, value_name = "DATA_DEV", value_parser = parse_path)]
        data: String,
        /// Dirty-track unit: a power of two from 4K to 16M (bytes, or K/M)
        /// [default: 64K].
        #[arg(long, value_name = "BYTES", value_parser = parse_size_arg)]
        track_size: Option<Size>,
        /// The pair's identity, as in the table (1 to 64 bytes)
        /// [default: default].
        #[arg(long, value_name = "WORD")]
        pair_id: Option<String>,
        /// Overwrite existing rcopy metadata or another known signature
        /// (a filesystem, LVM, md RAID, swap), and write to a device in use.
        #[arg(long)]
        force: bool,
    },
    /// Show the rcopy metadata on a metadata device.
    ///
    /// Prints the superblock and counts the dirty tracks in the bitmap.
    /// Exits 1 if the device holds no valid rcopy metadata.
    #[command(name = "inspect-md")]
    InspectMd {
        /// The metadata device (or an image of one).
        #[arg(value_name = "META_DEV", value_parser = parse_path)]
        meta: String,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Format a snapshot store (exception store) for a data device.
    ///
    /// A secondary whose table names the store (`snap_store`) keeps there the
    /// old contents of the tracks it overwrites after a snapshot. The store is
    /// made for one rcopy device: its size (--data, the data device, or
    /// --size, the rcopy device's size), --track-size and --pair-id must be
    /// those of the table. Zeroes the record area and writes the superblock;
    /// prints the number of slots (one track each) and the capacity. Refuses a
    /// device that holds a store, rcopy metadata or another known signature
    /// (a filesystem, LVM, md RAID, swap), or that is in use, unless --force.
    #[command(name = "create-store", group(
        ArgGroup::new("device_size").required(true).args(["data", "size"])
    ))]
    CreateStore {
        /// The store device (a regular file, an image, is accepted too).
        #[arg(value_name = "STORE_DEV", value_parser = parse_path)]
        store: String,
        /// The data device the store is for: its size is recorded.
        #[arg(long, value_name = "DATA_DEV", value_parser = parse_path)]
        data: Option<String>,
        /// The rcopy device's size instead of --data (bytes, or K/M/G/T; whole
        /// sectors).
        #[arg(long, value_name = "SIZE", value_parser = parse_size_arg)]
        size: Option<Size>,
        /// The table's track size: a power of two from 4K to 16M (bytes, or
        /// K/M) [default: 64K]. It is also the slot size.
        #[arg(long, value_name = "BYTES", value_parser = parse_size_arg)]
        track_size: Option<Size>,
        /// The pair's identity, as in the table (1 to 64 bytes)
        /// [default: default].
        #[arg(long, value_name = "WORD")]
        pair_id: Option<String>,
        /// Overwrite an existing store or another known signature, and write
        /// to a device in use.
        #[arg(long)]
        force: bool,
    },
    /// Show a snapshot store: its superblock copies, slots and snapshot table.
    ///
    /// Exits 1 if the device holds no usable snapshot store.
    #[command(name = "inspect-store")]
    InspectStore {
        /// The store device (or an image of one).
        #[arg(value_name = "STORE_DEV", value_parser = parse_path)]
        store: String,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Remove an rcopy device.
    Remove {
        /// Name of the device.
        #[arg(value_parser = parse_name)]
        name: String,
    },
    /// Show the status of one rcopy device, or of all of them.
    ///
    /// One line per device by default; --verbose for the full view.
    Status {
        /// Name of the device (default: every rcopy device).
        #[arg(value_parser = parse_name)]
        name: Option<String>,
        /// Print JSON: always an array of objects, each with a schema_version.
        #[arg(long, conflicts_with = "verbose")]
        json: bool,
        /// Show every field, one per line.
        #[arg(long, short)]
        verbose: bool,
        /// Print nothing; exit 0 if every device is healthy, 1 if one is
        /// degraded (disconnected, copying, resyncing), 2 if one is
        /// inconsistent or failed, 4 if the status cannot be read.
        #[arg(long, conflicts_with_all = ["json", "verbose"])]
        check: bool,
        /// Redraw every second, with a progress bar, rate and ETA for a
        /// running copy or resync, until interrupted.
        #[arg(long, conflicts_with_all = ["json", "check"])]
        watch: bool,
    },
    /// Print Prometheus text-format metrics for every rcopy device (or NAME),
    /// for node_exporter's textfile collector.
    Metrics {
        /// Name of the device (default: every rcopy device).
        #[arg(value_parser = parse_name)]
        name: Option<String>,
    },
    /// Print state changes as they happen, one line each (JSON Lines with
    /// --json): `exists` for each device at the start, then `create`,
    /// `change` (the fields that changed, old->new) and `destroy`.
    Events {
        /// Name of the device (default: every rcopy device).
        #[arg(value_parser = parse_name)]
        name: Option<String>,
        /// One JSON object per line, each with a schema_version.
        #[arg(long)]
        json: bool,
        /// Print the current state (`exists` events) and exit.
        #[arg(long)]
        now: bool,
    },
    /// Bring resources up from their resource files: create each device
    /// with this host's section. A device already up with the same table is
    /// left alone.
    Up(ResourceArgs),
    /// Take resources down: remove their devices.
    Down(ResourceArgs),
    /// Make running devices match their resource files: a changed table is
    /// loaded and swapped in (a DM table reload); an unchanged one is not
    /// touched; a device that is not up is brought up.
    Adjust(ResourceArgs),
    /// Wait until a device reaches a state (polls its status every 200 ms).
    ///
    /// Exits 0 once the state is reached, 3 on timeout, 1 on an error (no
    /// such device).
    Wait {
        /// Name of the device.
        #[arg(value_parser = parse_name)]
        name: String,
        /// The state to wait for: simplex, copying, duplex, suspended,
        /// resyncing or swapped.
        #[arg(long, value_name = "STATE", value_parser = parse_state)]
        state: State,
        /// Give up after this many seconds (default: wait for ever).
        #[arg(long, value_name = "SECS")]
        timeout: Option<u64>,
    },
    /// Stop replicating (primary only): disconnect from the peer and mark every
    /// write in the bitmap until `connect`. I/O goes on. (Old name: suspend.)
    #[command(alias = "suspend")]
    Disconnect {
        /// Name of the device.
        #[arg(value_parser = parse_name)]
        name: String,
    },
    /// Replicate again after `disconnect` (primary only): reconnect and resync
    /// only the marked tracks. (Old name: resume.)
    #[command(alias = "resume")]
    Connect {
        /// Name of the device.
        #[arg(value_parser = parse_name)]
        name: String,
    },
    /// Make this secondary the primary (takeover; run it on the secondary).
    ///
    /// Refuses a secondary that is not consistent (its data is not a usable
    /// image) or that is still connected to its primary (demote that one
    /// first), unless --force is given. Then suspends the device, reloads its
    /// table with role primary (the kernel starts a new generation) and
    /// resumes it; prints the new generation. The new primary connects to the
    /// table's peer address, or --peer.
    #[command(after_help = TAKEOVER_EXAMPLES)]
    Promote {
        /// Name of the device.
        #[arg(value_parser = parse_name)]
        name: String,
        /// Promote although this side is not consistent, or its primary is
        /// still connected (the two sides then diverge: split brain).
        #[arg(long)]
        force: bool,
        /// First roll this side back to a snapshot (while suspended): the
        /// newest pre-resync one (flag before-resync) without a value, else the
        /// snapshot ID or NAME. For a disaster during a copy or resync: the
        /// rolled-back image is consistent, so the promotion is not refused.
        /// Put it after NAME (or write --rollback=ID).
        #[arg(long, value_name = "ID|NAME", num_args = 0..=1, value_parser = crate::snap::parse_which)]
        rollback: Option<Option<String>>,
        /// Where the new primary connects to (the other side's listening
        /// address) [default: the table's peer, else the other host's address
        /// in the resource file].
        #[arg(long, value_name = "ADDR:PORT")]
        peer: Option<String>,
        #[command(flatten)]
        files: FileArgs,
    },
    /// Make this primary a secondary (run it on the primary).
    ///
    /// When connected, first asks the kernel for a handover: the suspend then
    /// waits (up to 60 s) until the peer holds everything. Then reloads the
    /// table with role secondary and resumes. Prints the drain time, whether
    /// the peer holds everything, and how long I/O was paused.
    Demote {
        /// Name of the device.
        #[arg(value_parser = parse_name)]
        name: String,
        /// Where the secondary listens [default: the table's local address,
        /// else this host's address in the resource file].
        #[arg(long, value_name = "ADDR:PORT")]
        local: Option<String>,
        /// Do not wait for the peer to hold everything (writes it lacks are
        /// rolled back when it is promoted).
        #[arg(long)]
        no_handover: bool,
        #[command(flatten)]
        files: FileArgs,
    },
    /// Planned switchover (or failback) to the peer: run it on the primary.
    ///
    /// Demotes this side with a handover, but only from a connected, duplex
    /// pair, and only if the handover drained: otherwise it stays primary
    /// (resumed, nothing lost) and exits 1. Then run `rcopyctl promote NAME`
    /// on the peer.
    #[command(alias = "failback", after_help = TAKEOVER_EXAMPLES)]
    Switchover {
        /// Name of the device.
        #[arg(value_parser = parse_name)]
        name: String,
        /// Where this side listens once secondary [default: the table's
        /// local address, else this host's address in the resource file].
        #[arg(long, value_name = "ADDR:PORT")]
        local: Option<String>,
        #[command(flatten)]
        files: FileArgs,
    },
    /// Settle a refused handshake (split brain, stale primary, unrelated data).
    ///
    /// --keep-local on the primary keeps its data; --discard-local on the
    /// secondary gives up its own. At the next handshake the discarded side is
    /// resynced from the kept one (the tracks marked in both bitmaps, or every
    /// track when the two share no generation). --cancel withdraws a
    /// resolution not used yet.
    #[command(group(
        ArgGroup::new("choice")
            .required(true)
            .args(["keep_local", "discard_local", "cancel"])
    ))]
    Resolve {
        /// Name of the device.
        #[arg(value_parser = parse_name)]
        name: String,
        /// On the primary: keep this side's data, overwrite the peer's.
        #[arg(long)]
        keep_local: bool,
        /// On the secondary: discard this side's data, take the primary's.
        #[arg(long)]
        discard_local: bool,
        /// Withdraw a resolution sent before.
        #[arg(long)]
        cancel: bool,
        /// Send it even though the last handshake was not refused (it then
        /// applies to the next refusal).
        #[arg(long)]
        force: bool,
    },
    /// Turn this side into a standalone (simplex) device, keeping its data.
    ///
    /// Suspends the device, marks its metadata (a new generation, every
    /// track dirty: the first resync after pairing again copies every
    /// track, and the peer does not trust it silently), reloads a table
    /// without a role, and resumes. Pair it again by loading a table with a
    /// role (rcopyctl adjust NAME, or dmsetup reload).
    Unpair {
        /// Name of the device.
        #[arg(value_parser = parse_name)]
        name: String,
        /// Unpair although this side is not consistent.
        #[arg(long)]
        force: bool,
    },
    /// Take a snapshot of the peer's image (run it on the primary).
    ///
    /// The primary puts a marker in its stream; the secondary takes the
    /// snapshot when its apply reaches it (every write before the command on
    /// the image, none after), in its snapshot store. Waits for the answer
    /// (polling every 50 ms) and prints the snapshot's id. Exits 1 when the
    /// peer refuses (no store, its image not consistent, its table full), the
    /// link drops first, or --timeout passes. The pair must be connected and
    /// duplex.
    ///
    /// With --verify, the primary also computes the sum of its image at that
    /// point of the stream (a scan of the whole device, while I/O goes on) and
    /// records it with the snapshot on the peer; check the peer's copy there
    /// with snapshot-verify. Exits 1 if the sum was lost (the link dropped
    /// during the scan).
    #[command(after_help = SNAPSHOT_EXAMPLES)]
    Snapshot {
        /// Name of the device.
        #[arg(value_parser = parse_name)]
        name: String,
        /// A name for the snapshot: up to 32 of A-Z a-z 0-9 . _ : + @ -
        /// [default: none].
        #[arg(value_parser = crate::snap::parse_snapname)]
        snapname: Option<String>,
        /// Give up waiting for the peer's answer after this long: a whole
        /// number with ms, s, m or h (seconds without one) [default: 60s;
        /// 600s with --verify].
        #[arg(long, value_name = "DURATION", value_parser = crate::snap::parse_duration)]
        timeout: Option<Duration>,
        /// Also record the primary's image sum at the snapshot on the peer
        /// (message snapshot-verify; one at a time).
        #[arg(long)]
        verify: bool,
    },
    /// End a consistency point (run it on the primary).
    ///
    /// Puts a point marker in the ordered stream and waits for the peer's
    /// answer. A secondary with a snapshot store keeps the image of its last
    /// complete point: whenever it starts (after a crash, or a promotion) it
    /// returns to that point, never to an image between two points. The status
    /// keys point and point_age_s show the last one.
    Mark {
        /// Name of the device.
        #[arg(value_parser = parse_name)]
        name: String,
        /// Give up waiting for the peer's answer after this long: a whole
        /// number with ms, s, m or h (seconds without one) [default: 60s].
        #[arg(long, value_name = "DURATION", value_parser = crate::snap::parse_duration)]
        timeout: Option<Duration>,
    },
    /// List the snapshots of a secondary (run it on the secondary).
    ///
    /// One row per snapshot: id, name, state (ready, or invalid when the
    /// store ran out of slots), age, creation time, flags (before-resync:
    /// taken automatically before a copy or resync).
    Snapshots {
        /// Name of the device.
        #[arg(value_parser = parse_name)]
        name: String,
        /// Print a JSON array.
        #[arg(long)]
        json: bool,
    },
    /// Delete a snapshot of a secondary (by id or name).
    #[command(name = "snapshot-delete")]
    SnapshotDelete {
        /// Name of the device.
        #[arg(value_parser = parse_name)]
        name: String,
        /// The snapshot: its id, or its name.
        #[arg(value_name = "ID|NAME", value_parser = crate::snap::parse_which)]
        snapshot: String,
    },
    /// Show a snapshot of a secondary as a read-only block device.
    ///
    /// Creates /dev/mapper/NAME-snap-ID (or --name) with the rcopy-snap
    /// target. The rcopy device must stay up while it exists.
    #[command(name = "snapshot-activate")]
    SnapshotActivate {
        /// Name of the rcopy device.
        #[arg(value_parser = parse_name)]
        name: String,
        /// The snapshot: its id, or its name.
        #[arg(value_name = "ID|NAME", value_parser = crate::snap::parse_which)]
        snapshot: String,
        /// The snapshot device's name [default: NAME-snap-ID].
        #[arg(long = "name", value_name = "DEVNAME", value_parser = parse_name)]
        device: Option<String>,
    },
    /// Remove a snapshot device made by snapshot-activate.
    #[command(name = "snapshot-deactivate")]
    SnapshotDeactivate {
        /// The snapshot device's name (for example r0-snap-3).
        #[arg(value_name = "DEVNAME", value_parser = parse_name)]
        device: String,
    },
    /// Check a snapshot of a secondary against the primary's image sum.
    ///
    /// Reads the snapshot (through its snapshot device if one is active, else
    /// a temporary one, removed afterwards) track by track, bypassing the page
    /// cache, and sums it as the primary did (snapshot --verify). Exits 0 when
    /// the sums are equal, 1 on a mismatch or when the snapshot has no
    /// recorded sum.
    #[command(name = "snapshot-verify")]
    SnapshotVerify {
        /// Name of the rcopy device.
        #[arg(value_parser = parse_name)]
        name: String,
        /// The snapshot: its id, or its name.
        #[arg(value_name = "ID|NAME", value_parser = crate::snap::parse_which)]
        snapshot: String,
        /// Only print the snapshot's image sum (64 hex digits); no recorded sum
        /// is needed.
        #[arg(long)]
        sum_only: bool,
    },
    /// Write a snapshot's image back onto a secondary's data device.
    ///
    /// Suspends the device, rolls it back (the tracks rewritten are marked
    /// for the peer, the image is consistent, newer snapshots are deleted)
    /// and resumes it. Prints the number of tracks rewritten.
    #[command(name = "snapshot-rollback")]
    SnapshotRollback {
        /// Name of the device.
        #[arg(value_parser = parse_name)]
        name: String,
        /// The snapshot: its id, or its name.
        #[arg(value_name = "ID|NAME", value_parser = crate::snap::parse_which)]
        snapshot: String,
    },
    /// Freeze the local split copy (split_dev) as the image of this moment.
    ///
    /// On a standalone device or a primary whose table has split_dev, while
    /// the copy is forming or formed. The tracks written since the copy last
    /// took them are copied as they are now, each before its first overwrite;
    /// I/O goes on. With --wait, waits until the state is split and prints
    /// what was copied.
    #[command(after_help = SPLIT_EXAMPLES)]
    Split {
        /// Name of the device.
        #[arg(value_parser = parse_name)]
        name: String,
        #[command(flatten)]
        wait: SplitWait,
    },
    /// Join the split copy to the original again (state split, no refresh).
    ///
    /// Every track written since the split is copied (only those); the copy
    /// then follows the original again (state formed). With --wait, waits
    /// until formed.
    Rejoin {
        /// Name of the device.
        #[arg(value_parser = parse_name)]
        name: String,
        #[command(flatten)]
        wait: SplitWait,
    },
    /// Bring one extent of the split copy up to date (state split).
    ///
    /// The tracks of the extent written since the split are copied, so that
    /// the copy's extent equals the original's at the request; the rest of
    /// the copy stays as it was. With --wait, waits until it is done.
    Refresh {
        /// Name of the device.
        #[arg(value_parser = parse_name)]
        name: String,
        /// Where the extent starts, in bytes (or K/M/G/T): a multiple of 512.
        #[arg(long, value_name = "BYTES", value_parser = crate::split::parse_sector_bytes)]
        offset: Size,
        /// The extent's length in bytes (or K/M/G/T): a multiple of 512, not 0.
        #[arg(long, value_name = "BYTES", value_parser = crate::split::parse_length)]
        length: Size,
        #[command(flatten)]
        wait: SplitWait,
    },
    /// Show rcopyctl's version and the kernel target's.
    Version,
    /// Send a message to the device's target (like `dmsetup message NAME 0 ...`).
    Message {
        /// Name of the device.
        #[arg(value_parser = parse_name)]
        name: String,
        /// The message and its arguments.
        #[arg(required = true, num_args = 1.., allow_hyphen_values = true)]
        words: Vec<String>,
    },
}

/// The device arguments shared by `create` and `pair`.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct DeviceArgs {
    /// Name of the new device (/dev/mapper/NAME).
    #[arg(value_parser = parse_name)]
    pub name: String,
    /// The data device.
    #[arg(long, value_name = "DEV", value_parser = parse_path)]
    pub data: String,
    /// The metadata device (superblock and dirty-track bitmap).
    #[arg(long, value_name = "DEV", value_parser = parse_path)]
    pub meta: String,
    /// Dirty-track unit: a power of two from 4K to 16M (bytes, or K/M).
    #[arg(long, value_name = "BYTES", value_parser = parse_size_arg)]
    pub track_size: Option<Size>,
    /// Check everything and print the table line, but create nothing. The
    /// secret is shown as `-`.
    #[arg(long)]
    pub dry_run: bool,
    /// With --dry-run: print the secret in the table line.
    #[arg(long, requires = "dry_run")]
    pub show_secret: bool,
    /// A second local device kept as a copy that can be split off as a
    /// point-in-time image (table option split_dev; standalone or primary).
    /// It needs the device's size rounded up to 4 KiB, plus 8 KiB of headers
    /// and three bitmaps of one bit per track (each rounded up to 4 KiB).
    #[arg(long, value_name = "DEV", value_parser = parse_path)]
    pub split_dev: Option<String>,
}

/// How `split`, `rejoin` and `refresh` wait for the kernel.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Args)]
pub struct SplitWait {
    /// Wait until it is done (state split, or formed after rejoin), then print
    /// what was copied.
    #[arg(long)]
    pub wait: bool,
    /// With --wait: give up after this many seconds (or 500ms, 2m, 1h), exit 3
    /// [default: wait for ever].
    #[arg(long, value_name = "SECS", requires = "wait", value_parser = crate::snap::parse_duration)]
    pub timeout: Option<Duration>,
}

/// Which resources `up`, `down` and `adjust` act on.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct ResourceArgs {
    /// Resource names: files NAME.toml in the configuration directory.
    #[arg(value_parser = parse_name, required_unless_present = "all", conflicts_with = "all")]
    pub names: Vec<String>,
    /// Every resource file (*.toml) in the configuration directory.
    #[arg(long)]
    pub all: bool,
    /// Where resource files are.
    #[arg(long, value_name = "DIR", default_value = crate::resource::CONFIG_DIR, value_parser = parse_path)]
    pub config_dir: String,
    /// This host's name in the resource files [default: the host name].
    #[arg(long, value_name = "NAME", value_parser = parse_host)]
    pub host: Option<String>,
    /// Print what would be done (table lines with the secret as `-`), do nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// Where `promote`, `demote` and `switchover` find an address that the
/// device's table lacks and no flag gives: in the resource file NAME.toml.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct FileArgs {
    /// Where resource files are (an address the table lacks is read from
    /// NAME.toml there, if it exists).
    #[arg(long, value_name = "DIR", default_value = crate::resource::CONFIG_DIR, value_parser = parse_path)]
    pub config_dir: String,
    /// This host's name in the resource file [default: the host name].
    #[arg(long, value_name = "NAME", value_parser = parse_host)]
    pub host: Option<String>,
}

/// Replication options shared by `create` and `pair`. They are checked
/// against the kernel's table rules in `create::table_options`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Args)]
pub struct LinkArgs {
    /// Primary: the secondary's address to connect to: a.b.c.d:port,
    /// [v6]:port, or HOST:PORT (resolved when the table is built, IPv4
    /// first; rcopyctl says which address it used). A secondary keeps it
    /// for a later `promote`.
    #[arg(long, value_name = "ADDR:PORT")]
    pub peer: Option<String>,
    /// Secondary: the address to listen on: a.b.c.d:port, [v6]:port or
    /// HOST:PORT. A primary keeps it for a later `demote`.
    #[arg(long, value_name = "ADDR:PORT")]
    pub local: Option<String>,
    /// Replication mode: sync (a write completes once on both disks) or
    /// async (once on the local disk) [default: sync].
    #[arg(long, value_name = "MODE")]
    pub mode: Option<String>,
    /// File whose first line is the pair's shared secret (1 to 64 bytes, no
    /// spaces). Keep it readable by root only.
    #[arg(long, value_name = "PATH", value_parser = parse_path)]
    pub secret_file: Option<String>,
    /// The pair's shared secret itself (1 to 64 bytes, no spaces). Visible
    /// to other users in the process list: prefer --secret-file.
    #[arg(long, value_name = "WORD", conflicts_with = "secret_file")]
    pub secret: Option<String>,
    /// The pair's identity, the same on both sides (1 to 64 bytes)
    /// [default: default].
    #[arg(long, value_name = "WORD")]
    pub pair_id: Option<String>,
    /// Limit of the write cache: 1M to 4G (bytes, or K/M/G) [default: 64M].
    #[arg(long, value_name = "SIZE", value_parser = parse_size_arg)]
    pub cache_size: Option<Size>,
    /// Drop a link silent for this long: 500 to 600000 ms [default: 5000].
    #[arg(long, value_name = "MS")]
    pub timeout_ms: Option<String>,
    /// Limit the initial copy and resyncs to this many bytes per second (or K/M/G);
    /// 0 for no limit [default: 0].
    #[arg(long, value_name = "RATE", value_parser = parse_size_arg)]
    pub resync_rate: Option<Size>,
    /// The snapshot store (made by create-store) that this side uses while it
    /// is a secondary (table option snap_store).
    #[arg(long, value_name = "DEV", value_parser = parse_path)]
    pub snap_store: Option<String>,
}

impl LinkArgs {
    /// Whether any option is given.
    pub fn any(&self) -> bool {
        *self != LinkArgs::default()
    }
}

const PAIR_EXAMPLES: &str = "\
Examples (secondary first, then primary):
  rcopyctl pair r0 --data /dev/vda --meta /dev/vdb --role secondary \\
      --local 10.77.0.2:7788 --secret-file /etc/rcopy.key
  rcopyctl pair r0 --data /dev/vda --meta /dev/vdb --role primary \\
      --peer 10.77.0.2:7788 --secret-file /etc/rcopy.key --mode async
  rcopyctl wait r0 --state duplex --timeout 300";

const SNAPSHOT_EXAMPLES: &str = "\
Examples:
  on the primary
    rcopyctl snapshot r0 nightly
    rcopyctl snapshot r0 checked --verify     # also records the primary's image sum
  on the secondary
    rcopyctl snapshots r0
    rcopyctl snapshot-verify r0 checked       # compares the snapshot with that sum
    rcopyctl snapshot-activate r0 nightly     # /dev/mapper/r0-snap-ID, read-only
    rcopyctl snapshot-deactivate r0-snap-3
    rcopyctl snapshot-delete r0 nightly";

const SPLIT_EXAMPLES: &str = "\
Examples:
  rcopyctl create r0 --data /dev/vda --meta /dev/vdb --split-dev /dev/vdc
  rcopyctl split r0 --wait                  # /dev/vdc: the image of now
  rcopyctl refresh r0 --offset 1G --length 64M --wait
  rcopyctl rejoin r0 --wait                 # copies only what changed";

const TAKEOVER_EXAMPLES: &str = "\
Examples:
  planned (both sides up): on the primary, then on the secondary
    rcopyctl switchover r0
    rcopyctl promote r0
  the primary is lost: on the secondary
    rcopyctl promote r0
  the old primary comes back: bring it up as the secondary (swap the
  roles in the resource file, then rcopyctl up r0), or, if it came up
  as primary, on it
    rcopyctl demote r0";

/// Accepts a pair state name.
pub fn parse_state(s: &str) -> Result<State, String> {
    State::parse(s).ok_or_else(|| {
        let all: Vec<&str> = State::ALL.iter().map(|s| s.as_str()).collect();
        format!(
            "unknown state {s:?}: expected one of {}{}",
            all.join(", "),
            suggest::hint(s, &all)
        )
    })
}

/// Accepts a path: not empty (an empty word is a slip, not a file name).
pub fn parse_path(s: &str) -> Result<String, String> {
    if s.is_empty() {
        return Err("the path is empty".into());
    }
    Ok(s.to_string())
}

/// Accepts a host name for `--host`: the name of a `[host.NAME]` section.
pub fn parse_host(s: &str) -> Result<String, String> {
    if s.is_empty() {
        return Err("the host name is empty".into());
    }
    if s.chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == '/')
    {
        return Err(
            "a host name has no whitespace, control characters or '/' (it names a \
             [host.NAME] section)"
                .into(),
        );
    }
    Ok(s.to_string())
}

/// Accepts a device-mapper device name.
pub fn parse_name(s: &str) -> Result<String, String> {
    if s.is_empty() {
        return Err("device name is empty".into());
    }
    if s.len() >= DM_NAME_LEN {
        return Err(format!(
            "device name is too long (at most {} bytes)",
            DM_NAME_LEN - 1
        ));
    }
    if s.contains('/') || s.contains('\0') {
        return Err("device name cannot contain '/'".into());
    }
    if s == "control" || s == "." || s == ".." {
        return Err(format!("device name cannot be {s:?}"));
    }
    Ok(s.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn definition_is_valid() {
        Cli::command().debug_assert();
    }

    use crate::bad_value_cases as cases;

    /// Every value-taking argument of every command (the generators'
    /// too) has a bad-value case in `tests/bad_values/cases.rs` (or is
    /// listed there as taking any word), so the table run by the
    /// `bad_values` test cannot fall behind the definition.
    #[test]
    fn every_value_taking_argument_has_a_bad_value_case() {
        let mut missing = Vec::new();
        let mut seen = Vec::new();
        let mut gens = crate::generate::GenCli::command();
        gens.build();
        let mut cli = Cli::command();
        cli.build();
        for sub in cli.get_subcommands().chain(gens.get_subcommands()) {
            for arg in sub.get_arguments() {
                if !arg.get_num_args().is_some_and(|n| n.takes_values()) && !arg.is_positional() {
                    continue;
                }
                if matches!(arg.get_action(), clap::ArgAction::SetTrue) {
                    continue;
                }
                let key = match arg.get_long() {
                    Some(l) => format!("--{l}"),
                    None => format!("<{}>", arg.get_id()),
                };
                let name = sub.get_name();
                seen.push((name.to_string(), key.clone()));
                let covered = cases::CASES.iter().any(|c| c.cmd == name && c.arg == key)
                    || cases::FREE.iter().any(|f| f.0 == name && f.1 == key);
                if !covered {
                    missing.push(format!("{name} {key}"));
                }
            }
        }
        assert!(missing.is_empty(), "no bad-value case for: {missing:?}");
        // And no case names an argument that does not exist.
        for c in cases::CASES {
            assert!(
                seen.iter().any(|(n, k)| n == c.cmd && k == c.arg),
                "case for unknown {} {}",
                c.cmd,
                c.arg
            );
        }
    }

    #[test]
    fn names() {
        assert!(parse_name("r0").is_ok());
        assert!(parse_name("").is_err());
        assert!(parse_name("a/b").is_err());
        assert!(parse_name("control").is_err());
        assert!(parse_name(&"x".repeat(127)).is_ok());
        assert!(parse_name(&"x".repeat(128)).is_err());
    }

    #[test]
    fn parses_create() {
        let c = Cli::try_parse_from([
            "rcopyctl",
            "create",
            "r0",
            "--data",
            "/dev/vdb",
            "--meta",
            "/dev/vdc",
            "--track-size",
            "1M",
        ])
        .unwrap();
        match c.command {
            Command::Create { dev, role, link } => {
                assert!(!dev.dry_run);
                assert_eq!(role, None);
                assert!(!link.any());
                assert_eq!(dev.name, "r0");
                assert_eq!(dev.data, "/dev/vdb");
                assert_eq!(dev.meta, "/dev/vdc");
                assert_eq!(dev.track_size.as_ref().map(|s| s.bytes), Some(1 << 20));
            }
            other => panic!("{other:?}"),
        }
        let e =
            Cli::try_parse_from(["rcopyctl", "create", "r0", "--data", "/dev/vdb"]).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        let e = Cli::try_parse_from([
            "rcopyctl",
            "create",
            "r0",
            "--data",
            "a",
            "--meta",
            "b",
            "--track-size",
            "lots",
        ])
        .unwrap_err();
        assert_eq!(e.exit_code(), 2);
    }

    #[test]
    fn parses_pair() {
        let c = Cli::try_parse_from([
            "rcopyctl",
            "pair",
            "r0",
            "--data",
            "/dev/vda",
            "--meta",
            "/dev/vdb",
            "--role",
            "primary",
            "--peer",
            "10.77.0.2:7788",
            "--secret-file",
            "/etc/rcopy.key",
            "--mode",
            "async",
            "--pair-id",
            "p1",
            "--cache-size",
            "256M",
            "--timeout-ms",
            "10000",
        ])
        .unwrap();
        match c.command {
            Command::Pair { dev, role, link } => {
                assert_eq!(dev.name, "r0");
                assert_eq!(role, "primary");
                assert_eq!(link.peer.as_deref(), Some("10.77.0.2:7788"));
                assert_eq!(link.local, None);
                assert_eq!(link.secret_file.as_deref(), Some("/etc/rcopy.key"));
                assert_eq!(link.secret, None);
                assert_eq!(link.mode.as_deref(), Some("async"));
                assert_eq!(link.pair_id.as_deref(), Some("p1"));
                assert_eq!(link.cache_size.as_ref().map(|s| s.bytes), Some(256 << 20));
                assert_eq!(link.cache_size.as_ref().unwrap().text, "256M");
                assert_eq!(link.timeout_ms.as_deref(), Some("10000"));
            }
            other => panic!("{other:?}"),
        }
        let pair = ["rcopyctl", "pair", "r0", "--data", "a", "--meta", "b"];
        // `pair` needs --role.
        let e = Cli::try_parse_from(pair).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains("--role"), "{e}");
        // One secret source at most.
        let e = Cli::try_parse_from(pair.iter().chain(&[
            "--role",
            "secondary",
            "--secret",
            "x",
            "--secret-file",
            "f",
        ]))
        .unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(
            Cli::try_parse_from(pair.iter().chain(&["--role", "x", "--cache-size", "1Q"])).is_err()
        );
        // `create` takes the same options, --role optional.
        let c = Cli::try_parse_from([
            "rcopyctl",
            "create",
            "r0",
            "--data",
            "a",
            "--meta",
            "b",
            "--role",
            "secondary",
            "--local",
            "10.77.0.2:7788",
            "--secret",
            "k",
        ])
        .unwrap();
        assert!(matches!(
            c.command,
            Command::Create { role: Some(ref r), ref link, .. }
                if r == "secondary" && link.secret.as_deref() == Some("k")
        ));
    }

    #[test]
    fn parses_wait() {
        let c = Cli::try_parse_from([
            "rcopyctl",
            "wait",
            "r0",
            "--state",
            "duplex",
            "--timeout",
            "300",
        ])
        .unwrap();
        assert!(matches!(
            c.command,
            Command::Wait {
                ref name,
                state: State::Duplex,
                timeout: Some(300)
            } if name == "r0"
        ));
        let c = Cli::try_parse_from(["rcopyctl", "wait", "r0", "--state", "simplex"]).unwrap();
        assert!(matches!(
            c.command,
            Command::Wait {
                state: State::Simplex,
                timeout: None,
                ..
            }
        ));
        let e = Cli::try_parse_from(["rcopyctl", "wait", "r0", "--state", "synced"]).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(
            e.to_string()
                .contains("expected one of simplex, copying, duplex"),
            "{e}"
        );
        assert!(Cli::try_parse_from(["rcopyctl", "wait", "r0"]).is_err());
        assert!(Cli::try_parse_from([
            "rcopyctl",
            "wait",
            "r0",
            "--state",
            "duplex",
            "--timeout",
            "-1"
        ])
        .is_err());
    }

    #[test]
    fn parses_metadata_commands() {
        let c = Cli::try_parse_from([
            "rcopyctl",
            "create-md",
            "/dev/vdb",
            "--data",
            "/dev/vda",
            "--track-size",
            "1M",
            "--pair-id",
            "p1",
            "--force",
        ])
        .unwrap();
        match c.command {
            Command::CreateMd {
                meta,
                data,
                track_size,
                pair_id,
                force,
            } => {
                assert_eq!(meta, "/dev/vdb");
                assert_eq!(data, "/dev/vda");
                assert_eq!(track_size.map(|s| s.bytes), Some(1 << 20));
                assert_eq!(pair_id.as_deref(), Some("p1"));
                assert!(force);
            }
            other => panic!("{other:?}"),
        }
        let c = Cli::try_parse_from(["rcopyctl", "create-md", "/dev/vdb", "--data", "/dev/vda"])
            .unwrap();
        assert!(matches!(
            c.command,
            Command::CreateMd {
                track_size: None,
                pair_id: None,
                force: false,
                ..
            }
        ));
        // --data is required.
        let e = Cli::try_parse_from(["rcopyctl", "create-md", "/dev/vdb"]).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains("--data"), "{e}");
        assert!(Cli::try_parse_from([
            "rcopyctl",
            "create-md",
            "/dev/vdb",
            "--data",
            "a",
            "--track-size",
            "big"
        ])
        .is_err());
        let c = Cli::try_parse_from(["rcopyctl", "inspect-md", "/dev/vdb", "--json"]).unwrap();
        assert!(matches!(
            c.command,
            Command::InspectMd { ref meta, json: true } if meta == "/dev/vdb"
        ));
        let c = Cli::try_parse_from(["rcopyctl", "inspect-md", "/dev/vdb"]).unwrap();
        assert!(matches!(c.command, Command::InspectMd { json: false, .. }));
        assert!(Cli::try_parse_from(["rcopyctl", "inspect-md"]).is_err());
    }

    #[test]
    fn parses_takeover_commands() {
        let c = Cli::try_parse_from(["rcopyctl", "promote", "r0"]).unwrap();
        assert!(matches!(
            c.command,
            Command::Promote { ref name, force: false, peer: None, ref files, rollback: None }
                if name == "r0" && files.config_dir == "/etc/rcopy.d" && files.host.is_none()
        ));
        let c = Cli::try_parse_from([
            "rcopyctl",
            "promote",
            "r0",
            "--force",
            "--peer",
            "10.77.0.1:7788",
        ])
        .unwrap();
        assert!(matches!(
            c.command,
            Command::Promote { force: true, peer: Some(ref p), .. } if p == "10.77.0.1:7788"
        ));
        let c = Cli::try_parse_from(["rcopyctl", "demote", "r0", "--no-handover"]).unwrap();
        assert!(matches!(
            c.command,
            Command::Demote {
                local: None,
                no_handover: true,
                ..
            }
        ));
        let c =
            Cli::try_parse_from(["rcopyctl", "demote", "r0", "--local", "10.77.0.1:7788"]).unwrap();
        assert!(matches!(
            c.command,
            Command::Demote { local: Some(ref l), no_handover: false, .. } if l == "10.77.0.1:7788"
        ));
        for word in ["switchover", "failback"] {
            let c = Cli::try_parse_from(["rcopyctl", word, "r0"]).unwrap();
            assert!(matches!(
                c.command,
                Command::Switchover { ref name, local: None, .. } if name == "r0"
            ));
        }
        let c = Cli::try_parse_from([
            "rcopyctl",
            "demote",
            "r0",
            "--config-dir",
            "/tmp/res",
            "--host",
            "alpha",
        ])
        .unwrap();
        assert!(matches!(
            c.command,
            Command::Demote { ref files, .. }
                if files.config_dir == "/tmp/res" && files.host.as_deref() == Some("alpha")
        ));
        let c = Cli::try_parse_from(["rcopyctl", "unpair", "r0"]).unwrap();
        assert!(matches!(c.command, Command::Unpair { force: false, .. }));
        // Usage errors exit 2 and quote what was typed.
        for (args, quoted) in [
            (&["rcopyctl", "promote"][..], "<NAME>"),
            (&["rcopyctl", "promote", "r0", "--forse"][..], "--forse"),
            (
                &["rcopyctl", "demote", "r0", "--handover"][..],
                "--handover",
            ),
            (&["rcopyctl", "promote", "a/b"][..], "a/b"),
            (&["rcopyctl", "unpair", "r0", "extra"][..], "extra"),
            (&["rcopyctl", "switchover", "r0", "--force"][..], "--force"),
        ] {
            let e = Cli::try_parse_from(args).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{args:?}");
            assert!(e.to_string().contains(quoted), "{args:?}: {e}");
        }
    }

    #[test]
    fn parses_snapshot_commands() {
        let p = |args: &[&str]| Cli::try_parse_from(args).map(|c| c.command);
        // Taking one: NAME [SNAPNAME] [--timeout].
        assert!(matches!(
            p(&["rcopyctl", "snapshot", "r0"]).unwrap(),
            Command::Snapshot { ref name, snapname: None, timeout: None, verify: false }
                if name == "r0"
        ));
        assert!(matches!(
            p(&["rcopyctl", "snapshot", "r0", "v1", "--verify"]).unwrap(),
            Command::Snapshot { snapname: Some(ref n), verify: true, timeout: None, .. }
                if n == "v1"
        ));
        assert!(matches!(
            p(&["rcopyctl", "snapshot", "r0", "--verify", "--timeout", "20m"]).unwrap(),
            Command::Snapshot { snapname: None, verify: true, timeout: Some(t), .. }
                if t == Duration::from_secs(1200)
        ));
        assert!(matches!(
            p(&["rcopyctl", "snapshot-verify", "r0", "3"]).unwrap(),
            Command::SnapshotVerify { ref name, ref snapshot, sum_only: false }
                if name == "r0" && snapshot == "3"
        ));
        assert!(matches!(
            p(&["rcopyctl", "snapshot-verify", "r0", "v1", "--sum-only"]).unwrap(),
            Command::SnapshotVerify { ref snapshot, sum_only: true, .. } if snapshot == "v1"
        ));
        assert!(matches!(
            p(&["rcopyctl", "snapshot", "r0", "nightly", "--timeout", "500ms"]).unwrap(),
            Command::Snapshot { snapname: Some(ref n), timeout: Some(t), .. }
                if n == "nightly" && t == Duration::from_millis(500)
        ));
        assert!(matches!(
            p(&["rcopyctl", "mark", "r0", "--timeout", "2s"]).unwrap(),
            Command::Mark { ref name, timeout: Some(t) } if name == "r0" && t == Duration::from_secs(2)
        ));
        assert!(matches!(
            p(&["rcopyctl", "snapshots", "r0", "--json"]).unwrap(),
            Command::Snapshots { json: true, .. }
        ));
        assert!(matches!(
            p(&["rcopyctl", "snapshot-delete", "r0", "3"]).unwrap(),
            Command::SnapshotDelete { ref snapshot, .. } if snapshot == "3"
        ));
        assert!(matches!(
            p(&["rcopyctl", "snapshot-activate", "r0", "nightly"]).unwrap(),
            Command::SnapshotActivate { device: None, ref snapshot, .. } if snapshot == "nightly"
        ));
        assert!(matches!(
            p(&["rcopyctl", "snapshot-activate", "r0", "2", "--name", "old"]).unwrap(),
            Command::SnapshotActivate { device: Some(ref d), .. } if d == "old"
        ));
        assert!(matches!(
            p(&["rcopyctl", "snapshot-deactivate", "r0-snap-2"]).unwrap(),
            Command::SnapshotDeactivate { ref device } if device == "r0-snap-2"
        ));
        assert!(matches!(
            p(&["rcopyctl", "snapshot-rollback", "r0", "pre-resync"]).unwrap(),
            Command::SnapshotRollback { ref snapshot, .. } if snapshot == "pre-resync"
        ));
        // promote --rollback, with or without a snapshot.
        assert!(matches!(
            p(&["rcopyctl", "promote", "r0", "--rollback"]).unwrap(),
            Command::Promote {
                rollback: Some(None),
                ..
            }
        ));
        assert!(matches!(
            p(&["rcopyctl", "promote", "r0", "--rollback", "4"]).unwrap(),
            Command::Promote { rollback: Some(Some(ref w)), .. } if w == "4"
        ));
        assert!(matches!(
            p(&["rcopyctl", "promote", "r0", "--rollback=pre-resync", "--force"]).unwrap(),
            Command::Promote { rollback: Some(Some(ref w)), force: true, .. } if w == "pre-resync"
        ));
        // create --snap-store.
        let c = p(&[
            "rcopyctl",
            "create",
            "r0",
            "--data",
            "a",
            "--meta",
            "b",
            "--role",
            "secondary",
            "--snap-store",
            "/dev/vdd",
        ])
        .unwrap();
        assert!(matches!(
            c,
            Command::Create { ref link, .. } if link.snap_store.as_deref() == Some("/dev/vdd")
        ));
        // Usage errors exit 2 and quote what was typed.
        for (args, quoted) in [
            (&["rcopyctl", "snapshot"][..], "<NAME>"),
            (&["rcopyctl", "snapshot", "r0", "a b"][..], "a b"),
            (
                &["rcopyctl", "snapshot", "r0", &"x".repeat(33)][..],
                "xxxxxxxx",
            ),
            (
                &["rcopyctl", "snapshot", "r0", "--timeout", "soon"][..],
                "soon",
            ),
            (&["rcopyctl", "snapshot", "r0", "a", "b"][..], "'b'"),
            (&["rcopyctl", "snapshot-delete", "r0"][..], "<ID|NAME>"),
            (&["rcopyctl", "snapshot-verify", "r0"][..], "<ID|NAME>"),
            (&["rcopyctl", "snapshot-verify", "r0", "a b"][..], "a b"),
            (
                &["rcopyctl", "snapshot-verify", "r0", "1", "--sum"][..],
                "--sum",
            ),
            (
                &["rcopyctl", "snapshot", "r0", "--verify=yes"][..],
                "--verify",
            ),
            (&["rcopyctl", "snapshot-rollback", "r0", "-1"][..], "-1"),
            (&["rcopyctl", "snapshots", "r0", "--jsn"][..], "--jsn"),
            (&["rcopyctl", "create-store", "/dev/vdd"][..], "--data"),
            (
                &[
                    "rcopyctl",
                    "create-store",
                    "s",
                    "--data",
                    "d",
                    "--size",
                    "1G",
                ][..],
                "--size",
            ),
        ] {
            let e = Cli::try_parse_from(args).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{args:?}");
            assert!(e.to_string().contains(quoted), "{args:?}: {e}");
        }
    }

    #[test]
    fn parses_split_commands() {
        let p = |args: &[&str]| Cli::try_parse_from(args).map(|c| c.command);
        assert!(matches!(
            p(&["rcopyctl", "split", "r0"]).unwrap(),
            Command::Split { ref name, wait: SplitWait { wait: false, timeout: None } }
                if name == "r0"
        ));
        assert!(matches!(
            p(&["rcopyctl", "split", "r0", "--wait", "--timeout", "90"]).unwrap(),
            Command::Split { wait: SplitWait { wait: true, timeout: Some(t) }, .. }
                if t == Duration::from_secs(90)
        ));
        assert!(matches!(
            p(&["rcopyctl", "rejoin", "r0", "--wait"]).unwrap(),
            Command::Rejoin {
                wait: SplitWait {
                    wait: true,
                    timeout: None
                },
                ..
            }
        ));
        assert!(matches!(
            p(&["rcopyctl", "refresh", "r0", "--offset", "40M", "--length", "65536", "--wait"])
                .unwrap(),
            Command::Refresh { ref offset, ref length, wait: SplitWait { wait: true, .. }, .. }
                if offset.bytes == 40 << 20 && length.bytes == 65536 && offset.text == "40M"
        ));
        // create and pair take --split-dev (a standalone device too).
        assert!(matches!(
            p(&["rcopyctl", "create", "r0", "--data", "a", "--meta", "b", "--split-dev", "c"])
                .unwrap(),
            Command::Create { ref dev, role: None, .. } if dev.split_dev.as_deref() == Some("c")
        ));
        // Usage errors exit 2 and quote what was typed.
        for (args, quoted) in [
            (&["rcopyctl", "split"][..], "<NAME>"),
            (&["rcopyctl", "split", "r0", "--timeout", "5"][..], "--wait"),
            (&["rcopyctl", "rejoin", "r0", "now"][..], "now"),
            (
                &["rcopyctl", "refresh", "r0", "--length", "4K"][..],
                "--offset",
            ),
            (
                &["rcopyctl", "refresh", "r0", "--offset", "0"][..],
                "--length",
            ),
            (
                &[
                    "rcopyctl", "refresh", "r0", "--offset", "513", "--length", "4K",
                ][..],
                "\"513\" is not a multiple of 512",
            ),
            (
                &[
                    "rcopyctl", "refresh", "r0", "--offset", "0", "--length", "0",
                ][..],
                "the extent is empty",
            ),
            (
                &[
                    "rcopyctl",
                    "create",
                    "r0",
                    "--data",
                    "a",
                    "--meta",
                    "b",
                    "--split-dev",
                    "",
                ][..],
                "the path is empty",
            ),
        ] {
            let e = Cli::try_parse_from(args).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{args:?}");
            assert!(e.to_string().contains(quoted), "{args:?}: {e}");
        }
    }

    #[test]
    fn parses_resolve() {
        let c = Cli::try_parse_from(["rcopyctl", "resolve", "r0", "--keep-local"]).unwrap();
        assert!(matches!(
            c.command,
            Command::Resolve {
                keep_local: true,
                discard_local: false,
                cancel: false,
                force: false,
                ..
            }
        ));
        let c = Cli::try_parse_from(["rcopyctl", "resolve", "r0", "--discard-local", "--force"])
            .unwrap();
        assert!(matches!(
            c.command,
            Command::Resolve {
                keep_local: false,
                discard_local: true,
                force: true,
                ..
            }
        ));
        let c = Cli::try_parse_from(["rcopyctl", "resolve", "r0", "--cancel"]).unwrap();
        assert!(matches!(c.command, Command::Resolve { cancel: true, .. }));
        // Exactly one choice.
        let e = Cli::try_parse_from(["rcopyctl", "resolve", "r0"]).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains("--keep-local"), "{e}");
        let e = Cli::try_parse_from([
            "rcopyctl",
            "resolve",
            "r0",
            "--keep-local",
            "--discard-local",
        ])
        .unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains("--discard-local"), "{e}");
        assert!(e.to_string().contains("cannot be used with"), "{e}");
    }

    #[test]
    fn parses_others() {
        let c = Cli::try_parse_from(["rcopyctl", "status", "--json"]).unwrap();
        assert!(matches!(
            c.command,
            Command::Status {
                name: None,
                json: true,
                verbose: false,
                check: false,
                watch: false,
            }
        ));
        let c = Cli::try_parse_from(["rcopyctl", "message", "r0", "stats_reset"]).unwrap();
        assert!(
            matches!(c.command, Command::Message { ref words, .. } if words == &["stats_reset"])
        );
        assert!(Cli::try_parse_from(["rcopyctl", "message", "r0"]).is_err());
        assert!(Cli::try_parse_from(["rcopyctl", "remove"]).is_err());
        assert!(Cli::try_parse_from(["rcopyctl", "version"]).is_ok());
    }
}
