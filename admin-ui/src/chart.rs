//! Line charts as inline SVG: the axes' ranges, their ticks, and the paths of
//! the series, computed here so the view only draws strings.

/// The drawing area of a chart, in SVG user units.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Frame {
    pub width: f64,
    pub height: f64,
    /// Room for the y labels on the left and the x labels below.
    pub left: f64,
    pub right: f64,
    pub top: f64,
    pub bottom: f64,
}

impl Default for Frame {
    fn default() -> Self {
        Frame { width: 640.0, height: 220.0, left: 48.0, right: 12.0, top: 12.0, bottom: 24.0 }
    }
}

/// Maps data coordinates to the frame: `x` from `x_min..x_max`, `y` from `0..y_max`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scale {
    pub frame: Frame,
    pub x_min: f64,
    pub x_max: f64,
    pub y_max: f64,
}

impl Scale {
    pub fn x(&self, v: f64) -> f64 {
        let span = (self.x_max - self.x_min).max(f64::EPSILON);
        let w = self.frame.width - self.frame.left - self.frame.right;
        self.frame.left + (v - self.x_min) / span * w
    }

    pub fn y(&self, v: f64) -> f64 {
        let h = self.frame.height - self.frame.top - self.frame.bottom;
        let y_max = if self.y_max > 0.0 { self.y_max } else { 1.0 };
        self.frame.top + h - (v.clamp(0.0, y_max) / y_max) * h
    }

    /// The y of the x axis.
    pub fn baseline(&self) -> f64 {
        self.frame.height - self.frame.bottom
    }
}

/// The smallest "nice" number (1, 2 or 5 × 10ⁿ) at or above `v`; 1 for nothing positive.
pub fn nice_ceiling(v: f64) -> f64 {
    if !v.is_finite() || v <= 0.0 {
        return 1.0;
    }
    let magnitude = 10f64.powf(v.log10().floor());
    let fraction = v / magnitude;
    let nice = if fraction <= 1.0 + 1e-9 {
        1.0
    } else if fraction <= 2.0 + 1e-9 {
        2.0
    } else if fraction <= 5.0 + 1e-9 {
        5.0
    } else {
        10.0
    };
    nice * magnitude
}

/// `n + 1` evenly spaced ticks from 0 to `max`.
pub fn ticks(max: f64, n: usize) -> Vec<f64> {
    let n = n.max(1);
    (0..=n).map(|i| max * i as f64 / n as f64).collect()
}

/// A tick label: `0`, `2.5`, `1.2k`, `3M`.
pub fn tick_label(v: f64) -> String {
    let trim = |s: String| {
        if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.').to_owned() } else { s }
    };
    if v.abs() >= 1e6 {
        format!("{}M", trim(format!("{:.1}", v / 1e6)))
    } else if v.abs() >= 1e3 {
        format!("{}k", trim(format!("{:.1}", v / 1e3)))
    } else {
        trim(format!("{v:.2}"))
    }
}

/// An SVG path through `points` (`M x y L x y …`), empty for no points.
pub fn line_path(points: &[(f64, f64)], scale: &Scale) -> String {
    let mut out = String::new();
    for (i, (x, y)) in points.iter().enumerate() {
        let cmd = if i == 0 { 'M' } else { 'L' };
        out.push_str(&format!("{cmd}{:.1} {:.1} ", scale.x(*x), scale.y(*y)));
    }
    out.trim_end().to_owned()
}

/// The area under `points`, closed along the baseline.
pub fn area_path(points: &[(f64, f64)], scale: &Scale) -> String {
    let (Some(first), Some(last)) = (points.first(), points.last()) else { return String::new() };
    format!(
        "{} L{:.1} {:.1} L{:.1} {:.1} Z",
        line_path(points, scale),
        scale.x(last.0),
        scale.baseline(),
        scale.x(first.0),
        scale.baseline()
    )
}

/// A chart ready to draw: the scale, each series' path, and the axes' ticks.
#[derive(Debug, Clone, PartialEq)]
pub struct ChartModel {
    pub scale: Scale,
    pub paths: Vec<String>,
    /// `(y position, label)`.
    pub y_ticks: Vec<(f64, String)>,
    /// `(x position, data x)` for the caller to label (times).
    pub x_ticks: Vec<(f64, f64)>,
}

