//! Goldens from `fixtures/tiny-sd1` (diffusers 0.42.1, float32), textbook replays of the update
//! formulas on scalars, and an exact-denoiser oracle for every sampler.

use serde_json::Value;

use super::*;

const GOLDEN_JSON: &str = include_str!("../../../../fixtures/tiny-sd1/golden.json");
const GOLDEN_TENSORS: &[u8] = include_bytes!("../../../../fixtures/tiny-sd1/golden.safetensors");
const FIXTURE_CONFIG: &str =
    include_str!("../../../../fixtures/tiny-sd1/diffusers/scheduler/scheduler_config.json");

/// Relative tolerance for values diffusers computed in float32.
const F32_REL: f64 = 1e-6;

fn golden() -> Value {
    serde_json::from_str(GOLDEN_JSON).unwrap()
}

/// `schedulers.steps[steps][key]`.
fn golden_sched(steps: usize, key: &str) -> Value {
    golden()["schedulers"]["steps"][steps.to_string()][key].clone()
}

fn floats(value: &Value) -> Vec<f64> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect()
}

/// A float32 tensor of `golden.safetensors` (8-byte little-endian header length, JSON header,
/// raw little-endian data).
fn golden_tensor(name: &str) -> Vec<f64> {
    let header_len = u64::from_le_bytes(GOLDEN_TENSORS[..8].try_into().unwrap()) as usize;
    let header: Value = serde_json::from_slice(&GOLDEN_TENSORS[8..8 + header_len]).unwrap();
    let entry = &header[name];
    assert_eq!(entry["dtype"], "F32", "{name}");
    let offsets = floats(&entry["data_offsets"]);
    let data = &GOLDEN_TENSORS[8 + header_len..];
    data[offsets[0] as usize..offsets[1] as usize]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()) as f64)
        .collect()
}

fn assert_close(name: &str, got: &[f64], want: &[f64], rel: f64) {
    assert_eq!(
        got.len(),
        want.len(),
        "{name}: length\n got {got:?}\nwant {want:?}"
    );
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let ok = (g - w).abs() <= rel * w.abs().max(1e-300) || g == w;
        assert!(
            ok,
            "{name}[{i}]: got {g}, want {w} (rel {:e})",
            (g - w).abs() / w.abs()
        );
    }
}

/// Each value, rounded to f32, equals the golden f32 exactly.
fn assert_f32_exact(name: &str, got: &[f64], want: &[f64]) {
    let got32: Vec<f32> = got.iter().map(|&v| v as f32).collect();
    let want32: Vec<f32> = want.iter().map(|&v| v as f32).collect();
    assert_eq!(got32, want32, "{name}");
}

fn sd15() -> NoiseSchedule {
    NoiseSchedule::new(ScheduleConfig::sd15()).unwrap()
}

fn plan(sampler: Sampler, steps: usize) -> StepPlan {
    StepPlan::txt2img(&sd15(), sampler, steps).unwrap()
}

const EULER: Sampler = Sampler::Euler { karras: false };
const DDIM: Sampler = Sampler::Ddim { eta: 0.0 };
const DPM: Sampler = Sampler::DpmPp2m { karras: false };

fn k(method: KMethod, karras: bool) -> Sampler {
    Sampler::KDiffusion { method, karras }
}

fn with_spacing(spacing: TimestepSpacing) -> NoiseSchedule {
    let config = ScheduleConfig {
        timestep_spacing: Some(spacing),
        ..ScheduleConfig::sd15()
    };
    NoiseSchedule::new(config).unwrap()
}

// ---------------------------------------------------------------------------------------------
// Tables

#[test]
fn betas_and_alphas_cumprod_match_diffusers_float32() {
    let schedule = sd15();
    assert_close(
        "betas",
        schedule.betas(),
        &golden_tensor("sched.betas"),
        F32_REL,
    );
    let want = golden_tensor("sched.alphas_cumprod");
    assert_close("alphas_cumprod", schedule.alphas_cumprod(), &want, F32_REL);
    let want_sigmas: Vec<f64> = want.iter().map(|&a| sigma_of(a)).collect();
    assert_close("sigmas", schedule.sigmas(), &want_sigmas, F32_REL);
}

#[test]
fn final_alpha_cumprod_is_alpha_cumprod_0_without_set_alpha_to_one() {
    let want = golden_sched(20, "ddim_leading")["final_alpha_cumprod"]
        .as_f64()
        .unwrap();
    assert_eq!(sd15().final_alpha_cumprod() as f32, want as f32);
    let one = ScheduleConfig {
        set_alpha_to_one: true,
        ..ScheduleConfig::sd15()
    };
    assert_eq!(NoiseSchedule::new(one).unwrap().final_alpha_cumprod(), 1.0);
}

