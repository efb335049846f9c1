//! Distance spaces and their kernels.
//!
//! `l2` is squared Euclidean, `cosine` is `1 - cos(a, b)`, `ip` is `1 - a·b`, as
//! in Chroma. The kernels are written as 8-lane chunked loops that the compiler
//! vectorises; on x86_64 the same code is also compiled with AVX2+FMA enabled
//! and picked at run time when the CPU has it.

use serde::{Deserialize, Serialize};

use crate::error::CommonError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub enum Space {
    #[default]
    L2,
    Cosine,
    Ip,
}

impl Space {
    /// Every space, in the order error messages list them.
    pub const ALL: [Space; 3] = [Space::L2, Space::Cosine, Space::Ip];

    /// The space named `s` (as [`Space::as_str`] names it).
    pub fn parse(s: &str) -> Result<Self, CommonError> {
        Space::ALL
            .into_iter()
            .find(|space| space.as_str() == s)
            .ok_or_else(|| {
                CommonError::invalid(format!(
                    "Invalid distance space '{s}', expected one of {}",
                    Space::names(|name| name.to_owned())
                ))
            })
    }

    /// Every space's name as `show` writes it, joined for a message.
    pub fn names(show: impl Fn(&str) -> String) -> String {
        let names: Vec<String> = Space::ALL.iter().map(|s| show(s.as_str())).collect();
        names.join(", ")
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Space::L2 => "l2",
            Space::Cosine => "cosine",
            Space::Ip => "ip",
        }
    }

    /// The distance between `a` and `b` in this space. Both must have equal length.
    #[inline]
    pub fn distance(self, a: &[f32], b: &[f32]) -> f32 {
        match self {
            Space::L2 => l2_squared(a, b),
            Space::Cosine => cosine_distance(a, b),
            Space::Ip => 1.0 - dot(a, b),
        }
    }
}

