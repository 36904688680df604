//! A podman fully contained in a temp dir, running inside a lab node's namespace.
//!
//! Everything podman can be told where to keep lives under the temp dir: containers.conf
//! (`CONTAINERS_CONF`), storage (`CONTAINERS_STORAGE_CONF`, vfs), the CNI config dir, runc's
//! state (`--runtime-flag root=`), events, temp files. Three paths are fixed in podman 4.3 for
//! root: libcni's cache `/var/lib/cni`, containers/image's blob-info cache
//! `/var/lib/containers/cache` and (belt and braces) `/run/runc`. [`Podman`]'s `Drop` removes
//! what it created there, and only that: known files, then directories that are empty.

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::{json, Value};
use tandem_lab::lab::netns;

/// Machine-wide paths podman 4.3 uses whatever it is told; files listed are the only ones
/// removed, then every listed directory if it is empty.
const FIXED_PATHS: [(&str, &[&str]); 3] = [
    ("/var/lib/cni", &["results"]),
    (
        "/var/lib/containers",
        &["cache/blob-info-cache-v1.boltdb", "cache"],
    ),
    ("/run/runc", &[]),
];

pub struct Podman {
    dir: PathBuf,
    node_netns: String,
    /// Fixed paths that did not exist before this podman ran.
    created: Vec<&'static str>,
}

impl Podman {
    /// A podman for `node_netns` whose network `tandem` is `plugin` (one conflist entry), with
    /// the `tandem` binary at `tandem` and the reference plugins in `/usr/lib/cni`.
    pub fn new(node_netns: &str, tandem: &Path, plugin: Value) -> Podman {
        let created = FIXED_PATHS
            .iter()
            .map(|(p, _)| *p)
            .filter(|p| !Path::new(p).exists())
            .collect();
        let dir = std::env::temp_dir().join(format!("tandem-podman-{}", std::process::id()));
        let podman = Podman {
            dir,
            node_netns: node_netns.to_owned(),
            created,
        };
        let d = &podman.dir;
        for sub in ["bin", "net.d", "graph", "run", "tmp", "runc"] {
            std::fs::create_dir_all(d.join(sub)).unwrap();
        }
        symlink(tandem, d.join("bin/tandem")).unwrap();
        // podman 4.3 speaks CNI ≤ 1.0.0.
        let conflist = json!({"cniVersion": "1.0.0", "name": "tandem", "plugins": [plugin]});
        write(&d.join("net.d/tandem.conflist"), &conflist.to_string());
        write(&d.join("containers.conf"), &containers_conf(d));
        write(&d.join("storage.conf"), &storage_conf(d));
        podman
    }

    /// `podman ARGS...` in the node's namespace; its output, asserting success.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "podman {}: {}\n{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// `podman ARGS...` in the node's namespace, whatever its exit status.
    pub fn run(&self, args: &[&str]) -> Output {
        let d = &self.dir;
        let mut cmd = Command::new("podman");
        cmd.env("CONTAINERS_CONF", d.join("containers.conf"))
            .env("CONTAINERS_STORAGE_CONF", d.join("storage.conf"))
            .env("TMPDIR", d.join("tmp"))
            .arg("--runtime-flag")
            .arg(format!("root={}", d.join("runc").display()))
            .args(args)
            .stdin(Stdio::null());
        // setns in pre_exec, not `ip netns exec`, which would remount /sys.
        netns::enter_on_spawn(&mut cmd, &self.node_netns, false).unwrap();
        cmd.output().expect("run podman")
    }

    /// `localhost/busybox`, imported from a rootfs of busybox-static: there is no registry.
    pub fn import_busybox(&self) {
        let busybox = Path::new("/bin/busybox");
        assert!(
            busybox.exists(),
            "no /bin/busybox: apt-get install -y busybox-static"
        );
        let rootfs = self.dir.join("rootfs");
        std::fs::create_dir_all(rootfs.join("bin")).unwrap();
        std::fs::copy(busybox, rootfs.join("bin/busybox")).unwrap();
        for applet in ["sh", "ip", "ping", "sleep", "cat", "ls"] {
            symlink("busybox", rootfs.join("bin").join(applet)).unwrap();
        }
        let tar = self.dir.join("rootfs.tar");
        let status = Command::new("tar")
            .arg("-C")
            .arg(&rootfs)
            .arg("-cf")
            .arg(&tar)
            .arg(".")
            .status()
            .unwrap();
        assert!(status.success(), "tar rootfs");
        self.ok(&["import", &tar.display().to_string(), "localhost/busybox"]);
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = self.run(&["rm", "--all", "--force", "--time", "0"]);
        // A container podman could not remove may still hold its shm mount in our dir.
        for mount in mounts_under(&self.dir) {
            let _ = Command::new("umount").arg("-l").arg(&mount).status();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
        for (root, inside) in FIXED_PATHS {
            if !self.created.contains(&root) {
                continue;
            }
            let root = Path::new(root);
            for rel in inside {
                let p = root.join(rel);
                let _ = std::fs::remove_file(&p).or_else(|_| std::fs::remove_dir(&p));
            }
            let _ = std::fs::remove_dir(root);
        }
    }
}

/// What a dropped [`Podman`] left in its own dir (mounts, files).
pub fn leftovers(podman_dir: &Path) -> Vec<String> {
    let mut left: Vec<String> = mounts_under(podman_dir);
    if podman_dir.exists() {
        left.push(podman_dir.display().to_string());
    }
    left
}

fn mounts_under(dir: &Path) -> Vec<String> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let prefix = dir.display().to_string();
    text.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|m| m.starts_with(&prefix))
        .map(str::to_owned)
        .collect()
}

fn containers_conf(d: &Path) -> String {
    let p = |sub: &str| d.join(sub).display().to_string();
    // nproc too: podman raises it above the hard limit otherwise, which runc may not do
    // without CAP_SYS_RESOURCE (DESIGN.md §8, "lower default ulimits").
    format!(
        "[containers]\n\
         default_ulimits = [\"nofile=1024:1024\", \"nproc=4096:4096\"]\n\
         [network]\n\
         network_backend = \"cni\"\n\
         cni_plugin_dirs = [\"{bin}\", \"/usr/lib/cni\"]\n\
         network_config_dir = \"{netd}\"\n\
         [engine]\n\
         cgroup_manager = \"cgroupfs\"\n\
         events_logger = \"file\"\n\
         events_logfile_path = \"{events}\"\n\
         runtime = \"runc\"\n\
         tmp_dir = \"{tmp}\"\n\
         image_copy_tmp_dir = \"{tmp}\"\n",
        bin = p("bin"),
        netd = p("net.d"),
        events = p("events.log"),
        tmp = p("tmp"),
    )
}

fn storage_conf(d: &Path) -> String {
    format!(
        "[storage]\ndriver = \"vfs\"\nrunroot = \"{}\"\ngraphroot = \"{}\"\n",
        d.join("run").display(),
        d.join("graph").display()
    )
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}