#[test]
fn model_sigma_range_matches_k_diffusion() {
    let schedule = sd15();
    for steps in [20, 4] {
        let golden = golden_sched(steps, "kdiffusion_default");
        let min = golden["model_sigma_min"].as_f64().unwrap();
        let max = golden["model_sigma_max"].as_f64().unwrap();
        assert_close("sigma_min", &[schedule.model_sigma_min()], &[min], F32_REL);
        assert_close("sigma_max", &[schedule.model_sigma_max()], &[max], F32_REL);
    }
}

#[test]
fn checkpoint_alphas_cumprod_give_the_same_schedule() {
    let buffer = golden_tensor("sched.alphas_cumprod");
    let given = NoiseSchedule::from_alphas_cumprod(ScheduleConfig::sd15(), buffer).unwrap();
    // β derived from f32 ᾱ: 1 − ᾱ₀ cancels to ~1 f32 ulp of 1 over β₀ = 0.00085 (7e-5).
    assert_close("betas", given.betas(), &golden_tensor("sched.betas"), 1e-4);
    let (a, b) = (
        StepPlan::txt2img(&given, EULER, 20).unwrap(),
        plan(EULER, 20),
    );
    assert_close("sigmas", &a.sigmas(), &b.sigmas(), F32_REL);
}

#[test]
fn sigma_to_t_inverts_both_interpolations_at_integer_timesteps() {
    let schedule = sd15();
    for t in [0.0, 1.0, 51.0, 500.0, 998.0, 999.0] {
        assert!(
            (schedule.sigma_to_t(schedule.sigma_linear(t)) - t).abs() < 1e-9,
            "{t}"
        );
        assert!(
            (schedule.sigma_to_t(schedule.sigma_log_linear(t)) - t).abs() < 1e-9,
            "{t}"
        );
    }
    assert_eq!(schedule.sigma_to_t(1e6), 999.0);
    assert_eq!(schedule.sigma_to_t(0.0), 0.0);
}

// ---------------------------------------------------------------------------------------------
// Timesteps and sigmas against diffusers / k-diffusion

#[test]
fn ddim_leading_timesteps() {
    for steps in [20, 4] {
        let want = floats(&golden_sched(steps, "ddim_leading")["timesteps"]);
        assert_eq!(plan(DDIM, steps).timesteps(), want, "{steps} steps");
    }
}

#[test]
fn euler_timesteps_sigmas_and_init_noise_sigma_per_spacing() {
    let cases = [
        ("euler_linspace", TimestepSpacing::Linspace),
        ("euler_leading", TimestepSpacing::Leading),
        ("euler_trailing", TimestepSpacing::Trailing),
    ];
    for steps in [20, 4] {
        for (key, spacing) in cases {
            let golden = golden_sched(steps, key);
            let got = StepPlan::txt2img(&with_spacing(spacing), EULER, steps).unwrap();
            let name = format!("{key} {steps}");
            assert_f32_exact(&name, &got.timesteps(), &floats(&golden["timesteps"]));
            assert_close(&name, &got.sigmas(), &floats(&golden["sigmas"]), F32_REL);
            let init = golden["init_noise_sigma"].as_f64().unwrap();
            assert_close(&name, &[got.init_noise_sigma], &[init], F32_REL);
        }
    }
}

#[test]
fn euler_linspace_is_the_sd15_default() {
    let golden = golden_sched(20, "euler_linspace");
    assert_f32_exact(
        "euler",
        &plan(EULER, 20).timesteps(),
        &floats(&golden["timesteps"]),
    );
}

#[test]
fn euler_karras_timesteps_and_sigmas() {
    for steps in [20, 4] {
        let golden = golden_sched(steps, "euler_karras");
        let got = plan(Sampler::Euler { karras: true }, steps);
        let name = format!("euler_karras {steps}");
        assert_close(&name, &got.sigmas(), &floats(&golden["sigmas"]), F32_REL);
        assert_close(
            &name,
            &got.timesteps(),
            &floats(&golden["timesteps"]),
            F32_REL,
        );
        assert_close(&name, &[got.init_noise_sigma], &[got.sigmas()[0]], 0.0);
    }
}

