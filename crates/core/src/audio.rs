//! Audio reference analysis for Parseq, on mono PCM samples: onsets (aubio's "energy" onset
//! function with its adaptive peak picker, a silence gate and an event offset), amplitude (RMS per
//! hop), pitch (YIN), a waveform for display, and Parseq's CSV time series. Pure Rust.

use serde::{Deserialize, Serialize};

/// Onset detection options (Parseq's defaults).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct OnsetOptions {
    /// Peak-picking threshold: how far above the local median (in local means) a peak must rise.
    pub threshold: f64,
    /// Frames quieter than this (dB) have no onsets.
    pub silence_db: f64,
    /// Added to every onset time, in milliseconds (negative: earlier).
    pub offset_ms: f64,
    /// Analysis window, samples.
    pub buffer: usize,
    /// Hop between windows, samples.
    pub hop: usize,
}

impl Default for OnsetOptions {
    fn default() -> Self {
        Self {
            threshold: 1.1,
            silence_db: -70.0,
            offset_ms: -50.0,
            buffer: 1024,
            hop: 512,
        }
    }
}

/// The mean square of each `buffer`-long window, `hop` apart.
fn energies(samples: &[f32], buffer: usize, hop: usize) -> Vec<f64> {
    let hop = hop.max(1);
    (0..samples.len().div_ceil(hop))
        .map(|i| {
            let start = i * hop;
            let window = &samples[start..(start + buffer.max(1)).min(samples.len())];
            let sum: f64 = window.iter().map(|&s| f64::from(s) * f64::from(s)).sum();
            sum / buffer.max(1) as f64
        })
        .collect()
}

/// Onset times in seconds (offset applied, never below 0).
pub fn onsets(samples: &[f32], rate: f64, options: &OnsetOptions) -> Vec<f64> {
    let e = energies(samples, options.buffer, options.hop);
    // The energy onset function: how much each window's energy rose.
    let d: Vec<f64> = e
        .iter()
        .enumerate()
        .map(|(i, v)| (v - i.checked_sub(1).map_or(0.0, |p| e[p])).max(0.0))
        .collect();
    let (pre, post) = (5usize, 1usize);
    let hop_s = options.hop.max(1) as f64 / rate;
    let min_gap = 0.05;
    let mut out: Vec<f64> = Vec::new();
    for i in 0..d.len() {
        let window = &d[i.saturating_sub(pre)..(i + post + 1).min(d.len())];
        let mut sorted = window.to_vec();
        sorted.sort_by(f64::total_cmp);
        let median = sorted[sorted.len() / 2];
        let mean = window.iter().sum::<f64>() / window.len() as f64;
        let above = d[i] - (median + options.threshold * mean);
        let peak = d[i] > 0.0
            && i.checked_sub(1).is_none_or(|p| d[i] >= d[p])
            && d.get(i + 1).is_none_or(|n| d[i] > *n);
        let loud = 10.0 * e[i].max(1e-20).log10() > options.silence_db;
        // A window holds the onset somewhere in it: its middle is the best guess.
        let t = i as f64 * hop_s + options.buffer as f64 / 2.0 / rate;
        if above > 0.0 && peak && loud && out.last().is_none_or(|last| t - last >= min_gap) {
            out.push(t);
        }
    }
    out.into_iter()
        .map(|t| (t + options.offset_ms / 1000.0).max(0.0))
        .collect()
}

/// RMS amplitude per hop: (milliseconds, amplitude).
pub fn amplitude(samples: &[f32], rate: f64, hop: usize) -> Vec<(f64, f64)> {
    energies(samples, hop, hop)
        .into_iter()
        .enumerate()
        .map(|(i, e)| (i as f64 * hop as f64 / rate * 1000.0, e.sqrt()))
        .collect()
}

/// YIN pitch per hop: (milliseconds, Hz), 0 where no pitch is found (silence, noise).
pub fn pitch(samples: &[f32], rate: f64, buffer: usize, hop: usize) -> Vec<(f64, f64)> {
    let half = buffer / 2;
    let mut out = Vec::new();
    let mut start = 0;
    while start + buffer <= samples.len() && half > 2 {
        let frame = &samples[start..start + buffer];
        out.push((start as f64 / rate * 1000.0, yin(frame, half, rate)));
        start += hop.max(1);
    }
    out
}

/// One frame's YIN estimate (tolerance 0.15).
fn yin(frame: &[f32], half: usize, rate: f64) -> f64 {
    let mut diff = vec![0.0f64; half];
    for (tau, slot) in diff.iter_mut().enumerate().skip(1) {
        *slot = (0..half)
            .map(|j| f64::from(frame[j]) - f64::from(frame[j + tau]))
            .map(|x| x * x)
            .sum();
    }
    let mut running = 0.0;
    let mut cmnd = vec![1.0f64; half];
    for tau in 1..half {
        running += diff[tau];
        cmnd[tau] = if running > 0.0 {
            diff[tau] * tau as f64 / running
        } else {
            1.0
        };
    }
    let Some(mut tau) = (2..half).find(|&t| cmnd[t] < 0.15) else {
        return 0.0;
    };
    while tau + 1 < half && cmnd[tau + 1] < cmnd[tau] {
        tau += 1;
    }
    // Parabolic interpolation around the minimum.
    let (a, b, c) = (
        cmnd[tau - 1],
        cmnd[tau],
        cmnd.get(tau + 1).copied().unwrap_or(cmnd[tau]),
    );
    let denom = a - 2.0 * b + c;
    let shift = if denom.abs() > 1e-12 {
        0.5 * (a - c) / denom
    } else {
        0.0
    };
    rate / (tau as f64 + shift)
}

