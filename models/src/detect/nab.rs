//! NAB (Numenta Anomaly Benchmark) scoring of binary detections against
//! labelled anomaly windows, in the two forms in use:
//!
//! - [`Variant::Numenta`], as published (Lavin & Ahmad 2015, `numenta/NAB`
//!   `sweeper.py`): a detection inside a window scores
//!   `A_tp · σ̃(−(right − i + 1)/width) / σ̃(−1)` where
//!   `σ̃(x) = 2/(1 + e^{5x}) − 1` is the scaled sigmoid (so the first row of a
//!   window earns the full `A_tp`); only the first detection of a window
//!   counts; a false positive scores `A_fp · σ̃(distance past the previous
//!   window / (width − 1))` (−1 when there is no previous window or it is more
//!   than three widths away); a missed window costs `A_fn`; detections in the
//!   probationary period are ignored.
//! - [`Variant::Skab`], as SKAB's leaderboard applies it (`tsad`'s
//!   `chp_score` with `scale_func="improved"`): windows in time, a first
//!   detection at relative position `p` scores
//!   `y(p) = (A_tp − A_fp)/2 · (1 − tanh(x)/tanh(π/2)) + A_fp` with
//!   `x = −π/2 + π · ⌊1000 p⌋/999`, every detection outside all windows costs a
//!   flat `A_fp`, and there is no probationary period.
//!
//! Both normalise the same way, summed over files: `100 · (raw − null) /
//! (perfect − null)`, where the null detector (no detections) scores
//! `A_fn · windows` and the perfect one `A_tp · windows`. Weights are given
//! as signed rewards: standard `A_tp = 1, A_fp = −0.11, A_fn = −1`; low-FP
//! doubles the FP cost, low-FN doubles the FN cost.

/// One application profile: signed rewards for a TP, an FP and an FN.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Profile {
    /// Reward of a detection at the very start of a window.
    pub a_tp: f64,
    /// (Negative) reward of a false positive.
    pub a_fp: f64,
    /// (Negative) reward of a missed window.
    pub a_fn: f64,
}

/// The three standard profiles, in the order standard, low FP, low FN.
pub const PROFILES: [Profile; 3] = [
    Profile {
        a_tp: 1.0,
        a_fp: -0.11,
        a_fn: -1.0,
    },
    Profile {
        a_tp: 1.0,
        a_fp: -0.22,
        a_fn: -1.0,
    },
    Profile {
        a_tp: 1.0,
        a_fp: -0.11,
        a_fn: -2.0,
    },
];

/// Which NAB scoring function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    /// Numenta's published scaled sigmoid, FPs weighted by distance.
    Numenta,
    /// SKAB / tsad "improved" tanh scale, flat FP cost.
    Skab,
}

/// An anomaly window as an inclusive range of row indices. Windows are sorted
/// and may share a boundary row (as SKAB's "cut right window" leaves them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// First row in the window.
    pub start: usize,
    /// Last row in the window (inclusive).
    pub end: usize,
    /// The window's bounds in time, when it is defined in time (SKAB): the
    /// position of a detection is measured between these, which need not be
    /// the times of the first and last rows inside.
    pub span: Option<(i64, i64)>,
}

impl Window {
    /// A window of rows only.
    pub const fn rows(start: usize, end: usize) -> Self {
        Window {
            start,
            end,
            span: None,
        }
    }
}

/// Raw, null and perfect scores per profile; add files together, then
/// [`Tally::normalised`].
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Tally {
    /// The detector's raw score per profile.
    pub raw: [f64; 3],
    /// The null detector's.
    pub null: [f64; 3],
    /// The perfect detector's.
    pub perfect: [f64; 3],
    /// Windows with no detection.
    pub missed: usize,
    /// Detections outside every window (after the probationary period).
    pub false_positives: usize,
}

impl Tally {
    /// Adds another file's tally.
    pub fn add(&mut self, other: &Tally) {
        for p in 0..3 {
            self.raw[p] += other.raw[p];
            self.null[p] += other.null[p];
            self.perfect[p] += other.perfect[p];
        }
        self.missed += other.missed;
        self.false_positives += other.false_positives;
    }

    /// Normalised scores (standard, low FP, low FN): 0 for the null detector,
    /// 100 for the perfect one. NaN when there are no windows at all.
    pub fn normalised(&self) -> [f64; 3] {
        std::array::from_fn(|p| 100.0 * (self.raw[p] - self.null[p]) / (self.perfect[p] - self.null[p]))
    }
}

