//! The app shell: header, routes, the update banner, and the state shared by the pages.

use keyshift_core::share::Project;
use keyshift_web::protocol::{FromWorker, Stage, ToWorker};
use keyshift_web::worker::WorkerHandle;
use leptos::prelude::*;
use leptos_router::components::{A, Route, Router, Routes};
use leptos_router::path;

use crate::animate::Animate;
use crate::browser;
use crate::pages::{ProjectPage, SystemPage};
use crate::parseq::ParseqEditor;
use crate::parseq_audio::AudioView;
use crate::state::{self, LinkNotice, WorkerView};
use crate::studio::Studio;

/// Where the worker's loader script is, when the build did not say (development builds).
const DEFAULT_WORKER_URL: &str = "/worker.js";

/// State shared by every page, provided as context.
#[derive(Clone, Copy)]
pub struct Shared {
    /// The project being edited.
    pub project: RwSignal<Project>,
    /// What to tell the user about the link the page was opened with.
    pub link_notice: RwSignal<Option<LinkNotice>>,
    /// What the compute worker reported.
    pub worker: RwSignal<WorkerView>,
    /// The generation workspace.
    pub studio: RwSignal<Studio>,
    /// The Animate workspace.
    pub animate: RwSignal<Animate>,
    /// The Parseq editor (opened from the project's document when the Parseq mode shows).
    pub parseq: RwSignal<Option<ParseqEditor>, LocalStorage>,
    /// The Parseq audio reference and its analysis.
    pub audio: RwSignal<AudioView>,
    /// The worker itself (not `Send`, so stored locally).
    worker_handle: Handle,
}

impl Shared {
    /// Sends a message to the worker (an img2img job with its init image attached).
    pub fn send(&self, message: &ToWorker) {
        send_job(self.worker_handle, self.studio, message);
    }

    /// Sends a message with local files attached (passed by reference, not copied).
    pub fn send_with(&self, message: &ToWorker, files: &[web_sys::Blob]) {
        self.worker_handle.with_value(|h| match h {
            Some(h) => {
                if let Err(e) = h.send_with(message, files) {
                    tracing::warn!("could not reach the worker: {e:?}");
                }
            }
            None => tracing::warn!("no worker to send to"),
        });
    }

    /// Asks the worker to run its self-test again.
    pub fn rerun_self_test(&self) {
        self.worker.update(|w| {
            w.running = true;
            w.failure = None;
        });
        self.worker_handle.with_value(|h| {
            if let Some(h) = h
                && let Err(e) = h.send(&ToWorker::RunSelfTest)
            {
                tracing::warn!("could not reach the worker: {e:?}");
            }
        });
    }
}

type Handle = StoredValue<Option<WorkerHandle>, LocalStorage>;

/// The workspaces that follow the worker's messages.
#[derive(Clone, Copy)]
struct Views {
    worker: RwSignal<WorkerView>,
    studio: RwSignal<Studio>,
    animate: RwSignal<Animate>,
    audio: RwSignal<AudioView>,
}

impl Views {
    /// Folds a message into every workspace and sends what they ask for next.
    fn deliver(self, handle: Handle, message: &FromWorker) {
        if matches!(message, FromWorker::AudioAnalysed { .. }) {
            self.audio.update(|a| a.apply(message));
            return;
        }
        let mut next = None;
        self.studio.update(|s| next = s.apply(message));
        if let Some(next) = next {
            send_job(handle, self.studio, &next);
        }
        let mut next = None;
        let mut stale = Vec::new();
        self.animate.update(|a| {
            next = a.apply(message, &mut browser::object_url);
            stale = a.take_stale_urls();
        });
        stale.iter().for_each(|url| browser::revoke_url(url));
        if let Some(next) = next {
            send(handle, &next);
        }
    }
}

/// Sends `message`; a Generate job goes with its images' RGB bytes attached (Blobs, not copied
/// into the message): the init image first, the ControlNet's control image last.
fn send_job(handle: Handle, studio: RwSignal<Studio>, message: &ToWorker) {
    let blobs: Vec<web_sys::Blob> = match message {
        ToWorker::Generate { job } => studio.with_untracked(|s| {
            let init = s.init.as_ref().filter(|_| job.init.is_some());
            let control = s
                .control
                .image
                .as_ref()
                .filter(|_| job.control.as_ref().is_some_and(|c| c.image.is_some()));
            [init, control]
                .into_iter()
                .flatten()
                .filter_map(|i| browser::bytes_blob(&i.rgb))
                .collect()
        }),
        _ => Vec::new(),
    };
    if blobs.is_empty() {
        return send(handle, message);
    }
    handle.with_value(|h| {
        if let Some(h) = h
            && let Err(e) = h.send_with(message, &blobs)
        {
            tracing::warn!("could not reach the worker: {e:?}");
        }
    });
}

