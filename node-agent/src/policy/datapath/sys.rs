//! The few bpf(2) commands aya 0.14 does not expose for our use: TCX links by ifindex (the
//! caller's netns, no name lookup), pinning and updating them, BPF_PROG_TEST_RUN, and batched
//! map lookups, updates and deletes.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

const BPF_OBJ_PIN: libc::c_long = 6;
const BPF_OBJ_GET: libc::c_long = 7;
const BPF_PROG_TEST_RUN: libc::c_long = 10;
const BPF_MAP_LOOKUP_BATCH: libc::c_long = 24;
const BPF_MAP_UPDATE_BATCH: libc::c_long = 26;
const BPF_MAP_DELETE_BATCH: libc::c_long = 27;
const BPF_LINK_CREATE: libc::c_long = 28;
const BPF_LINK_UPDATE: libc::c_long = 29;

/// `enum bpf_attach_type` values (uapi 6.6+; Debian 12's headers predate them).
pub const BPF_TCX_INGRESS: u32 = 46;
pub const BPF_TCX_EGRESS: u32 = 47;

/// `union bpf_attr` is at most this big for the commands used here; the rest stays zero.
#[repr(C, align(8))]
struct Attr([u8; 128]);

impl Attr {
    fn new() -> Attr {
        Attr([0; 128])
    }
    fn u32_at(&mut self, off: usize, v: u32) -> &mut Attr {
        self.0[off..off + 4].copy_from_slice(&v.to_ne_bytes());
        self
    }
    fn u64_at(&mut self, off: usize, v: u64) -> &mut Attr {
        self.0[off..off + 8].copy_from_slice(&v.to_ne_bytes());
        self
    }
    fn read_u32(&self, off: usize) -> u32 {
        u32::from_ne_bytes(self.0[off..off + 4].try_into().expect("4 bytes"))
    }
}

fn bpf(cmd: libc::c_long, attr: &mut Attr) -> io::Result<libc::c_long> {
    // SAFETY: attr is a valid, writable bpf_attr-sized buffer for the duration of the call,
    // and every pointer stored in it points to memory the caller keeps alive.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *mut Attr,
            std::mem::size_of::<Attr>(),
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn owned(fd: libc::c_long) -> OwnedFd {
    // SAFETY: the kernel just returned this new descriptor to us; nobody else owns it.
    unsafe { OwnedFd::from_raw_fd(fd as i32) }
}

/// BPF_LINK_CREATE of a TCX link on `ifindex` of the calling thread's netns.
pub fn tcx_link_create(
    prog: BorrowedFd<'_>,
    ifindex: u32,
    attach_type: u32,
) -> io::Result<OwnedFd> {
    let mut a = Attr::new();
    a.u32_at(0, prog.as_raw_fd() as u32)
        .u32_at(4, ifindex)
        .u32_at(8, attach_type);
    bpf(BPF_LINK_CREATE, &mut a).map(owned)
}

/// BPF_LINK_UPDATE: atomically replace the program of a link.
pub fn link_update(link: BorrowedFd<'_>, prog: BorrowedFd<'_>) -> io::Result<()> {
    let mut a = Attr::new();
    a.u32_at(0, link.as_raw_fd() as u32)
        .u32_at(4, prog.as_raw_fd() as u32);
    bpf(BPF_LINK_UPDATE, &mut a).map(|_| ())
}

fn cpath(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))
}

pub fn obj_pin(fd: BorrowedFd<'_>, path: &Path) -> io::Result<()> {
    let p = cpath(path)?;
    let mut a = Attr::new();
    a.u64_at(0, p.as_ptr() as u64)
        .u32_at(8, fd.as_raw_fd() as u32);
    bpf(BPF_OBJ_PIN, &mut a).map(|_| ())
}

pub fn obj_get(path: &Path) -> io::Result<OwnedFd> {
    let p = cpath(path)?;
    let mut a = Attr::new();
    a.u64_at(0, p.as_ptr() as u64);
    bpf(BPF_OBJ_GET, &mut a).map(owned)
}

/// The input of one BPF_PROG_TEST_RUN of a TC program.
pub struct TestRun<'a> {
    pub data: &'a [u8],
    /// A `struct __sk_buff` prefix (e.g. to set `ifindex`), or empty.
    pub ctx: &'a [u8],
}

/// Run `prog` once on `data`; returns the program's return code (TC_ACT_*).
pub fn prog_test_run(prog: BorrowedFd<'_>, run: &TestRun<'_>) -> io::Result<u32> {
    let mut a = Attr::new();
    a.u32_at(0, prog.as_raw_fd() as u32)
        .u32_at(8, run.data.len() as u32)
        .u64_at(16, run.data.as_ptr() as u64)
        .u32_at(32, 1); // repeat
    if !run.ctx.is_empty() {
        a.u32_at(40, run.ctx.len() as u32)
            .u64_at(48, run.ctx.as_ptr() as u64);
    }
    bpf(BPF_PROG_TEST_RUN, &mut a)?;
    Ok(a.read_u32(4))
}