/// Numenta's scaled sigmoid: `2/(1 + e^{5x}) − 1`, and −1 beyond 3.
pub fn scaled_sigmoid(x: f64) -> f64 {
    if x > 3.0 {
        -1.0
    } else {
        2.0 / (1.0 + (5.0 * x).exp()) - 1.0
    }
}

/// Numenta's probationary period for a file of `n` rows: 15 %, at most 750.
pub fn numenta_probation(n: usize) -> usize {
    ((0.15 * n as f64).floor() as usize).min(750)
}

/// Numenta's windows: 10 % of the file divided among the anomalies, centred
/// on each labelled row, clipped to the file; overlapping windows merged.
pub fn numenta_windows(n: usize, anomalies: &[usize]) -> Vec<Window> {
    if anomalies.is_empty() || n == 0 {
        return Vec::new();
    }
    let size = (0.1 * n as f64 / anomalies.len() as f64) as usize;
    let half = size / 2;
    let mut out: Vec<Window> = Vec::new();
    for &a in anomalies {
        let w = Window::rows(a.saturating_sub(half), (a + half).min(n - 1));
        match out.last_mut() {
            Some(last) if w.start <= last.end => last.end = last.end.max(w.end),
            _ => out.push(w),
        }
    }
    out
}

/// SKAB's windows: from each changepoint's time to `width` later (both
/// inclusive), as row ranges of the sorted `times`; an overlapping window is
/// cut to start where the previous one ends ("cut right window").
pub fn right_windows(times: &[i64], changepoints: &[usize], width: i64) -> Vec<Window> {
    let mut bounds: Vec<(i64, i64)> = changepoints
        .iter()
        .filter_map(|&i| times.get(i).map(|&t| (t, t.saturating_add(width))))
        .collect();
    for i in 1..bounds.len() {
        if bounds[i - 1].1 >= bounds[i].0 {
            bounds[i].0 = bounds[i - 1].1;
        }
    }
    bounds
        .iter()
        .filter_map(|&(t0, t1)| {
            let start = times.partition_point(|&t| t < t0);
            let end = times.partition_point(|&t| t <= t1);
            (end > start).then_some(Window {
                start,
                end: end - 1,
                span: Some((t0, t1)),
            })
        })
        .collect()
}

/// Scores one file: `detections[i]` says whether row `i` was flagged; `times`
/// (same length, sorted) are used by [`Variant::Skab`] for the position in a
/// window. Rows before `probation` are ignored.
pub fn score_file(
    times: &[i64],
    detections: &[bool],
    windows: &[Window],
    variant: Variant,
    probation: usize,
) -> Tally {
    let mut tally = Tally::default();
    let nw = windows.len() as f64;
    for (p, prof) in PROFILES.iter().enumerate() {
        tally.null[p] = prof.a_fn * nw;
        tally.perfect[p] = prof.a_tp * nw;
    }
    // The first detection in each window (windows may share a boundary row).
    for w in windows {
        let first = (w.start.max(probation)..=w.end).find(|&i| detections.get(i).copied().unwrap_or(false));
        match first {
            None => {
                tally.missed += 1;
                for (p, prof) in PROFILES.iter().enumerate() {
                    tally.raw[p] += prof.a_fn;
                }
            }
            Some(i) => {
                for (p, prof) in PROFILES.iter().enumerate() {
                    tally.raw[p] += match variant {
                        Variant::Numenta => {
                            let width = (w.end - w.start + 1) as f64;
                            let pos = -((w.end - i + 1) as f64) / width;
                            prof.a_tp * scaled_sigmoid(pos) / scaled_sigmoid(-1.0)
                        }
                        Variant::Skab => skab_scale(times, w, i, prof),
                    };
                }
            }
        }
    }
    // False positives: detections outside every window.
    let mut prev: Option<&Window> = None;
    let mut next = 0;
    for (i, &flag) in detections.iter().enumerate() {
        while next < windows.len() && windows[next].end < i {
            prev = Some(&windows[next]);
            next += 1;
        }
        let inside = next < windows.len() && windows[next].start <= i;
        if !flag || inside || i < probation {
            continue;
        }
        tally.false_positives += 1;
        for (p, prof) in PROFILES.iter().enumerate() {
            tally.raw[p] += match variant {
                Variant::Skab => prof.a_fp,
                Variant::Numenta => {
                    let unweighted = match prev {
                        None => -1.0,
                        Some(w) => {
                            let width = (w.end - w.start + 1) as f64;
                            let pos = (i - w.end) as f64 / (width - 1.0).max(1.0);
                            scaled_sigmoid(pos)
                        }
                    };
                    // Numenta's fpWeight is a positive cost times a negative
                    // sigmoid; our a_fp is already the signed reward.
                    -prof.a_fp * unweighted
                }
            };
        }
    }
    tally
}