fn send(handle: Handle, message: &ToWorker) {
    handle.with_value(|h| match h {
        Some(h) => {
            if let Err(e) = h.send(message) {
                tracing::warn!("could not reach the worker: {e:?}");
            }
        }
        None => tracing::warn!("no worker to send to"),
    });
}

fn spawn_worker(views: Views, handle: Handle) {
    let url = browser::meta("keyshift-worker").unwrap_or_else(|| DEFAULT_WORKER_URL.to_owned());
    let view = views.worker;
    let on_message = move |message: Result<FromWorker, _>| {
        if let Ok(m) = &message
            && view.with_untracked(|v| v.is_crash(m))
        {
            crashed(views, handle, m);
            return;
        }
        if let Ok(m) = &message {
            views.deliver(handle, m);
        }
        view.update(|v| v.apply(message));
    };
    match WorkerHandle::spawn(&url, on_message) {
        Ok(worker) => {
            handle.set_value(Some(worker));
            // The frame store: an interrupted render shows again, ready to resume.
            send(handle, &ToWorker::ListRenders);
        }
        Err(e) => {
            view.update(|v| {
                v.apply(Ok(FromWorker::Failed {
                    stage: Stage::Load,
                    message: format!("{e:?}"),
                }));
            });
        }
    }
}

/// The worker stopped working: fail what depended on it and start a fresh one (once, however
/// many messages the old one sends about it).
fn crashed(views: Views, handle: Handle, m: &FromWorker) {
    let view = views.worker;
    if view.with_untracked(|v| v.crashed) {
        return;
    }
    view.update(|v| v.crashed = true);
    let message = match m {
        FromWorker::Failed { message, .. } => message.clone(),
        _ => String::new(),
    };
    tracing::warn!("the compute worker stopped: {message}");
    views.deliver(
        handle,
        &FromWorker::Failed {
            stage: Stage::Crashed,
            message,
        },
    );
    // Not from inside the old worker's own callback: its closures are dropped with it.
    leptos::task::spawn_local(async move {
        handle.set_value(None);
        view.set(WorkerView::spawned());
        spawn_worker(views, handle);
    });
}

/// The root component.
#[component]
pub fn App() -> impl IntoView {
    let (mut project, mut notice) =
        state::start_project(&browser::fragment(), browser::autosaved().as_deref());
    // A Parseq link (`?parseq=<document>`, as Parseq's own) opens its document.
    if let Some(text) = browser::query_param("parseq") {
        notice = Some(crate::parseq::open_query_document(&mut project, &text));
        browser::drop_query();
        browser::replace_fragment(&state::link_fragment(&project));
    }
    let views = Views {
        worker: RwSignal::new(WorkerView::spawned()),
        studio: RwSignal::new(Studio::default()),
        animate: RwSignal::new(Animate::default()),
        audio: RwSignal::new(AudioView::default()),
    };
    let worker_handle = StoredValue::new_local(None);
    spawn_worker(views, worker_handle);
    let shared = Shared {
        project: RwSignal::new(project),
        link_notice: RwSignal::new(notice),
        worker: views.worker,
        studio: views.studio,
        animate: views.animate,
        parseq: RwSignal::new_local(None),
        audio: views.audio,
        worker_handle,
    };
    provide_context(shared);
    let studio = views.studio;
    Effect::new(move || browser::set_title(&studio.with(|s| s.title("Keyshift"))));
    // Autosave: the project as its share link, on every change.
    let project = shared.project;
    Effect::new(move || browser::autosave(&state::link_fragment(&project.get())));
    view! {
        <Router>
            <Header/>
            <UpdateBanner/>
            <main class="page">
                <Routes fallback=NotFound>
                    <Route path=path!("/") view=ProjectPage/>
                    <Route path=path!("/system") view=SystemPage/>
                </Routes>
            </main>
        </Router>
    }
}

#[component]
fn Header() -> impl IntoView {
    view! {
        <header class="top">
            <span class="brand" data-testid="brand">"Keyshift"</span>
            <nav class="tabs">
                <A href="/" exact=true attr:data-testid="nav-project">"Project"</A>
                <A href="/system" attr:data-testid="nav-system">"System"</A>
            </nav>
        </header>
    }
}

#[component]
fn UpdateBanner() -> impl IntoView {
    let available = RwSignal::new(browser::update_waiting());
    browser::on_update_available(move || available.set(true));
    view! {
        <Show when=move || available.get()>
            <div class="banner info" role="status" data-testid="update-banner">
                <span>"A new version of Keyshift is available."</span>
                <button data-testid="update-reload" on:click=|_| browser::apply_update()>
                    "Reload"
                </button>
                <button class="ghost" on:click=move |_| available.set(false)>"Later"</button>
            </div>
        </Show>
    }
}

#[component]
fn NotFound() -> impl IntoView {
    view! {
        <section class="card">
            <h1>"Page not found"</h1>
            <p>"This address is not a Keyshift page. " <A href="/">"Open the project"</A> "."</p>
        </section>
    }
}
