//! The app's state as plain types: what the components read, and the commands they emit. No
//! leptos and no web-sys here, so all of it is tested natively.

use keyshift_core::selftest::SelfTestReport;
use keyshift_core::share::{self, AnimationMode, Project, Sampler, Seed, ShiftSettings};
use keyshift_core::travel::editor::StageEdit;
use keyshift_web::protocol::{FromWorker, ProtocolError, Stage};

use crate::text::capitalise;
use crate::travel::TravelField;

/// A message about the link the app was opened with.
#[derive(Debug, Clone, PartialEq)]
pub struct LinkNotice {
    /// True when the link could not be opened at all (the autosaved project, or the default one
    /// when nothing was saved, stays open).
    pub is_error: bool,
    /// One sentence.
    pub title: String,
    /// Details, one per line.
    pub details: Vec<String>,
}

/// Opens the project in a URL fragment (with or without `#`). An empty fragment gives the default
/// project; a bad link gives the default project and an error notice; adjusted values give a
/// warning notice.
pub fn open_link(fragment: &str) -> (Project, Option<LinkNotice>) {
    let fragment = fragment.trim_start_matches('#');
    if fragment.trim().is_empty() {
        return (Project::default(), None);
    }
    match share::decode(fragment) {
        Ok(decoded) if decoded.warnings.is_empty() => (decoded.project, None),
        Ok(decoded) => (
            decoded.project,
            Some(LinkNotice {
                is_error: false,
                title: "The link opened, with some values adjusted:".to_owned(),
                details: decoded.warnings.iter().map(ToString::to_string).collect(),
            }),
        ),
        Err(e) => (
            Project::default(),
            Some(LinkNotice {
                is_error: true,
                title: "This share link could not be opened; the default project is shown."
                    .to_owned(),
                details: vec![capitalise(&e.to_string())],
            }),
        ),
    }
}

/// The project the app starts with: the link's when the page was opened with one, otherwise
/// the one autosaved in this browser (silently the default one when that cannot be read). A
/// link that cannot be opened at all leaves the autosaved project open, so that it is not lost.
pub fn start_project(fragment: &str, autosaved: Option<&str>) -> (Project, Option<LinkNotice>) {
    if fragment.trim_start_matches('#').trim().is_empty() {
        return (saved_project(autosaved).unwrap_or_default(), None);
    }
    match (open_link(fragment), saved_project(autosaved)) {
        ((_, Some(mut notice)), Some(saved)) if notice.is_error => {
            notice.title = "This share link could not be opened; the project you were working \
                            on is still open."
                .to_owned();
            (saved, Some(notice))
        }
        (opened, _) => opened,
    }
}

/// The autosaved project, when there is one that can be read.
fn saved_project(autosaved: Option<&str>) -> Option<Project> {
    match autosaved.map(open_link) {
        Some((project, None)) => Some(project),
        Some((project, Some(notice))) if !notice.is_error => Some(project),
        _ => None,
    }
}

/// Links longer than this are flagged as too long to share safely (Parseq documents can make
/// links of megabytes; the project file carries the same project).
pub const LINK_WARN_CHARS: usize = 32_000;

/// The extension of a project file.
pub const PROJECT_EXTENSION: &str = ".keyshift";

/// A project file: the project's share link (the CLI's `--project FILE` reads it too), and the
/// file name offered.
pub fn project_file(project: &Project) -> (String, String) {
    let link = link_fragment(project);
    let stem: String = project
        .name
        .trim()
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let stem = if stem.trim_matches('_').is_empty() {
        "keyshift-project".to_owned()
    } else {
        stem
    };
    (
        format!("{}\n", link.trim_start_matches('#')),
        format!("{stem}{PROJECT_EXTENSION}"),
    )
}

