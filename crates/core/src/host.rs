//! This host and its users: the host name and user names that key files,
//! locks, snapshots and records name (format.md §3.2, §7.2, §9), and the
//! user and group names that tree nodes record beside their ids (§7.1).

use crate::sync::Locked;
use std::collections::HashMap;
use std::ffi::CStr;
use std::sync::Mutex;

/// This host's name.
pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: buf is valid for its length; gethostname NUL-terminates on success.
    let r = unsafe { libc::gethostname(buf.as_mut_ptr() as *mut libc::c_char, buf.len()) };
    if r != 0 {
        return "unknown".into();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

/// The effective user's name (or uid if it has none).
pub fn username() -> String {
    // SAFETY: geteuid has no preconditions.
    let uid = unsafe { libc::geteuid() };
    user_name(uid).unwrap_or_else(|| uid.to_string())
}

/// The value `look` gives for `id`, looked up once per process.
fn cached(
    cache: &Mutex<HashMap<u32, Option<String>>>,
    id: u32,
    look: impl Fn(u32) -> Option<String>,
) -> Option<String> {
    if let Some(v) = cache.locked().get(&id).cloned() {
        return v;
    }
    let v = look(id);
    cache.locked().insert(id, v.clone());
    v
}

/// The user name of a uid, if the system knows it.
pub fn user_name(uid: u32) -> Option<String> {
    static INNER: std::sync::OnceLock<Mutex<HashMap<u32, Option<String>>>> =
        std::sync::OnceLock::new();
    cached(INNER.get_or_init(Default::default), uid, |uid| {
        let mut buf = vec![0u8; 4096];
        // SAFETY: passwd is plain data; getpwuid_r writes only into pwd and buf (bounded by len).
        unsafe {
            let mut pwd: libc::passwd = std::mem::zeroed();
            let mut res: *mut libc::passwd = std::ptr::null_mut();
            let r = libc::getpwuid_r(
                uid,
                &mut pwd,
                buf.as_mut_ptr() as *mut libc::c_char,
                buf.len(),
                &mut res,
            );
            if r != 0 || res.is_null() {
                return None;
            }
            Some(CStr::from_ptr(pwd.pw_name).to_string_lossy().into_owned())
        }
    })
}

/// The group name of a gid, if the system knows it.
pub fn group_name(gid: u32) -> Option<String> {
    static INNER: std::sync::OnceLock<Mutex<HashMap<u32, Option<String>>>> =
        std::sync::OnceLock::new();
    cached(INNER.get_or_init(Default::default), gid, |gid| {
        let mut buf = vec![0u8; 4096];
        // SAFETY: as for getpwuid_r.
        unsafe {
            let mut grp: libc::group = std::mem::zeroed();
            let mut res: *mut libc::group = std::ptr::null_mut();
            let r = libc::getgrgid_r(
                gid,
                &mut grp,
                buf.as_mut_ptr() as *mut libc::c_char,
                buf.len(),
                &mut res,
            );
            if r != 0 || res.is_null() {
                return None;
            }
            Some(CStr::from_ptr(grp.gr_name).to_string_lossy().into_owned())
        }
    })
}
