//! The docs' plots, as SVG: a bar chart per workload, a latency CDF per
//! wrk workload, and the sustained runs' rate slice by slice. plotters' SVG backend writes text as `<text>` elements, and
//! without its `ttf` feature it measures text with a naive estimate, so no
//! font is looked up or rasterised (nothing of fontconfig or freetype).
use std::path::Path;

use anyhow::Context as _;
use plotters::{
    coord::{Shift, ranged1d::SegmentValue},
    prelude::*,
    style::text_anchor::{HPos, Pos, VPos},
};

use super::{
    docs::figure,
    results::{Latency, Workload},
    sustained::Sustained,
};

const SIZE: (u32, u32) = (760, 420);
const FONT: &str = "sans-serif";
/// Axis labels: plotters' defaults come out at about 10 px.
const LABELS: (&str, u32) = (FONT, 15);

/// An axis mark: as the tables show figures, without trailing zeros.
fn mark(v: f64) -> String {
    let s = figure(v);
    if s.contains('.') && !s.contains('e') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

pub(super) fn write(file: &Path, svg: &str) -> anyhow::Result<()> {
    std::fs::write(file, svg).with_context(|| format!("writing {}", file.display()))
}

/// One colour per path in every plot, so that a path is found at a glance.
fn color(path: &str, i: usize) -> RGBColor {
    const OTHERS: [RGBColor; 4] = [
        RGBColor(140, 86, 75),
        RGBColor(227, 119, 194),
        RGBColor(188, 189, 34),
        RGBColor(23, 190, 207),
    ];
    match path {
        "direct" => RGBColor(127, 127, 127),
        "xdp-native" => RGBColor(31, 119, 180),
        "xdp-generic" => RGBColor(108, 174, 220),
        "proxy" => RGBColor(44, 160, 44),
        "haproxy" => RGBColor(255, 127, 14),
        "nftables" => RGBColor(214, 39, 40),
        "nftables-jhash" => RGBColor(150, 30, 30),
        "xdp-tx-floor" => RGBColor(148, 103, 189),
        "xdp-native-dnat" => RGBColor(23, 75, 140),
        "xdp-generic-dnat" => RGBColor(23, 190, 207),
        "nftables-dnat" => RGBColor(240, 110, 110),
        _ => OTHERS[i % OTHERS.len()],
    }
}

/// Draws into an SVG string.
fn svg(draw: impl FnOnce(&DrawingArea<SVGBackend<'_>, Shift>) -> anyhow::Result<()>) -> anyhow::Result<String> {
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, SIZE).into_drawing_area();
        root.fill(&WHITE)?;
        draw(&root)?;
        root.present()?;
    }
    Ok(out)
}

/// A bar per path (or case) with a figure, labelled with its median.
pub(super) fn bars(w: &Workload) -> anyhow::Result<String> {
    let rows: Vec<(&str, f64)> = w
        .rows
        .iter()
        .filter_map(|r| r.median.map(|v| (r.name.as_str(), v)))
        .collect();
    let top = rows.iter().map(|&(_, v)| v).fold(0.0, f64::max);
    // Room above the tallest bar for its label.
    let top = if top > 0.0 { top * 1.15 } else { 1.0 };
    let better = if w.higher_is_better { "higher" } else { "lower" };
    svg(|root| {
        let mut chart = ChartBuilder::on(root)
            .caption(format!("{} ({better} is better)", w.title), (FONT, 20))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(80)
            // plotters' integer ranges hold both ends: 0..last is last + 1
            // slots, and at least two, since a range of one value has no width.
            .build_cartesian_2d((0..rows.len().max(2) - 1).into_segmented(), 0.0..top)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(rows.len() + 1)
            .x_label_formatter(&|v| match v {
                SegmentValue::CenterOf(i) => rows.get(*i).map(|r| r.0.to_string()).unwrap_or_default(),
                _ => String::new(),
            })
            .y_label_formatter(&|v| mark(*v))
            .label_style(LABELS)
            .axis_desc_style(LABELS)
            .y_desc(w.unit.as_str())
            .draw()?;
        chart.draw_series(rows.iter().enumerate().map(|(i, &(name, v))| {
            let mut bar = Rectangle::new(
                [(SegmentValue::Exact(i), 0.0), (SegmentValue::Exact(i + 1), v)],
                color(name, i).filled(),
            );
            bar.set_margin(0, 0, 12, 12);
            bar
        }))?;
        let label = TextStyle::from((FONT, 14).into_font()).pos(Pos::new(HPos::Center, VPos::Bottom));
        chart.draw_series(
            rows.iter()
                .enumerate()
                .map(|(i, &(_, v))| Text::new(figure(v), (SegmentValue::CenterOf(i), v), label.clone())),
        )?;
        Ok(())
    })
}