/// Opens a dropped or picked project file named `name`.
pub fn open_project_file(name: &str, text: &str) -> (Option<Project>, LinkNotice) {
    match open_link(text.trim()) {
        (project, None) => (
            Some(project),
            LinkNotice {
                is_error: false,
                title: format!("Project opened from {name}."),
                details: Vec::new(),
            },
        ),
        (project, Some(notice)) if !notice.is_error => (
            Some(project),
            LinkNotice {
                title: format!("Project opened from {name}, with some values adjusted:"),
                ..notice
            },
        ),
        (_, Some(notice)) => (
            None,
            LinkNotice {
                title: format!("{name} could not be opened; the project is unchanged."),
                ..notice
            },
        ),
    }
}

/// The fragment (with `#`) that shares `project`.
pub fn link_fragment(project: &Project) -> String {
    share::encode(project).map_or_else(|_| String::new(), |link| format!("#{link}"))
}

/// An edit of the project, as the project form emits it. Number fields carry the raw text typed.
#[derive(Debug, Clone, PartialEq)]
pub enum ProjectCommand {
    /// Rename the project.
    SetName(String),
    /// Replace the prompt.
    SetPrompt(String),
    /// Replace the negative prompt.
    SetNegativePrompt(String),
    /// Width in pixels.
    SetWidth(String),
    /// Height in pixels.
    SetHeight(String),
    /// Sampling steps.
    SetSteps(String),
    /// CFG scale.
    SetCfg(String),
    /// Seed; `-1` or empty means random.
    SetSeed(String),
    /// Sampler by its A1111 name.
    SetSampler(String),
    /// The animation mode by its name (`single`, `shift-attention`).
    SetMode(String),
    /// A shift-attention option.
    SetShift(ShiftField, String),
    /// A prompt-travel option.
    SetTravel(TravelField, String),
    /// A stage-editor edit (of the prompt's lines and the travel steps).
    EditStage(StageEdit),
    /// A Parseq option, or the document itself (as the editor keeps it).
    SetParseq(crate::parseq::ParseqField, String),
    /// A temporal consistency option (every animation mode).
    SetTemporal(crate::temporal::TemporalField, String),
    /// A video-input option.
    SetVideo(crate::video::VideoField, String),
}

/// A shift-attention option the Animate workspace edits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShiftField {
    /// Intervals per segment, 1..=1000.
    Steps,
    /// Video frame rate; negative: seconds. −3600..=240.
    Fps,
    /// Lead in/out frames, 0..=1000.
    Lead,
    /// Mirror (`true`/`false`).
    Mirror,
    /// Remove zero-strength tags (`true`/`false`).
    RemoveZero,
    /// Lanczos upscale ratio, 0.1..=8.
    Upscale,
    /// SSIM threshold, 0..=1.
    SsimThreshold,
    /// SSIM minimum step, above 0 and at most 1.
    SsimMinStep,
    /// SSIM min threshold %, 0..=100.
    SsimMinPct,
}

impl ShiftField {
    /// The field's name in messages.
    pub fn label(self) -> &'static str {
        match self {
            Self::Steps => "Shift steps",
            Self::Fps => "FPS",
            Self::Lead => "Lead in/out",
            Self::Mirror => "Mirror",
            Self::RemoveZero => "Remove zero strength",
            Self::Upscale => "Upscale ratio",
            Self::SsimThreshold => "SSIM threshold",
            Self::SsimMinStep => "SSIM minimum step",
            Self::SsimMinPct => "SSIM min threshold %",
        }
    }

    fn apply(self, text: &str, s: &mut ShiftSettings) -> Result<(), EditError> {
        let label = self.label();
        match self {
            Self::Steps => s.shift_steps = parse_in(label, text, 1, 1000)? as u32,
            Self::Lead => s.lead = parse_in(label, text, 0, 1000)? as u32,
            Self::Mirror => s.mirror = parse_flag(label, text)?,
            Self::RemoveZero => s.remove_zero = parse_flag(label, text)?,
            Self::Fps => s.fps = parse_real(label, text, -3600.0, 240.0)?,
            Self::Upscale => s.upscale = parse_real(label, text, 0.1, 8.0)?,
            Self::SsimThreshold => s.ssim_threshold = parse_real(label, text, 0.0, 1.0)?,
            Self::SsimMinStep => s.ssim_min_step = parse_real(label, text, 1e-9, 1.0)?,
            Self::SsimMinPct => s.ssim_min_pct = parse_real(label, text, 0.0, 100.0)?,
        }
        Ok(())
    }
}

