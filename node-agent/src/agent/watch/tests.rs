//! The event filter, and the real watch on scratch directories.

use notify::event::{CreateKind, DataChange, RemoveKind};

use super::*;

fn event(kind: EventKind, paths: &[&str]) -> notify::Result<Event> {
    let mut e = Event::new(kind);
    for p in paths {
        e = e.add_path(PathBuf::from(p));
    }
    Ok(e)
}

#[test]
fn writes_renames_and_removals_wake_the_reload() {
    let close = EventKind::Access(AccessKind::Close(AccessMode::Write));
    let to = EventKind::Modify(ModifyKind::Name(RenameMode::To));
    let from = EventKind::Modify(ModifyKind::Name(RenameMode::From));
    assert!(relevant(&event(close, &["/c/sg.yaml"])));
    assert!(relevant(&event(to, &["/c/sg.yaml"])));
    assert!(relevant(&event(from, &["/c/sg.yaml"])));
    assert!(relevant(&event(
        EventKind::Remove(RemoveKind::File),
        &["/c/sg.yaml"]
    )));
    // A ConfigMap update: a new `..2026_…` directory, then `..data_tmp` renamed to `..data`.
    assert!(relevant(&event(
        EventKind::Create(CreateKind::Folder),
        &["/c/..2026_12_04"]
    )));
    assert!(relevant(&event(to, &["/c/..data"])));
    assert!(relevant(&Err(notify::Error::generic("queue overflow"))));
    let rescan = Event::new(EventKind::Other).set_flag(notify::event::Flag::Rescan);
    assert!(relevant(&Ok(rescan)));
}

#[test]
fn reads_bare_writes_and_temp_files_do_not() {
    let open = EventKind::Access(AccessKind::Open(AccessMode::Any));
    let data = EventKind::Modify(ModifyKind::Data(DataChange::Any));
    let close = EventKind::Access(AccessKind::Close(AccessMode::Write));
    let from = EventKind::Modify(ModifyKind::Name(RenameMode::From));
    let both = EventKind::Modify(ModifyKind::Name(RenameMode::Both));
    assert!(!relevant(&event(open, &["/c/sg.yaml"])));
    assert!(!relevant(&event(both, &["/c/.sg.yaml.tmp", "/c/sg.yaml"])));
    assert!(!relevant(&event(data, &["/c/sg.yaml"])));
    assert!(!relevant(&event(close, &["/c/.endpoints-n1.tmp"])));
    assert!(!relevant(&event(from, &["/c/.endpoints-n1.tmp"])));
}

/// A directory under the system's temp dir, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("tandem-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn namespace(name: &str) -> String {
    format!("kind: Namespace\nmetadata: {{name: {name}}}\n")
}

/// Reloads until one has namespace `name`; fails if that takes the fallback poll's time.
async fn until_loaded(watch: &mut ConfigWatch, name: &str) -> Reload {
    let deadline = Instant::now() + FALLBACK / 2;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let reload = tokio::time::timeout(left, watch.next())
            .await
            .unwrap_or_else(|_| panic!("{name} not loaded within {left:?}"));
        let model = reload.loaded.as_ref().unwrap();
        if model.namespaces.contains_key(name) {
            return reload;
        }
    }
}

/// The real watcher: an atomic replace (write a temp file, rename it) wakes it once the
/// rename is done; reading the directory does not.
#[tokio::test]
async fn a_renamed_file_wakes_the_watcher_and_a_read_does_not() {
    let dir = Scratch::new("watch-rename");
    let dir = &dir.0;
    let wake = Arc::new(Notify::new());
    let _w = watch(dir, wake.clone()).unwrap();
    let within = |d| tokio::time::timeout(Duration::from_millis(d), wake.notified());

    std::fs::write(dir.join(".sg.yaml.tmp"), "kind: x\n").unwrap();
    assert!(within(100).await.is_err(), "a temp file woke the reload");
    std::fs::rename(dir.join(".sg.yaml.tmp"), dir.join("sg.yaml")).unwrap();
    assert!(
        within(1000).await.is_ok(),
        "the rename did not wake the reload"
    );
    // A rename out of or within the directory wakes twice (`From` and `To`).
    let _ = within(100).await;
    let _ = Model::load(dir);
    let _ = std::fs::read_to_string(dir.join("sg.yaml")).unwrap();
    assert!(within(100).await.is_err(), "a read woke the reload");
}

/// A file rewritten in place (truncated, then written) is loaded once its writer closed
/// it, never half-written.
#[tokio::test]
async fn a_file_rewritten_in_place_is_loaded_whole() {
    let dir = Scratch::new("watch-in-place");
    let path = dir.0.join("ns.yaml");
    std::fs::write(&path, namespace("ns-a")).unwrap();
    let mut watch = ConfigWatch::new(dir.0.clone()).await;
    assert!(watch._watcher.is_some());
    // The writer runs beside the watch, which could reload between its writes.
    let writer = std::thread::spawn(move || {
        use std::io::Write;
        let mut f = std::fs::File::create(&path).unwrap();
        f.write_all(namespace("ns-a").as_bytes()).unwrap();
        std::thread::sleep(Duration::from_millis(50));
        f.write_all(b"---\n").unwrap();
        f.write_all(namespace("ns-b").as_bytes()).unwrap();
    });
    let reload = tokio::time::timeout(FALLBACK / 2, watch.next())
        .await
        .expect("no reload after the write");
    writer.join().unwrap();
    assert!(reload.woken);
    let model = reload.loaded.unwrap();
    assert!(model.namespaces.contains_key("ns-a") && model.namespaces.contains_key("ns-b"));
}

/// A mounted ConfigMap: files are symlinks through `..data`, which the kubelet points at a
/// new timestamped directory with a rename. The watch sees it well before its fallback poll.
#[tokio::test]
async fn a_configmap_swap_is_seen_at_once() {
    let dir = Scratch::new("watch-configmap");
    let dir = &dir.0;
    let version = |name: &str, ns: &str| {
        std::fs::create_dir(dir.join(name)).unwrap();
        std::fs::write(dir.join(name).join("ns.yaml"), namespace(ns)).unwrap();
    };
    version("..2026_12_04_01", "ns-a");
    std::os::unix::fs::symlink("..2026_12_04_01", dir.join("..data")).unwrap();
    std::os::unix::fs::symlink("..data/ns.yaml", dir.join("ns.yaml")).unwrap();
    let mut watch = ConfigWatch::new(dir.clone()).await;
    assert!(watch._watcher.is_some());

    version("..2026_12_04_02", "ns-b");
    std::os::unix::fs::symlink("..2026_12_04_02", dir.join("..data_tmp")).unwrap();
    std::fs::rename(dir.join("..data_tmp"), dir.join("..data")).unwrap();
    std::fs::remove_dir_all(dir.join("..2026_12_04_01")).unwrap();
    let reload = until_loaded(&mut watch, "ns-b").await;
    assert!(reload.woken);
}
