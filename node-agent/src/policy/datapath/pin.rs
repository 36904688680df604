//! The bpffs under the pin root: maps in `<root>/maps`, TCX links in `<root>/links`.

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// `statfs(2)` magic of a bpffs.
const BPF_FS_MAGIC: i64 = 0xcafe4a11;

pub fn maps_dir(root: &Path) -> PathBuf {
    root.join("maps")
}

pub fn links_dir(root: &Path) -> PathBuf {
    root.join("links")
}

/// The pinned link of one program on one interface.
pub fn link_path(root: &Path, ifindex: u32, program: &str) -> PathBuf {
    links_dir(root).join(format!("{ifindex}-{program}"))
}

fn cpath(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))
}

pub fn is_bpffs(path: &Path) -> io::Result<bool> {
    let p = cpath(path)?;
    // SAFETY: statfs writes into the zeroed struct we own; p is a valid C string.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    if unsafe { libc::statfs(p.as_ptr(), &mut st) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(st.f_type as i64 == BPF_FS_MAGIC)
}

/// Make `root` a bpffs (mounting one if it is not) with `maps/` and `links/` inside.
/// Returns whether this call mounted it.
pub fn prepare(root: &Path) -> io::Result<bool> {
    std::fs::create_dir_all(root)?;
    let mounted = if is_bpffs(root)? {
        false
    } else {
        let target = cpath(root)?;
        let src = c"bpf";
        let opts = c"mode=0700";
        // SAFETY: all pointers are valid NUL-terminated strings that outlive the call.
        let r = unsafe {
            libc::mount(
                src.as_ptr(),
                target.as_ptr(),
                src.as_ptr(),
                0,
                opts.as_ptr().cast(),
            )
        };
        if r != 0 {
            return Err(io::Error::last_os_error());
        }
        true
    };
    std::fs::create_dir_all(maps_dir(root))?;
    std::fs::create_dir_all(links_dir(root))?;
    Ok(mounted)
}

/// Unmount the bpffs at `root` (lazily, so open map fds stay valid) and remove the directory.
pub fn unmount(root: &Path) -> io::Result<()> {
    let target = cpath(root)?;
    // SAFETY: target is a valid C string.
    if unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) } != 0 {
        return Err(io::Error::last_os_error());
    }
    std::fs::remove_dir(root)
}