/// Why an edit was refused; the project keeps its previous value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EditError {
    /// Not a number.
    #[error("{field}: \"{text}\" is not a number")]
    NotANumber {
        /// The field.
        field: &'static str,
        /// What was typed.
        text: String,
    },
    /// Out of range.
    #[error("{field} must be between {min} and {max}")]
    OutOfRange {
        /// The field.
        field: &'static str,
        /// Smallest allowed.
        min: String,
        /// Largest allowed.
        max: String,
    },
    /// A size that is not a multiple of 8.
    #[error("{field} must be a multiple of 8")]
    NotMultipleOf8 {
        /// The field.
        field: &'static str,
    },
    /// An unknown sampler.
    #[error("unknown sampler \"{0}\"")]
    UnknownSampler(String),
    /// An unknown animation mode.
    #[error("unknown animation mode \"{0}\"")]
    UnknownMode(String),
    /// A value the field cannot take.
    #[error("{field}: {message}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// What is wrong.
        message: String,
    },
}

impl ProjectCommand {
    /// Applies the edit; on error the project is unchanged.
    pub fn apply(self, project: &mut Project) -> Result<(), EditError> {
        let s = &mut project.settings;
        match self {
            ProjectCommand::SetName(v) => project.name = v,
            ProjectCommand::SetPrompt(v) => project.prompt = v,
            ProjectCommand::SetNegativePrompt(v) => project.negative_prompt = v,
            ProjectCommand::SetWidth(v) => s.width_px = parse_side("Width", &v)?,
            ProjectCommand::SetHeight(v) => s.height_px = parse_side("Height", &v)?,
            ProjectCommand::SetSteps(v) => {
                s.steps = parse_in("Steps", &v, 1, u64::from(share::MAX_STEPS))? as u32;
            }
            ProjectCommand::SetCfg(v) => s.cfg_scale = parse_cfg(&v)?,
            ProjectCommand::SetSeed(v) => s.seed = parse_seed(&v)?,
            ProjectCommand::SetSampler(v) => {
                s.sampler = Sampler::from_name(&v).ok_or(EditError::UnknownSampler(v))?;
            }
            ProjectCommand::SetMode(v) => {
                project.animation.mode =
                    AnimationMode::from_name(&v).ok_or(EditError::UnknownMode(v))?;
            }
            ProjectCommand::SetShift(field, v) => {
                let mut next = project.animation.shift.clone();
                field.apply(&v, &mut next)?;
                project.animation.shift = next;
            }
            ProjectCommand::SetTravel(field, v) => {
                let mut next = project.animation.travel.clone();
                field.apply(&v, &mut next)?;
                project.animation.travel = next;
            }
            ProjectCommand::EditStage(edit) => crate::travel::edit_stages(edit, project)?,
            ProjectCommand::SetParseq(field, v) => {
                field.apply(&v, &mut project.animation.parseq)?
            }
            ProjectCommand::SetVideo(field, v) => field.apply(&v, &mut project.animation.video)?,
            ProjectCommand::SetTemporal(field, v) => {
                let mut next = project.animation.temporal.clone();
                field.apply(&v, &mut next)?;
                project.animation.temporal = next;
            }
        }
        Ok(())
    }
}

fn parse_real(field: &'static str, text: &str, min: f64, max: f64) -> Result<f64, EditError> {
    let value: f64 = text.trim().parse().map_err(|_| EditError::NotANumber {
        field,
        text: text.to_owned(),
    })?;
    if !value.is_finite() || !(min..=max).contains(&value) {
        return Err(EditError::OutOfRange {
            field,
            min: min.to_string(),
            max: max.to_string(),
        });
    }
    Ok(value)
}

