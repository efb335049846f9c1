//! [`Vector`]: one embedding as the shard holds it, shared and cache-line aligned.

use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Floats per cache line.
const LINE_FLOATS: usize = 16;

/// One cache line of a vector (the last one zero-padded).
#[repr(C, align(64))]
#[derive(Clone, Copy)]
struct Line([f32; LINE_FLOATS]);

/// A vector as the shard holds it: one allocation shared by the record, the
/// index's store and the graph point (which borrows it), so that each vector is
/// in memory once however many of them refer to it.
///
/// The floats start on a cache line. An `Arc<[f32]>` put them 16 bytes after the
/// start of its allocation (behind the reference counts), so a 128-d vector (512
/// bytes) spanned 9 lines instead of 8, and every distance the graph computes
/// fetches a whole vector from memory. Here the counts sit in a line of their own
/// before the floats; a 128-d vector takes 576 bytes, which the allocator rounds
/// to the same 640-byte class the 528 bytes of an `Arc<[f32]>` took.
#[derive(Clone)]
pub struct Vector {
    lines: Arc<[Line]>,
    len: usize,
}

impl Vector {
    /// Whether two vectors are the same allocation (not merely equal).
    pub fn ptr_eq(a: &Vector, b: &Vector) -> bool {
        Arc::ptr_eq(&a.lines, &b.lines)
    }
}

impl From<&[f32]> for Vector {
    fn from(v: &[f32]) -> Self {
        let lines: Arc<[Line]> = v
            .chunks(LINE_FLOATS)
            .map(|chunk| {
                let mut line = [0.0; LINE_FLOATS];
                line[..chunk.len()].copy_from_slice(chunk);
                Line(line)
            })
            .collect();
        Vector {
            lines,
            len: v.len(),
        }
    }
}

impl From<&Vec<f32>> for Vector {
    fn from(v: &Vec<f32>) -> Self {
        Vector::from(v.as_slice())
    }
}

impl From<Vec<f32>> for Vector {
    fn from(v: Vec<f32>) -> Self {
        Vector::from(v.as_slice())
    }
}

impl<const N: usize> From<[f32; N]> for Vector {
    fn from(v: [f32; N]) -> Self {
        Vector::from(v.as_slice())
    }
}

impl Deref for Vector {
    type Target = [f32];

    fn deref(&self) -> &[f32] {
        // SAFETY: `lines` holds `len.div_ceil(16)` lines of 16 initialised f32s each,
        // laid out without gaps (`repr(C)`, size 64 = 16 x 4, so no padding), and
        // `len` is at most 16 per line; the slice borrows `self`, which keeps the
        // allocation alive.
        unsafe { std::slice::from_raw_parts(self.lines.as_ptr() as *const f32, self.len) }
    }
}

impl AsRef<[f32]> for Vector {
    fn as_ref(&self) -> &[f32] {
        self
    }
}

impl PartialEq for Vector {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl fmt::Debug for Vector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

/// Encoded as a sequence of floats, as `Arc<[f32]>` was: snapshots written before
/// read back unchanged.
impl Serialize for Vector {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.iter())
    }
}

impl<'de> Deserialize<'de> for Vector {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Vec::<f32>::deserialize(deserializer).map(Vector::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_start_on_a_cache_line_and_read_back_unchanged() {
        for dim in [0, 1, 3, 16, 17, 128, 384, 1536] {
            let v: Vec<f32> = (0..dim).map(|i| i as f32 * 0.5 - 3.0).collect();
            let shared = Vector::from(&v);
            assert_eq!(&*shared, v.as_slice(), "dim {dim}");
            assert_eq!(shared.as_ptr() as usize % 64, 0, "dim {dim}");
            let again = shared.clone();
            assert!(Vector::ptr_eq(&shared, &again));
            assert!(!Vector::ptr_eq(&shared, &Vector::from(&v)));
            assert_eq!(shared, Vector::from(&v));
        }
    }

    #[test]
    fn encodes_as_an_arc_slice_did() {
        let v = vec![1.5f32, -2.0, 0.25];
        let old: Arc<[f32]> = Arc::from(v.as_slice());
        let new = Vector::from(&v);
        let old_bytes = bincode::serialize(&old).unwrap();
        assert_eq!(bincode::serialize(&new).unwrap(), old_bytes);
        let back: Vector = bincode::deserialize(&old_bytes).unwrap();
        assert_eq!(&*back, v.as_slice());
    }
}
