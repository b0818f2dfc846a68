//! The Parseq audio reference as plain types: the file being analysed, its analysis from the
//! worker (waveform, onsets, amplitude, pitch), and what the user turns it into: keyframes at
//! the onsets, or time series (amplitude, pitch, CSV) that formulas read. Tested natively.

use keyshift_core::audio::{AudioAnalysis, OnsetOptions, parse_csv};
use keyshift_web::protocol::{FromWorker, ToWorker};
use serde_json::{Value as Json, json};

use crate::parseq::ParseqEditor;

/// The audio panel's state.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AudioView {
    /// The file's name.
    pub name: String,
    /// The analysis asked for last.
    pub pending: Option<u64>,
    /// Its result.
    pub analysis: Option<AudioAnalysis>,
    /// What went wrong.
    pub error: Option<String>,
    next_id: u64,
}

/// Columns of the drawn waveform (the graph's width).
pub const WAVEFORM_COLUMNS: usize = 720;

impl AudioView {
    /// Asks the worker to analyse `name`'s samples (attached to the message as a Blob).
    pub fn analyse(&mut self, name: &str, rate: f64, options: OnsetOptions) -> ToWorker {
        self.next_id += 1;
        self.name = name.to_owned();
        self.pending = Some(self.next_id);
        self.error = None;
        ToWorker::AnalyseAudio {
            id: self.next_id,
            rate,
            options,
            columns: WAVEFORM_COLUMNS,
        }
    }

    /// Folds in the worker's reply (a stale one is ignored).
    pub fn apply(&mut self, message: &FromWorker) {
        let FromWorker::AudioAnalysed { id, result } = message else {
            return;
        };
        if self.pending != Some(*id) {
            return;
        }
        self.pending = None;
        match result {
            Ok(a) => self.analysis = Some((**a).clone()),
            Err(e) => self.error = Some(format!("{}: {e}", self.name)),
        }
    }

    /// A line about the analysis: length, onsets.
    pub fn summary(&self) -> String {
        match (&self.analysis, self.pending) {
            (_, Some(_)) => format!("Analysing {}…", self.name),
            (Some(a), None) => format!(
                "{}: {:.1} s, {} onsets",
                self.name,
                a.duration,
                a.onsets.len()
            ),
            (None, None) => String::new(),
        }
    }
}

/// Which series of the analysis becomes a time series.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Series {
    /// RMS amplitude.
    Amplitude,
    /// Pitch in Hz.
    Pitch,
}

impl ParseqEditor {
    /// Adds (or replaces) the time series `alias`, with points in milliseconds
    /// (`timestampType` 1) or frames (0).
    pub fn set_time_series(
        &mut self,
        alias: &str,
        points: &[(f64, f64)],
        in_ms: bool,
    ) -> Result<(), String> {
        if alias.trim().is_empty() || !alias.chars().all(|c| c.is_alphanumeric() || c == '_') {
            return Err(format!(
                "\"{alias}\" cannot name a time series (letters, digits, _)"
            ));
        }
        let data: Vec<Json> = points
            .iter()
            .map(|(x, y)| json!({"x": x, "y": y}))
            .collect();
        let entry = json!({"alias": alias, "ts": {"data": data, "timestampType": if in_ms { 1 } else { 0 }}});
        self.edit_document(|map| {
            let slot = map.entry("timeSeries").or_insert_with(|| json!([]));
            if !slot.is_array() {
                *slot = json!([]);
            }
            if let Some(list) = slot.as_array_mut() {
                list.retain(|t| t.get("alias").and_then(Json::as_str) != Some(alias));
                list.push(entry);
            }
        })
    }

    /// The aliases of the document's time series.
    pub fn time_series_aliases(&self) -> Vec<String> {
        self.document()
            .json()
            .get("timeSeries")
            .and_then(Json::as_array)
            .map(|l| {
                l.iter()
                    .filter_map(|t| t.get("alias").and_then(Json::as_str).map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// The points of `series` of `analysis` (milliseconds).
pub fn series_points(analysis: &AudioAnalysis, series: Series) -> Vec<(f64, f64)> {
    match series {
        Series::Amplitude => analysis.amplitude.clone(),
        Series::Pitch => analysis.pitch.clone(),
    }
}

/// A CSV time series (timestamps in milliseconds when `in_ms`, else frames) into the document.
pub fn import_csv(
    editor: &mut ParseqEditor,
    alias: &str,
    text: &str,
    in_ms: bool,
) -> Result<usize, String> {
    let points = parse_csv(text)?;
    editor.set_time_series(alias, &points, in_ms)?;
    Ok(points.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_fold_in_and_stale_ones_are_ignored() {
        let mut v = AudioView::default();
        let ToWorker::AnalyseAudio { id, .. } =
            v.analyse("beat.wav", 44_100.0, OnsetOptions::default())
        else {
            panic!("asks the worker");
        };
        assert_eq!(v.summary(), "Analysing beat.wav…");
        let analysis = AudioAnalysis {
            duration: 2.0,
            onsets: vec![0.5, 1.0],
            ..AudioAnalysis::default()
        };
        v.apply(&FromWorker::AudioAnalysed {
            id: id + 7,
            result: Ok(Box::new(analysis.clone())),
        });
        assert_eq!(v.analysis, None);
        v.apply(&FromWorker::AudioAnalysed {
            id,
            result: Ok(Box::new(analysis)),
        });
        assert_eq!(v.summary(), "beat.wav: 2.0 s, 2 onsets");
        v.analyse("bad.wav", 44_100.0, OnsetOptions::default());
        v.apply(&FromWorker::AudioAnalysed {
            id: id + 1,
            result: Err("no samples".into()),
        });
        assert_eq!(v.error.as_deref(), Some("bad.wav: no samples"));
    }

    #[test]
    fn time_series_reach_formulas() {
        let mut e = crate::parseq::tests::catduck();
        assert_eq!(
            e.set_time_series("amp", &[(0.0, 0.0), (1000.0, 2.0), (6000.0, 2.0)], true),
            Ok(())
        );
        assert_eq!(e.time_series_aliases(), ["amp"]);
        assert_eq!(e.set_formula(0, "zoom", "1 + amp(f, 1)"), Ok(()));
        // 20 fps: frame 20 is 1000 ms.
        let v = e.value_at("zoom", 20).unwrap_or_default();
        assert!((v - 3.0).abs() < 1e-9, "{v}");
        assert!(e.set_time_series("a b", &[], true).is_err());
        assert_eq!(
            import_csv(&mut e, "csv", "frame,value\n0,1\n10,5\n", false),
            Ok(2)
        );
        assert_eq!(e.time_series_aliases(), ["amp", "csv"]);
    }
}