fn parse_flag(field: &'static str, text: &str) -> Result<bool, EditError> {
    match text.trim() {
        "true" | "on" | "1" => Ok(true),
        "false" | "off" | "0" | "" => Ok(false),
        _ => Err(EditError::NotANumber {
            field,
            text: text.to_owned(),
        }),
    }
}

fn parse_in(field: &'static str, text: &str, min: u64, max: u64) -> Result<u64, EditError> {
    let value: u64 = text.trim().parse().map_err(|_| EditError::NotANumber {
        field,
        text: text.to_owned(),
    })?;
    if !(min..=max).contains(&value) {
        return Err(EditError::OutOfRange {
            field,
            min: min.to_string(),
            max: max.to_string(),
        });
    }
    Ok(value)
}

fn parse_side(field: &'static str, text: &str) -> Result<u32, EditError> {
    let min = u64::from(share::MIN_SIZE_PX);
    let max = u64::from(share::MAX_SIZE_PX);
    let value = parse_in(field, text, min, max)?;
    if value % u64::from(share::SIZE_STEP) != 0 {
        return Err(EditError::NotMultipleOf8 { field });
    }
    Ok(value as u32)
}

fn parse_cfg(text: &str) -> Result<f64, EditError> {
    let value: f64 = text.trim().parse().map_err(|_| EditError::NotANumber {
        field: "CFG scale",
        text: text.to_owned(),
    })?;
    if !(0.0..=share::MAX_CFG).contains(&value) {
        return Err(EditError::OutOfRange {
            field: "CFG scale",
            min: "0".to_owned(),
            max: share::MAX_CFG.to_string(),
        });
    }
    Ok(value)
}

fn parse_seed(text: &str) -> Result<Seed, EditError> {
    let text = text.trim();
    if text.is_empty() || text == "-1" {
        return Ok(Seed::Random);
    }
    let value = parse_in("Seed", text, 0, u64::from(u32::MAX))?;
    Ok(Seed::Fixed(value as u32))
}

/// What restoring settings from an image's `parameters` text did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restored {
    /// The settings taken, by name (`Steps`, `Seed`…).
    pub applied: Vec<&'static str>,
    /// Settings present but not usable here, with why.
    pub skipped: Vec<String>,
}

/// Reads an A1111 (or Keyshift) PNG and restores its prompt and settings into `project`. Values
/// that do not fit (an unknown sampler, a size out of range) are skipped and listed; a PNG with
/// no `parameters` text is an error and leaves the project as it was.
pub fn restore_from_png(png: &[u8], project: &mut Project) -> Result<Restored, String> {
    let texts = keyshift_core::pngtext::read_texts(png)
        .map_err(|e| format!("this file is not a PNG Keyshift can read ({e})"))?;
    let text = texts
        .iter()
        .find(|(k, _)| k == "parameters")
        .map(|(_, v)| v.as_str())
        .ok_or("this PNG carries no generation parameters (A1111's \"parameters\" text)")?;
    Ok(restore_parameters(text, project))
}

