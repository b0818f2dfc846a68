//! Messages between the UI thread and the compute worker. They travel as JSON text through
//! `postMessage`, so both sides agree on one serde schema that is tested natively.

use keyshift_core::selftest::SelfTestReport;
use serde::{Deserialize, Serialize};

/// UI thread → worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ToWorker {
    /// Run the GPU self-test again.
    RunSelfTest,
}

/// Where in its life the worker failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Loading the worker's script and module.
    Load,
    /// Acquiring the WebGPU device.
    Device,
    /// Running the self-test.
    SelfTest,
    /// Reading a message from the UI thread.
    Message,
}

/// Worker → UI thread.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum FromWorker {
    /// The worker's module is loaded and it is acquiring a device.
    Started,
    /// The burn wgpu device is ready.
    DeviceReady {
        /// Time to acquire the device, in milliseconds.
        init_ms: f64,
    },
    /// A self-test finished.
    SelfTest {
        /// The computed checks.
        report: SelfTestReport,
    },
    /// Something failed; the worker stays alive and answers later messages where it can.
    Failed {
        /// Where it failed.
        stage: Stage,
        /// What the engine or browser said.
        message: String,
    },
}

/// A message that could not be read.
#[derive(Debug, thiserror::Error)]
#[error("unreadable worker message: {0}")]
pub struct ProtocolError(String);

impl ToWorker {
    /// The JSON text sent through `postMessage`.
    pub fn to_json(&self) -> String {
        // Serialising these enums cannot fail (no maps with non-string keys, no custom impls).
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Reads a message sent by [`ToWorker::to_json`].
    pub fn from_json(text: &str) -> Result<Self, ProtocolError> {
        serde_json::from_str(text).map_err(|e| ProtocolError(e.to_string()))
    }
}

impl FromWorker {
    /// The JSON text sent through `postMessage`.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Reads a message sent by [`FromWorker::to_json`].
    pub fn from_json(text: &str) -> Result<Self, ProtocolError> {
        serde_json::from_str(text).map_err(|e| ProtocolError(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keyshift_core::selftest::Check;

    fn check(name: &str) -> Check {
        Check {
            name: name.to_owned(),
            shape: vec![2, 2],
            sum: 1.5,
            expected_sum: 1.5,
            max_abs_error: 0.0,
            passed: true,
            elapsed_ms: 3.25,
        }
    }

    #[test]
    fn every_message_round_trips_through_json() {
        let messages = vec![
            FromWorker::Started,
            FromWorker::DeviceReady { init_ms: 12.5 },
            FromWorker::SelfTest {
                report: SelfTestReport {
                    matmul: check("matmul"),
                    conv2d: check("conv2d"),
                },
            },
            FromWorker::Failed {
                stage: Stage::Device,
                message: "no adapter".to_owned(),
            },
        ];
        for m in messages {
            assert_eq!(FromWorker::from_json(&m.to_json()).expect("reads"), m);
        }
        let run = ToWorker::RunSelfTest;
        assert_eq!(ToWorker::from_json(&run.to_json()).expect("reads"), run);
    }

    #[test]
    fn the_wire_format_is_stable() {
        assert_eq!(
            ToWorker::RunSelfTest.to_json(),
            r#"{"type":"run_self_test"}"#
        );
        assert_eq!(
            FromWorker::Failed {
                stage: Stage::SelfTest,
                message: "x".into()
            }
            .to_json(),
            r#"{"type":"failed","stage":"self_test","message":"x"}"#
        );
    }

    #[test]
    fn garbage_is_a_typed_error() {
        assert!(FromWorker::from_json("{\"type\":\"nope\"}").is_err());
        assert!(ToWorker::from_json("").is_err());
    }
}
