//! The app shell: header, routes, the update banner, and the state shared by the pages.

use keyshift_core::share::Project;
use keyshift_web::protocol::{FromWorker, Stage, ToWorker};
use keyshift_web::worker::WorkerHandle;
use leptos::prelude::*;
use leptos_router::components::{A, Route, Router, Routes};
use leptos_router::path;

use crate::browser;
use crate::pages::{ProjectPage, SystemPage};
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
    /// The worker itself (not `Send`, so stored locally).
    worker_handle: Handle,
}

impl Shared {
    /// Sends a message to the worker.
    pub fn send(&self, message: &ToWorker) {
        send(self.worker_handle, message);
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

fn spawn_worker(view: RwSignal<WorkerView>, studio: RwSignal<Studio>, handle: Handle) {
    let url = browser::meta("keyshift-worker").unwrap_or_else(|| DEFAULT_WORKER_URL.to_owned());
    let on_message = move |message: Result<FromWorker, _>| {
        if let Ok(m) = &message
            && view.with_untracked(|v| v.is_crash(m))
        {
            crashed(view, studio, handle, m);
            return;
        }
        if let Ok(m) = &message {
            let mut next = None;
            studio.update(|s| next = s.apply(m));
            if let Some(next) = next {
                send(handle, &next);
            }
        }
        view.update(|v| v.apply(message));
    };
    match WorkerHandle::spawn(&url, on_message) {
        Ok(worker) => handle.set_value(Some(worker)),
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
fn crashed(view: RwSignal<WorkerView>, studio: RwSignal<Studio>, handle: Handle, m: &FromWorker) {
    if view.with_untracked(|v| v.crashed) {
        return;
    }
    view.update(|v| v.crashed = true);
    let message = match m {
        FromWorker::Failed { message, .. } => message.clone(),
        _ => String::new(),
    };
    tracing::warn!("the compute worker stopped: {message}");
    studio.update(|s| {
        s.apply(&FromWorker::Failed {
            stage: Stage::Crashed,
            message,
        });
    });
    // Not from inside the old worker's own callback: its closures are dropped with it.
    leptos::task::spawn_local(async move {
        handle.set_value(None);
        view.set(WorkerView::spawned());
        spawn_worker(view, studio, handle);
    });
}

/// The root component.
#[component]
pub fn App() -> impl IntoView {
    let (project, notice) = state::open_link(&browser::fragment());
    let worker = RwSignal::new(WorkerView::spawned());
    let studio = RwSignal::new(Studio::default());
    let worker_handle = StoredValue::new_local(None);
    spawn_worker(worker, studio, worker_handle);
    let shared = Shared {
        project: RwSignal::new(project),
        link_notice: RwSignal::new(notice),
        worker,
        studio,
        worker_handle,
    };
    provide_context(shared);
    Effect::new(move || browser::set_title(&studio.with(|s| s.title("Keyshift"))));
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
