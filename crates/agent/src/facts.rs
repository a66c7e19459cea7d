//! Device facts: where a local path physically lives, for the 3-2-1 rule
//! ("at least two copies on different devices/media").
//!
//! The answer comes from the kernel's own tables, never from labels: the mount
//! table (`proc/self/mountinfo`) names the filesystem holding the path, and
//! sysfs (`sys/dev/block`, `sys/class/block`) walks its block device down to
//! whole disks (partition → parent disk; device-mapper, LVM and md RAID →
//! every member through `slaves/`). Invariant: whatever cannot be pinned to a
//! physical medium is `NotSeparate`, so a doubtful copy never counts as a
//! second medium. The root is injectable so tests can describe a machine.

use std::collections::BTreeSet;
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

/// Filesystems whose bytes live in memory.
const MEMORY_FSTYPES: &str = "tmpfs ramfs devtmpfs hugetlbfs mqueue";
/// Filesystems layered over other filesystems, never a medium of their own.
const LAYERED_FSTYPES: &str = "overlay fuse-overlayfs fuse.fuse-overlayfs aufs";
/// Read-only images, in practice a file on some other medium.
const IMAGE_FSTYPES: &str = "squashfs erofs cramfs";
/// Kernel pseudo filesystems: nothing stored at all.
const VIRTUAL_FSTYPES: &str = "proc sysfs devpts cgroup cgroup2 debugfs tracefs securityfs pstore \
    bpf configfs fusectl binfmt_misc nsfs efivarfs autofs rpc_pipefs selinuxfs";
/// Filesystems served by another machine; the mount source names the export.
const NETWORK_FSTYPES: &str = "nfs nfs4 cifs smb3 smbfs ceph fuse.ceph glusterfs fuse.glusterfs \
    fuse.sshfs sshfs lustre afs davfs fuse.s3fs fuse.rclone fuse.gcsfuse beegfs";
/// Bound on device stacking (dm over md over partitions …): a cyclic fake tree
/// must not recurse forever, and real stacks are a handful deep.
const MAX_STACK_DEPTH: usize = 16;

/// What a path is stored on.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Medium {
    /// Whole disks holding the path (a partition resolves to its parent disk;
    /// device-mapper / LVM / md RAID resolve through `slaves/` to every member's disk).
    Disk { disks: BTreeSet<String> },
    /// A network filesystem: its fstype and source ("server:/export").
    Network { fstype: String, source: String },
    /// Never a separate medium (memory, overlay, image, loop device, unresolved); `why` says which.
    NotSeparate { why: String },
}

impl Medium {
    /// True if two media are different physical media: Disk sets disjoint;
    /// Network sources differ; NotSeparate is never separate from anything.
    pub fn separate_from(&self, other: &Medium) -> bool {
        match (self, other) {
            (Medium::NotSeparate { .. }, _) | (_, Medium::NotSeparate { .. }) => false,
            (Medium::Disk { disks: a }, Medium::Disk { disks: b }) => a.is_disjoint(b),
            (Medium::Network { source: a, .. }, Medium::Network { source: b, .. }) => {
                a.trim_end_matches('/') != b.trim_end_matches('/')
            }
            // A local disk and a filesystem served by another machine.
            _ => true,
        }
    }

    /// Short words for messages: "disk sda", "disks sda+sdb", "nfs server:/export", or the why.
    pub fn describe(&self) -> String {
        match self {
            Medium::Disk { disks } => {
                let names: Vec<&str> = disks.iter().map(String::as_str).collect();
                let noun = if names.len() == 1 { "disk" } else { "disks" };
                format!("{noun} {}", names.join("+"))
            }
            Medium::Network { fstype, source } => format!("{fstype} {source}"),
            Medium::NotSeparate { why } => why.clone(),
        }
    }
}

fn not_separate(why: impl Into<String>) -> Medium {
    Medium::NotSeparate { why: why.into() }
}

/// Reads mount table and sysfs below a root: "/" on a real machine, a tempdir in tests.
#[derive(Debug, Clone)]
pub struct DeviceFacts {
    root: PathBuf,
}