/// The bytes of a slice of plain-old-data map keys or values, as the batch commands take them.
pub fn pod_bytes<T: aya::Pod>(v: &[T]) -> &[u8] {
    // SAFETY: `aya::Pod` types are plain old data without padding the compiler adds; any
    // initialised value is readable as bytes, and the length covers exactly the slice.
    unsafe { std::slice::from_raw_parts(v.as_ptr().cast::<u8>(), std::mem::size_of_val(v)) }
}

/// [`pod_bytes`] for a buffer the kernel fills.
pub fn pod_bytes_mut<T: aya::Pod>(v: &mut [T]) -> &mut [u8] {
    // SAFETY: as for `pod_bytes`; in addition every byte pattern is a valid `aya::Pod` value,
    // so whatever the kernel writes leaves the elements valid.
    unsafe { std::slice::from_raw_parts_mut(v.as_mut_ptr().cast::<u8>(), std::mem::size_of_val(v)) }
}

fn batch_attr(map: BorrowedFd<'_>, keys: &[u8], values: Option<&[u8]>, count: usize) -> Attr {
    let mut a = Attr::new();
    // struct { in_batch, out_batch, keys, values; u32 count, map_fd; u64 elem_flags, flags }
    a.u64_at(16, keys.as_ptr() as u64)
        .u64_at(24, values.map_or(0, |v| v.as_ptr() as u64))
        .u32_at(32, count as u32)
        .u32_at(36, map.as_raw_fd() as u32);
    a
}

/// BPF_MAP_UPDATE_BATCH (BPF_ANY) of `count` packed keys and values: one syscall, and for a
/// map-in-map one RCU grace period for the whole batch instead of one per element (kernel
/// 6.7+, `bpf_map_do_batch`). LPM tries support it since 5.6 (`generic_map_update_batch`).
pub fn map_update_batch(
    map: BorrowedFd<'_>,
    keys: &[u8],
    values: &[u8],
    count: usize,
) -> io::Result<()> {
    if count == 0 {
        return Ok(());
    }
    debug_assert!(keys.len().is_multiple_of(count) && values.len().is_multiple_of(count));
    let mut a = batch_attr(map, keys, Some(values), count);
    bpf(BPF_MAP_UPDATE_BATCH, &mut a).map(|_| ())
}

/// BPF_MAP_DELETE_BATCH of `count` packed keys; a missing key is an error (ENOENT).
pub fn map_delete_batch(map: BorrowedFd<'_>, keys: &[u8], count: usize) -> io::Result<()> {
    if count == 0 {
        return Ok(());
    }
    let mut a = batch_attr(map, keys, None, count);
    bpf(BPF_MAP_DELETE_BATCH, &mut a).map(|_| ())
}

/// Where a [`map_lookup_batch`] walk of a hash map stands (a bucket index for the kernel).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchToken(u64);

/// One BPF_MAP_LOOKUP_BATCH step of a hash map: reads up to `count` elements after `from`
/// (`None`: from the start) into `keys` and `values`, which hold `count` of each. Returns how
/// many it read and where to go on, `None` once the map is exhausted. One syscall per step
/// instead of two per element (`BPF_MAP_GET_NEXT_KEY` + lookup); a bucket holding more than
/// `count` elements fails with ENOSPC.
pub fn map_lookup_batch(
    map: BorrowedFd<'_>,
    from: Option<BatchToken>,
    keys: &mut [u8],
    values: &mut [u8],
    count: usize,
) -> io::Result<(usize, Option<BatchToken>)> {
    debug_assert!(keys.len().is_multiple_of(count) && values.len().is_multiple_of(count));
    let mut in_batch = from.map_or(0, |t| t.0);
    let mut out_batch = 0u64;
    let mut a = Attr::new();
    // The kernel writes through the out_batch, keys and values pointers: all are exclusively
    // borrowed for the call.
    a.u64_at(0, from.map_or(0, |_| &mut in_batch as *mut u64 as u64))
        .u64_at(8, &mut out_batch as *mut u64 as u64)
        .u64_at(16, keys.as_mut_ptr() as u64)
        .u64_at(24, values.as_mut_ptr() as u64)
        .u32_at(32, count as u32)
        .u32_at(36, map.as_raw_fd() as u32);
    match bpf(BPF_MAP_LOOKUP_BATCH, &mut a) {
        Ok(_) => Ok((a.read_u32(32) as usize, Some(BatchToken(out_batch)))),
        // The last step: what it read is valid, and there is nothing after it.
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok((a.read_u32(32) as usize, None)),
        Err(e) => Err(e),
    }
}
