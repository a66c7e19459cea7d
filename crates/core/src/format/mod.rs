//! On-disk types and their (de)serialisation. `docs/format.md` is the contract;
//! every type here names the section it implements. Each stored object has
//! its one home here; `kind` names every kind of object (directory, name
//! rule, associated data, damage policy) and builds and parses all names.

pub mod config;
pub mod deletions;
pub mod erasure;
pub mod forgotten;
pub mod id;
pub mod index;
pub mod keyfile;
pub mod kind;
pub mod lock;
pub mod pack;
pub mod scrub;
pub mod snapshot;
pub mod tree;

pub use id::{BlobType, Id};
pub use kind::{ObjectKind, SealedObject};

use crate::error::{Error, Result};

/// Format version this build writes and the newest it reads.
pub const FORMAT_VERSION: u32 = 1;

/// Serialise a value as CBOR (format.md §7).
pub fn to_cbor<T: serde::Serialize>(v: &T) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    ciborium::into_writer(v, &mut out).map_err(|e| Error::Internal(format!("CBOR encode: {e}")))?;
    Ok(out)
}

/// Parse CBOR; `what` names the object in the error.
pub fn from_cbor<T: serde::de::DeserializeOwned>(b: &[u8], what: &str) -> Result<T> {
    ciborium::from_reader(b).map_err(|e| Error::damaged(what, format!("cannot decode: {e}")))
}

/// Little-endian reader over a byte slice, for the binary pack header and index.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    what: &'a str,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8], what: &'a str) -> Self {
        Reader { buf, what }
    }

    pub fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.buf.len() < n {
            return Err(Error::damaged(self.what, "truncated"));
        }
        let (a, b) = self.buf.split_at(n);
        self.buf = b;
        Ok(a)
    }

    pub fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }

    pub fn u32(&mut self) -> Result<u32> {
        // take(4) returned exactly 4 bytes.
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }

    pub fn u64(&mut self) -> Result<u64> {
        // take(8) returned exactly 8 bytes.
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }

    pub fn id(&mut self) -> Result<Id> {
        // take(32) returned exactly 32 bytes.
        Ok(Id(self.take(32)?.try_into().expect("32 bytes")))
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Bytes not read yet: a count read from the input can claim at most
    /// this many bytes' worth of items, which bounds what is reserved for them.
    pub fn remaining(&self) -> usize {
        self.buf.len()
    }
}
