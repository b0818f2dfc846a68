//! Scheduler tables: betas, ᾱ, and each sampler's timesteps and sigmas against diffusers and
//! k-diffusion.

use keyshift_core::schedule::{
    KMethod, NoiseSchedule, Sampler, ScheduleConfig, StepPlan, TimestepSpacing, ancestral_step,
};
use serde_json::Value;

use super::{Check, Golden, GoldenReport, compare};

/// Tables are float32 in the reference: agree to float32 rounding.
const TABLE_TOLERANCE: f32 = 2e-6;

/// The schedule configuration the fixture's tables were made with.
pub(super) fn config(golden: &Golden) -> Option<ScheduleConfig> {
    let raw = golden.json["schedulers"]["config"].as_object()?;
    ScheduleConfig::from_json(&Value::Object(raw.clone()).to_string()).ok()
}

fn floats(v: &Value) -> Vec<f32> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_f64)
                .map(|x| x as f32)
                .collect()
        })
        .unwrap_or_default()
}

fn to_f32(v: &[f64]) -> Vec<f32> {
    v.iter().map(|&x| x as f32).collect()
}

fn with_spacing(base: &ScheduleConfig, spacing: Option<TimestepSpacing>) -> Option<NoiseSchedule> {
    NoiseSchedule::new(ScheduleConfig {
        timestep_spacing: spacing,
        ..base.clone()
    })
    .ok()
}

/// Runs every recognised table check.
pub(super) fn check(golden: &mut Golden, report: &mut GoldenReport) {
    let Some(base) = config(golden) else {
        if !golden.json["schedulers"]["config"].is_null() {
            report.fail(
                "schedule/config",
                "the fixture's scheduler config cannot be read",
            );
        }
        golden.excuse("sched.");
        return;
    };
    let Ok(schedule) = NoiseSchedule::new(base.clone()) else {
        report.push(Check {
            name: "schedule/config".into(),
            passed: false,
            detail: "the fixture's scheduler config is refused".into(),
        });
        return;
    };
    for (name, got) in [
        ("sched.betas", schedule.betas()),
        ("sched.alphas_cumprod", schedule.alphas_cumprod()),
    ] {
        if let Some((want, _)) = golden.tensor(name) {
            report.push(compare(
                &format!("schedule/{name}"),
                &to_f32(got),
                &want,
                TABLE_TOLERANCE,
            ));
        }
    }
    let Some(steps) = golden.json["schedulers"]["steps"].as_object().cloned() else {
        return;
    };
    for (n, tables) in steps {
        let (Ok(n), Some(tables)) = (n.parse::<usize>(), tables.as_object()) else {
            report.fail(format!("schedule/{n}"), "not a step count with tables");
            continue;
        };
        for (key, table) in tables {
            let name = format!("schedule/{n}/{key}");
            match case_for(key) {
                Some(case) => check_table(&base, &schedule, n, key, case, table, report),
                None if NOT_KEYSHIFT_SAMPLERS.contains(&key.as_str()) => {
                    report.skip(name, "not one of Keyshift's samplers");
                }
                None => {
                    report.cannot_run(table, name, "a scheduler table the runner does not know")
                }
            }
        }
    }
}

/// Scheduler tables of diffusers' samplers that Keyshift does not offer (A1111 has no PLMS for
/// SD 1.x's default either): known, not checked, counted as skipped.
const NOT_KEYSHIFT_SAMPLERS: [&str; 2] = ["pndm_plms_leading", "pndm_leading"];

/// The fields of a scheduler table that are compared.
const TABLE_FIELDS: [&str; 8] = [
    "timesteps",
    "sigmas",
    "init_noise_sigma",
    "final_alpha_cumprod",
    "sigma_up",
    "sigma_down",
    "model_sigma_min",
    "model_sigma_max",
];

#[derive(Clone, Copy)]
struct Case {
    sampler: Sampler,
    spacing: Option<TimestepSpacing>,
}

fn case_for(key: &str) -> Option<Case> {
    let euler = Sampler::Euler { karras: false };
    let k = |method, karras| Sampler::KDiffusion { method, karras };
    let (sampler, spacing) = match key {
        "ddim_leading" => (Sampler::Ddim { eta: 0.0 }, Some(TimestepSpacing::Leading)),
        "euler_linspace" => (euler, Some(TimestepSpacing::Linspace)),
        "euler_leading" => (euler, Some(TimestepSpacing::Leading)),
        "euler_trailing" => (euler, Some(TimestepSpacing::Trailing)),
        "euler_karras" => (Sampler::Euler { karras: true }, None),
        "euler_ancestral_linspace" => (Sampler::EulerAncestral, Some(TimestepSpacing::Linspace)),
        "dpmpp_2m_linspace" => (
            Sampler::DpmPp2m { karras: false },
            Some(TimestepSpacing::Linspace),
        ),
        "kdiffusion_default" => (k(KMethod::Euler, false), None),
        "kdiffusion_karras" => (k(KMethod::Euler, true), None),
        _ => return None,
    };
    Some(Case { sampler, spacing })
}

fn check_table(
    base: &ScheduleConfig,
    schedule: &NoiseSchedule,
    n: usize,
    key: &str,
    case: Case,
    table: &Value,
    report: &mut GoldenReport,
) {
    let name = |field: &str| format!("schedule/{n}/{key}.{field}");
    for field in table.as_object().into_iter().flat_map(|t| t.keys()) {
        if !TABLE_FIELDS.contains(&field.as_str()) && field != "optional" {
            report.fail(name(field), "a table field the runner does not know");
        }
    }
    let plan =
        with_spacing(base, case.spacing).and_then(|s| StepPlan::txt2img(&s, case.sampler, n).ok());
    let Some(plan) = plan else {
        report.push(Check {
            name: name("plan"),
            passed: false,
            detail: "no plan for this sampler".into(),
        });
        return;
    };
    let sigmas = plan.sigmas();
    let ancestral: Vec<_> = sigmas
        .windows(2)
        .map(|w| ancestral_step(w[0], w[1]))
        .collect();
    let fields: [(&str, Vec<f64>); 7] = [
        ("timesteps", plan.timesteps()),
        ("sigmas", sigmas.clone()),
        ("init_noise_sigma", vec![plan.init_noise_sigma]),
        ("final_alpha_cumprod", vec![schedule.final_alpha_cumprod()]),
        ("sigma_up", ancestral.iter().map(|a| a.sigma_up).collect()),
        (
            "sigma_down",
            ancestral.iter().map(|a| a.sigma_down).collect(),
        ),
        ("model_sigma_min", vec![schedule.model_sigma_min()]),
    ];
    for (field, got) in fields {
        if let Some(want) = table.get(field) {
            let want = if want.is_array() {
                floats(want)
            } else {
                want.as_f64().map(|x| vec![x as f32]).unwrap_or_default()
            };
            report.push(compare(&name(field), &to_f32(&got), &want, TABLE_TOLERANCE));
        }
    }
    if let Some(want) = table.get("model_sigma_max").and_then(Value::as_f64) {
        report.push(compare(
            &name("model_sigma_max"),
            &[schedule.model_sigma_max() as f32],
            &[want as f32],
            TABLE_TOLERANCE,
        ));
    }
}
