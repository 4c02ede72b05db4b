//! Small charts drawn on the server as SVG polylines: no chart library and
//! no script, so the overview renders the same with JavaScript off.

/// Width and height of the chart's SVG viewBox.
pub const WIDTH: f64 = 160.0;
pub const HEIGHT: f64 = 32.0;

/// A series ready to draw: the polyline's points and the figures beside it.
#[derive(Debug, Clone, Default)]
pub struct Series {
    /// `x,y x,y ...` in the viewBox, empty with fewer than two values.
    pub points: String,
    /// The latest value.
    pub last: f64,
    /// The largest value (the top of the chart).
    pub max: f64,
}

impl Series {
    /// Draws `values` (oldest first) scaled to the chart, with `floor` as the
    /// least top so a quiet service does not draw noise full height.
    pub fn new(values: &[f64], floor: f64) -> Series {
        let last = values.last().copied().unwrap_or(0.0);
        let max = values.iter().copied().fold(floor, f64::max);
        if values.len() < 2 {
            return Series {
                points: String::new(),
                last,
                max,
            };
        }
        let step = WIDTH / (values.len() - 1) as f64;
        let points = values
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let y = HEIGHT - (v / max).clamp(0.0, 1.0) * (HEIGHT - 2.0) - 1.0;
                format!("{:.1},{:.1}", i as f64 * step, y)
            })
            .collect::<Vec<_>>()
            .join(" ");
        Series { points, last, max }
    }

    /// The latest value for a label: `3`, `12.5`.
    pub fn last_text(&self) -> String {
        if self.last.fract() == 0.0 {
            format!("{}", self.last)
        } else {
            format!("{:.1}", self.last)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_series_spans_the_chart_and_tops_out_at_its_max() {
        let s = Series::new(&[0.0, 5.0, 10.0], 1.0);
        assert_eq!(s.points, "0.0,31.0 80.0,16.0 160.0,1.0");
        assert_eq!((s.last, s.max), (10.0, 10.0));
        assert!(Series::new(&[3.0], 1.0).points.is_empty());
    }
}
