//! shift-attention's SSIM scatter plot as SVG: x the gap width (log scale), y its SSIM; orange
//! the gaps that got a new frame, blue the accepted ones; a vertical line at the minimum step and
//! a horizontal one at the threshold.

use std::fmt::Write as _;

use keyshift_core::shift::SsimPoint;

const W: f64 = 640.0;
const H: f64 = 480.0;
const MARGIN: f64 = 56.0;

/// The plot of `points` with its threshold and minimum step.
pub fn ssim_scatter_svg(points: &[SsimPoint], threshold: f64, min_step: f64) -> String {
    let gaps = points.iter().map(|p| p.gap).chain([min_step, 1.0]);
    let lo_gap = gaps
        .filter(|g| *g > 0.0)
        .fold(1.0, f64::min)
        .log10()
        .floor();
    let hi_gap = 0.0f64;
    let lo_ssim = points
        .iter()
        .map(|p| p.ssim)
        .chain([threshold])
        .fold(1.0, f64::min);
    let lo_ssim = (lo_ssim * 10.0).floor() / 10.0;
    let x = |gap: f64| {
        let t = (gap.max(1e-300).log10() - lo_gap) / (hi_gap - lo_gap).max(1e-9);
        MARGIN + t * (W - 2.0 * MARGIN)
    };
    let y = |ssim: f64| {
        let t = (ssim - lo_ssim) / (1.0 - lo_ssim).max(1e-9);
        H - MARGIN - t * (H - 2.0 * MARGIN)
    };
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" \
         viewBox=\"0 0 {W} {H}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{}\" y=\"20\" text-anchor=\"middle\">SSIM by gap width</text>\n",
        W / 2.0
    );
    axes(&mut svg, lo_gap, lo_ssim, &x, &y);
    let _ = writeln!(
        svg,
        "<line x1=\"{0:.1}\" y1=\"{1}\" x2=\"{0:.1}\" y2=\"{2}\" stroke=\"grey\" stroke-dasharray=\"4\"/>",
        x(min_step),
        MARGIN,
        H - MARGIN
    );
    let _ = writeln!(
        svg,
        "<line x1=\"{1}\" y1=\"{0:.1}\" x2=\"{2}\" y2=\"{0:.1}\" stroke=\"grey\" stroke-dasharray=\"4\"/>",
        y(threshold),
        MARGIN,
        W - MARGIN
    );
    for p in points {
        let colour = if p.subdivided { "#ffa600" } else { "#003f5c" };
        let _ = writeln!(
            svg,
            "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"{colour}\"><title>gap {} ssim {}</title></circle>",
            x(p.gap),
            y(p.ssim),
            p.gap,
            p.ssim
        );
    }
    svg.push_str("</svg>\n");
    svg
}

fn axes(
    svg: &mut String,
    lo_gap: f64,
    lo_ssim: f64,
    x: &dyn Fn(f64) -> f64,
    y: &dyn Fn(f64) -> f64,
) {
    let _ = writeln!(
        svg,
        "<polyline points=\"{MARGIN},{MARGIN} {MARGIN},{0} {1},{0}\" fill=\"none\" stroke=\"black\"/>",
        H - MARGIN,
        W - MARGIN
    );
    #[allow(clippy::cast_possible_truncation, reason = "decades of a gap width")]
    for decade in (lo_gap as i32)..=0 {
        let gx = x(10f64.powi(decade));
        let _ = writeln!(
            svg,
            "<text x=\"{gx:.1}\" y=\"{}\" text-anchor=\"middle\">1e{decade}</text>",
            H - MARGIN + 16.0
        );
    }
    let mut s = lo_ssim;
    while s <= 1.0 + 1e-9 {
        let _ = writeln!(
            svg,
            "<text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{s:.1}</text>",
            MARGIN - 6.0,
            y(s) + 4.0
        );
        s += 0.1;
    }
    let _ = writeln!(
        svg,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">gap width</text>\n\
         <text x=\"14\" y=\"{}\" transform=\"rotate(-90 14 {})\" text-anchor=\"middle\">SSIM</text>",
        W / 2.0,
        H - 12.0,
        H / 2.0,
        H / 2.0
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_every_point_in_its_colour() {
        let points = [
            SsimPoint {
                gap: 0.5,
                ssim: 0.6,
                subdivided: true,
            },
            SsimPoint {
                gap: 0.25,
                ssim: 0.95,
                subdivided: false,
            },
        ];
        let svg = ssim_scatter_svg(&points, 0.9, 0.0001);
        assert_eq!(svg.matches("<circle").count(), 2);
        assert_eq!(svg.matches("#ffa600").count(), 1);
        assert_eq!(svg.matches("#003f5c").count(), 1);
        assert!(svg.contains(">1e-4<"), "the axis reaches the minimum step");
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
    }
}