/// The lowest and highest sample in each of `columns` slices, for drawing.
pub fn waveform(samples: &[f32], columns: usize) -> Vec<(f32, f32)> {
    if samples.is_empty() || columns == 0 {
        return Vec::new();
    }
    (0..columns)
        .map(|c| {
            let a = c * samples.len() / columns;
            let b = ((c + 1) * samples.len() / columns)
                .max(a + 1)
                .min(samples.len());
            samples[a..b]
                .iter()
                .fold((f32::MAX, f32::MIN), |(lo, hi), s| (lo.min(*s), hi.max(*s)))
        })
        .collect()
}

/// A time series from CSV text: `timestamp,value` per line (a header line is skipped).
pub fn parse_csv(text: &str) -> Result<Vec<(f64, f64)>, String> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let mut parts = line.split([',', ';', '\t']).map(str::trim);
        let (Some(x), Some(y)) = (parts.next(), parts.next()) else {
            return Err(format!("line {}: expected timestamp,value", n + 1));
        };
        match (x.parse::<f64>(), y.parse::<f64>()) {
            (Ok(x), Ok(y)) => out.push((x, y)),
            _ if n == 0 => {}
            _ => return Err(format!("line {}: \"{line}\" is not two numbers", n + 1)),
        }
    }
    if out.is_empty() {
        return Err("no timestamp,value lines found".into());
    }
    Ok(out)
}

/// Little-endian f32 samples from bytes (a trailing partial sample is dropped).
pub fn samples_from_le_bytes(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

/// Everything the audio panel shows of a file.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AudioAnalysis {
    /// Length in seconds.
    pub duration: f64,
    /// Onset times, seconds.
    pub onsets: Vec<f64>,
    /// RMS amplitude: (milliseconds, amplitude).
    pub amplitude: Vec<(f64, f64)>,
    /// Pitch: (milliseconds, Hz; 0 when none).
    pub pitch: Vec<(f64, f64)>,
    /// Lowest and highest sample of each drawing column.
    pub waveform: Vec<(f32, f32)>,
}

/// Analyses mono `samples` at `rate`: onsets with `options`, amplitude and pitch every hop, and
/// a waveform of `columns` columns. Long series are thinned to at most 2000 points.
pub fn analyse(
    samples: &[f32],
    rate: f64,
    options: &OnsetOptions,
    columns: usize,
) -> AudioAnalysis {
    let thin = |v: Vec<(f64, f64)>| {
        let step = v.len().div_ceil(2000).max(1);
        v.into_iter().step_by(step).collect()
    };
    AudioAnalysis {
        duration: samples.len() as f64 / rate,
        onsets: onsets(samples, rate, options),
        amplitude: thin(amplitude(samples, rate, options.hop)),
        pitch: thin(pitch(samples, rate, 2048, options.hop)),
        waveform: waveform(samples, columns),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RATE: f64 = 16_000.0;

    /// Silence with short noise bursts (clicks) at `times` seconds.
    fn clicks(times: &[f64], seconds: f64) -> Vec<f32> {
        let mut s = vec![0.0f32; (seconds * RATE) as usize];
        let mut x = 12345u32;
        for t in times {
            let start = (t * RATE) as usize;
            for v in s.iter_mut().skip(start).take(400) {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                *v = ((x >> 16) as f32 / 32768.0 - 1.0) * 0.8;
            }
        }
        s
    }

    #[test]
    fn clicks_are_onsets() {
        let times = [0.5, 1.25, 2.0, 2.6];
        let found = onsets(
            &clicks(&times, 3.0),
            RATE,
            &OnsetOptions {
                offset_ms: 0.0,
                ..OnsetOptions::default()
            },
        );
        assert_eq!(found.len(), times.len(), "{found:?}");
        for (f, t) in found.iter().zip(times) {
            assert!((f - t).abs() < 0.04, "{f} vs {t}");
        }
        let early = onsets(&clicks(&times, 3.0), RATE, &OnsetOptions::default());
        assert!(
            (early[0] - 0.45).abs() < 0.04,
            "offset −50 ms: {}",
            early[0]
        );
        let silent = onsets(&vec![0.0; 16_000], RATE, &OnsetOptions::default());
        assert!(silent.is_empty());
    }

    #[test]
    fn a_sine_has_its_pitch_and_amplitude() {
        let s: Vec<f32> = (0..16_000)
            .map(|i| (0.5 * (std::f64::consts::TAU * 440.0 * i as f64 / RATE).sin()) as f32)
            .collect();
        let p = pitch(&s, RATE, 1024, 512);
        assert!(!p.is_empty());
        for (_, hz) in &p {
            assert!((hz - 440.0).abs() < 2.0, "{hz}");
        }
        let a = amplitude(&s, RATE, 512);
        assert!((a[5].1 - 0.5 / 2f64.sqrt()).abs() < 0.01, "{:?}", a[5]);
        assert_eq!(a[1].0, 32.0);
        let w = waveform(&s, 10);
        assert_eq!(w.len(), 10);
        assert!(w[0].1 > 0.49 && w[0].0 < -0.49);
    }

    #[test]
    fn csv_series() {
        assert_eq!(
            parse_csv("t,v\n0,1\n500,2.5\n"),
            Ok(vec![(0.0, 1.0), (500.0, 2.5)])
        );
        assert!(parse_csv("0,1\nx,y").is_err());
        assert!(parse_csv("").is_err());
    }
}
