//! Writes the seed inputs into `corpus/<target>/seed-<name>` (or under the
//! directory given as the first argument).

use std::path::PathBuf;

fn main() -> std::io::Result<()> {
    let root = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("corpus"));
    for s in rcopy_fuzz::seeds::all() {
        let dir = root.join(s.target);
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join(format!("seed-{}", s.name)), &s.data)?;
    }
    Ok(())
}