#[test]
fn euler_ancestral_sigma_up_and_down() {
    for steps in [20, 4] {
        let golden = golden_sched(steps, "euler_ancestral_linspace");
        let got = plan(Sampler::EulerAncestral, steps);
        let name = format!("euler_ancestral {steps}");
        assert_f32_exact(&name, &got.timesteps(), &floats(&golden["timesteps"]));
        assert_close(&name, &got.sigmas(), &floats(&golden["sigmas"]), F32_REL);
        let up: Vec<f64> = got.steps.iter().map(|s| s.update.noise).collect();
        let down: Vec<f64> = got.steps.iter().map(|s| s.update.x * s.sigma).collect();
        assert_close(&name, &up, &floats(&golden["sigma_up"]), F32_REL);
        assert_close(&name, &down, &floats(&golden["sigma_down"]), F32_REL);
        assert!(
            got.steps.iter().all(|s| s.draws_noise),
            "diffusers draws noise every step"
        );
    }
}

#[test]
fn dpmpp_2m_linspace_timesteps_and_sigmas() {
    for steps in [20, 4] {
        let golden = golden_sched(steps, "dpmpp_2m_linspace");
        let got = plan(DPM, steps);
        let name = format!("dpmpp_2m {steps}");
        assert_eq!(got.timesteps(), floats(&golden["timesteps"]), "{name}");
        assert_close(&name, &got.sigmas(), &floats(&golden["sigmas"]), F32_REL);
        assert_eq!(got.init_noise_sigma, 1.0);
    }
}

#[test]
fn k_diffusion_default_and_karras_sigmas() {
    for steps in [20, 4] {
        for (key, karras) in [("kdiffusion_default", false), ("kdiffusion_karras", true)] {
            let want = floats(&golden_sched(steps, key)["sigmas"]);
            let got = plan(k(KMethod::Euler, karras), steps);
            assert_close(&format!("{key} {steps}"), &got.sigmas(), &want, F32_REL);
            assert_eq!(got.init_noise_sigma, got.sigmas()[0]);
        }
    }
}

#[test]
fn k_diffusion_timesteps_are_sigma_to_t() {
    let got = plan(k(KMethod::DpmPp2m, false), 20);
    let want = super::table::linspace(999.0, 0.0, 20);
    assert_close("k timesteps", &got.timesteps(), &want, 1e-9);
}

#[test]
fn timestep_spacings_round_like_numpy() {
    let trailing = with_spacing(TimestepSpacing::Trailing);
    // 1000 − 3·62.5 = 812.5 rounds to even (812), then − 1.
    let sixteen = StepPlan::txt2img(&trailing, DDIM, 16).unwrap().timesteps();
    assert_eq!(sixteen[3], 811.0);
    let linspace = with_spacing(TimestepSpacing::Linspace);
    assert_eq!(
        StepPlan::txt2img(&linspace, DDIM, 3).unwrap().timesteps(),
        [999.0, 500.0, 0.0]
    );
    assert_eq!(
        StepPlan::txt2img(&trailing, DDIM, 61).unwrap().steps.len(),
        61
    );
}

#[test]
fn dpm_solver_leading_and_karras_timesteps() {
    let leading = with_spacing(TimestepSpacing::Leading);
    let got = StepPlan::txt2img(&leading, DPM, 4).unwrap().timesteps();
    assert_eq!(got, [801.0, 601.0, 401.0, 201.0]);
    let karras = plan(Sampler::DpmPp2m { karras: true }, 4);
    assert!(karras.timesteps().iter().all(|t| t.fract() == 0.0));
    assert_close(
        "karras",
        &karras.sigmas(),
        &floats(&golden_sched(4, "kdiffusion_karras")["sigmas"]),
        F32_REL,
    );
}

#[test]
fn lcm_timesteps_skip_through_the_distillation_schedule() {
    let lcm = |steps, strength| StepPlan::new(&sd15(), Sampler::Lcm, steps, strength).unwrap();
    assert_eq!(lcm(4, 1.0).timesteps(), [999.0, 759.0, 499.0, 259.0]);
    assert_eq!(lcm(1, 1.0).timesteps(), [999.0]);
    let eight = [999.0, 879.0, 759.0, 639.0, 499.0, 379.0, 259.0, 139.0];
    assert_eq!(lcm(8, 1.0).timesteps(), eight);
    assert_eq!(lcm(4, 0.5).timesteps(), [499.0, 379.0, 259.0, 139.0]);
    let four = lcm(4, 1.0);
    assert!(
        four.steps[..3]
            .iter()
            .all(|s| s.draws_noise && s.update.noise > 0.0)
    );
    assert_eq!(
        four.steps[3].update,
        Update {
            denoised: 1.0,
            ..Update::default()
        }
    );
    assert_eq!((four.init_noise_sigma, four.steps[0].c_in), (1.0, 1.0));
}

