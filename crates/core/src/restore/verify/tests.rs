//! Tests of the verification pass: a clean restore verifies clean, and each
//! kind of difference is one error naming its path.

use super::super::{restore, RestoreOptions};
use super::*;
use crate::format::to_cbor;
use crate::format::tree::Tree;
use crate::format::{BlobType, Id};
use crate::repo::packer::BlobSink;
use crate::repo::Repository;
use serde_bytes::ByteBuf;
use std::os::unix::fs::{FileExt, MetadataExt, PermissionsExt};

const MTIME: Time = Time(1_600_000_000, 123_456_789);

fn node(name: &str, t: NodeType) -> Node {
    let mut n = crate::format::tree::test_node(name.as_bytes(), t);
    n.mode = if t == NodeType::Dir { 0o750 } else { 0o644 };
    n.mtime = MTIME;
    n
}

fn file(sink: &BlobSink, name: &str, data: &[u8]) -> Node {
    let mut n = node(name, NodeType::File);
    n.size = data.len() as u64;
    n.content = Some(vec![sink.add(BlobType::Data, data).unwrap().0]);
    n
}

fn tree(sink: &BlobSink, mut nodes: Vec<Node>) -> Id {
    nodes.sort_by(|a, b| a.name.cmp(&b.name));
    sink.add(BlobType::Tree, &to_cbor(&Tree { nodes }).unwrap())
        .unwrap()
        .0
}

/// A snapshot root with files, a directory with an xattr'd file and a
/// symlink, two hard-linked names and a fifo.
fn snapshot(repo: &std::sync::Arc<Repository>, extra: Vec<Node>) -> Id {
    repo.load_index(true).unwrap();
    let sink = BlobSink::new(repo.clone(), 3);
    let mut x = file(&sink, "x.txt", b"with an attribute");
    x.xattrs = vec![(
        ByteBuf::from(&b"user.note"[..]),
        ByteBuf::from(&b"hello"[..]),
    )];
    let mut link = node("link", NodeType::Symlink);
    link.mode = 0o777;
    link.target = Some(b"../a.txt".to_vec());
    let mut d = node("d", NodeType::Dir);
    d.subtree = Some(tree(&sink, vec![x, link]));
    d.xattrs = vec![(ByteBuf::from(&b"user.dir"[..]), ByteBuf::from(&b"on d"[..]))];
    let mut h1 = file(&sink, "h1", b"one inode, two names");
    (h1.links, h1.device_id, h1.inode) = (2, 9, 42);
    let h2 = Node {
        name: b"h2".to_vec(),
        ..h1.clone()
    };
    let mut nodes = vec![
        file(&sink, "a.txt", b"alpha"),
        file(&sink, "b.txt", b"bravo"),
        file(&sink, "c.bin", &[7u8; 1000]),
        d,
        h1,
        h2,
        node("fifo", NodeType::Fifo),
    ];
    nodes.extend(extra);
    let root = tree(&sink, nodes);
    sink.finish().unwrap();
    repo.load_index(false).unwrap();
    root
}

fn verifying(target: PathBuf) -> RestoreOptions {
    let mut opts = RestoreOptions::new(target);
    opts.verify = true;
    opts
}

/// The verification pass alone, over a tree restored earlier.
fn verify_again(repo: &Repository, root: &Id, opts: &RestoreOptions) -> Vec<String> {
    let ctx = Ctx::new(repo, opts);
    let nodes = repo.read_tree(root).unwrap().nodes;
    let target = Arc::new(Dir::open(&opts.target).unwrap());
    verify_restored(&ctx, &target, &nodes, b"", &HashSet::new(), 2);
    let mut errors = ctx.errors.into_inner().unwrap();
    errors.sort();
    errors
}

fn set_mtime(path: &Path, t: Time) {
    let ts = [
        libc::timespec {
            tv_sec: 0,
            tv_nsec: libc::UTIME_OMIT,
        },
        libc::timespec {
            tv_sec: t.0 as libc::time_t,
            tv_nsec: t.1 as libc::c_long,
        },
    ];
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: c is a valid path, ts has the two elements utimensat requires.
    let r = unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            c.as_ptr(),
            ts.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    assert_eq!(r, 0, "utimensat {}", path.display());
}

