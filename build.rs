//! Names the daemon protocol of this build (`WARE_WIRE`, used by `src/proto.rs`): a hash of the
//! files that define what goes on the wire, so a daemon and a client of different builds can
//! tell whether they speak the same protocol.

fn main() {
    // FNV-1a, 64 bits: stable, and enough to tell two versions of two files apart.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for f in [
        "src/ops/mod.rs",
        "src/ops/store.rs",
        "src/ops/daemon.rs",
        "src/proto.rs",
    ] {
        println!("cargo:rerun-if-changed={f}");
        let text = std::fs::read(f).unwrap_or_else(|e| panic!("{f}: {e}"));
        for b in text {
            h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    println!("cargo:rustc-env=WARE_WIRE={h:016x}");
}