#[test]
fn sd_turbo_single_step_runs_at_999_and_returns_the_denoised_latent() {
    let schedule = NoiseSchedule::new(ScheduleConfig::sd_turbo()).unwrap();
    let sigma_max = schedule.model_sigma_max();
    for sampler in [
        EULER,
        Sampler::EulerAncestral,
        k(KMethod::EulerAncestral, false),
    ] {
        let one = StepPlan::txt2img(&schedule, sampler, 1).unwrap();
        let step = one.steps[0];
        assert_eq!(step.timestep, 999.0, "{sampler:?}");
        assert_close(
            "sigma",
            &[step.sigma, one.init_noise_sigma],
            &[sigma_max; 2],
            1e-12,
        );
        assert_close(
            "c_in",
            &[step.c_in],
            &[1.0 / (sigma_max * sigma_max + 1.0).sqrt()],
            1e-12,
        );
        assert_eq!(
            (step.update.x, step.update.denoised, step.update.noise),
            (0.0, 1.0, 0.0)
        );
    }
    assert!(!needs_uncond(0.0));
}

// ---------------------------------------------------------------------------------------------
// img2img strength

#[test]
fn strength_truncates_the_diffusers_way() {
    let ddim = StepPlan::new(&sd15(), DDIM, 20, 0.75).unwrap();
    assert_eq!((ddim.start_index, ddim.steps.len()), (5, 15));
    assert_eq!(ddim.timesteps()[0], 701.0);
    let acp = sd15().alphas_cumprod()[701];
    let want = NoiseMix {
        signal: acp.sqrt(),
        noise: (1.0 - acp).sqrt(),
    };
    assert_eq!(ddim.img2img_noise, want);
    let euler = StepPlan::new(&sd15(), EULER, 4, 0.5).unwrap();
    assert_eq!(euler.timesteps(), [333.0, 0.0]);
    let sigma = floats(&golden_sched(4, "euler_linspace")["sigmas"])[2];
    assert_close(
        "euler noise",
        &[euler.img2img_noise.noise],
        &[sigma],
        F32_REL,
    );
    assert_eq!(euler.img2img_noise.signal, 1.0);
}

#[test]
fn strength_follows_a1111_for_k_diffusion() {
    let got = StepPlan::new(&sd15(), k(KMethod::Euler, false), 20, 0.75).unwrap();
    assert_eq!((got.start_index, got.steps.len()), (4, 16));
    let full = StepPlan::new(&sd15(), k(KMethod::Euler, false), 20, 1.0).unwrap();
    assert_eq!(full.start_index, 0);
    assert_eq!(got.img2img_noise.noise, full.sigmas()[4]);
}

