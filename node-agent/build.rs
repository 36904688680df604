//! Compiles every `ebpf/*.bpf.c` into OUT_DIR with clang-19 (DESIGN §4: `-O2 -g -target bpf`,
//! Debian's multiarch include path); the agent embeds the objects with
//! `aya::include_bytes_aligned!`.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let ebpf = manifest.join("../ebpf");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets it"));
    let clang = std::env::var("BPF_CLANG").unwrap_or_else(|_| "clang-19".to_string());
    println!("cargo:rerun-if-env-changed=BPF_CLANG");
    println!("cargo:rerun-if-changed={}", ebpf.display());
    println!("cargo:rerun-if-changed={}", ebpf.join("lib").display());
    for dir in [ebpf.clone(), ebpf.join("lib")] {
        for entry in std::fs::read_dir(&dir).expect("ebpf/ exists") {
            println!(
                "cargo:rerun-if-changed={}",
                entry.expect("readable").path().display()
            );
        }
    }
    for entry in std::fs::read_dir(&ebpf).expect("ebpf/ exists") {
        let path = entry.expect("readable").path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if let Some(stem) = name.strip_suffix(".bpf.c") {
            compile(&clang, &path, &out.join(format!("{stem}.bpf.o")));
        }
    }
}

fn compile(clang: &str, src: &Path, obj: &Path) {
    let status = Command::new(clang)
        .args(["-O2", "-g", "-target", "bpf", "-Wall", "-Werror"])
        .arg("-I/usr/include/x86_64-linux-gnu")
        .arg("-c")
        .arg(src)
        .arg("-o")
        .arg(obj)
        .status()
        .unwrap_or_else(|e| {
            panic!("cannot run {clang} (scripts/install-deps.sh installs it): {e}")
        });
    assert!(status.success(), "{clang} failed on {}", src.display());
}