/// Above this many points a curve is drawn without a dot at each.
const DOTS_UP_TO: usize = 12;

/// wrk's percentiles through each path, joined: latency (log scale) across,
/// percentile up (from 0 when the curves start low, as the bench's script's
/// do; from 40 for wrk's own four, 50 up).
pub(super) fn cdf(title: &str, curves: &[&Latency]) -> anyhow::Result<String> {
    let points = |c: &Latency| -> Vec<(f64, f64)> {
        c.percentiles
            .iter()
            .filter(|(_, ms)| ms.is_finite() && *ms > 0.0)
            .map(|&(pct, ms)| (ms, pct))
            .collect()
    };
    let all: Vec<f64> = curves.iter().flat_map(|c| points(c)).map(|(ms, _)| ms).collect();
    // Whole decades: plotters' log axis marks only powers of ten and the
    // steps after them, so a range inside one decade would have no marks.
    let (lo, hi) = if all.is_empty() {
        (0.1, 10.0)
    } else {
        let lo = 10f64.powf(all.iter().copied().fold(f64::INFINITY, f64::min).log10().floor());
        let hi = 10f64.powf(all.iter().copied().fold(0.0, f64::max).log10().ceil());
        (lo, if hi > lo { hi } else { lo * 10.0 })
    };
    let lowest = curves
        .iter()
        .flat_map(|c| points(c))
        .map(|(_, pct)| pct)
        .fold(100.0, f64::min);
    let bottom = if lowest < 40.0 { 0.0 } else { 40.0 };
    svg(|root| {
        let mut chart = ChartBuilder::on(root)
            .caption(title, (FONT, 20))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d((lo..hi).log_scale(), bottom..100.0)?;
        chart
            .configure_mesh()
            .x_desc("latency (ms, log scale)")
            .y_desc("percentile")
            .x_label_formatter(&|v| mark(*v))
            .y_label_formatter(&|v| format!("{v:.0}"))
            .label_style(LABELS)
            .axis_desc_style(LABELS)
            .draw()?;
        for (i, c) in curves.iter().enumerate() {
            let col = color(&c.path, i);
            let pts = points(c);
            chart
                .draw_series(LineSeries::new(pts.clone(), col.stroke_width(2)))?
                .label(c.path.as_str())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], col.stroke_width(2)));
            if pts.len() <= DOTS_UP_TO {
                chart.draw_series(pts.into_iter().map(|p| Circle::new(p, 3, col.filled())))?;
            }
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK)
            .label_font((FONT, 14))
            .draw()?;
        Ok(())
    })
}