/// Lays out series of `(x, y)` points (x ascending) sharing one scale. The x
/// range spans at least `min_span`, ending at the last point.
pub fn layout(series: &[&[(f64, f64)]], frame: Frame, min_span: f64) -> ChartModel {
    let xs = series.iter().flat_map(|s| s.iter().map(|p| p.0));
    let (mut x_min, x_max) = xs.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), x| (lo.min(x), hi.max(x)));
    let (x_min, x_max) = if x_max.is_finite() {
        if x_max - x_min < min_span {
            x_min = x_max - min_span;
        }
        (x_min, x_max)
    } else {
        // No points yet: the window that ends now.
        (-min_span.max(1.0), 0.0)
    };
    let y_peak = series.iter().flat_map(|s| s.iter().map(|p| p.1)).fold(0.0f64, f64::max);
    let y_max = nice_ceiling(y_peak);
    let scale = Scale { frame, x_min, x_max, y_max };
    let paths = series.iter().map(|s| line_path(s, &scale)).collect();
    let y_ticks = ticks(y_max, 4).into_iter().map(|v| (scale.y(v), tick_label(v))).collect();
    let x_ticks = ticks(x_max - x_min, 4).into_iter().map(|d| (scale.x(x_min + d), x_min + d)).collect();
    ChartModel { scale, paths, y_ticks, x_ticks }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nice_numbers() {
        assert_eq!(nice_ceiling(0.0), 1.0);
        assert_eq!(nice_ceiling(-3.0), 1.0);
        assert_eq!(nice_ceiling(f64::NAN), 1.0);
        assert_eq!(nice_ceiling(1.0), 1.0);
        assert_eq!(nice_ceiling(7.0), 10.0);
        assert_eq!(nice_ceiling(12.0), 20.0);
        assert_eq!(nice_ceiling(20.0), 20.0);
        assert_eq!(nice_ceiling(430.0), 500.0);
        assert!((nice_ceiling(0.3) - 0.5).abs() < 1e-12);
    }

    #[test]
    fn labels() {
        assert_eq!(tick_label(0.0), "0");
        assert_eq!(tick_label(2.5), "2.5");
        assert_eq!(tick_label(1500.0), "1.5k");
        assert_eq!(tick_label(2_000_000.0), "2M");
        assert_eq!(ticks(10.0, 4), vec![0.0, 2.5, 5.0, 7.5, 10.0]);
    }

    #[test]
    fn scale_maps_corners() {
        let frame = Frame { width: 110.0, height: 60.0, left: 10.0, right: 0.0, top: 0.0, bottom: 10.0 };
        let s = Scale { frame, x_min: 0.0, x_max: 100.0, y_max: 50.0 };
        assert_eq!((s.x(0.0), s.y(0.0)), (10.0, 50.0));
        assert_eq!((s.x(100.0), s.y(50.0)), (110.0, 0.0));
        assert_eq!(s.y(80.0), 0.0, "clamped to the top");
        assert_eq!(line_path(&[(0.0, 0.0), (100.0, 50.0)], &s), "M10.0 50.0 L110.0 0.0");
        assert_eq!(area_path(&[(0.0, 0.0), (100.0, 50.0)], &s), "M10.0 50.0 L110.0 0.0 L110.0 50.0 L10.0 50.0 Z");
        assert_eq!(area_path(&[], &s), "");
    }

    #[test]
    fn layout_shares_one_scale_and_pads_short_spans() {
        let a = [(100.0, 3.0), (110.0, 7.0)];
        let b = [(105.0, 12.0)];
        let m = layout(&[&a, &b], Frame::default(), 60.0);
        assert_eq!(m.scale.y_max, 20.0);
        assert_eq!((m.scale.x_min, m.scale.x_max), (50.0, 110.0));
        assert_eq!(m.paths.len(), 2);
        assert!(m.paths[0].starts_with('M'));
        assert_eq!(m.y_ticks.len(), 5);
        assert_eq!(m.y_ticks[4].1, "20");
        assert_eq!(m.x_ticks.first().map(|t| t.1), Some(50.0));
        assert_eq!(m.x_ticks.last().map(|t| t.1), Some(110.0));

        let empty = layout(&[&[]], Frame::default(), 60.0);
        assert_eq!(empty.paths, vec![String::new()]);
        assert_eq!(empty.scale.y_max, 1.0);
    }
}