#[test]
fn dpm_solver_runs_first_order_on_the_first_step_that_runs() {
    for sampler in [DPM, k(KMethod::DpmPp2m, false)] {
        let got = StepPlan::new(&sd15(), sampler, 20, 0.6).unwrap();
        assert_eq!(got.steps[0].update.prev_denoised, 0.0, "{sampler:?}");
        assert!(got.steps[1].update.prev_denoised < 0.0, "{sampler:?}");
        assert_eq!(
            got.steps.last().unwrap().update.prev_denoised,
            0.0,
            "{sampler:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Textbook replays on scalars

/// A made-up model whose output depends on its input and timestep.
fn toy_model(unet_input: f64, timestep: f64) -> f64 {
    0.3 + 0.1 * unet_input - 0.2 * timestep / 1000.0
}

#[test]
fn euler_replays_the_diffusers_step() {
    let plan = plan(EULER, 20);
    let (mut x, mut textbook) = (0.7 * plan.init_noise_sigma, 0.7 * plan.init_noise_sigma);
    for step in &plan.steps {
        x = step
            .apply(x, toy_model(x * step.c_in, step.timestep), 0.0, 0.0)
            .0;
        // diffusers EulerDiscreteScheduler.step: x₀ = x − σ·ε, d = (x − x₀)/σ, x += d·(σ' − σ).
        let sigma = step.sigma;
        let eps = toy_model(textbook / (sigma * sigma + 1.0).sqrt(), step.timestep);
        let derivative = (textbook - (textbook - sigma * eps)) / sigma;
        textbook += derivative * (step.sigma_next - sigma);
    }
    assert_close("euler", &[x], &[textbook], 1e-12);
}

#[test]
fn euler_ancestral_replays_the_diffusers_step_with_fixed_noise() {
    let plan = plan(Sampler::EulerAncestral, 4);
    let noise = [0.3, -1.2, 0.8, 2.0];
    let (mut x, mut textbook) = (-0.4 * plan.init_noise_sigma, -0.4 * plan.init_noise_sigma);
    for (step, &z) in plan.steps.iter().zip(&noise) {
        x = step
            .apply(x, toy_model(x * step.c_in, step.timestep), 0.0, z)
            .0;
        let (sigma, next) = (step.sigma, step.sigma_next);
        let eps = toy_model(textbook / (sigma * sigma + 1.0).sqrt(), step.timestep);
        let up = (next * next * (sigma * sigma - next * next) / (sigma * sigma)).sqrt();
        let down = (next * next - up * up).sqrt();
        textbook += eps * (down - sigma) + z * up;
    }
    assert_close("euler a", &[x], &[textbook], 1e-12);
}

/// diffusers `DDIMScheduler.step` (Song et al. eq. 12), transcribed.
fn ddim_textbook(x: f64, m: f64, acp: f64, acp_prev: f64, eta: f64, z: f64, v: bool) -> f64 {
    let (a, b) = (acp.sqrt(), (1.0 - acp).sqrt());
    let (x0, eps) = match v {
        false => ((x - b * m) / a, m),
        true => (a * x - b * m, a * m + b * x),
    };
    let variance = (1.0 - acp_prev) / (1.0 - acp) * (1.0 - acp / acp_prev);
    let std = eta * variance.sqrt();
    acp_prev.sqrt() * x0 + (1.0 - acp_prev - std * std).sqrt() * eps + std * z
}

#[test]
fn ddim_replays_the_diffusers_step() {
    for (config, eta) in [
        (ScheduleConfig::sd15(), 0.0),
        (ScheduleConfig::sd15(), 0.5),
        (ScheduleConfig::sd21_v(), 0.0),
    ] {
        let v = config.prediction == Prediction::V;
        let schedule = NoiseSchedule::new(config).unwrap();
        let plan = StepPlan::txt2img(&schedule, Sampler::Ddim { eta }, 20).unwrap();
        let (mut x, mut textbook) = (1.3, 1.3);
        for (i, step) in plan.steps.iter().enumerate() {
            let z = (i as f64 * 0.7).sin();
            let t = step.timestep as usize;
            let acp = schedule.alphas_cumprod()[t];
            let acp_prev = schedule.alpha_cumprod_at(t as i64 - 50).unwrap();
            x = step.apply(x, toy_model(x, step.timestep), 0.0, z).0;
            let m = toy_model(textbook, step.timestep);
            textbook = ddim_textbook(textbook, m, acp, acp_prev, eta, z, v);
        }
        assert_close(&format!("ddim eta {eta} v {v}"), &[x], &[textbook], 1e-10);
    }
}

/// k-diffusion `sample_dpmpp_2m`, transcribed, with a denoiser that depends on the step.
#[test]
fn k_dpmpp_2m_replays_k_diffusion() {
    let plan = plan(k(KMethod::DpmPp2m, true), 10);
    let sigmas = plan.sigmas();
    let denoiser = |x: f64, i: usize| 0.5 * x / (sigmas[i] * sigmas[i] + 1.0) + 0.1 * i as f64;
    let (mut x, mut textbook) = (plan.init_noise_sigma, plan.init_noise_sigma);
    let (mut prev, mut old) = (0.0, None::<f64>);
    for (i, step) in plan.steps.iter().enumerate() {
        let denoised;
        (x, denoised) = step.apply(x, (x - denoiser(x, i)) / step.sigma, prev, 0.0);
        prev = denoised;
        let d = denoiser(textbook, i);
        let (t, t_next) = (-sigmas[i].ln(), -sigmas[i + 1].ln());
        let h = t_next - t;
        let d_used = match old {
            Some(old) if sigmas[i + 1] > 0.0 => {
                let r = (t - (-sigmas[i - 1].ln())) / h;
                (1.0 + 1.0 / (2.0 * r)) * d - old / (2.0 * r)
            }
            _ => d,
        };
        textbook = sigmas[i + 1] / sigmas[i] * textbook - (-h).exp_m1() * d_used;
        old = Some(d);
    }
    assert_close("dpm++ 2m", &[x], &[textbook], 1e-12);
}

/// diffusers' DPM-Solver++ on α/σ and k-diffusion's on σ are the same solver: on the same
/// Karras sigmas with the same denoiser, x_VP = α·x_VE at every step.
#[test]
fn diffusers_and_k_diffusion_dpmpp_2m_agree() {
    let (vp, ve) = (
        plan(Sampler::DpmPp2m { karras: true }, 12),
        plan(k(KMethod::DpmPp2m, true), 12),
    );
    assert_close("sigmas", &vp.sigmas(), &ve.sigmas(), 1e-12);
    let alpha = |sigma: f64| 1.0 / (sigma * sigma + 1.0).sqrt();
    let (mut x_ve, mut x_vp) = (
        ve.init_noise_sigma,
        ve.init_noise_sigma * alpha(ve.sigmas()[0]),
    );
    let (mut prev_ve, mut prev_vp) = (0.0, 0.0);
    for (i, (a, b)) in ve.steps.iter().zip(&vp.steps).enumerate() {
        let target = 0.2 + 0.05 * i as f64;
        let eps = |x: f64, s: &StepCoefficients| {
            (x * s.c_in - alpha(s.sigma) * target) / (s.sigma * alpha(s.sigma))
        };
        (x_ve, prev_ve) = a.apply(x_ve, eps(x_ve, a), prev_ve, 0.0);
        (x_vp, prev_vp) = b.apply(x_vp, eps(x_vp, b), prev_vp, 0.0);
        assert_close("x", &[x_vp], &[x_ve * alpha(a.sigma_next)], 1e-10);
    }
}

#[test]
fn fused_update_equals_denoise_then_update() {
    for sampler in [
        DDIM,
        EULER,
        Sampler::EulerAncestral,
        DPM,
        Sampler::Lcm,
        k(KMethod::DpmPp2m, false),
    ] {
        for step in plan(sampler, 6).steps {
            let (x, m, prev, z) = (0.8, -0.3, 0.25, 1.1);
            let fused = step.fused();
            let direct =
                fused.x * x + fused.model * m + fused.prev_denoised * prev + fused.noise * z;
            assert_close(
                &format!("{sampler:?}"),
                &[direct],
                &[step.apply(x, m, prev, z).0],
                1e-12,
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Oracle: an exact denoiser for a point mass at x₀ keeps every deterministic sampler on the
// noising path of x₀ and brings every sampler to x₀ (DDIM without `set_alpha_to_one`: to the
// path at ᾱ₀).

const X0: f64 = 0.42;
const EPS0: f64 = -1.3;

/// The UNet input is the DDPM-form latent √ᾱ·x₀ + √(1−ᾱ)·ε for every sampler; the exact model
/// output for it, ε or v.
fn exact_model(step: &StepCoefficients, x: f64, prediction: Prediction) -> f64 {
    let alpha = 1.0 / (step.sigma * step.sigma + 1.0).sqrt();
    let sigma_t = step.sigma * alpha;
    let eps = (x * step.c_in - alpha * X0) / sigma_t;
    match prediction {
        Prediction::Epsilon => eps,
        Prediction::V => alpha * eps - sigma_t * X0,
    }
}

/// x on the path at σ, in the sampler's own form.
fn on_path(sampler: Sampler, sigma: f64) -> f64 {
    let alpha = 1.0 / (sigma * sigma + 1.0).sqrt();
    match sampler {
        Sampler::Ddim { .. } | Sampler::DpmPp2m { .. } | Sampler::Lcm => {
            alpha * (X0 + sigma * EPS0)
        }
        _ => X0 + sigma * EPS0,
    }
}

fn all_samplers() -> Vec<Sampler> {
    let mut samplers = vec![
        DDIM,
        Sampler::Ddim { eta: 1.0 },
        EULER,
        Sampler::Euler { karras: true },
    ];
    samplers.extend([
        Sampler::EulerAncestral,
        DPM,
        Sampler::DpmPp2m { karras: true },
        Sampler::Lcm,
    ]);
    for method in [KMethod::Euler, KMethod::EulerAncestral, KMethod::DpmPp2m] {
        samplers.extend([k(method, false), k(method, true)]);
    }
    samplers
}

fn deterministic(sampler: Sampler) -> bool {
    let ancestral = matches!(sampler, Sampler::EulerAncestral | Sampler::Lcm)
        || sampler == k(KMethod::EulerAncestral, false)
        || sampler == k(KMethod::EulerAncestral, true);
    !ancestral && sampler != (Sampler::Ddim { eta: 1.0 })
}

fn run_exact(plan: &StepPlan, start_x: f64, check_path: bool) -> f64 {
    let (mut x, mut prev) = (start_x, 0.0);
    for (i, step) in plan.steps.iter().enumerate() {
        let noise = (i as f64 + 0.5).cos();
        (x, prev) = step.apply(x, exact_model(step, x, plan.prediction), prev, noise);
        if check_path {
            let want = on_path(plan.sampler, step.sigma_next);
            assert_close(&format!("{:?} step {i}", plan.sampler), &[x], &[want], 1e-9);
        }
    }
    x
}

#[test]
fn exact_denoiser_stays_on_the_path_and_ends_at_x0() {
    for config in [ScheduleConfig::sd15(), ScheduleConfig::sd21_v()] {
        let schedule = NoiseSchedule::new(config).unwrap();
        for sampler in all_samplers() {
            for (steps, strength) in [(1, 1.0), (4, 1.0), (20, 1.0), (20, 0.55), (8, 0.3)] {
                let plan = StepPlan::new(&schedule, sampler, steps, strength).unwrap();
                let mix = plan.img2img_noise;
                let start = mix.signal * X0 + mix.noise * EPS0;
                let end = run_exact(&plan, start, deterministic(sampler));
                let last = plan.steps.last().unwrap().sigma_next;
                if deterministic(sampler) || last == 0.0 {
                    // LCM's boundary condition keeps c_skip·x in x̂: 1.6e-6 at its t = 39.
                    let tolerance = if sampler == Sampler::Lcm { 1e-5 } else { 1e-9 };
                    let name = format!("{sampler:?} {steps} {strength}");
                    assert_close(&name, &[end], &[on_path(sampler, last)], tolerance);
                }
            }
        }
    }
}

#[test]
fn ddpm_form_samplers_start_from_unit_noise() {
    for sampler in [DDIM, DPM, Sampler::DpmPp2m { karras: true }, Sampler::Lcm] {
        let plan = plan(sampler, 10);
        assert_eq!(plan.init_noise_sigma, 1.0, "{sampler:?}");
        assert!(plan.steps.iter().all(|s| s.c_in == 1.0), "{sampler:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// Configuration and errors

#[test]
fn reads_the_fixture_and_golden_configs() {
    let fixture = ScheduleConfig::from_json(FIXTURE_CONFIG).unwrap();
    assert_eq!(fixture.class_name.as_deref(), Some("DDIMScheduler"));
    assert_eq!(fixture.timestep_spacing, Some(TimestepSpacing::Leading));
    assert_eq!(fixture.diffusers_sampler(), Some(DDIM));
    let golden_config = golden()["schedulers"]["config"].to_string();
    let read = ScheduleConfig::from_json(&golden_config).unwrap();
    assert_eq!(
        read,
        ScheduleConfig {
            class_name: None,
            ..ScheduleConfig::sd15()
        }
    );
}

#[test]
fn config_round_trips_through_serde() {
    for config in [
        ScheduleConfig::sd15(),
        ScheduleConfig::sd21_v(),
        ScheduleConfig::sd_turbo(),
    ] {
        let text = serde_json::to_string(&config).unwrap();
        assert_eq!(
            serde_json::from_str::<ScheduleConfig>(&text).unwrap(),
            config,
            "{text}"
        );
    }
}

#[test]
fn class_name_picks_the_diffusers_sampler() {
    let with = |name: &str, karras| ScheduleConfig {
        class_name: Some(name.to_owned()),
        use_karras_sigmas: karras,
        ..ScheduleConfig::sd15()
    };
    assert_eq!(ScheduleConfig::sd15().diffusers_sampler(), None);
    assert_eq!(ScheduleConfig::sd_turbo().diffusers_sampler(), Some(EULER));
    let dpm = with("DPMSolverMultistepScheduler", true).diffusers_sampler();
    assert_eq!(dpm, Some(Sampler::DpmPp2m { karras: true }));
    let ancestral = with("EulerAncestralDiscreteScheduler", false).diffusers_sampler();
    assert_eq!(ancestral, Some(Sampler::EulerAncestral));
    assert_eq!(
        with("LCMScheduler", false).diffusers_sampler(),
        Some(Sampler::Lcm)
    );
}

fn config_error(json: &str) -> ScheduleError {
    ScheduleConfig::from_json(json).unwrap_err()
}

#[test]
fn bad_configs_are_typed_errors() {
    let cosine = config_error(r#"{"beta_schedule": "squaredcos_cap_v2"}"#);
    assert_eq!(
        cosine,
        ScheduleError::UnknownBetaSchedule("squaredcos_cap_v2".into())
    );
    let sample = config_error(r#"{"prediction_type": "sample"}"#);
    assert_eq!(sample, ScheduleError::UnknownPrediction("sample".into()));
    assert_eq!(
        config_error(r#"{"timestep_spacing": "x"}"#),
        ScheduleError::UnknownSpacing("x".into())
    );
    let zero_snr = config_error(r#"{"rescale_betas_zero_snr": true}"#);
    assert!(matches!(
        zero_snr,
        ScheduleError::Unsupported {
            field: "rescale_betas_zero_snr",
            ..
        }
    ));
    let order = config_error(r#"{"solver_order": 3}"#);
    assert!(matches!(
        order,
        ScheduleError::Unsupported {
            field: "solver_order",
            ..
        }
    ));
    let trained = config_error(r#"{"trained_betas": [0.1, 0.2]}"#);
    assert!(matches!(
        trained,
        ScheduleError::Unsupported {
            field: "trained_betas",
            ..
        }
    ));
    assert!(matches!(config_error("{"), ScheduleError::Json(_)));
    assert!(matches!(
        config_error(r#"{"beta_start": 0.5, "beta_end": 0.1}"#),
        ScheduleError::Betas { .. }
    ));
    assert_eq!(
        config_error(r#"{"num_train_timesteps": 1}"#),
        ScheduleError::TrainTimesteps(1)
    );
    let ok = ScheduleConfig::from_json(r#"{"unknown_field": 1, "clip_sample": true}"#).unwrap();
    let schedule = NoiseSchedule::new(ok).unwrap();
    let clipped = StepPlan::txt2img(&schedule, DDIM, 4).unwrap_err();
    assert!(matches!(
        clipped,
        ScheduleError::Unsupported {
            field: "clip_sample",
            ..
        }
    ));
    assert!(StepPlan::txt2img(&schedule, EULER, 4).is_ok());
}

#[test]
fn bad_requests_are_typed_errors() {
    let schedule = sd15();
    let new =
        |sampler, steps, strength| StepPlan::new(&schedule, sampler, steps, strength).unwrap_err();
    assert_eq!(new(EULER, 0, 1.0), ScheduleError::ZeroSteps);
    assert_eq!(
        new(EULER, 1001, 1.0),
        ScheduleError::TooManySteps {
            steps: 1001,
            max: 1000
        }
    );
    assert_eq!(
        new(DPM, 1000, 1.0),
        ScheduleError::TooManySteps {
            steps: 1000,
            max: 999
        }
    );
    assert_eq!(new(EULER, 4, 1.5), ScheduleError::Strength(1.5));
    assert!(matches!(
        new(EULER, 4, f64::NAN),
        ScheduleError::Strength(_)
    ));
    assert_eq!(
        new(EULER, 4, 0.2),
        ScheduleError::NoStepsLeft {
            steps: 4,
            strength: 0.2
        }
    );
    assert_eq!(
        new(Sampler::Ddim { eta: -1.0 }, 4, 1.0),
        ScheduleError::Eta(-1.0)
    );
    let past = new(DDIM, 1000, 1.0);
    assert_eq!(
        past,
        ScheduleError::TimestepOutOfRange {
            timestep: 1000.0,
            last: 999
        }
    );
    assert!(matches!(
        new(Sampler::Lcm, 51, 1.0),
        ScheduleError::LcmSteps { .. }
    ));
    assert!(matches!(
        new(Sampler::Lcm, 4, 0.05),
        ScheduleError::LcmSteps { .. }
    ));
    let short = NoiseSchedule::from_alphas_cumprod(ScheduleConfig::sd15(), vec![0.5; 3]);
    assert!(matches!(
        short,
        Err(ScheduleError::AlphasCumprodLength { found: 3, .. })
    ));
    let flat = NoiseSchedule::from_alphas_cumprod(ScheduleConfig::sd15(), vec![0.5; 1000]);
    assert_eq!(
        flat.unwrap_err(),
        ScheduleError::DegenerateSchedule { timestep: 1 }
    );
}

#[test]
fn every_plan_of_every_step_count_is_finite() {
    let schedule = sd15();
    for sampler in all_samplers() {
        for steps in [1, 2, 3, 7, 50, 150, 999] {
            let Ok(plan) = StepPlan::txt2img(&schedule, sampler, steps) else {
                assert!(matches!(sampler, Sampler::Lcm), "{sampler:?} {steps}");
                continue;
            };
            let numbers = |s: &StepCoefficients| {
                [
                    s.timestep,
                    s.sigma,
                    s.sigma_next,
                    s.c_in,
                    s.denoise.x,
                    s.denoise.model,
                ]
                .into_iter()
                .chain([
                    s.update.x,
                    s.update.denoised,
                    s.update.prev_denoised,
                    s.update.noise,
                ])
            };
            let finite = plan.steps.iter().flat_map(numbers).all(f64::is_finite);
            assert!(
                finite && plan.init_noise_sigma.is_finite(),
                "{sampler:?} {steps}"
            );
        }
    }
}

#[test]
fn guidance_at_or_below_one_skips_the_uncond_pass() {
    assert!(needs_uncond(7.5));
    assert!(needs_uncond(1.01));
    assert!(!needs_uncond(1.0));
    assert!(!needs_uncond(0.0));
    assert!(!needs_uncond(f64::NAN));
}
