//! Pure geometry helpers for charts: axis ranges, tick labels and legend
//! placement.

/// Pixel bounds of the plotting area.
pub(crate) struct PlotArea {
    pub left: i32,
    pub right: i32,
    pub top: i32,
    pub bottom: i32,
}

/// Top-left corner for a legend box of `size` inside `area`: the corner
/// (upper right, upper left, lower right, lower left; ties in that order)
/// whose box covers the fewest data pixels, with segments sampled densely.
pub(crate) fn legend_corner(area: &PlotArea, (bw, bh): (i32, i32), series: &[Vec<(i32, i32)>]) -> (i32, i32) {
    const INSET: i32 = 10;
    let right = (area.right - INSET - bw).max(area.left);
    let left = area.left + INSET;
    let top = area.top + INSET;
    let bottom = (area.bottom - INSET - bh).max(area.top);
    let corners = [(right, top), (left, top), (right, bottom), (left, bottom)];
    let mut hits = [0usize; 4];
    for pts in series {
        let samples = pts.windows(2).flat_map(|s| {
            let ((x0, y0), (x1, y1)) = (s[0], s[1]);
            let n = ((x1 - x0).abs().max((y1 - y0).abs()) / 4).clamp(1, 200);
            (0..n).map(move |k| {
                let t = k as f64 / n as f64;
                (x0 as f64 + (x1 - x0) as f64 * t, y0 as f64 + (y1 - y0) as f64 * t)
            })
        });
        let ends = pts.iter().map(|&(x, y)| (x as f64, y as f64));
        for (x, y) in samples.chain(ends) {
            for (h, &(cx, cy)) in hits.iter_mut().zip(&corners) {
                if x >= cx as f64 && x <= (cx + bw) as f64 && y >= cy as f64 && y <= (cy + bh) as f64 {
                    *h += 1;
                }
            }
        }
    }
    let best = (0..4).min_by_key(|&k| (hits[k], k)).unwrap_or(0);
    corners[best]
}

pub(crate) fn min_max(values: impl Iterator<Item = f64>) -> (f64, f64) {
    values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)))
}

/// Widen `(lo, hi)` by 5% on each side (multiplicatively on a log axis);
/// degenerate ranges get a sensible non-zero width.
pub(crate) fn padded_range((lo, hi): (f64, f64), log: bool) -> (f64, f64) {
    const MARGIN: f64 = 0.05;
    if log {
        let (llo, lhi) = (lo.log10(), hi.log10());
        let span = lhi - llo;
        let pad = if span > 0.0 { span * MARGIN } else { 0.5 };
        (10f64.powf(llo - pad), 10f64.powf(lhi + pad))
    } else {
        let span = hi - lo;
        let pad = if span > 0.0 {
            span * MARGIN
        } else if lo != 0.0 {
            lo.abs() * 0.1
        } else {
            1.0
        };
        (lo - pad, hi + pad)
    }
}

/// Labels for the tick values of one axis.
///
/// Linear axes use one shared precision: the fewest decimals (or, for very
/// large/small magnitudes, scientific mantissa digits) that represent every
/// tick to within a thousandth of the tick step, so labels never collapse
/// into duplicates. Log axes label each decade value on its own.
pub(crate) fn tick_labels(values: &[f64], log: bool) -> Vec<String> {
    if log {
        return values.iter().map(|&v| single_tick(v)).collect();
    }
    let max_abs = values.iter().fold(0f64, |m, v| m.max(v.abs()));
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let step = sorted.windows(2).map(|w| w[1] - w[0]).filter(|d| *d > 0.0).fold(f64::INFINITY, f64::min);
    let sci = max_abs >= 1e5 || (max_abs > 0.0 && max_abs < 1e-3);
    let tol = if step.is_finite() { step * 1e-3 } else { max_abs * 1e-6 };
    let fmt = |v: f64, d: usize| {
        let s = if sci { format!("{v:.d$e}") } else { format!("{v:.d$}") };
        strip_negative_zero(s)
    };
    const MAX_DIGITS: usize = 10;
    for d in 0..=MAX_DIGITS {
        let labels: Vec<String> = values.iter().map(|&v| fmt(v, d)).collect();
        let exact = labels.iter().zip(values).all(|(l, &v)| l.parse::<f64>().is_ok_and(|p| (p - v).abs() <= tol));
        if exact {
            return labels;
        }
    }
    values.iter().map(|&v| fmt(v, MAX_DIGITS)).collect()
}

