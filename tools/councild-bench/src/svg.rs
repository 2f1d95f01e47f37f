//! A small hand-written SVG line chart: log x axis, two series each on its own linear y
//! axis (left and right), ticks, grid and a legend. No dependency, no fonts to embed.

use std::fmt::Write as _;

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 420.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 80.0;
const TOP: f64 = 56.0;
const BOTTOM: f64 = 64.0;
const COLOURS: [&str; 2] = ["#1f77b4", "#d62728"];

/// One line: a name for the legend, its axis label, and one y per x of the chart.
pub struct Series<'a> {
    pub name: &'a str,
    pub axis: &'a str,
    pub values: &'a [f64],
}

/// The chart: `xs` must be positive on a log axis; `series` has one or two entries, the
/// first on the left axis and the second on the right.
pub struct Chart<'a> {
    pub title: &'a str,
    pub x_label: &'a str,
    /// A log x axis (sizes over decades) or a linear one from 0 (time).
    pub log_x: bool,
    pub xs: &'a [f64],
    pub series: &'a [Series<'a>],
}

impl Chart<'_> {
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = writeln!(
            out,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">"#
        );
        let _ = writeln!(
            out,
            r##"<rect width="100%" height="100%" fill="#ffffff"/>"##
        );
        let _ = writeln!(
            out,
            r#"<text x="{}" y="24" text-anchor="middle" font-size="15" font-weight="bold">{}</text>"#,
            WIDTH / 2.0,
            escape(self.title)
        );
        let x = if self.log_x {
            XAxis::Log(LogAxis::new(self.xs))
        } else {
            XAxis::Linear(LinearAxis::whole(self.xs))
        };
        self.x_axis(&mut out, &x);
        for (i, series) in self.series.iter().take(2).enumerate() {
            let y = LinearAxis::new(series.values);
            y_axis(&mut out, &y, series.axis, i);
            self.line(&mut out, &x, &y, series, COLOURS[i]);
        }
        self.legend(&mut out);
        let _ = writeln!(
            out,
            r##"<rect x="{LEFT}" y="{TOP}" width="{}" height="{}" fill="none" stroke="#333"/>"##,
            plot_width(),
            plot_height()
        );
        out.push_str("</svg>\n");
        out
    }

    fn x_axis(&self, out: &mut String, x: &XAxis) {
        let bottom = TOP + plot_height();
        for tick in x.ticks() {
            let px = x.px(tick);
            let _ = writeln!(
                out,
                r##"<line x1="{px:.1}" y1="{TOP}" x2="{px:.1}" y2="{bottom}" stroke="#e5e5e5"/>"##
            );
            let _ = writeln!(
                out,
                r#"<text x="{px:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
                bottom + 16.0,
                number(tick)
            );
        }
        let _ = writeln!(
            out,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}{}</text>"#,
            LEFT + plot_width() / 2.0,
            HEIGHT - 18.0,
            escape(self.x_label),
            if self.log_x { " (log scale)" } else { "" }
        );
    }

    fn line(&self, out: &mut String, x: &XAxis, y: &LinearAxis, s: &Series, colour: &str) {
        let points: Vec<(f64, f64)> = self
            .xs
            .iter()
            .zip(s.values)
            .filter(|(_, v)| v.is_finite())
            .map(|(&xv, &yv)| (x.px(xv), y.px(yv)))
            .collect();
        let path: Vec<String> = points
            .iter()
            .map(|(px, py)| format!("{px:.1},{py:.1}"))
            .collect();
        let _ = writeln!(
            out,
            r#"<polyline points="{}" fill="none" stroke="{colour}" stroke-width="2"/>"#,
            path.join(" ")
        );
        for (px, py) in points {
            let _ = writeln!(
                out,
                r#"<circle cx="{px:.1}" cy="{py:.1}" r="3.5" fill="{colour}"/>"#
            );
        }
    }

    fn legend(&self, out: &mut String) {
        let mut left = LEFT + 12.0;
        for (i, s) in self.series.iter().take(2).enumerate() {
            let y = TOP + 16.0;
            let _ = writeln!(
                out,
                r#"<line x1="{left:.1}" y1="{y}" x2="{:.1}" y2="{y}" stroke="{}" stroke-width="2"/>"#,
                left + 22.0,
                COLOURS[i]
            );
            let _ = writeln!(
                out,
                r#"<text x="{:.1}" y="{:.1}">{} ({} axis)</text>"#,
                left + 28.0,
                y + 4.0,
                escape(s.name),
                if i == 0 { "left" } else { "right" }
            );
            left += 40.0 + 7.0 * (s.name.len() as f64 + 12.0);
        }
    }
}