/// The fields of one mountinfo line that locate a filesystem.
#[derive(Debug)]
struct Mount {
    /// "MAJ:MIN" as the kernel reports it; anonymous (0:N) for btrfs and friends.
    device: String,
    mount_point: PathBuf,
    fstype: String,
    source: String,
}

impl DeviceFacts {
    /// Facts of this machine.
    pub fn system() -> Self {
        Self::with_root("/")
    }

    /// Facts from a fake root holding `proc/self/mountinfo` and `sys/{dev,class}/block/…`.
    pub fn with_root(root: impl Into<PathBuf>) -> Self {
        DeviceFacts { root: root.into() }
    }

    /// `IRONVAULT_FACTS_ROOT` if set (tests inject facts this way), else this machine.
    pub fn from_env() -> Self {
        match std::env::var_os("IRONVAULT_FACTS_ROOT") {
            Some(root) if !root.is_empty() => Self::with_root(root),
            _ => Self::system(),
        }
    }

    /// The medium holding `path`, which need not exist yet (its nearest existing ancestor decides).
    pub fn medium_of(&self, path: &Path) -> Medium {
        let (existing, full) = match resolve_path(path) {
            Ok(found) => found,
            Err(why) => return not_separate(why),
        };
        let mountinfo = self.root.join("proc/self/mountinfo");
        let mounts = match std::fs::read(&mountinfo) {
            Ok(bytes) => parse_mountinfo(&bytes),
            Err(e) => return not_separate(format!("cannot read {}: {e}", mountinfo.display())),
        };
        // Same depth twice means over-mounting: the later line is the visible one,
        // and `max_by_key` returns the last maximum.
        let Some(mount) = mounts
            .iter()
            .filter(|m| full.starts_with(&m.mount_point))
            .max_by_key(|m| m.mount_point.components().count())
        else {
            return not_separate(format!("no mount holds {}", full.display()));
        };
        if let Some(why) = fstype_not_separate(&mount.fstype) {
            return not_separate(why);
        }
        if is_one_of(NETWORK_FSTYPES, &mount.fstype) {
            let (fstype, source) = (mount.fstype.clone(), mount.source.clone());
            return Medium::Network { fstype, source };
        }
        let device = if self.root == Path::new("/") {
            // The contract on a real machine: the path's own st_dev, not the table's.
            match std::fs::metadata(&existing) {
                Ok(meta) => format!("{}:{}", libc::major(meta.dev()), libc::minor(meta.dev())),
                Err(e) => return not_separate(format!("cannot stat {}: {e}", existing.display())),
            }
        } else {
            mount.device.clone()
        };
        self.medium_of_device(&device, mount)
    }

    fn medium_of_device(&self, device: &str, mount: &Mount) -> Medium {
        if let Ok(dir) = self.root.join("sys/dev/block").join(device).canonicalize() {
            return self.medium_of_block_dir(&dir, 0);
        }
        // Anonymous device numbers (btrfs, …): the mount source names the device.
        let Some(name) = self.block_name_of_source(&mount.source) else {
            return not_separate(format!("no block device for {device}"));
        };
        let members = if mount.fstype == "btrfs" {
            self.btrfs_members(&name)
        } else {
            vec![name]
        };
        self.medium_of_block_names(&members, 0)
    }

    /// The kernel name ("sda2", "dm-0") of a `/dev/…` mount source present in sysfs.
    fn block_name_of_source(&self, source: &str) -> Option<OsString> {
        let rel = source.strip_prefix("/dev/")?;
        // udev links (/dev/mapper/x, /dev/disk/by-uuid/…) lead to the kernel name.
        let name = match self.root.join("dev").join(rel).canonicalize() {
            Ok(node) => node.file_name()?.to_owned(),
            Err(_) => match rel.strip_prefix("mapper/") {
                Some(dm_name) => self.dm_by_name(dm_name)?,
                None => OsString::from(rel.rsplit('/').next()?),
            },
        };
        let class = self.root.join("sys/class/block");
        class.join(&name).exists().then_some(name)
    }

