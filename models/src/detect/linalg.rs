//! The little dense linear algebra the novelty model needs: mean, covariance
//! and a Cholesky factor of small symmetric matrices (a handful of channels).
//!
//! Hand-written on purpose: a gateway build should not pull a BLAS or a matrix
//! crate for a 10 × 10 matrix. Row-major `Vec<f64>`, no panics on bad input.

// Negated comparisons (`!(x > 0.0)`) are deliberate here: they also reject NaN.
#![allow(clippy::neg_cmp_op_on_partial_ord)]

/// Column means of `rows` (all of width `d`).
pub fn mean(rows: &[&[f64]], d: usize) -> Vec<f64> {
    let mut m = vec![0.0; d];
    if rows.is_empty() {
        return m;
    }
    for r in rows {
        for (acc, x) in m.iter_mut().zip(r.iter()) {
            *acc += x;
        }
    }
    let n = rows.len() as f64;
    m.iter_mut().for_each(|v| *v /= n);
    m
}

/// Sample covariance (divided by `n - 1`, or `1` for a single row), `d × d`
/// row-major.
pub fn covariance(rows: &[&[f64]], mean: &[f64]) -> Vec<f64> {
    let d = mean.len();
    let mut c = vec![0.0; d * d];
    let mut dev = vec![0.0; d];
    for r in rows {
        for j in 0..d {
            dev[j] = r[j] - mean[j];
        }
        for i in 0..d {
            for j in i..d {
                c[i * d + j] += dev[i] * dev[j];
            }
        }
    }
    let n = (rows.len().max(2) - 1) as f64;
    for i in 0..d {
        for j in i..d {
            let v = c[i * d + j] / n;
            c[i * d + j] = v;
            c[j * d + i] = v;
        }
    }
    c
}

/// Lower-triangular Cholesky factor `L` with `A = L Lᵀ`, or `None` when `a`
/// is not (numerically) positive definite.
pub fn cholesky(a: &[f64], d: usize) -> Option<Vec<f64>> {
    if a.len() != d * d {
        return None;
    }
    let mut l = vec![0.0; d * d];
    for i in 0..d {
        for j in 0..=i {
            let mut s = a[i * d + j];
            for k in 0..j {
                s -= l[i * d + k] * l[j * d + k];
            }
            if i == j {
                if !(s > 0.0) || !s.is_finite() {
                    return None;
                }
                l[i * d + i] = s.sqrt();
            } else {
                l[i * d + j] = s / l[j * d + j];
            }
        }
    }
    Some(l)
}

/// `xᵀ A⁻¹ x` given the Cholesky factor `L` of `A`: solve `L y = x` forward and
/// return `|y|²`. `work` must have length `d`.
pub fn mahalanobis_sq(l: &[f64], x: &[f64], work: &mut [f64]) -> f64 {
    let d = x.len();
    let mut sum = 0.0;
    for i in 0..d {
        let mut s = x[i];
        for k in 0..i {
            s -= l[i * d + k] * work[k];
        }
        let y = s / l[i * d + i];
        work[i] = y;
        sum += y * y;
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cholesky_and_mahalanobis_of_a_known_matrix() {
        // A = [[4, 2], [2, 3]]: L = [[2, 0], [1, √2]].
        let a = [4.0, 2.0, 2.0, 3.0];
        let l = cholesky(&a, 2).unwrap();
        assert!((l[0] - 2.0).abs() < 1e-12);
        assert!((l[2] - 1.0).abs() < 1e-12);
        assert!((l[3] - 2f64.sqrt()).abs() < 1e-12);
        // A⁻¹ = 1/8 [[3, -2], [-2, 4]]; x = (1, 1): xᵀA⁻¹x = (3 - 4 + 4)/8 = 3/8.
        let mut w = [0.0; 2];
        assert!((mahalanobis_sq(&l, &[1.0, 1.0], &mut w) - 0.375).abs() < 1e-12);
        assert!(cholesky(&[1.0, 2.0, 2.0, 1.0], 2).is_none());
    }

    #[test]
    fn covariance_of_two_points() {
        let r1 = [0.0, 0.0];
        let r2 = [2.0, 4.0];
        let rows: Vec<&[f64]> = vec![&r1, &r2];
        let m = mean(&rows, 2);
        assert_eq!(m, vec![1.0, 2.0]);
        assert_eq!(covariance(&rows, &m), vec![2.0, 4.0, 4.0, 8.0]);
    }
}
