//! Runs the self-test computations of [`keyshift_core::selftest`] on a burn device.

use burn::tensor::module::conv2d;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Device, Tensor, TensorData};
use keyshift_core::selftest::{
    self, CONV_INPUT_SHAPE, CONV_WEIGHT_SHAPE, Check, MATMUL_N, SelfTestReport,
};

use crate::clock::Stopwatch;

/// Why the self-test could not run to the end.
#[derive(Debug, thiserror::Error)]
pub enum SelfTestError {
    /// Reading a result back from the device failed.
    #[error("reading the {what} result back from the device failed: {message}")]
    ReadBack {
        /// Which computation.
        what: &'static str,
        /// The backend's message.
        message: String,
    },
}

/// Runs a matmul and a conv2d on `device` and checks them against f64 references.
///
/// Works on every backend; in the browser it must run on the event loop (it awaits GPU read-back).
pub async fn run(device: &Device) -> Result<SelfTestReport, SelfTestError> {
    Ok(SelfTestReport {
        matmul: run_matmul(device).await?,
        conv2d: run_conv2d(device).await?,
    })
}

async fn run_matmul(device: &Device) -> Result<Check, SelfTestError> {
    let n = MATMUL_N;
    let (a, b) = selftest::matmul_inputs();
    let expected = selftest::matmul_reference(&a, &b, n);
    let start = Stopwatch::start();
    let ta = Tensor::<2>::from_data(TensorData::new(a, [n, n]), device);
    let tb = Tensor::<2>::from_data(TensorData::new(b, [n, n]), device);
    let got = read_back("matmul", ta.matmul(tb)).await?;
    let elapsed_ms = start.elapsed_ms();
    Ok(selftest::check(
        &format!("matmul {n}x{n}"),
        &[n, n],
        &got,
        &expected,
        elapsed_ms,
    ))
}

async fn run_conv2d(device: &Device) -> Result<Check, SelfTestError> {
    let (x, w, bias) = selftest::conv_inputs();
    let expected = selftest::conv2d_reference(&x, &w, &bias);
    let start = Stopwatch::start();
    let tx = Tensor::<4>::from_data(TensorData::new(x, CONV_INPUT_SHAPE), device);
    let tw = Tensor::<4>::from_data(TensorData::new(w, CONV_WEIGHT_SHAPE), device);
    let len = bias.len();
    let tb = Tensor::<1>::from_data(TensorData::new(bias, [len]), device);
    let options = ConvOptions::new([1, 1], [1, 1], [1, 1], 1);
    let got = read_back("conv2d", conv2d(tx, tw, Some(tb), options)).await?;
    let elapsed_ms = start.elapsed_ms();
    let [b, _, h, wd] = CONV_INPUT_SHAPE;
    let name = format!(
        "conv2d {}x{}x{h}x{wd} * {}x{}x3x3",
        b, CONV_INPUT_SHAPE[1], CONV_WEIGHT_SHAPE[0], CONV_WEIGHT_SHAPE[1]
    );
    Ok(selftest::check(
        &name,
        &selftest::conv_output_shape(),
        &got,
        &expected,
        elapsed_ms,
    ))
}

async fn read_back<const D: usize>(
    what: &'static str,
    tensor: Tensor<D>,
) -> Result<Vec<f32>, SelfTestError> {
    let data = tensor
        .into_data_async()
        .await
        .map_err(|e| SelfTestError::ReadBack {
            what,
            message: format!("{e:?}"),
        })?;
    data.try_to_vec::<f32>()
        .map_err(|e| SelfTestError::ReadBack {
            what,
            message: format!("{e:?}"),
        })
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;

    #[test]
    fn self_test_passes_on_the_cpu_backend() {
        let report = pollster::block_on(run(&Device::flex())).expect("runs");
        assert!(report.passed(), "{report:#?}");
        assert_eq!(report.matmul.shape, vec![MATMUL_N, MATMUL_N]);
        assert_eq!(report.conv2d.shape, vec![1, 4, 16, 16]);
        // The sums are the f64 references of these fixed inputs; they pin the inputs too.
        assert!((report.matmul.sum - report.matmul.expected_sum).abs() < 1e-2);
        assert!((report.conv2d.sum - report.conv2d.expected_sum).abs() < 1e-2);
    }
}