    /// The block device whose `dm/name` is `dm_name` (what /dev/mapper/NAME calls it).
    fn dm_by_name(&self, dm_name: &str) -> Option<OsString> {
        let entries = std::fs::read_dir(self.root.join("sys/class/block")).ok()?;
        entries.flatten().map(|e| e.file_name()).find(|name| {
            let file = self.root.join("sys/class/block").join(name).join("dm/name");
            std::fs::read_to_string(file).is_ok_and(|n| n.trim() == dm_name)
        })
    }

    /// Every device of the btrfs filesystem that has `member` (the mount source shows only one).
    fn btrfs_members(&self, member: &OsStr) -> Vec<OsString> {
        let filesystems = std::fs::read_dir(self.root.join("sys/fs/btrfs"));
        for fs in filesystems.into_iter().flatten().flatten() {
            let devices = fs.path().join("devices");
            if devices.join(member).exists() {
                if let Ok(entries) = std::fs::read_dir(&devices) {
                    return entries.flatten().map(|e| e.file_name()).collect();
                }
            }
        }
        vec![member.to_owned()]
    }

    /// The union of the disks under several block devices; one unresolved member taints all.
    fn medium_of_block_names(&self, names: &[OsString], depth: usize) -> Medium {
        let mut disks = BTreeSet::new();
        for name in names {
            let link = self.root.join("sys/class/block").join(name);
            let Ok(dir) = link.canonicalize() else {
                let name = name.to_string_lossy();
                return not_separate(format!("block device {name} not found in sysfs"));
            };
            match self.medium_of_block_dir(&dir, depth + 1) {
                Medium::Disk { disks: found } => disks.extend(found),
                other => return other,
            }
        }
        Medium::Disk { disks }
    }

    /// Walk a sysfs device directory down to whole disks.
    fn medium_of_block_dir(&self, dir: &Path, depth: usize) -> Medium {
        let name = String::from(dir.file_name().unwrap_or_default().to_string_lossy());
        if depth > MAX_STACK_DEPTH {
            return not_separate(format!("device stack too deep at {name}"));
        }
        if dir.join("partition").exists() {
            return match dir.parent() {
                Some(disk) => self.medium_of_block_dir(disk, depth + 1),
                None => not_separate(format!("partition {name} has no parent disk")),
            };
        }
        if let Some(why) = block_name_not_separate(&name) {
            return not_separate(why);
        }
        let mut slaves: Vec<OsString> = match std::fs::read_dir(dir.join("slaves")) {
            Ok(entries) => entries.flatten().map(|e| e.file_name()).collect(),
            Err(_) => Vec::new(),
        };
        if slaves.is_empty() {
            let disks = BTreeSet::from([name]);
            return Medium::Disk { disks };
        }
        slaves.sort();
        self.medium_of_block_names(&slaves, depth)
    }
}

/// Whether `fstype` is one of the space-separated `words`.
fn is_one_of(words: &str, fstype: &str) -> bool {
    words.split_whitespace().any(|word| word == fstype)
}

/// Why a filesystem type is never a medium of its own, if it is one of those.
fn fstype_not_separate(fstype: &str) -> Option<String> {
    if is_one_of(MEMORY_FSTYPES, fstype) {
        Some(format!("{fstype} (memory)"))
    } else if is_one_of(LAYERED_FSTYPES, fstype) {
        Some(format!("{fstype} filesystem"))
    } else if is_one_of(IMAGE_FSTYPES, fstype) {
        Some(format!("{fstype} image"))
    } else if is_one_of(VIRTUAL_FSTYPES, fstype) {
        Some(format!("{fstype} (kernel virtual filesystem)"))
    } else {
        None
    }
}

/// Why a whole block device is not a physical disk, by its kernel name.
fn block_name_not_separate(name: &str) -> Option<String> {
    if name.starts_with("loop") {
        Some(format!("loop device {name}"))
    } else if name.starts_with("zram") {
        Some(format!("zram device {name} (compressed memory)"))
    } else if name.starts_with("ram") {
        Some(format!("ram disk {name} (memory)"))
    } else {
        None
    }
}