fn skab_scale(times: &[i64], w: &Window, i: usize, prof: &Profile) -> f64 {
    const DETAIL: usize = 1000;
    let bounds = w
        .span
        .or_else(|| Some((*times.get(w.start)?, *times.get(w.end)?)));
    let frac = match (bounds, times.get(i)) {
        (Some((t0, t1)), Some(&t)) if t1 > t0 => (t - t0) as f64 / (t1 - t0) as f64,
        _ => 0.0,
    };
    let event = ((frac * DETAIL as f64) as usize).min(DETAIL - 1);
    let half_pi = std::f64::consts::FRAC_PI_2;
    let x = -half_pi + std::f64::consts::PI * event as f64 / (DETAIL - 1) as f64;
    let half = (prof.a_tp - prof.a_fp) / 2.0;
    half * -x.tanh() / half_pi.tanh() + half + prof.a_fp
}

/// Changepoint detections from a binary outlier series, as SKAB derives them:
/// a row is a predicted changepoint when the prediction flips there.
pub fn transitions(flags: &[bool]) -> Vec<bool> {
    let mut prev = false;
    flags
        .iter()
        .enumerate()
        .map(|(i, &f)| {
            let t = i > 0 && f != prev;
            prev = f;
            t
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(n: usize, at: &[usize]) -> Vec<bool> {
        (0..n).map(|i| at.contains(&i)).collect()
    }

    fn secs(n: usize) -> Vec<i64> {
        (0..n as i64).collect()
    }

    #[track_caller]
    fn check(t: Tally, expected: [f64; 3]) {
        let got = t.normalised();
        for p in 0..3 {
            assert!(
                (got[p] - expected[p]).abs() < 0.01,
                "profile {p}: got {got:?}, expected {expected:?}"
            );
        }
    }

    const W: [Window; 1] = [Window::rows(4, 6)];

    #[test]
    fn numenta_hand_made_cases() {
        let n = 10;
        let t = secs(n);
        // Null detector: 0; perfect (first row of the window): 100.
        check(
            score_file(&t, &flags(n, &[]), &W, Variant::Numenta, 0),
            [0.0, 0.0, 0.0],
        );
        check(
            score_file(&t, &flags(n, &[4, 5]), &W, Variant::Numenta, 0),
            [100.0, 100.0, 100.0],
        );
        // Last row of a 3-row window: position −1/3, σ̃(−1/3) = 2/(1+e^{−5/3}) − 1
        // = 0.682262; σ̃(−1) = 0.986614; TP = 0.691519. Standard and low-FP:
        // 100·(0.691519 + 1)/2 = 84.58; low-FN: 100·(0.691519 + 2)/3 = 89.72.
        check(
            score_file(&t, &flags(n, &[6]), &W, Variant::Numenta, 0),
            [84.58, 84.58, 89.72],
        );
        // An FP before any window costs the full A_fp: raw 1 − 0.11 = 0.89 →
        // 94.5; low FP 1 − 0.22 = 0.78 → 89.0; low FN (0.89 + 2)/3 → 96.33.
        check(
            score_file(&t, &flags(n, &[1, 4]), &W, Variant::Numenta, 0),
            [94.5, 89.0, 96.33],
        );
        // The same FP inside a probationary period of 2 rows is ignored.
        check(
            score_file(&t, &flags(n, &[1, 4]), &W, Variant::Numenta, 2),
            [100.0, 100.0, 100.0],
        );
        // An FP two rows after the window: position 2/(3 − 1) = 1,
        // σ̃(1) = −0.986614, cost 0.11 · 0.986614 = 0.108527 →
        // (1 − 0.108527 + 1)/2 = 94.57; low FP 0.217055 → 89.15;
        // low FN (2.891473)/3 = 96.38.
        let t2 = score_file(&t, &flags(n, &[4, 8]), &W, Variant::Numenta, 0);
        assert_eq!(t2.false_positives, 1);
        check(t2, [94.57, 89.15, 96.38]);
    }

    #[test]
    fn skab_hand_made_cases() {
        let n = 200;
        let t = secs(n);
        let w = right_windows(&t, &[50], 60);
        assert_eq!(
            w,
            vec![Window {
                start: 50,
                end: 110,
                span: Some((50, 110))
            }]
        );
        check(
            score_file(&t, &flags(n, &[50]), &w, Variant::Skab, 0),
            [100.0, 100.0, 100.0],
        );
        // 30 s into a 60 s window: event 500, x = π(500/999 − 1/2) = 0.0015724,
        // tanh(x)/tanh(π/2) = 0.0017144; standard y = 0.555·(1 − 0.0017144) −
        // 0.11 = 0.444049 → 100·1.444049/2 = 72.20. Low FP: 0.61·0.998286 −
        // 0.22 = 0.388954 → 69.45. Low FN: (0.444049 + 2)/3 → 81.47.
        check(
            score_file(&t, &flags(n, &[80, 81]), &w, Variant::Skab, 0),
            [72.20, 69.45, 81.47],
        );
        // Two flat FPs (before and after): standard 0.444049 − 0.22 → 61.20;
        // low FP 0.388954 − 0.44 → 47.45; low FN (0.224049 + 2)/3 → 74.13.
        check(
            score_file(&t, &flags(n, &[10, 80, 150]), &w, Variant::Skab, 0),
            [61.20, 47.45, 74.13],
        );
        // Missed window plus one FP: standard (−1.11 + 1)/2 → −5.5.
        check(
            score_file(&t, &flags(n, &[10]), &w, Variant::Skab, 0),
            [-5.5, -11.0, -3.67],
        );
    }

    #[test]
    fn skab_position_is_measured_against_the_window_in_time() {
        // Rows every second from 0 to 158, then 161 onwards: the window of
        // the changepoint at 100 s is [100, 160] in time, but its last row
        // is at 158. tsad measures a detection at 129 s as 29/60 of the way
        // (event 483), not 29/58 (event 500): x = π(483/999 − 1/2) =
        // −0.0519, y = 0.555·(1 + tanh(0.0519)/tanh(π/2)) − 0.11 = 0.476371
        // → 100·1.476371/2 = 73.82; low FP 0.61·1.057437 − 0.22 = 0.42448 →
        // 71.22; low FN (0.476371 + 2)/3 → 82.55.
        let t: Vec<i64> = (0..159).chain(161..300).collect();
        let w = right_windows(&t, &[100], 60);
        assert_eq!(
            w,
            vec![Window {
                start: 100,
                end: 158,
                span: Some((100, 160))
            }]
        );
        check(
            score_file(&t, &flags(t.len(), &[129]), &w, Variant::Skab, 0),
            [73.82, 71.22, 82.55],
        );
    }

    #[test]
    fn overlapping_skab_windows_are_cut_and_share_a_row() {
        let t = secs(300);
        let w = right_windows(&t, &[10, 40], 60);
        assert_eq!(
            w,
            vec![
                Window {
                    start: 10,
                    end: 70,
                    span: Some((10, 70))
                },
                Window {
                    start: 70,
                    end: 100,
                    span: Some((70, 100))
                }
            ]
        );
        // A detection on the shared row counts for both windows.
        let tally = score_file(&t, &flags(300, &[70]), &w, Variant::Skab, 0);
        assert_eq!(tally.missed, 0);
        assert_eq!(tally.false_positives, 0);
    }

    #[test]
    fn numenta_windows_and_probation() {
        assert_eq!(numenta_windows(1000, &[500]), vec![Window::rows(450, 550)]);
        assert_eq!(numenta_windows(1000, &[10, 30]), vec![Window::rows(0, 55)]);
        assert_eq!(numenta_probation(1000), 150);
        assert_eq!(numenta_probation(100_000), 750);
    }

    #[test]
    fn transitions_mark_both_edges() {
        let f = [false, true, true, false, false, true];
        assert_eq!(transitions(&f), vec![false, true, false, true, false, true]);
    }
}