/// Restores what an A1111 `parameters` text says into `project`.
pub fn restore_parameters(text: &str, project: &mut Project) -> Restored {
    let p = keyshift_core::parameters::Parameters::parse(text);
    let mut next = project.clone();
    let mut applied = vec!["Prompt", "Negative prompt"];
    let mut skipped = Vec::new();
    next.prompt = p.prompt.clone();
    next.negative_prompt = p.negative.clone();
    let mut take = |name: &'static str, command: Option<ProjectCommand>| {
        let Some(command) = command else { return };
        let mut trial = next.clone();
        match command.apply(&mut trial) {
            Ok(()) => {
                next = trial;
                applied.push(name);
            }
            Err(e) => skipped.push(format!("{name}: {e}")),
        }
    };
    let field = |k: &str| p.get(k).map(str::to_owned);
    take("Steps", field("Steps").map(ProjectCommand::SetSteps));
    take("CFG scale", field("CFG scale").map(ProjectCommand::SetCfg));
    take("Seed", field("Seed").map(ProjectCommand::SetSeed));
    if let Some((w, h)) = p.get("Size").and_then(|s| s.split_once('x')) {
        take("Width", Some(ProjectCommand::SetWidth(w.to_owned())));
        take("Height", Some(ProjectCommand::SetHeight(h.to_owned())));
    }
    if let Some(name) = p.get("Sampler") {
        let karras = p
            .get("Schedule type")
            .is_some_and(|s| s.eq_ignore_ascii_case("karras"));
        let full = if karras && !name.to_lowercase().ends_with("karras") {
            format!("{name} Karras")
        } else {
            name.to_owned()
        };
        take("Sampler", Some(ProjectCommand::SetSampler(full)));
    }
    *project = next;
    Restored { applied, skipped }
}

/// What the compute worker has told the UI so far.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct WorkerView {
    /// The worker's module loaded.
    pub started: bool,
    /// Milliseconds it took to acquire the WebGPU device, once acquired.
    pub device_init_ms: Option<f64>,
    /// The newest self-test report.
    pub report: Option<SelfTestReport>,
    /// The newest failure.
    pub failure: Option<(Stage, String)>,
    /// A self-test is under way.
    pub running: bool,
    /// The worker stopped and a fresh one is being started.
    pub crashed: bool,
}

impl WorkerView {
    /// A fresh view of a worker that was just spawned (its self-test starts by itself).
    pub fn spawned() -> Self {
        Self {
            running: true,
            ..Self::default()
        }
    }

    /// Whether `message` says the worker stopped working: a panic it reported, or an uncaught
    /// error after its module had started (before that, the script failed to load, and a fresh
    /// worker would fail the same way).
    pub fn is_crash(&self, message: &FromWorker) -> bool {
        match message {
            FromWorker::Failed {
                stage: Stage::Crashed,
                ..
            } => true,
            FromWorker::Failed {
                stage: Stage::Load, ..
            } => self.started,
            _ => false,
        }
    }

    /// Folds one message from the worker into the view.
    pub fn apply(&mut self, message: Result<FromWorker, ProtocolError>) {
        match message {
            Ok(FromWorker::Started) => self.started = true,
            Ok(FromWorker::DeviceReady { init_ms }) => self.device_init_ms = Some(init_ms),
            Ok(FromWorker::SelfTest { report }) => {
                self.report = Some(report);
                self.failure = None;
                self.running = false;
            }
            // Model and generation failures belong to the studio, not to the self-test.
            Ok(FromWorker::Failed {
                stage:
                    Stage::Model | Stage::ControlNet | Stage::Generate | Stage::Render | Stage::Export,
                ..
            }) => {}
            Ok(FromWorker::Failed { stage, message }) => {
                self.failure = Some((stage, message));
                self.running = false;
            }
            Ok(
                FromWorker::LoadProgress { .. }
                | FromWorker::ModelReady { .. }
                | FromWorker::ControlNetReady { .. }
                | FromWorker::ControlNetUnloaded
                | FromWorker::Progress { .. }
                | FromWorker::Preview { .. }
                | FromWorker::Image { .. }
                | FromWorker::Cancelled { .. }
                | FromWorker::Tokens { .. }
                | FromWorker::Heatmap { .. }
                | FromWorker::Probed { .. }
                | FromWorker::Benchmarked { .. }
                | FromWorker::AudioAnalysed { .. }
                | FromWorker::Cache { .. }
                | FromWorker::Frame { .. }
                | FromWorker::FrameHeatmap { .. }
                | FromWorker::RenderProgress { .. }
                | FromWorker::RenderDone { .. }
                | FromWorker::RenderOpened { .. }
                | FromWorker::Renders { .. }
                | FromWorker::ExportProgress { .. }
                | FromWorker::Exported { .. },
            ) => {}
            Err(e) => self.failure = Some((Stage::Message, e.to_string())),
        }
    }

