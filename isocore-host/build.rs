//! Builds the guest components in `guests/` from source for `wasm32-wasip2`, into their own
//! target directory (a nested cargo sharing ours would wait on its lock), and tells the
//! tests, benchmark and examples where they are through `ISOCORE_GUESTS_DIR`.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let guests = manifest.join("guests");
    println!("cargo:rerun-if-changed={}", guests.display());
    println!("cargo:rerun-if-changed={}", manifest.join("wit").display());
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| manifest.join("../target"))
        .join("guests");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "--release", "--target", "wasm32-wasip2", "--manifest-path"])
        .arg(guests.join("Cargo.toml"))
        // From the guests' directory, so that their `.cargo/config.toml` applies.
        .current_dir(&guests)
        .env("CARGO_TARGET_DIR", &target)
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .env_remove("RUSTC_WRAPPER")
        .env_remove("CARGO_BUILD_TARGET")
        .status()
        .expect("cargo can be run from the build script");
    assert!(
        status.success(),
        "building the guest components failed; they need the wasm32-wasip2 target: rustup target add wasm32-wasip2"
    );
    println!("cargo:rustc-env=ISOCORE_GUESTS_DIR={}", target.join("wasm32-wasip2/release").display());
}