macro_rules! kernels {
    ($modname:ident, $($attr:meta)?) => {
        mod $modname {
            const LANES: usize = 8;

            $(#[$attr])?
            pub unsafe fn dot(a: &[f32], b: &[f32]) -> f32 {
                let n = a.len().min(b.len());
                let (a, b) = (&a[..n], &b[..n]);
                let mut acc = [0.0f32; LANES];
                let chunks = n / LANES;
                for c in 0..chunks {
                    let (x, y) = (&a[c * LANES..c * LANES + LANES], &b[c * LANES..c * LANES + LANES]);
                    for l in 0..LANES {
                        acc[l] = x[l].mul_add(y[l], acc[l]);
                    }
                }
                let mut sum: f32 = acc.iter().sum();
                for i in chunks * LANES..n {
                    sum += a[i] * b[i];
                }
                sum
            }

            $(#[$attr])?
            pub unsafe fn l2_squared(a: &[f32], b: &[f32]) -> f32 {
                let n = a.len().min(b.len());
                let (a, b) = (&a[..n], &b[..n]);
                let mut acc = [0.0f32; LANES];
                let chunks = n / LANES;
                for c in 0..chunks {
                    let (x, y) = (&a[c * LANES..c * LANES + LANES], &b[c * LANES..c * LANES + LANES]);
                    for l in 0..LANES {
                        let d = x[l] - y[l];
                        acc[l] = d.mul_add(d, acc[l]);
                    }
                }
                let mut sum: f32 = acc.iter().sum();
                for i in chunks * LANES..n {
                    let d = a[i] - b[i];
                    sum += d * d;
                }
                sum
            }

            /// Returns (a·b, |a|², |b|²) in one pass.
            $(#[$attr])?
            pub unsafe fn dot_norms(a: &[f32], b: &[f32]) -> (f32, f32, f32) {
                let n = a.len().min(b.len());
                let (a, b) = (&a[..n], &b[..n]);
                let (mut ab, mut aa, mut bb) = ([0.0f32; LANES], [0.0f32; LANES], [0.0f32; LANES]);
                let chunks = n / LANES;
                for c in 0..chunks {
                    let (x, y) = (&a[c * LANES..c * LANES + LANES], &b[c * LANES..c * LANES + LANES]);
                    for l in 0..LANES {
                        ab[l] = x[l].mul_add(y[l], ab[l]);
                        aa[l] = x[l].mul_add(x[l], aa[l]);
                        bb[l] = y[l].mul_add(y[l], bb[l]);
                    }
                }
                let (mut s_ab, mut s_aa, mut s_bb): (f32, f32, f32) =
                    (ab.iter().sum(), aa.iter().sum(), bb.iter().sum());
                for i in chunks * LANES..n {
                    s_ab += a[i] * b[i];
                    s_aa += a[i] * a[i];
                    s_bb += b[i] * b[i];
                }
                (s_ab, s_aa, s_bb)
            }
        }
    };
}

kernels!(portable,);
#[cfg(target_arch = "x86_64")]
kernels!(avx2, target_feature(enable = "avx2,fma"));

#[inline]
fn has_avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

macro_rules! dispatch {
    ($f:ident($a:expr, $b:expr)) => {{
        #[cfg(target_arch = "x86_64")]
        {
            if has_avx2() {
                // SAFETY: the CPU supports avx2 and fma, checked just above.
                return unsafe { avx2::$f($a, $b) };
            }
        }
        // SAFETY: the portable kernels use no target features.
        unsafe { portable::$f($a, $b) }
    }};
}

/// Inner product over the common prefix of `a` and `b`.
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    dispatch!(dot(a, b))
}

/// Squared Euclidean distance.
#[inline]
pub fn l2_squared(a: &[f32], b: &[f32]) -> f32 {
    dispatch!(l2_squared(a, b))
}

#[inline]
fn dot_norms(a: &[f32], b: &[f32]) -> (f32, f32, f32) {
    dispatch!(dot_norms(a, b))
}

/// `1 - cos(a, b)`; a zero vector is at distance 1 from everything.
#[inline]
pub fn cosine_distance(a: &[f32], b: &[f32]) -> f32 {
    let (ab, aa, bb) = dot_norms(a, b);
    let denom = (aa * bb).sqrt();
    if denom == 0.0 {
        return 1.0;
    }
    1.0 - ab / denom
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn naive(space: Space, a: &[f32], b: &[f32]) -> f64 {
        let d: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum();
        match space {
            Space::L2 => a
                .iter()
                .zip(b)
                .map(|(x, y)| ((*x - *y) as f64).powi(2))
                .sum(),
            Space::Ip => 1.0 - d,
            Space::Cosine => {
                let na: f64 = a.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
                let nb: f64 = b.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
                1.0 - d / (na * nb)
            }
        }
    }

    #[test]
    fn kernels_agree_with_naive_on_odd_lengths() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for dim in [1usize, 3, 7, 8, 9, 31, 128, 385] {
            let a: Vec<f32> = (0..dim).map(|_| rng.gen_range(-1.0..1.0)).collect();
            let b: Vec<f32> = (0..dim).map(|_| rng.gen_range(-1.0..1.0)).collect();
            for space in [Space::L2, Space::Cosine, Space::Ip] {
                let got = space.distance(&a, &b) as f64;
                let want = naive(space, &a, &b);
                assert!(
                    (got - want).abs() < 1e-4 * (1.0 + want.abs()),
                    "{space:?} dim {dim}: {got} vs {want}"
                );
            }
            // Portable and dispatched kernels agree.
            let p = unsafe { portable::l2_squared(&a, &b) };
            assert!((p - l2_squared(&a, &b)).abs() < 1e-4);
        }
    }

    #[test]
    fn cosine_of_zero_vector_is_one() {
        assert_eq!(cosine_distance(&[0.0, 0.0], &[1.0, 2.0]), 1.0);
    }

    #[test]
    fn parse_spaces() {
        assert_eq!(Space::parse("cosine").unwrap(), Space::Cosine);
        assert_eq!(
            Space::parse("hamming").unwrap_err().to_string(),
            "Invalid distance space 'hamming', expected one of l2, cosine, ip"
        );
        for space in Space::ALL {
            assert_eq!(Space::parse(space.as_str()).unwrap(), space);
        }
    }
}
