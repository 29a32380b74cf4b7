//! A compact histogram gradient-boosting regressor (squared loss).
//!
//! Why our own: the linfa family has no boosting and no regression forest, and
//! the RUL learners need only this much. Features are cut into at most 255
//! quantile bins once; each tree grows depth-first on per-bin sums of the
//! residuals, and the larger child's histogram is the parent's minus the
//! smaller one's. Rows are subsampled per tree with a seeded generator, so a
//! fit is reproducible. Pure: progress is reported through a callback.

// Negated comparisons (`!(x > 0.0)`) are deliberate: they also reject NaN.
#![allow(clippy::neg_cmp_op_on_partial_ord)]
use super::{Result, RulError};
use ndarray::{Array2, ArrayView1, ArrayView2};

/// Settings of the boosting.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GbmConfig {
    pub trees: usize,
    pub learning_rate: f64,
    pub max_depth: usize,
    /// Fewest rows in a leaf.
    pub min_leaf: usize,
    /// L2 penalty on leaf values.
    pub lambda: f64,
    /// Histogram bins per feature (2..=255).
    pub bins: usize,
    /// Fraction of rows each tree sees.
    pub subsample: f64,
    pub seed: u64,
}

impl Default for GbmConfig {
    fn default() -> Self {
        GbmConfig {
            trees: 400,
            learning_rate: 0.05,
            max_depth: 5,
            min_leaf: 20,
            lambda: 1.0,
            bins: 64,
            subsample: 0.8,
            seed: 7,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Node {
    /// Rows with `x[feature] <= threshold` go left.
    Split {
        feature: usize,
        threshold: f64,
        /// Bin of `threshold` in the training binning.
        bin: u8,
        left: usize,
        right: usize,
    },
    Leaf(f64),
}

/// A fitted ensemble.
#[derive(Debug, Clone, PartialEq)]
pub struct Gbm {
    base: f64,
    features: usize,
    trees: Vec<Vec<Node>>,
}

/// Per-feature bin edges: value `v` falls in the first bin whose edge is `>= v`.
struct Bins {
    edges: Vec<Vec<f64>>,
    /// Column-major bin codes.
    codes: Vec<Vec<u8>>,
}

fn bin_features(x: ArrayView2<f64>, bins: usize) -> Bins {
    let (n, f) = x.dim();
    let mut edges = Vec::with_capacity(f);
    let mut codes = Vec::with_capacity(f);
    for j in 0..f {
        let mut col: Vec<f64> = x.column(j).iter().copied().filter(|v| v.is_finite()).collect();
        col.sort_by(f64::total_cmp);
        col.dedup();
        let e: Vec<f64> = if col.len() <= bins {
            col.iter().take(col.len().saturating_sub(1)).copied().collect()
        } else {
            let mut e: Vec<f64> = (1..bins).map(|k| col[k * col.len() / bins]).collect();
            e.dedup();
            e
        };
        let code: Vec<u8> = (0..n)
            .map(|i| e.partition_point(|&edge| edge < x[[i, j]]) as u8)
            .collect();
        edges.push(e);
        codes.push(code);
    }
    Bins { edges, codes }
}

/// Sum of residuals and row count per bin, for every feature.
type Hist = Vec<Vec<(f64, u32)>>;

struct Grower<'a> {
    bins: &'a Bins,
    grad: &'a [f64],
    cfg: &'a GbmConfig,
    nodes: Vec<Node>,
}

impl Grower<'_> {
    fn histogram(&self, rows: &[u32]) -> Hist {
        self.bins
            .codes
            .iter()
            .zip(&self.bins.edges)
            .map(|(codes, e)| {
                let mut h = vec![(0.0, 0u32); e.len() + 1];
                for &r in rows {
                    let slot = &mut h[codes[r as usize] as usize];
                    slot.0 += self.grad[r as usize];
                    slot.1 += 1;
                }
                h
            })
            .collect()
    }

    fn leaf_value(&self, g: f64, n: u32) -> f64 {
        // Squared loss: gradient is prediction − target, hessian 1 per row.
        -g / (f64::from(n) + self.cfg.lambda)
    }

    /// Grows the subtree of `rows` and returns its node index.
    fn grow(&mut self, rows: &mut [u32], hist: Hist, depth: usize) -> usize {
        let (g_tot, n_tot) = hist
            .first()
            .map(|h| h.iter().fold((0.0, 0u32), |a, b| (a.0 + b.0, a.1 + b.1)))
            .unwrap_or((0.0, 0));
        let id = self.nodes.len();
        self.nodes.push(Node::Leaf(self.leaf_value(g_tot, n_tot)));
        let min_leaf = self.cfg.min_leaf.max(1) as u32;
        if depth >= self.cfg.max_depth || n_tot < 2 * min_leaf {
            return id;
        }
        let lambda = self.cfg.lambda;
        let parent_score = g_tot * g_tot / (f64::from(n_tot) + lambda);
        let mut best: Option<(f64, usize, usize)> = None;
        for (j, h) in hist.iter().enumerate() {
            let (mut gl, mut nl) = (0.0, 0u32);
            for (b, &(g, c)) in h.iter().enumerate().take(h.len().saturating_sub(1)) {
                gl += g;
                nl += c;
                let nr = n_tot - nl;
                if nl < min_leaf {
                    continue;
                }
                if nr < min_leaf {
                    break;
                }
                let gr = g_tot - gl;
                let gain =
                    gl * gl / (f64::from(nl) + lambda) + gr * gr / (f64::from(nr) + lambda) - parent_score;
                if gain > 1e-12 && best.is_none_or(|(bg, _, _)| gain > bg) {
                    best = Some((gain, j, b));
                }
            }
        }
        let Some((_, feature, bin)) = best else {
            return id;
        };
        let codes = &self.bins.codes[feature];
        // Partition rows in place: left (code <= bin) first.
        let mut split = 0;
        for i in 0..rows.len() {
            if usize::from(codes[rows[i] as usize]) <= bin {
                rows.swap(i, split);
                split += 1;
            }
        }
        let (left_rows, right_rows) = rows.split_at_mut(split);
        let (small, large_is_left) = if left_rows.len() <= right_rows.len() {
            (&*left_rows, false)
        } else {
            (&*right_rows, true)
        };
        let small_hist = self.histogram(small);
        let large_hist: Hist = hist
            .iter()
            .zip(&small_hist)
            .map(|(p, s)| p.iter().zip(s).map(|(a, b)| (a.0 - b.0, a.1 - b.1)).collect())
            .collect();
        let (lh, rh) = if large_is_left {
            (large_hist, small_hist)
        } else {
            (small_hist, large_hist)
        };
        let left = self.grow(left_rows, lh, depth + 1);
        let right = self.grow(right_rows, rh, depth + 1);
        self.nodes[id] = Node::Split {
            feature,
            threshold: self.bins.edges[feature][bin],
            bin: bin as u8,
            left,
            right,
        };
        id
    }
}

/// SplitMix64: a small seeded generator for row subsampling.
fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Gbm {
    /// Fits `y ≈ f(x)`; `progress(done, total)` is called after each tree.
    pub fn fit(
        x: ArrayView2<f64>,
        y: ArrayView1<f64>,
        cfg: &GbmConfig,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<Gbm> {
        let (n, f) = x.dim();
        if n == 0 || n != y.len() {
            return Err(RulError::Data(format!(
                "{n} feature rows for {} targets",
                y.len()
            )));
        }
        if !(2..=255).contains(&cfg.bins) {
            return Err(RulError::Config {
                name: "bins",
                reason: format!("{} is not in 2..=255", cfg.bins),
            });
        }
        if !(cfg.subsample > 0.0 && cfg.subsample <= 1.0) {
            return Err(RulError::Config {
                name: "subsample",
                reason: format!("{} is not in (0, 1]", cfg.subsample),
            });
        }
        if y.iter().any(|v| !v.is_finite()) {
            return Err(RulError::Data("a target is not finite".into()));
        }
        let bins = bin_features(x, cfg.bins);
        let base = y.sum() / n as f64;
        let mut pred = vec![base; n];
        let mut grad = vec![0.0; n];
        let mut trees = Vec::with_capacity(cfg.trees);
        let mut rng = cfg.seed;
        let cut = (cfg.subsample * u64::MAX as f64) as u64;
        for t in 0..cfg.trees {
            for i in 0..n {
                grad[i] = pred[i] - y[i];
            }
            let mut rows: Vec<u32> = (0..n as u32).filter(|_| splitmix(&mut rng) <= cut).collect();
            let mut grower = Grower {
                bins: &bins,
                grad: &grad,
                cfg,
                nodes: Vec::new(),
            };
            let hist = grower.histogram(&rows);
            grower.grow(&mut rows, hist, 0);
            let mut tree = grower.nodes;
            for node in &mut tree {
                if let Node::Leaf(v) = node {
                    *v *= cfg.learning_rate;
                }
            }
            for (i, p) in pred.iter_mut().enumerate() {
                *p += eval_binned(&tree, &bins, i);
            }
            trees.push(tree);
            progress(t + 1, cfg.trees);
        }
        Ok(Gbm {
            base,
            features: f,
            trees,
        })
    }

    /// Number of features the model was fitted on.
    pub fn features(&self) -> usize {
        self.features
    }

    /// Prediction for one row of `features()` values (missing values go right).
    pub fn predict(&self, row: &[f64]) -> f64 {
        let mut s = self.base;
        for tree in &self.trees {
            let mut i = 0;
            loop {
                match tree.get(i) {
                    Some(Node::Split {
                        feature,
                        threshold,
                        left,
                        right,
                        ..
                    }) => {
                        let v = row.get(*feature).copied().unwrap_or(f64::NAN);
                        i = if v <= *threshold { *left } else { *right };
                    }
                    Some(Node::Leaf(v)) => {
                        s += v;
                        break;
                    }
                    None => break,
                }
            }
        }
        s
    }

    /// Predictions for every row of `x`.
    pub fn predict_all(&self, x: ArrayView2<f64>) -> Vec<f64> {
        x.rows()
            .into_iter()
            .map(|r| match r.as_slice() {
                Some(s) => self.predict(s),
                None => self.predict(&r.to_vec()),
            })
            .collect()
    }
}

fn eval_binned(tree: &[Node], bins: &Bins, row: usize) -> f64 {
    let mut i = 0;
    loop {
        match tree.get(i) {
            Some(Node::Split {
                feature,
                bin,
                left,
                right,
                ..
            }) => {
                // The threshold is the bin's upper edge, so comparing codes is exact.
                i = if bins.codes[*feature][row] <= *bin {
                    *left
                } else {
                    *right
                };
            }
            Some(Node::Leaf(v)) => return *v,
            None => return 0.0,
        }
    }
}

/// Rows as an `n × f` matrix (all rows must have `f` values).
pub fn matrix(rows: &[Vec<f64>]) -> Result<Array2<f64>> {
    let f = rows.first().map_or(0, Vec::len);
    let mut flat = Vec::with_capacity(rows.len() * f);
    for (i, r) in rows.iter().enumerate() {
        if r.len() != f {
            return Err(RulError::Data(format!(
                "row {i} has {} features, expected {f}",
                r.len()
            )));
        }
        flat.extend_from_slice(r);
    }
    Array2::from_shape_vec((rows.len(), f), flat).map_err(|e| RulError::Data(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array1;

    #[test]
    fn learns_a_step_and_a_slope() {
        // y = 10·[x0 > 0.5] + 3·x1, no noise.
        let mut rows = Vec::new();
        let mut y = Vec::new();
        for i in 0..400 {
            let x0 = (i % 20) as f64 / 20.0;
            let x1 = (i / 20) as f64 / 20.0;
            rows.push(vec![x0, x1]);
            y.push(if x0 > 0.5 { 10.0 } else { 0.0 } + 3.0 * x1);
        }
        let x = matrix(&rows).expect("matrix");
        let y = Array1::from(y);
        let cfg = GbmConfig {
            trees: 200,
            learning_rate: 0.1,
            min_leaf: 5,
            ..GbmConfig::default()
        };
        let mut calls = 0;
        let m = Gbm::fit(x.view(), y.view(), &cfg, &mut |_, _| calls += 1).expect("fit");
        assert_eq!(calls, 200);
        let p = m.predict_all(x.view());
        let rmse = (p.iter().zip(y.iter()).map(|(a, b)| (a - b).powi(2)).sum::<f64>() / 400.0).sqrt();
        assert!(rmse < 0.5, "rmse {rmse}");
        assert!((m.predict(&[0.9, 0.5]) - 11.5).abs() < 1.0);
        assert!((m.predict(&[0.1, 0.5]) - 1.5).abs() < 1.0);
    }

    #[test]
    fn rejects_bad_input() {
        let x = matrix(&[vec![1.0], vec![2.0]]).expect("matrix");
        let y = Array1::from(vec![1.0]);
        assert!(Gbm::fit(x.view(), y.view(), &GbmConfig::default(), &mut |_, _| {}).is_err());
        assert!(matrix(&[vec![1.0], vec![2.0, 3.0]]).is_err());
    }
}