/// Each sustained run's slices: seconds across, new connections/s up, a
/// step line per path (each slice's rate held over its seconds).
pub(super) fn slices(title: &str, runs: &[&Sustained]) -> anyhow::Result<String> {
    let points = |s: &Sustained| -> Vec<(f64, f64)> {
        s.slices
            .iter()
            .enumerate()
            .flat_map(|(i, &v)| [(i as f64 * s.slice_secs, v), ((i + 1) as f64 * s.slice_secs, v)])
            .collect()
    };
    let right = runs.iter().flat_map(|s| points(s)).map(|(t, _)| t).fold(1.0, f64::max);
    let top = runs.iter().flat_map(|s| s.slices.iter().copied()).fold(0.0, f64::max);
    let top = if top > 0.0 { top * 1.15 } else { 1.0 };
    svg(|root| {
        let mut chart = ChartBuilder::on(root)
            .caption(title, (FONT, 20))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(80)
            .build_cartesian_2d(0.0..right, 0.0..top)?;
        chart
            .configure_mesh()
            .x_desc("seconds into the run")
            .y_desc("new connections/s")
            .x_label_formatter(&|v| mark(*v))
            .y_label_formatter(&|v| mark(*v))
            .label_style(LABELS)
            .axis_desc_style(LABELS)
            .draw()?;
        for (i, s) in runs.iter().enumerate() {
            let col = color(&s.path, i);
            let pts = points(s);
            chart
                .draw_series(LineSeries::new(pts.clone(), col.stroke_width(2)))?
                .label(s.path.as_str())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], col.stroke_width(2)));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerLeft)
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK)
            .label_font((FONT, 14))
            .draw()?;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::{super::results::fixture, *};

    #[test]
    fn bar_charts_are_svg_with_every_path() {
        let p = fixture::published();
        let svg = bars(p.workload("close_rps").unwrap()).unwrap();
        assert!(svg.starts_with("<svg"), "{svg}");
        assert!(svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains("<text"));
        for path in ["direct", "xdp-native", "proxy", "haproxy", "nftables", "20,000"] {
            assert!(svg.contains(&format!("\n{path}\n</text>")), "no {path} in\n{svg}");
        }
        // A workload whose rows have no figure still draws (an empty chart).
        let empty = Workload::new("x", "nothing", "u", true, "").row("a", vec![None]);
        assert!(bars(&empty).unwrap().starts_with("<svg"));
    }

    #[test]
    fn the_cdf_has_a_line_per_path() {
        let p = fixture::published();
        let curves: Vec<&Latency> = p.latency.iter().collect();
        let svg = cdf("Latency", &curves).unwrap();
        assert!(svg.starts_with("<svg"));
        assert!(
            svg.contains("\nxdp-native\n</text>") && svg.contains("\nhaproxy\n</text>"),
            "{svg}"
        );
        // Each path's colour: its curve and its legend's mark.
        for colour in ["#1F77B4", "#FF7F0E"] {
            let line = format!("stroke=\"{colour}\" stroke-width=\"2\"");
            assert_eq!(svg.matches(&line).count(), 2, "{line} in\n{svg}");
        }
        assert!(cdf("none", &[]).unwrap().starts_with("<svg"));
        // The script's many percentiles: from 0, and no dot at each.
        let many = Latency {
            workload: "close".into(),
            path: "proxy".into(),
            percentiles: (1..=99).map(|p| (f64::from(p), f64::from(p) / 10.0)).collect(),
        };
        let svg = cdf("Latency", &[&many]).unwrap();
        assert!(svg.contains("\n0\n</text>"), "{svg}");
        assert!(!svg.contains("<circle"), "{svg}");
        let p = fixture::published();
        let runs: Vec<&Sustained> = p.sustained.iter().collect();
        let svg = slices("Sustained", &runs).unwrap();
        assert!(
            svg.contains("\nhaproxy\n</text>") && svg.contains("\nxdp-generic\n</text>"),
            "{svg}"
        );
        // A step per slice: its rate from its start to its end.
        assert!(svg.contains("<polyline"), "{svg}");
        assert!(slices("none", &[]).unwrap().starts_with("<svg"));
        assert_eq!(
            (mark(2.0), mark(0.25), mark(12.5), mark(2000.0)),
            ("2".into(), "0.25".into(), "12.5".into(), "2,000".into())
        );
    }
}
