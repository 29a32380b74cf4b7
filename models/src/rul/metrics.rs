//! Scores of RUL predictions: root-mean-square error and the PHM08 challenge
//! score, which punishes late predictions (predicted life longer than the true
//! one) more than early ones.

/// PHM08 penalty of one prediction, `d = predicted − true`:
/// `exp(−d/13) − 1` when early (`d < 0`), `exp(d/10) − 1` when late.
pub fn phm08(d: f64) -> f64 {
    if d < 0.0 {
        (-d / 13.0).exp() - 1.0
    } else {
        (d / 10.0).exp() - 1.0
    }
}

/// Scores of a set of predictions.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scores {
    pub rmse: f64,
    /// Sum of [`phm08`] over the units.
    pub score: f64,
    /// Mean of `predicted − true`: positive means late on average.
    pub bias: f64,
    pub units: usize,
}

/// Scores `(predicted, true)` pairs; all zero for an empty set.
pub fn score(pairs: &[(f64, f64)]) -> Scores {
    let n = pairs.len();
    if n == 0 {
        return Scores {
            rmse: 0.0,
            score: 0.0,
            bias: 0.0,
            units: 0,
        };
    }
    let (mut se, mut s, mut b) = (0.0, 0.0, 0.0);
    for &(p, t) in pairs {
        let d = p - t;
        se += d * d;
        s += phm08(d);
        b += d;
    }
    Scores {
        rmse: (se / n as f64).sqrt(),
        score: s,
        bias: b / n as f64,
        units: n,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn close(a: f64, b: f64) {
        assert!((a - b).abs() < 1e-9, "{a} != {b}");
    }

    #[test]
    fn phm08_by_hand() {
        close(phm08(0.0), 0.0);
        // 13 cycles early costs e − 1; 10 cycles late costs the same.
        close(phm08(-13.0), std::f64::consts::E - 1.0);
        close(phm08(10.0), std::f64::consts::E - 1.0);
        close(phm08(20.0), (2.0f64).exp() - 1.0);
        // Late is dearer than early by the same margin.
        assert!(phm08(15.0) > phm08(-15.0));
    }

    #[test]
    fn scores_of_a_small_set() {
        let s = score(&[(110.0, 100.0), (87.0, 100.0), (50.0, 50.0)]);
        close(s.rmse, ((100.0 + 169.0) / 3.0f64).sqrt());
        close(s.score, 2.0 * (std::f64::consts::E - 1.0));
        close(s.bias, -1.0);
        assert_eq!(s.units, 3);
        assert_eq!(score(&[]).units, 0);
    }
}
