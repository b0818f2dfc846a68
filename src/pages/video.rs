//! Video input in the Animate workspace: pick a video, choose its frame rate, range, stride and
//! denoising strength; on Render the browser reads the frames and the worker renders each as
//! img2img (with the temporal panel's consistency).

use leptos::prelude::*;

use super::animate::edit;
use crate::animate::VideoPick;
use crate::app::Shared;
use crate::browser;
use crate::state::ProjectCommand;
use crate::video::VideoField;

static FIELDS: [(&str, &str, VideoField); 5] = [
    ("The video's frame rate", "video-fps", VideoField::Fps),
    ("First frame", "video-start", VideoField::Start),
    ("Frames (0: to the end)", "video-count", VideoField::Count),
    ("Every Nth frame", "video-stride", VideoField::Stride),
    ("Denoising strength", "video-denoise", VideoField::Denoise),
];

/// The options.
#[component]
pub fn VideoOptions(error: RwSignal<Option<String>>) -> impl IntoView {
    let shared = expect_context::<Shared>();
    let (project, animate) = (shared.project, shared.animate);
    let value = move |field: VideoField| {
        project.with(|p| {
            let v = &p.animation.video;
            match field {
                VideoField::Fps => v.fps.to_string(),
                VideoField::Start => v.start.to_string(),
                VideoField::Count => v.count.to_string(),
                VideoField::Stride => v.stride.to_string(),
                VideoField::Denoise => v.denoise.to_string(),
            }
        })
    };
    let on_pick = move |ev: leptos::ev::Event| {
        use wasm_bindgen::JsCast;
        let file = ev
            .target()
            .and_then(|t| t.dyn_into::<web_sys::HtmlInputElement>().ok())
            .and_then(|i| i.files())
            .and_then(|f| f.get(0));
        if let Some(file) = file {
            leptos::task::spawn_local(open(file, animate, error));
        }
    };
    let summary = move || {
        animate.with(|a| {
            a.video.as_ref().map_or("No video picked.".to_owned(), |v| {
                let n = project.with(|p| p.animation.video.frame_indices(v.duration).len());
                let read = v
                    .read_by
                    .map_or(String::new(), |by| format!(" · frames read by {by}"));
                format!(
                    "{}: {}x{}, {:.2} s · {n} frames to render{read}",
                    v.name, v.width, v.height, v.duration
                )
            })
        })
    };
    let studio = shared.studio;
    let controlnet = move || {
        studio.with(|s| {
            if s.control.job(true).is_some() {
                "ControlNet: each frame is guided by its canny edges (Generate card's ControlNet \
                 panel)."
                    .to_owned()
            } else {
                "ControlNet: off (load one in the Generate card to guide each frame by its edges)."
                    .to_owned()
            }
        })
    };
    view! {
        <label class="field">
            <span>"Video (read by the browser; it stays on this computer)"</span>
            <input type="file" accept="video/*" data-testid="video-input" on:change=on_pick/>
        </label>
        <div class="grid">
            {FIELDS.iter().map(|(label, id, field)| view! {
                <label class="field"><span>{*label}</span>
                    <input type="text" data-testid=*id prop:value=move || value(*field)
                        on:change=move |ev| error.set(edit(shared, ProjectCommand::SetVideo(*field, event_target_value(&ev))))/>
                </label>
            }).collect_view()}
        </div>
        <p class="hint" data-testid="video-summary">{summary}</p>
        <p class="hint" data-testid="video-controlnet">{controlnet}</p>
    }
}

/// Reads a picked file's length and size.
async fn open(
    file: web_sys::File,
    animate: RwSignal<crate::animate::Animate>,
    error: RwSignal<Option<String>>,
) {
    let name = file.name();
    let Some(bytes) = browser::file_bytes(&file).await else {
        return error.set(Some(format!("{name} could not be read")));
    };
    let mime = file.type_();
    match browser::video_metadata(&bytes, &mime).await {
        Ok((duration, width, height)) if width > 0 && duration > 0.0 => {
            animate.update(|a| {
                a.video = Some(VideoPick {
                    name,
                    mime,
                    bytes,
                    duration,
                    width,
                    height,
                    read_by: None,
                })
            });
            error.set(None);
        }
        Ok(_) => error.set(Some(format!("{name}: the video has no frames"))),
        Err(e) => error.set(Some(format!("{name}: {e}"))),
    }
}

/// Starts video input: reads the chosen frames, then sends the render with them attached.
pub fn start(shared: Shared, id: String) {
    let (project, animate, studio) = (shared.project, shared.animate, shared.studio);
    leptos::task::spawn_local(async move {
        let project = project.get_untracked();
        let Some(video) = animate.with_untracked(|a| a.video.clone()) else {
            return animate.update(|a| a.error = Some("Pick a video first.".into()));
        };
        let v = &project.animation.video;
        let indices = v.frame_indices(video.duration);
        let times = crate::video::frame_times(&indices, v.fps);
        let frames = match browser::video_frames(&video.bytes, &video.mime, &times).await {
            Ok(((width, height, rgb), read_by)) => {
                animate.update(|a| {
                    if let Some(v) = a.video.as_mut() {
                        v.read_by = Some(read_by);
                    }
                });
                crate::animate::VideoFrames {
                    width,
                    height,
                    indices,
                    rgb,
                }
            }
            Err(e) => return animate.update(|a| a.error = Some(format!("{}: {e}", video.name))),
        };
        let (multiple, control, tokens) = studio
            .with_untracked(|s| (s.size_multiple(), s.control.job(true), s.heatmap_request()));
        let mut result = Err(String::new());
        animate.update(|a| {
            a.heatmap_tokens = tokens;
            let frames = (&frames, multiple);
            result = a.start_video(&project, id, browser::random_seed(), frames, control)
        });
        match (result, browser::bytes_blob(&frames.rgb)) {
            (Ok(m), Some(blob)) => shared.send_with(&m, &[blob]),
            (Err(e), _) => animate.update(|a| a.error = Some(e)),
            (Ok(_), None) => {
                animate.update(|a| a.error = Some("the frames could not be sent".into()))
            }
        }
    });
}