/// Compact label for one value: trimmed decimals for moderate magnitudes,
/// scientific notation for very large or small ones.
fn single_tick(v: f64) -> String {
    let a = v.abs();
    if a == 0.0 {
        return "0".to_string();
    }
    if !(1e-3..1e5).contains(&a) {
        let s = format!("{v:.1e}");
        return s.replace(".0e", "e");
    }
    let s = format!("{v:.4}");
    strip_negative_zero(s.trim_end_matches('0').trim_end_matches('.').to_string())
}

fn strip_negative_zero(s: String) -> String {
    match s.strip_prefix('-') {
        Some(rest) if rest.chars().all(|c| matches!(c, '0' | '.' | 'e')) => rest.to_string(),
        _ => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(v: &[f64]) -> Vec<String> {
        tick_labels(v, false)
    }

    #[test]
    fn linear_tick_labels_share_precision() {
        assert_eq!(labels(&[0.0, 0.2, 0.4]), ["0.0", "0.2", "0.4"]);
        assert_eq!(labels(&[0.0, 0.25, 0.5]), ["0.00", "0.25", "0.50"]);
        assert_eq!(labels(&[0.0, 10.0, 20.0]), ["0", "10", "20"]);
        assert_eq!(labels(&[-1.0, 0.0, 1.0]), ["-1", "0", "1"]);
        assert_eq!(labels(&[0.50001, 0.50002]), ["0.50001", "0.50002"]);
        assert_eq!(labels(&[1e-5, 2e-5]), ["1e-5", "2e-5"]);
        assert_eq!(labels(&[2.5e6, 5e6]), ["2.5e6", "5.0e6"]);
        assert_eq!(labels(&[3.0]), ["3"]);
        assert_eq!(labels(&[]), Vec::<String>::new());
    }

    #[test]
    fn log_tick_labels() {
        let l = tick_labels(&[1e-4, 0.001, 0.5, 1.0, 10.0, 1e6], true);
        assert_eq!(l, ["1e-4", "0.001", "0.5", "1", "10", "1e6"]);
    }

    #[test]
    fn legend_avoids_data() {
        let area = PlotArea { left: 0, right: 400, top: 0, bottom: 300 };
        // Data along the top edge: the legend goes to a lower corner.
        let series = vec![vec![(0, 20), (400, 20)]];
        let (x, y) = legend_corner(&area, (100, 60), &series);
        assert_eq!((x, y), (290, 230));
        // Data rising to the upper right: upper left wins.
        let series = vec![vec![(0, 300), (400, 0)], vec![(300, 250), (400, 250)]];
        assert_eq!(legend_corner(&area, (100, 60), &series), (10, 10));
        // No data: upper right.
        assert_eq!(legend_corner(&area, (100, 60), &[]), (290, 10));
    }

    #[test]
    fn ranges() {
        assert_eq!(padded_range((0.0, 10.0), false), (-0.5, 10.5));
        assert_eq!(padded_range((3.0, 3.0), false), (3.0 - 0.3, 3.0 + 0.3));
        assert_eq!(padded_range((0.0, 0.0), false), (-1.0, 1.0));
        let (lo, hi) = padded_range((1.0, 100.0), true);
        assert!((lo - 10f64.powf(-0.1)).abs() < 1e-12 && (hi - 10f64.powf(2.1)).abs() < 1e-9);
        let (lo, hi) = padded_range((5.0, 5.0), true);
        assert!(lo < 5.0 && hi > 5.0);
    }
}