/// The canonical nearest existing ancestor of `path`, and `path` itself with that
/// ancestor canonicalized and the missing rest appended (".." applied lexically).
fn resolve_path(path: &Path) -> Result<(PathBuf, PathBuf), String> {
    let absolute = std::path::absolute(path)
        .map_err(|e| format!("cannot make {} absolute: {e}", path.display()))?;
    let mut existing = absolute.as_path();
    let mut missing = Vec::new();
    let canonical = loop {
        if let Ok(canonical) = existing.canonicalize() {
            break canonical;
        }
        match (existing.components().next_back(), existing.parent()) {
            (Some(last), Some(parent)) => {
                missing.push(last);
                existing = parent;
            }
            _ => return Err(format!("no existing ancestor of {}", path.display())),
        }
    };
    let mut full = canonical.clone();
    for component in missing.into_iter().rev() {
        match component {
            Component::ParentDir => {
                full.pop();
            }
            Component::Normal(name) => full.push(name),
            _ => {}
        }
    }
    Ok((canonical, full))
}

/// The mounts of a mountinfo file; malformed lines are skipped.
fn parse_mountinfo(bytes: &[u8]) -> Vec<Mount> {
    let mut mounts = Vec::new();
    for line in bytes.split(|b| *b == b'\n') {
        let fields: Vec<&[u8]> = line.split(|b| *b == b' ').collect();
        // id parent MAJ:MIN root mount-point options [optional…] - fstype source super-options
        let dash = fields.iter().skip(6).position(|f| *f == b"-");
        let Some(dash) = dash.map(|p| p + 6).filter(|d| fields.len() > d + 2) else {
            continue;
        };
        let text = |field: &[u8]| String::from_utf8_lossy(&unescape(field)).into_owned();
        mounts.push(Mount {
            device: text(fields[2]),
            mount_point: PathBuf::from(OsString::from_vec(unescape(fields[4]))),
            fstype: text(fields[dash + 1]),
            source: text(fields[dash + 2]),
        });
    }
    mounts
}

