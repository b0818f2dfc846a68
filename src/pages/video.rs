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
use keyshift_core::limits::FileKind;
use keyshift_web::protocol::ImageSize;

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
    let on_pick = move |hint: bool| {
        move |ev: leptos::ev::Event| {
            if let Some(file) = browser::picked_file(&ev) {
                leptos::task::spawn_local(open(file, animate, error, hint));
            }
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
        let hint = animate.with(|a| a.hint_video.as_ref().map(|v| v.name.clone()));
        studio.with(|s| match (s.control.guides(), s.control.canny, hint) {
            (false, _, _) => "ControlNet: off (load one in the Generate card's ControlNet panel \
                              to guide each frame)."
                .to_owned(),
            (true, true, _) => "ControlNet: each frame is guided by its canny edges.".to_owned(),
            (true, false, Some(name)) => {
                format!("ControlNet: each frame is guided by the same frame of {name}.")
            }
            (true, false, None) => {
                "ControlNet: pick a hint video (depth, pose…), one frame per video frame."
                    .to_owned()
            }
        })
    };
    view! {
        <label class="field">
            <span>"Video (read by the browser; it stays on this computer)"</span>
            <input type="file" accept="video/*" data-testid="video-input" on:change=on_pick(false)/>
        </label>
        <div class="grid">
            {FIELDS.iter().map(|(label, id, field)| {
                let stored = Memo::new(move |_| value(*field));
                view! {
                <label class="field"><span>{*label}</span>
                    <input type="text" data-testid=*id prop:value=stored
                        on:change=move |ev| {
                            error.set(edit(shared, ProjectCommand::SetVideo(*field, event_target_value(&ev))));
                            super::show_stored(&ev, stored);
                        }/>
                </label>
            }}).collect_view()}
        </div>
        <p class="hint" data-testid="video-summary">{summary}</p>
        <p class="hint" data-testid="video-controlnet">{controlnet}</p>
        <label class="field">
            <span>"ControlNet hint video (when the hint is the image itself: depth, pose…)"</span>
            <input type="file" accept="video/*" data-testid="video-hint-input" on:change=on_pick(true)/>
        </label>
    }
}

/// Reads a picked file's length and size (the video, or with `hint` the ControlNet's hint video).
async fn open(
    file: web_sys::File,
    animate: RwSignal<crate::animate::Animate>,
    error: RwSignal<Option<String>>,
    hint: bool,
) {
    let name = file.name();
    let bytes = match browser::file_bytes(&file, FileKind::Video).await {
        Ok(bytes) => bytes,
        Err(e) => return error.set(Some(e)),
    };
    let mime = file.type_();
    match browser::video_metadata(&bytes, &mime).await {
        Ok((duration, width, height)) if width > 0 && duration > 0.0 => {
            let pick = VideoPick {
                name,
                mime,
                bytes,
                duration,
                width,
                height,
                read_by: None,
            };
            animate.update(|a| match hint {
                true => a.hint_video = Some(pick),
                false => a.video = Some(pick),
            });
            error.set(None);
        }
        Ok(_) => error.set(Some(format!("{name}: the video has no frames"))),
        Err(e) => error.set(Some(format!("{name}: {e}"))),
    }
}

/// Starts video input: reads the chosen frames (and a hint video's), then sends the render with
/// them attached.
pub fn start(shared: Shared, id: String) {
    let animate = shared.animate;
    leptos::task::spawn_local(async move {
        if let Err(e) = try_start(shared, id).await {
            animate.update(|a| a.error = Some(e));
        }
    });
}

async fn try_start(shared: Shared, id: String) -> Result<(), String> {
    let (animate, studio) = (shared.animate, shared.studio);
    let project = shared.project.get_untracked();
    let video = animate
        .with_untracked(|a| a.video.clone())
        .ok_or("Pick a video first.")?;
    let v = &project.animation.video;
    let indices = v.frame_indices(video.duration);
    let times = crate::video::frame_times(&indices, v.fps);
    let ((width, height, rgb), read_by) = read(&video, &times).await?;
    animate.update(|a| {
        if let Some(v) = a.video.as_mut() {
            v.read_by = Some(read_by);
        }
    });
    let hint = match studio.with_untracked(|s| s.control.guides() && !s.control.canny) {
        true => match animate.with_untracked(|a| a.hint_video.clone()) {
            Some(pick) => Some(read(&pick, &times).await?.0),
            None => None,
        },
        false => None,
    };
    let hint_size = hint.as_ref().map(|(w, h, _)| ImageSize {
        width: *w,
        height: *h,
    });
    let (multiple, control, tokens) = studio.with_untracked(|s| {
        let control = s.control.video_job(hint_size)?;
        Ok::<_, String>((s.size_multiple(), control, s.heatmap_request()))
    })?;
    let frames = crate::animate::VideoFrames {
        width,
        height,
        indices,
        rgb,
    };
    let mut result = Err(String::new());
    animate.update(|a| {
        a.heatmap_tokens = tokens;
        let frames = (&frames, multiple);
        result = a.start_video(&project, id, browser::random_seed(), frames, control)
    });
    let message = result?;
    let blobs = [Some(&frames.rgb), hint.as_ref().map(|(_, _, rgb)| rgb)]
        .into_iter()
        .flatten()
        .map(|rgb| browser::bytes_blob(rgb).ok_or("the frames could not be sent"))
        .collect::<Result<Vec<_>, _>>()?;
    shared.send_with(&message, &blobs);
    Ok(())
}

type Frames = ((u32, u32, Vec<u8>), &'static str);

/// The frames of `pick` at `times`, and what read them.
async fn read(pick: &VideoPick, times: &[f64]) -> Result<Frames, String> {
    browser::video_frames(&pick.bytes, &pick.mime, times)
        .await
        .map_err(|e| format!("{}: {e}", pick.name))
}