#[test]
fn an_untouched_restore_verifies_clean() {
    let (d, repo) = crate::repo::test_repo();
    let root = snapshot(&repo, vec![]);
    let opts = verifying(d.path().join("t"));
    let st = restore(&repo, &root, &opts).unwrap();
    assert!(st.errors.is_empty(), "{:?}", st.errors);
    assert_eq!(st.files, 6);
    assert!(verify_again(&repo, &root, &opts).is_empty());
    let t = &opts.target;
    assert_eq!(
        std::fs::metadata(t.join("h1")).unwrap().ino(),
        std::fs::metadata(t.join("h2")).unwrap().ino()
    );
}

#[test]
fn each_difference_is_reported_with_its_path() {
    let (d, repo) = crate::repo::test_repo();
    let root = snapshot(&repo, vec![]);
    let opts = verifying(d.path().join("t"));
    let t = opts.target.clone();
    assert!(restore(&repo, &root, &opts).unwrap().errors.is_empty());

    std::fs::set_permissions(t.join("a.txt"), std::fs::Permissions::from_mode(0o600)).unwrap();
    set_mtime(&t.join("b.txt"), Time(MTIME.0, 5));
    // one byte, same size, same mtime: only the content tells
    let c = std::fs::OpenOptions::new()
        .write(true)
        .open(t.join("c.bin"))
        .unwrap();
    c.write_all_at(b"8", 500).unwrap();
    drop(c);
    set_mtime(&t.join("c.bin"), MTIME);
    std::fs::remove_file(t.join("d/link")).unwrap();
    std::os::unix::fs::symlink("../b.txt", t.join("d/link")).unwrap();
    set_mtime(&t.join("d/link"), MTIME);
    set_mtime(&t.join("d"), MTIME);
    xattr::remove(t.join("d/x.txt"), "user.note").unwrap();
    // a copy instead of a second name for the same inode
    std::fs::remove_file(t.join("h2")).unwrap();
    std::fs::copy(t.join("h1"), t.join("h2")).unwrap();
    set_mtime(&t.join("h2"), MTIME);

    let say = |p: &str, what: &str| format!("{}: verification failed: {what}", t.join(p).display());
    let mut want = vec![
        say("a.txt", "mode is 0600 but the snapshot says 0644"),
        say(
            "b.txt",
            "mtime is 2020-09-13 12:26:40.000000005 UTC but the snapshot says 2020-09-13 12:26:40.123456789 UTC",
        ),
        say("c.bin", "content differs from the snapshot"),
        say(
            "d/link",
            "symlink target is \"../b.txt\" but the snapshot says \"../a.txt\"",
        ),
        say("d/x.txt", "extended attribute user.note is missing"),
        say(
            "h2",
            &format!("it is not a hard link to {}", t.join("h1").display()),
        ),
    ];
    if opts.owners {
        std::os::unix::fs::lchown(t.join("fifo"), Some(1234), None).unwrap();
        want.push(say("fifo", "owner is uid 1234 but the snapshot says uid 0"));
    }
    want.sort();
    assert_eq!(verify_again(&repo, &root, &opts), want);
}

#[test]
fn a_type_or_size_change_is_one_error() {
    let (d, repo) = crate::repo::test_repo();
    let root = snapshot(&repo, vec![]);
    let opts = verifying(d.path().join("t"));
    let t = opts.target.clone();
    assert!(restore(&repo, &root, &opts).unwrap().errors.is_empty());
    std::fs::remove_file(t.join("fifo")).unwrap();
    std::fs::write(t.join("fifo"), b"").unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(t.join("a.txt"))
        .unwrap()
        .set_len(2)
        .unwrap();
    set_mtime(&t.join("a.txt"), MTIME);
    std::fs::remove_file(t.join("b.txt")).unwrap();
    let errors = verify_again(&repo, &root, &opts);
    assert_eq!(errors.len(), 3, "{errors:?}");
    assert!(
        errors[0].ends_with("a.txt: verification failed: size is 2 bytes but the snapshot says 5")
    );
    assert!(errors[1].contains("b.txt: verification failed: cannot look at it:"));
    assert!(
        errors[2].ends_with("fifo: verification failed: it is a file but the snapshot says fifo")
    );
}