    /// One line for the status badge.
    pub fn status(&self) -> String {
        match (&self.failure, &self.report, self.running) {
            (Some((stage, message)), _, _) => format!("failed ({}): {message}", stage_name(*stage)),
            (None, _, true) if !self.started => "starting the worker…".to_owned(),
            (None, _, true) if self.device_init_ms.is_none() => "acquiring the GPU…".to_owned(),
            (None, _, true) => "computing…".to_owned(),
            (None, Some(r), false) if r.passed() => "passed".to_owned(),
            (None, Some(_), false) => "wrong results".to_owned(),
            (None, None, false) => "idle".to_owned(),
        }
    }
}

fn stage_name(stage: Stage) -> &'static str {
    match stage {
        Stage::Load => "loading the worker",
        Stage::Device => "acquiring the GPU",
        Stage::SelfTest => "self-test",
        Stage::Message => "message",
        Stage::Model => "loading the model",
        Stage::ControlNet => "loading the ControlNet",
        Stage::Generate => "generating",
        Stage::Render => "rendering",
        Stage::Export => "exporting",
        Stage::Crashed => "the worker stopped",
    }
}

// Native only: in the wasm32 test build these would need the browser test runner's harness.
#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    #[test]
    fn a_crash_is_a_panic_or_an_error_after_the_module_started() {
        let panic = FromWorker::Failed {
            stage: Stage::Crashed,
            message: "panicked".into(),
        };
        let error = FromWorker::Failed {
            stage: Stage::Load,
            message: "RuntimeError: unreachable".into(),
        };
        let mut view = WorkerView::spawned();
        assert!(view.is_crash(&panic));
        assert!(
            !view.is_crash(&error),
            "a script that never loaded is not restarted"
        );
        view.apply(Ok(FromWorker::Started));
        assert!(view.is_crash(&error));
        assert!(!view.is_crash(&FromWorker::Failed {
            stage: Stage::Generate,
            message: "x".into()
        }));
    }

    use super::*;
    use keyshift_core::selftest::Check;

    #[test]
    fn without_a_link_the_autosaved_project_opens() {
        let mut saved = Project {
            prompt: "autosaved (cat:1~0)".into(),
            ..Project::default()
        };
        saved.animation.mode = keyshift_core::share::AnimationMode::ShiftAttention;
        let fragment = link_fragment(&saved);
        assert_eq!(start_project("", Some(&fragment)), (saved.clone(), None));
        let linked = Project {
            prompt: "from the link".into(),
            ..Project::default()
        };
        let (opened, _) = start_project(&link_fragment(&linked), Some(&fragment));
        assert_eq!(opened, linked, "a link wins over the autosave");
        assert_eq!(
            start_project("#", Some("#v2.%%%")),
            (Project::default(), None),
            "a damaged autosave is ignored"
        );
        assert_eq!(start_project("", None), (Project::default(), None));
        // A link that cannot be opened leaves the autosaved work open, and says so.
        let (opened, notice) = start_project("#v4.AAAA", Some(&fragment));
        assert_eq!(opened, saved);
        let notice = notice.unwrap();
        assert!(notice.is_error);
        assert!(
            notice
                .title
                .contains("the project you were working on is still open")
        );
        let (opened, notice) = start_project("#v4.AAAA", None);
        assert_eq!(opened, Project::default());
        assert!(
            notice
                .unwrap()
                .title
                .contains("the default project is shown")
        );
    }

    #[test]
    fn a_project_file_round_trips_and_a_bad_one_changes_nothing() {
        let mut p = Project {
            name: "Cat / dog".into(),
            prompt: "a (cat:1~0)".into(),
            ..Project::default()
        };
        p.animation.shift.shift_steps = 7;
        let (text, name) = project_file(&p);
        assert_eq!(name, "Cat___dog.keyshift");
        assert!(text.starts_with("v4."), "{text}");
        let (opened, notice) = open_project_file(&name, &text);
        assert_eq!(opened, Some(p));
        assert_eq!(notice.title, "Project opened from Cat___dog.keyshift.");
        let (none, notice) = open_project_file("x.keyshift", "v2.%%%");
        assert_eq!(none, None);
        assert!(notice.is_error && notice.title.starts_with("x.keyshift could not be opened"));
        assert_eq!(project_file(&Project::default()).1, "Untitled.keyshift");
        let nameless = Project {
            name: " / ".into(),
            ..Project::default()
        };
        assert_eq!(project_file(&nameless).1, "keyshift-project.keyshift");
    }

    #[test]
    fn animation_edits_are_validated() {
        let mut p = Project::default();
        ProjectCommand::SetMode("shift-attention".into())
            .apply(&mut p)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            p.animation.mode,
            keyshift_core::share::AnimationMode::ShiftAttention
        );
        assert!(
            ProjectCommand::SetMode("travel".into())
                .apply(&mut p)
                .is_err()
        );
        ProjectCommand::SetMode("prompt-travel".into())
            .apply(&mut p)
            .unwrap_or_else(|e| panic!("{e}"));
        let set = |p: &mut Project, f, v: &str| ProjectCommand::SetShift(f, v.into()).apply(p);
        set(&mut p, ShiftField::Steps, "4").unwrap_or_else(|e| panic!("{e}"));
        set(&mut p, ShiftField::Fps, "-2.5").unwrap_or_else(|e| panic!("{e}"));
        set(&mut p, ShiftField::Mirror, "true").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (
                p.animation.shift.shift_steps,
                p.animation.shift.fps,
                p.animation.shift.mirror
            ),
            (4, -2.5, true)
        );
        let before = p.clone();
        let err = set(&mut p, ShiftField::Steps, "0").map(|_| ()).unwrap_err();
        assert_eq!(err.to_string(), "Shift steps must be between 1 and 1000");
        assert!(set(&mut p, ShiftField::Upscale, "9").is_err());
        assert!(set(&mut p, ShiftField::SsimThreshold, "NaN").is_err());
        assert!(set(&mut p, ShiftField::Lead, "x").is_err());
        assert_eq!(p, before, "refused edits change nothing");
    }

    #[test]
    fn an_empty_fragment_opens_the_default_project_silently() {
        assert_eq!(open_link(""), (Project::default(), None));
        assert_eq!(open_link("#"), (Project::default(), None));
    }

    #[test]
    fn a_link_round_trips_through_the_fragment() {
        let mut project = Project::default();
        ProjectCommand::SetPrompt("a (cat:1.2)".into())
            .apply(&mut project)
            .expect("applies");
        ProjectCommand::SetSeed("42".into())
            .apply(&mut project)
            .expect("applies");
        let fragment = link_fragment(&project);
        assert!(fragment.starts_with("#v4."));
        assert_eq!(open_link(&fragment), (project, None));
    }

    #[test]
    fn a_corrupted_link_keeps_the_default_project_and_says_why() {
        let (project, notice) = open_link("#v1.%%%");
        assert_eq!(project, Project::default());
        let notice = notice.expect("a notice");
        assert!(notice.is_error);
        assert_eq!(
            notice.details,
            vec!["The link is damaged: character 0 of its data is not valid base64url"]
        );
    }

    #[test]
    fn bad_edits_are_refused_and_leave_the_project_unchanged() {
        let mut project = Project::default();
        let before = project.clone();
        let refused = [
            ProjectCommand::SetWidth("abc".into()),
            ProjectCommand::SetWidth("513".into()),
            ProjectCommand::SetHeight("4096".into()),
            ProjectCommand::SetSteps("0".into()),
            ProjectCommand::SetCfg("NaN".into()),
            ProjectCommand::SetSeed("-5".into()),
            ProjectCommand::SetSampler("Heun".into()),
        ];
        for command in refused {
            assert!(command.clone().apply(&mut project).is_err(), "{command:?}");
            assert_eq!(project, before);
        }
        ProjectCommand::SetWidth(" 768 ".into())
            .apply(&mut project)
            .expect("applies");
        ProjectCommand::SetSampler("dpm++ 2m karras".into())
            .apply(&mut project)
            .expect("applies");
        ProjectCommand::SetSeed("".into())
            .apply(&mut project)
            .expect("applies");
        assert_eq!(project.settings.width_px, 768);
        assert_eq!(project.settings.sampler, Sampler::DpmPp2mKarras);
        assert_eq!(project.settings.seed, Seed::Random);
    }

    #[test]
    fn an_a1111_png_restores_prompt_and_settings() {
        let text = "a (cat:1.2) on a mat\nNegative prompt: blurry, ugly\nSteps: 28, \
                    Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 6.5, Seed: 1234, \
                    Size: 640x512, Model: v1-5";
        let png = keyshift_core::pngtext::encode_rgb(1, 1, &[0, 0, 0], &[("parameters", text)])
            .expect("encodes");
        let mut project = Project::default();
        let restored = restore_from_png(&png, &mut project).expect("restores");
        assert_eq!(project.prompt, "a (cat:1.2) on a mat");
        assert_eq!(project.negative_prompt, "blurry, ugly");
        let s = &project.settings;
        assert_eq!((s.steps, s.width_px, s.height_px), (28, 640, 512));
        assert_eq!((s.cfg_scale, s.seed), (6.5, Seed::Fixed(1234)));
        assert_eq!(s.sampler, Sampler::DpmPp2mKarras);
        assert!(restored.skipped.is_empty(), "{:?}", restored.skipped);
    }

    #[test]
    fn what_does_not_fit_is_skipped_and_named() {
        let mut project = Project::default();
        let restored = restore_parameters(
            "a dog\nSteps: 20, Sampler: DPM++ SDE, CFG scale: 7, Seed: 5, Size: 4096x512",
            &mut project,
        );
        assert_eq!(project.prompt, "a dog");
        assert_eq!(project.settings.seed, Seed::Fixed(5));
        assert_eq!(
            project.settings.width_px,
            Project::default().settings.width_px
        );
        assert_eq!(project.settings.height_px, 512);
        assert_eq!(restored.skipped.len(), 2, "{:?}", restored.skipped);
        assert!(restored.skipped[1].contains("DPM++ SDE"));
        let before = project.clone();
        let plain = keyshift_core::pngtext::encode_rgb(1, 1, &[0, 0, 0], &[]).expect("encodes");
        assert!(
            restore_from_png(&plain, &mut project)
                .unwrap_err()
                .contains("no generation parameters")
        );
        assert!(restore_from_png(b"not a png", &mut project).is_err());
        assert_eq!(project, before);
    }

    #[test]
    fn the_worker_view_follows_the_life_cycle() {
        let mut view = WorkerView::spawned();
        assert_eq!(view.status(), "starting the worker…");
        view.apply(Ok(FromWorker::Started));
        assert_eq!(view.status(), "acquiring the GPU…");
        view.apply(Ok(FromWorker::DeviceReady { init_ms: 5.0 }));
        assert_eq!(view.status(), "computing…");
        let check = |passed| Check {
            name: "m".into(),
            shape: vec![1],
            sum: 1.0,
            expected_sum: 1.0,
            max_abs_error: 0.0,
            passed,
            elapsed_ms: 1.0,
        };
        view.apply(Ok(FromWorker::SelfTest {
            report: SelfTestReport {
                matmul: check(true),
                conv2d: check(false),
            },
        }));
        assert_eq!(view.status(), "wrong results");
        view.apply(Ok(FromWorker::Failed {
            stage: Stage::Device,
            message: "lost".into(),
        }));
        assert_eq!(view.status(), "failed (acquiring the GPU): lost");
    }
}