/// A y axis on the left (`side` 0) or the right (`side` 1), in its series' colour.
fn y_axis(out: &mut String, y: &LinearAxis, label: &str, side: usize) {
    let (x, anchor, dx) = if side == 0 {
        (LEFT, "end", -6.0)
    } else {
        (LEFT + plot_width(), "start", 6.0)
    };
    let colour = COLOURS[side];
    for tick in y.ticks() {
        let py = y.px(tick);
        if side == 0 {
            let _ = writeln!(
                out,
                r##"<line x1="{LEFT}" y1="{py:.1}" x2="{:.1}" y2="{py:.1}" stroke="#e5e5e5"/>"##,
                LEFT + plot_width()
            );
        }
        let _ = writeln!(
            out,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="{anchor}" fill="{colour}">{}</text>"#,
            x + dx,
            py + 4.0,
            number(tick)
        );
    }
    let (lx, rotate) = if side == 0 {
        (18.0, -90)
    } else {
        (WIDTH - 18.0, 90)
    };
    let ly = TOP + plot_height() / 2.0;
    let _ = writeln!(
        out,
        r#"<text x="{lx}" y="{ly:.1}" text-anchor="middle" fill="{colour}" transform="rotate({rotate} {lx} {ly:.1})">{}</text>"#,
        escape(label)
    );
}

fn plot_width() -> f64 {
    WIDTH - LEFT - RIGHT
}

fn plot_height() -> f64 {
    HEIGHT - TOP - BOTTOM
}

enum XAxis {
    Log(LogAxis),
    Linear(LinearAxis),
}

impl XAxis {
    fn px(&self, x: f64) -> f64 {
        match self {
            XAxis::Log(a) => a.px(x),
            XAxis::Linear(a) => LEFT + x / a.hi * plot_width(),
        }
    }

    fn ticks(&self) -> Vec<f64> {
        match self {
            XAxis::Log(a) => a.ticks(),
            XAxis::Linear(a) => a.ticks(),
        }
    }
}

/// A log axis padded a little beyond the data.
struct LogAxis {
    lo: f64,
    hi: f64,
}

impl LogAxis {
    fn new(xs: &[f64]) -> LogAxis {
        let positive = xs.iter().copied().filter(|x| *x > 0.0 && x.is_finite());
        let lo = positive.clone().fold(f64::INFINITY, f64::min);
        let hi = positive.fold(f64::NEG_INFINITY, f64::max);
        let (lo, hi) = if lo.is_finite() && hi.is_finite() {
            (lo, hi)
        } else {
            (1.0, 10.0)
        };
        let (lo, hi) = if hi / lo < 10.0 {
            (lo / 2.0, hi * 2.0)
        } else {
            (lo / 1.5, hi * 1.5)
        };
        LogAxis {
            lo: lo.log10(),
            hi: hi.log10(),
        }
    }

    fn px(&self, x: f64) -> f64 {
        LEFT + (x.log10() - self.lo) / (self.hi - self.lo) * plot_width()
    }

    /// 1, 2 and 5 times each power of ten in range; only the powers if that is too many.
    fn ticks(&self) -> Vec<f64> {
        let mut all = Vec::new();
        let mut powers = Vec::new();
        for e in self.lo.floor() as i32..=self.hi.ceil() as i32 {
            let p = 10f64.powi(e);
            for m in [1.0, 2.0, 5.0] {
                let t = m * p;
                if t.log10() >= self.lo && t.log10() <= self.hi {
                    all.push(t);
                    if m == 1.0 {
                        powers.push(t);
                    }
                }
            }
        }
        if all.len() > 10 { powers } else { all }
    }
}

/// A linear axis from 0 to a round number above the largest value.
struct LinearAxis {
    hi: f64,
    step: f64,
}

impl LinearAxis {
    fn new(values: &[f64]) -> LinearAxis {
        let max = values
            .iter()
            .copied()
            .filter(|v| v.is_finite())
            .fold(0.0, f64::max);
        let max = if max > 0.0 { max } else { 1.0 };
        let step = nice_step(max / 5.0);
        LinearAxis {
            hi: (max / step).ceil() * step,
            step,
        }
    }

    /// The same with a whole step (counts, months).
    fn whole(values: &[f64]) -> LinearAxis {
        let max = values
            .iter()
            .copied()
            .filter(|v| v.is_finite())
            .fold(1.0, f64::max);
        let step = nice_step(max / 5.0).ceil();
        LinearAxis {
            hi: (max / step).ceil() * step,
            step,
        }
    }

    fn px(&self, y: f64) -> f64 {
        TOP + plot_height() * (1.0 - y / self.hi)
    }

    fn ticks(&self) -> Vec<f64> {
        let n = (self.hi / self.step).round() as usize;
        (0..=n).map(|i| i as f64 * self.step).collect()
    }
}

/// The smallest of 1, 2, 2.5, 5 × 10^k at least `raw`.
fn nice_step(raw: f64) -> f64 {
    let p = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 2.5, 5.0, 10.0]
        .into_iter()
        .map(|m| m * p)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * p)
}

/// `1500` → `1500`, `20000` → `20k`, `0.25` → `0.25`.
fn number(v: f64) -> String {
    if v >= 10_000.0 && (v / 1000.0).fract() == 0.0 {
        format!("{}k", v / 1000.0)
    } else if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        let s = format!("{v:.3}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