/// Undo mountinfo's octal escapes (`\040` space, `\011` tab, `\012` newline, `\134` backslash).
fn unescape(field: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(field.len());
    let mut rest = field;
    while let Some((&first, tail)) = rest.split_first() {
        match tail {
            [a @ b'0'..=b'3', b @ b'0'..=b'7', c @ b'0'..=b'7', ..] if first == b'\\' => {
                out.push((a - b'0') * 64 + (b - b'0') * 8 + (c - b'0'));
                rest = &tail[3..];
            }
            _ => {
                out.push(first);
                rest = tail;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::{create_dir_all, write};
    use std::os::unix::fs::symlink;
    use std::process::Command;

    const SDA: &str = "pci0000:00/0000:00:1f.2/ata1/host0/target0:0:0/0:0:0:0/block/sda";
    const SDB: &str = "pci0000:00/0000:00:1f.2/ata2/host1/target1:0:0/1:0:0:0/block/sdb";

    /// A fake machine: sysfs and the mount table under `root`, real directories under `world`.
    struct FakeMachine {
        _tmp: tempfile::TempDir,
        root: PathBuf,
        world: PathBuf,
        mountinfo: String,
    }

    impl FakeMachine {
        /// A device at sys/devices/DEVPATH, linked from sys/dev/block and sys/class/block.
        fn block(&self, devpath: &str, dev: &str, partition: bool) {
            let dir = self.root.join("sys/devices").join(devpath);
            create_dir_all(&dir).unwrap();
            write(dir.join("dev"), format!("{dev}\n")).unwrap();
            if partition {
                write(dir.join("partition"), "1\n").unwrap();
            }
            let target = format!("../../devices/{devpath}");
            symlink(&target, self.root.join("sys/dev/block").join(dev)).unwrap();
            let name = devpath.rsplit('/').next().unwrap();
            symlink(&target, self.root.join("sys/class/block").join(name)).unwrap();
        }

        /// DIR/NAME → sys/devices/MEMBER as a relative link, the way sysfs writes them.
        fn link_member(&self, dir: &str, member: &str) {
            let up = "../".repeat(dir.split('/').count() - 1);
            let dir = self.root.join(dir);
            create_dir_all(&dir).unwrap();
            let name = member.rsplit('/').next().unwrap();
            symlink(format!("{up}devices/{member}"), dir.join(name)).unwrap();
        }

        /// A mountinfo line for WORLD/NAME (or "/"), escaped as the kernel writes it.
        fn mount(&mut self, dev: &str, fs_root: &str, name: &str, fstype: &str, source: &str) {
            let point = self.world.join(name);
            create_dir_all(&point).unwrap();
            let escaped = point.to_str().unwrap().replace(' ', "\\040");
            let id = 20 + self.mountinfo.lines().count();
            self.mountinfo.push_str(&format!(
                "{id} 1 {dev} {fs_root} {escaped} rw,relatime shared:{id} - {fstype} {source} rw\n"
            ));
        }

        fn medium(&self, rel: &str) -> Medium {
            write(self.root.join("proc/self/mountinfo"), &self.mountinfo).unwrap();
            DeviceFacts::with_root(&self.root).medium_of(&self.world.join(rel))
        }
    }

    /// Disks sda and sdb, LVM dm-0 over sda2+sdb1, btrfs over sda3+sdb2, loop0, and mounts.
    fn machine() -> FakeMachine {
        let tmp = tempfile::tempdir().unwrap();
        let base = tmp.path().canonicalize().unwrap();
        let (root, world) = (base.join("root"), base.join("world"));
        for dir in ["proc/self", "sys/dev/block", "sys/class/block"] {
            create_dir_all(root.join(dir)).unwrap();
        }
        let mountinfo = String::new();
        let mut m = FakeMachine {
            _tmp: tmp,
            root,
            world,
            mountinfo,
        };
        for (devpath, dev) in [(SDA, "8:0"), (SDB, "8:16"), ("virtual/block/loop0", "7:0")] {
            m.block(devpath, dev, false);
        }
        for (part, dev) in [("sda1", "8:1"), ("sda2", "8:2"), ("sda3", "8:3")] {
            m.block(&format!("{SDA}/{part}"), dev, true);
        }
        for (part, dev) in [("sdb1", "8:17"), ("sdb2", "8:18")] {
            m.block(&format!("{SDB}/{part}"), dev, true);
        }
        m.block("virtual/block/dm-0", "253:0", false);
        let dm = m.root.join("sys/devices/virtual/block/dm-0/dm");
        create_dir_all(&dm).unwrap();
        write(dm.join("name"), "vg0-data\n").unwrap();
        let slaves = "sys/devices/virtual/block/dm-0/slaves";
        m.link_member(slaves, &format!("{SDA}/sda2"));
        m.link_member(slaves, &format!("{SDB}/sdb1"));
        let btrfs = "sys/fs/btrfs/5c1f3a9e-8d2b-4e0f-9a61-3f2d7c4b8e10/devices";
        m.link_member(btrfs, &format!("{SDA}/sda3"));
        m.link_member(btrfs, &format!("{SDB}/sdb2"));

        m.mount("8:1", "/", "/", "ext4", "/dev/sda1");
        m.mount("8:2", "/", "a2", "ext4", "/dev/sda2");
        m.mount("8:17", "/", "b", "ext4", "/dev/sdb1");
        m.mount("8:17", "/backups", "bind", "ext4", "/dev/sdb1");
        m.mount("8:17", "/", "My Backups", "ext4", "/dev/sdb1");
        m.mount("0:40", "/", "tmp", "tmpfs", "tmpfs");
        m.mount("0:41", "/", "container", "overlay", "overlay");
        m.mount("7:0", "/", "image", "ext4", "/dev/loop0");
        m.mount("253:0", "/", "lvm", "xfs", "/dev/mapper/vg0-data");
        m.mount("0:50", "/", "nas", "nfs4", "nas.lan:/export/backup");
        m.mount("0:45", "/", "pool", "btrfs", "/dev/sda3");
        m.mount("0:46", "/", "zfs", "zfs", "tank/home");
        m.mount("0:47", "/", "crypt", "btrfs", "/dev/mapper/vg0-data");
        m
    }

    fn disks(names: &[&str]) -> Medium {
        let disks = names.iter().map(|n| n.to_string()).collect();
        Medium::Disk { disks }
    }

    #[test]
    fn facts_two_disks_are_separate_and_one_disk_or_a_bind_mount_is_not() {
        let m = machine();
        write(m.world.join("a2/file"), "x").unwrap();
        let (sda1, sda2, sdb1) = (m.medium("outside/file"), m.medium("a2/file"), m.medium("b"));
        assert_eq!(sda1, disks(&["sda"]));
        assert_eq!(sda2, sda1);
        assert_eq!(sdb1, disks(&["sdb"]));
        assert!(sda1.separate_from(&sdb1) && sdb1.separate_from(&sda1));
        assert!(!sda1.separate_from(&sda2));
        assert_eq!(sdb1.describe(), "disk sdb");
        // A bind mount shows the same MAJ:MIN with another root: the same disk.
        assert_eq!(m.medium("bind/x"), sdb1);
    }

    #[test]
    fn facts_memory_overlay_and_loop_are_never_separate() {
        let m = machine();
        let sdb = m.medium("b");
        for (rel, why) in [
            ("tmp/x", "tmpfs (memory)"),
            ("container/x", "overlay filesystem"),
            ("image/x", "loop device loop0"),
        ] {
            let medium = m.medium(rel);
            assert_eq!(medium, not_separate(why), "{rel}");
            assert!(!medium.separate_from(&sdb) && !sdb.separate_from(&medium));
            assert!(!medium.separate_from(&medium.clone()));
        }
    }

    #[test]
    fn facts_lvm_over_two_disks_holds_both() {
        let m = machine();
        let (lvm, sdb) = (m.medium("lvm/data"), m.medium("b"));
        assert_eq!(lvm, disks(&["sda", "sdb"]));
        assert_eq!(lvm.describe(), "disks sda+sdb");
        assert!(!lvm.separate_from(&sdb) && !sdb.separate_from(&lvm));
    }

    #[test]
    fn facts_nfs_is_network_and_separate_by_source() {
        let m = machine();
        let nas = m.medium("nas/hosts/web1");
        let (fstype, source) = ("nfs4".to_string(), "nas.lan:/export/backup".to_string());
        assert_eq!(nas, Medium::Network { fstype, source });
        assert_eq!(nas.describe(), "nfs4 nas.lan:/export/backup");
        assert!(nas.separate_from(&m.medium("b")) && m.medium("b").separate_from(&nas));
        assert!(!nas.separate_from(&nas.clone()));
        let (fstype, source) = ("nfs".to_string(), "nas2.lan:/export".to_string());
        assert!(nas.separate_from(&Medium::Network { fstype, source }));
        assert!(!nas.separate_from(&not_separate("tmpfs (memory)")));
    }

    #[test]
    fn facts_octal_escaped_mount_point_and_component_prefixes() {
        let m = machine();
        // "My Backups" is written as My\040Backups and lives on sdb; "/" is on sda.
        assert!(m.mountinfo.contains("My\\040Backups"));
        assert_eq!(m.medium("My Backups/2024"), disks(&["sdb"]));
        // "bb" starts with the string "b" but is not below the mount point b.
        assert_eq!(m.medium("bb/x"), disks(&["sda"]));
        assert_eq!(unescape(br"a\134b\011c\9"), b"a\\b\tc\\9");
    }

    #[test]
    fn facts_deep_and_missing_paths_use_the_nearest_mount() {
        let m = machine();
        create_dir_all(m.world.join("b/deep/er")).unwrap();
        assert_eq!(m.medium("b/deep/er"), disks(&["sdb"]));
        assert_eq!(m.medium("b/not/yet/there"), disks(&["sdb"]));
        assert_eq!(m.medium("missing/../b/new"), disks(&["sdb"]));
        assert_eq!(m.medium("b/../a2/new"), disks(&["sda"]));
        create_dir_all(m.world.join("tmp/run")).unwrap();
        symlink(m.world.join("tmp/run"), m.world.join("b/link")).unwrap();
        assert_eq!(m.medium("b/link/x"), not_separate("tmpfs (memory)"));
    }

    #[test]
    fn facts_anonymous_devices_fall_back_to_the_mount_source() {
        let m = machine();
        // btrfs RAID1 over sda3+sdb2: the source names sda3, sys/fs/btrfs names both.
        assert_eq!(m.medium("pool/x"), disks(&["sda", "sdb"]));
        // /dev/mapper/NAME found through sys/class/block/*/dm/name.
        assert_eq!(m.medium("crypt/x"), disks(&["sda", "sdb"]));
        assert_eq!(m.medium("zfs/x"), not_separate("no block device for 0:46"));
    }

    #[test]
    fn facts_missing_mount_table_is_not_separate_and_json_is_tagged() {
        let tmp = tempfile::tempdir().unwrap();
        let medium = DeviceFacts::with_root(tmp.path()).medium_of(tmp.path());
        assert!(matches!(&medium, Medium::NotSeparate { why } if why.contains("cannot read")));
        let json = serde_json::to_value(disks(&["sda", "sdb"])).unwrap();
        let expected = serde_json::json!({"kind": "disk", "disks": ["sda", "sdb"]});
        assert_eq!(json, expected);
        let json = serde_json::to_value(not_separate("zram device zram0")).unwrap();
        assert_eq!(json["kind"], "not_separate");
    }

    fn run(program: &str, args: &[&str]) -> String {
        let out = Command::new(program).args(args).output();
        let out = out.unwrap_or_else(|e| panic!("this test needs {program}: {e}"));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{program} {args:?}: {stderr}");
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }

    /// This machine's real answer, checked against statfs (stat -f), findmnt and lsblk.
    #[test]
    fn facts_this_machine_agrees_with_findmnt_and_lsblk() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().to_str().unwrap();
        let medium = DeviceFacts::system().medium_of(tmp.path());
        let magic = run("stat", &["-f", "-c", "%T", path]);
        let found = run("findmnt", &["-n", "-o", "FSTYPE,SOURCE", "-T", path]);
        let (fstype, source) = found.split_once(char::is_whitespace).unwrap();
        // findmnt shows btrfs subvolumes as /dev/sda2[/@home].
        let source = source.trim().split('[').next().unwrap();
        eprintln!("{path}: {fstype} {source} (statfs {magic}) -> {medium:?}");
        let in_memory = matches!(&medium, Medium::NotSeparate { why } if why.ends_with("(memory)"));
        let memory_fs = ["tmpfs", "ramfs"].contains(&magic.as_str());
        assert_eq!(in_memory, memory_fs, "statfs says {magic}");
        if let Some(why) = fstype_not_separate(fstype) {
            assert_eq!(medium, not_separate(why));
        } else if is_one_of(NETWORK_FSTYPES, fstype) {
            assert!(matches!(medium, Medium::Network { .. }), "{medium:?}");
            assert_eq!(medium.describe(), format!("{fstype} {source}"));
        } else if source.starts_with("/dev/") {
            let stack = run("lsblk", &["-s", "-n", "-l", "-o", "KNAME,TYPE", source]);
            let rows: Vec<Vec<&str>> = stack
                .lines()
                .map(|l| l.split_whitespace().collect())
                .collect();
            let of_type = |kind: &'static str| rows.iter().filter(move |r| r[1..] == [kind]);
            let expected: BTreeSet<String> = of_type("disk").map(|r| r[0].to_string()).collect();
            if of_type("loop").next().is_some() {
                assert!(matches!(&medium, Medium::NotSeparate { why } if why.contains("loop")));
                return;
            }
            assert!(!expected.is_empty(), "no disk under {source}: {stack}");
            let Medium::Disk { disks } = &medium else {
                panic!("{source}: {medium:?}")
            };
            // lsblk sees only the source device of a btrfs filesystem; it may span more.
            if fstype == "btrfs" {
                assert!(expected.is_subset(disks), "{expected:?} not in {disks:?}");
            } else {
                assert_eq!(disks, &expected);
            }
        } else {
            let unresolved = matches!(medium, Medium::NotSeparate { .. });
            assert!(unresolved, "{fstype} {source}: {medium:?}");
        }
    }
}
