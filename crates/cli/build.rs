//! Records the target triple for `ironvault version`.

fn main() {
    let target = std::env::var("TARGET").unwrap_or_else(|_| "unknown".into());
    println!("cargo:rustc-env=IRONVAULT_BUILD_TARGET={target}");
    println!("cargo:rerun-if-changed=build.rs");
}
