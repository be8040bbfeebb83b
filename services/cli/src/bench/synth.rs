//! Synthetic, clustered face-like templates for `rollcall bench gallery` (and the gallery
//! conformance suite of the dev-only `rollcall-testkit`, which compiles this file too): each synthetic student
//! has a random unit centre and its templates (and probes) are noisy copies of it, so that
//! same-student similarity is high and different-student similarity is near zero, like real
//! face embeddings (uniform noise would make every neighbour search meaningless).

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Deterministic generator of clustered unit vectors.
pub struct Synth {
    rng: StdRng,
    pub dim: usize,
    /// Per-coordinate noise standard deviation. With `sigma * sqrt(dim) = r`, a template's
    /// expected cosine to its centre is about `1 / sqrt(1 + r^2)`.
    pub sigma: f32,
}

impl Synth {
    pub fn new(seed: u64, dim: usize, sigma: f32) -> Self {
        Self {
            rng: StdRng::seed_from_u64(seed),
            dim,
            sigma,
        }
    }

    /// One standard normal sample (Box-Muller).
    pub fn gauss(&mut self) -> f32 {
        let u1: f32 = self.rng.gen_range(f32::EPSILON..1.0);
        let u2: f32 = self.rng.gen_range(0.0..1.0);
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f32::consts::PI * u2).cos()
    }

    /// A random unit vector (a student's "true face").
    pub fn centre(&mut self) -> Vec<f32> {
        let v: Vec<f32> = (0..self.dim).map(|_| self.gauss()).collect();
        rollcall_gallery::normalized(&v)
    }

    /// A unit vector near `centre` (one photo of that student).
    pub fn sample(&mut self, centre: &[f32]) -> Vec<f32> {
        let s = self.sigma;
        let v: Vec<f32> = centre.iter().map(|c| c + s * self.gauss()).collect();
        rollcall_gallery::normalized(&v)
    }

    pub fn index(&mut self, n: usize) -> usize {
        self.rng.gen_range(0..n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rollcall_domain::face::dot;

    #[test]
    fn clusters_are_tight_and_apart() {
        let mut s = Synth::new(7, 128, 0.08);
        let a = s.centre();
        let b = s.centre();
        let a1 = s.sample(&a);
        let a2 = s.sample(&a);
        assert!(dot(&a1, &a2) > 0.5, "same student {}", dot(&a1, &a2));
        assert!(
            dot(&a1, &b).abs() < 0.4,
            "different students {}",
            dot(&a1, &b)
        );
        assert!((dot(&a1, &a1) - 1.0).abs() < 1e-5);
    }
}