/// The pass runs at the end of a restore: a file the snapshot describes
/// inconsistently (a hole where its blob has data) is written as the holes
/// say, and reading it back shows it is not what the snapshot holds.
#[test]
fn a_restore_with_verify_reports_what_it_wrote_wrong() {
    let (d, repo) = crate::repo::test_repo();
    repo.load_index(true).unwrap();
    let sink = BlobSink::new(repo.clone(), 3);
    let mut holey = file(&sink, "holey.bin", &[7u8; 1000]);
    holey.holes = vec![(0, 1000)];
    sink.finish().unwrap();
    let root = snapshot(&repo, vec![holey]);
    let target = d.path().join("t");
    let st = restore(&repo, &root, &verifying(target.clone())).unwrap();
    assert_eq!(
        st.errors,
        vec![format!(
            "{}: verification failed: content differs from the snapshot",
            target.join("holey.bin").display()
        )]
    );
    let st = restore(&repo, &root, &RestoreOptions::new(d.path().join("t2"))).unwrap();
    assert!(st.errors.is_empty(), "{:?}", st.errors);
}

/// What the restore left out, kept, or already reported as failed is not
/// reported again.
#[test]
fn excluded_kept_and_failed_entries_are_not_checked() {
    let (d, repo) = crate::repo::test_repo();
    let mut lost = node("lost.bin", NodeType::File);
    lost.size = 4;
    lost.content = Some(vec![Id([7; 32])]);
    (lost.links, lost.device_id, lost.inode) = (2, 9, 43);
    let lost_link = Node {
        name: b"lost.link".to_vec(),
        ..lost.clone()
    };
    let root = snapshot(&repo, vec![lost, lost_link]);
    let mut opts = verifying(d.path().join("t"));
    let t = opts.target.clone();
    let st = restore(&repo, &root, &opts).unwrap();
    assert_eq!(st.errors.len(), 2, "{:?}", st.errors);
    assert!(st.errors.iter().all(|e| !e.contains("verification")));

    // kept by --overwrite never, different as it is
    std::fs::write(t.join("a.txt"), b"mine").unwrap();
    opts.overwrite = select::Overwrite::Never;
    let st = restore(&repo, &root, &opts).unwrap();
    assert_eq!(st.errors.len(), 2, "{:?}", st.errors);

    // left out by --exclude, or not picked by --include
    let t2 = d.path().join("t2");
    let mut opts = verifying(t2.clone());
    opts.selection.exclude = Some(
        crate::backup::exclude::Excludes::new(&["/lost.*".into(), "/a.txt".into()], &[]).unwrap(),
    );
    let st = restore(&repo, &root, &opts).unwrap();
    assert!(st.errors.is_empty(), "{:?}", st.errors);
    assert!(!t2.join("a.txt").exists());
    let t3 = d.path().join("t3");
    let mut opts = verifying(t3.clone());
    opts.selection.include =
        Some(crate::backup::exclude::Excludes::new(&["/d/x.txt".into()], &[]).unwrap());
    let st = restore(&repo, &root, &opts).unwrap();
    assert!(st.errors.is_empty(), "{:?}", st.errors);
    assert!(t3.join("d/x.txt").exists() && !t3.join("d/link").exists());
}

/// An ACL the snapshot does not have (one a new file inherits from a default
/// ACL of a directory already in the target) is a difference.
#[test]
fn an_acl_the_snapshot_lacks_is_reported() {
    let (d, repo) = crate::repo::test_repo();
    let root = snapshot(&repo, vec![]);
    let opts = verifying(d.path().join("t"));
    assert!(restore(&repo, &root, &opts).unwrap().errors.is_empty());
    // version 2; user::rw-, user:65534:r--, group::r--, mask::r--, other::r--
    let mut acl = 2u32.to_le_bytes().to_vec();
    for (tag, perm, id) in [
        (1u16, 6u16, u32::MAX),
        (2, 4, 65534),
        (4, 4, u32::MAX),
        (0x10, 4, u32::MAX),
        (0x20, 4, u32::MAX),
    ] {
        acl.extend_from_slice(&tag.to_le_bytes());
        acl.extend_from_slice(&perm.to_le_bytes());
        acl.extend_from_slice(&id.to_le_bytes());
    }
    let c = opts.target.join("c.bin");
    xattr::set(&c, "system.posix_acl_access", &acl).unwrap();
    set_mtime(&c, MTIME);
    assert_eq!(
        verify_again(&repo, &root, &opts),
        vec![format!(
            "{}: verification failed: it has an ACL (system.posix_acl_access) the snapshot does not have",
            c.display()
        )]
    );
}
