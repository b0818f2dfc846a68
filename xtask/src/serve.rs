//! A small static file server for `dist/` on 127.0.0.1: correct MIME types (wasm streaming needs
//! `application/wasm`), the Content-Security-Policy as a header (workers take theirs from it), SPA
//! fallback to `index.html` for page routes, and long caching for content-hashed files. It also
//! serves the tiny test model under `/fixtures/tiny-sd1/`, its previewer under
//! `/fixtures/taesd-tiny-x2/` (and the 8× `taesd-tiny/`) and its ControlNet under `/fixtures/tiny-controlnet/` (the app
//! offers them on this machine),
//! answers `Range` requests (downloads resume), and counts requests per path at `/__requests`
//! (the end-to-end tests check that a cached model is not fetched again). `/__tamper/on` makes it
//! serve the tiny model's UNet weights with one byte changed (a download that does not match its
//! pinned SHA-256) until `/__tamper/off`. `/__drop/on` cuts every slow transfer ([`SLOW`]) at its
//! next chunk, as a network that drops would, until `/__drop/off`.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// Where a damaged copy of the tiny model is served: its weights files cut in half.
const TRUNCATED: &str = "/fixtures/tiny-sd1-truncated/";
/// Where a slow copy of the tiny model is served: weights trickle out at about 400 KB/s, so a
/// download can be interrupted (the end-to-end tests reload the page mid-download).
const SLOW: &str = "/fixtures/tiny-sd1-slow/";
/// Bytes written between pauses for [`SLOW`], and the pause.
const SLOW_CHUNK: usize = 16 * 1024;
const SLOW_PAUSE: std::time::Duration = std::time::Duration::from_millis(40);
/// The file `/__tamper/on` changes.
const TAMPERED: &str = "/fixtures/tiny-sd1/diffusers/unet/diffusion_pytorch_model.safetensors";

/// What is served: the built site, and the repository's fixtures folder.
#[derive(Debug, Clone)]
pub struct Site {
    /// The built site.
    pub dist: PathBuf,
    /// The repository's `fixtures/` folder; only `tiny-sd1/`, `taesd-tiny/`, `taesd-tiny-x2/` and
    /// `tiny-controlnet/` inside it are served.
    pub fixtures: PathBuf,
    requests: Arc<Mutex<BTreeMap<String, u64>>>,
    tamper: Arc<AtomicBool>,
    drop: Arc<AtomicBool>,
}

impl Site {
    /// Serves `dist`, `fixtures/tiny-sd1` under `/fixtures/tiny-sd1/` and `fixtures/taesd-tiny`
    /// under `/fixtures/taesd-tiny/`.
    pub fn new(dist: PathBuf, fixtures: PathBuf) -> Self {
        Self {
            dist,
            fixtures,
            requests: Arc::default(),
            tamper: Arc::default(),
            drop: Arc::default(),
        }
    }

    fn count(&self, path: &str) {
        if let Ok(mut requests) = self.requests.lock() {
            *requests.entry(path.to_owned()).or_default() += 1;
        }
    }

    fn counts_json(&self) -> String {
        let requests = self.requests.lock().map(|r| r.clone()).unwrap_or_default();
        serde_json::to_string(&requests).unwrap_or_default()
    }

    /// The file for a URL path.
    pub fn resolve(&self, url_path: &str) -> Option<PathBuf> {
        let tiny = self.fixtures.join("tiny-sd1");
        if let Some(rest) = url_path.strip_prefix("/fixtures/tiny-sd1/") {
            return resolve_file(&tiny, rest);
        }
        if let Some(rest) = url_path
            .strip_prefix(TRUNCATED)
            .or_else(|| url_path.strip_prefix(SLOW))
        {
            return resolve_file(&tiny, rest);
        }
        for served in ["taesd-tiny", "taesd-tiny-x2", "tiny-controlnet"] {
            if let Some(rest) = url_path.strip_prefix(&format!("/fixtures/{served}/")) {
                return resolve_file(&self.fixtures.join(served), rest);
            }
        }
        resolve(&self.dist, url_path)
    }

    /// The body for a URL path: the file, or for the damaged copy of the tiny model the first
    /// half of each weights file (the end-to-end tests load it to see the error).
    fn body(&self, url_path: &str, file: &Path) -> std::io::Result<Vec<u8>> {
        let mut body = std::fs::read(file)?;
        if url_path.starts_with(TRUNCATED) && url_path.ends_with(".safetensors") {
            body.truncate(body.len() / 2);
        }
        if url_path == TAMPERED
            && self.tamper.load(Ordering::SeqCst)
            && let Some(last) = body.last_mut()
        {
            *last ^= 0x40;
        }
        Ok(body)
    }
}

/// The policy the app runs under; index.html carries the same one in a meta tag.
pub const CSP: &str = "default-src 'self'; script-src 'self' 'wasm-unsafe-eval' 'report-sample'; \
     style-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; font-src 'self'; worker-src 'self'; \
     manifest-src 'self'; connect-src 'self' https://huggingface.co https://*.huggingface.co \
     https://*.hf.co; object-src 'none'; base-uri 'self'; form-action 'none'; \
     require-trusted-types-for 'script'; trusted-types keyshift default";

/// A server running in a background thread.
pub struct Running {
    /// The port it listens on.
    pub port: u16,
}

/// Starts serving `dist` on 127.0.0.1:`port` (0 = any free port) in a background thread.
pub fn spawn(site: &Site, port: u16) -> Result<Running, String> {
    let listener = TcpListener::bind(("127.0.0.1", port)).map_err(|e| format!("binding: {e}"))?;
    let port = listener
        .local_addr()
        .map_err(|e| format!("local address: {e}"))?
        .port();
    let site = site.clone();
    std::thread::spawn(move || accept_loop(&listener, &site));
    Ok(Running { port })
}

/// Serves `site` on 127.0.0.1:`port` until the process is stopped.
pub fn serve_forever(site: &Site, port: u16) -> Result<(), String> {
    let listener = TcpListener::bind(("127.0.0.1", port))
        .map_err(|e| format!("binding 127.0.0.1:{port}: {e}"))?;
    println!(
        "xtask: serving {} at http://127.0.0.1:{port}/ (Ctrl+C stops)",
        site.dist.display()
    );
    accept_loop(&listener, site);
    Ok(())
}

fn accept_loop(listener: &TcpListener, site: &Site) {
    for stream in listener.incoming().flatten() {
        let site = site.clone();
        std::thread::spawn(move || {
            // A client that hangs up mid-response is not our problem.
            let _ = handle(stream, &site);
        });
    }
}

/// `bytes=START-` or `bytes=START-END` → the byte range within `len`.
pub fn parse_range(value: &str, len: usize) -> Option<(usize, usize)> {
    let spec = value.trim().strip_prefix("bytes=")?;
    let (start, end) = spec.split_once('-')?;
    let start: usize = start.trim().parse().ok()?;
    let end = match end.trim() {
        "" => len.checked_sub(1)?,
        e => e.parse::<usize>().ok()?.min(len.checked_sub(1)?),
    };
    (start <= end && end < len).then_some((start, end + 1))
}

fn handle(mut stream: TcpStream, site: &Site) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let mut range = None;
    let mut line = String::new();
    while reader.read_line(&mut line)? > 2 {
        if let Some((name, value)) = line.split_once(':')
            && name.trim().eq_ignore_ascii_case("range")
        {
            range = Some(value.trim().to_owned());
        }
        line.clear();
    }
    let mut parts = request_line.split_whitespace();
    let method = parts.next().unwrap_or_default();
    let target = parts.next().unwrap_or("/");
    if method != "GET" && method != "HEAD" {
        return respond(
            &mut stream,
            "405 Method Not Allowed",
            "text/plain",
            b"",
            true,
        );
    }
    let path = target.split(['?', '#']).next().unwrap_or("/");
    if let Some((switch, on)) = match path {
        "/__tamper/on" => Some((&site.tamper, true)),
        "/__tamper/off" => Some((&site.tamper, false)),
        "/__drop/on" => Some((&site.drop, true)),
        "/__drop/off" => Some((&site.drop, false)),
        _ => None,
    } {
        switch.store(on, Ordering::SeqCst);
        return respond(&mut stream, "200 OK", "text/plain", b"ok", method == "HEAD");
    }
    if path == "/__requests" {
        let body = site.counts_json();
        return respond(
            &mut stream,
            "200 OK",
            "application/json",
            body.as_bytes(),
            method == "HEAD",
        );
    }
    site.count(path);
    if let Some(range) = &range {
        // Resumed downloads show up as `range <path> bytes=N-`.
        site.count(&format!("range {path} {range}"));
    }
    match site.resolve(path) {
        Some(file) => {
            let body = site.body(path, &file)?;
            let cache = cache_control(&file);
            let head = method == "HEAD";
            let slow = (path.starts_with(SLOW) && path.ends_with(".safetensors"))
                .then_some(site.drop.as_ref());
            match range.and_then(|r| parse_range(&r, body.len())) {
                Some((start, end)) => {
                    let content_range = format!("bytes {start}-{}/{}", end - 1, body.len());
                    let extra = format!("Content-Range: {content_range}\r\n");
                    let reply = Reply {
                        status: "206 Partial Content",
                        mime: mime(&file),
                        cache,
                        extra_headers: &extra,
                        slow,
                    };
                    reply.write(&mut stream, &body[start..end], head)
                }
                None => Reply {
                    status: "200 OK",
                    mime: mime(&file),
                    cache,
                    extra_headers: "",
                    slow,
                }
                .write(&mut stream, &body, head),
            }
        }
        None => respond(
            &mut stream,
            "404 Not Found",
            "text/plain",
            b"not found",
            method == "HEAD",
        ),
    }
}

/// A file under `root` (no escapes out of it).
fn resolve_file(root: &Path, relative: &str) -> Option<PathBuf> {
    let relative = Path::new(relative.trim_start_matches('/'));
    if relative
        .components()
        .any(|c| !matches!(c, Component::Normal(_)))
    {
        return None;
    }
    Some(root.join(relative)).filter(|p| p.is_file())
}

/// The file for a URL path: the file itself, or index.html for page routes (no extension).
pub fn resolve(dist: &Path, url_path: &str) -> Option<PathBuf> {
    let decoded = url_path.trim_start_matches('/');
    let relative = Path::new(decoded);
    if relative
        .components()
        .any(|c| !matches!(c, Component::Normal(_)))
    {
        return None;
    }
    if let Some(file) = resolve_file(dist, decoded) {
        return Some(file);
    }
    let is_page_route = relative.extension().is_none();
    is_page_route
        .then(|| dist.join("index.html"))
        .filter(|p| p.is_file())
}

fn mime(file: &Path) -> &'static str {
    match file
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or_default()
    {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "wasm" => "application/wasm",
        "css" => "text/css; charset=utf-8",
        "json" => "application/json",
        "webmanifest" => "application/manifest+json",
        "png" => "image/png",
        "svg" => "image/svg+xml",
        "safetensors" => "application/octet-stream",
        _ => "application/octet-stream",
    }
}

/// Hashed names (`name-<12 hex>.ext`) never change content: cache them for a year.
fn cache_control(file: &Path) -> &'static str {
    let stem = file
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default();
    let hashed = stem
        .rsplit_once('-')
        .is_some_and(|(_, h)| h.len() == 12 && h.bytes().all(|b| b.is_ascii_hexdigit()));
    if hashed {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    }
}

fn respond(
    stream: &mut TcpStream,
    status: &str,
    mime: &str,
    body: &[u8],
    head: bool,
) -> std::io::Result<()> {
    write_response(stream, status, mime, "no-cache", body, head)
}

fn write_response(
    stream: &mut TcpStream,
    status: &str,
    mime: &str,
    cache: &str,
    body: &[u8],
    head: bool,
) -> std::io::Result<()> {
    Reply {
        status,
        mime,
        cache,
        extra_headers: "",
        slow: None,
    }
    .write(stream, body, head)
}

/// A response's status and headers, and whether its body trickles out ([`SLOW`]): then the
/// switch that cuts it.
struct Reply<'a> {
    status: &'a str,
    mime: &'a str,
    cache: &'a str,
    extra_headers: &'a str,
    slow: Option<&'a AtomicBool>,
}

impl Reply<'_> {
    fn write(&self, stream: &mut TcpStream, body: &[u8], head: bool) -> std::io::Result<()> {
        let header = format!(
            "HTTP/1.1 {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n\
             Cache-Control: {}\r\nContent-Security-Policy: {CSP}\r\n\
             Accept-Ranges: bytes\r\n{}\
             X-Content-Type-Options: nosniff\r\nConnection: close\r\n\r\n",
            self.status,
            self.mime,
            body.len(),
            self.cache,
            self.extra_headers
        );
        stream.write_all(header.as_bytes())?;
        if head {
            return stream.flush();
        }
        if let Some(cut) = self.slow {
            for chunk in body.chunks(SLOW_CHUNK) {
                if cut.load(Ordering::SeqCst) {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::ConnectionAborted,
                        "the transfer was cut (/__drop/on)",
                    ));
                }
                stream.write_all(chunk)?;
                stream.flush()?;
                std::thread::sleep(SLOW_PAUSE);
            }
        } else {
            stream.write_all(body)?;
        }
        stream.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_resolve_to_files_routes_fall_back_and_escapes_are_refused() {
        let dir = std::env::temp_dir().join(format!("xtask-serve-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("icons")).expect("dir");
        std::fs::write(dir.join("index.html"), "i").expect("write");
        std::fs::write(dir.join("icons/a.png"), "p").expect("write");
        assert_eq!(resolve(&dir, "/icons/a.png"), Some(dir.join("icons/a.png")));
        assert_eq!(resolve(&dir, "/"), Some(dir.join("index.html")));
        assert_eq!(resolve(&dir, "/system"), Some(dir.join("index.html")));
        assert_eq!(resolve(&dir, "/missing.js"), None);
        assert_eq!(resolve(&dir, "/../etc/passwd"), None);
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }

    #[test]
    fn the_tiny_fixture_is_served_beside_the_site() {
        // Cargo sets the variable when it runs the test, also for a binary it built elsewhere.
        let manifest = std::env::var_os("CARGO_MANIFEST_DIR")
            .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from);
        let root = manifest.join("..");
        let site = Site::new(root.join("dist-none"), root.join("fixtures"));
        let unet = site.resolve("/fixtures/tiny-sd1/diffusers/unet/config.json");
        assert_eq!(
            unet,
            Some(root.join("fixtures/tiny-sd1/diffusers/unet/config.json"))
        );
        assert_eq!(site.resolve("/fixtures/tiny-sd1/../../Cargo.toml"), None);
        let damaged =
            "/fixtures/tiny-sd1-truncated/diffusers/vae/diffusion_pytorch_model.safetensors";
        let file = site.resolve(damaged).expect("served");
        let whole = std::fs::read(&file).expect("read").len();
        assert_eq!(site.body(damaged, &file).expect("body").len(), whole / 2);
        let unet = site.resolve(TAMPERED).expect("served");
        let good = site.body(TAMPERED, &unet).expect("body");
        site.tamper.store(true, Ordering::SeqCst);
        let bad = site.body(TAMPERED, &unet).expect("body");
        assert_eq!(good.len(), bad.len());
        assert_eq!(good.iter().zip(&bad).filter(|(a, b)| a != b).count(), 1);
        site.tamper.store(false, Ordering::SeqCst);
        assert_eq!(site.body(TAMPERED, &unet).expect("body"), good);
        assert_eq!(
            site.resolve("/fixtures/taesd-tiny/config.json"),
            Some(root.join("fixtures/taesd-tiny/config.json"))
        );
        assert_eq!(
            site.resolve("/fixtures/taesd-tiny-x2/config.json"),
            Some(root.join("fixtures/taesd-tiny-x2/config.json"))
        );
        assert_eq!(
            site.resolve("/fixtures/tiny-controlnet/diffusers/config.json"),
            Some(root.join("fixtures/tiny-controlnet/diffusers/config.json"))
        );
        assert_eq!(site.resolve("/fixtures/tiny-sd2-v/README.md"), None);
    }

    #[test]
    fn ranges_resume_from_a_byte() {
        assert_eq!(parse_range("bytes=10-", 100), Some((10, 100)));
        assert_eq!(parse_range("bytes=10-19", 100), Some((10, 20)));
        assert_eq!(parse_range("bytes=10-500", 100), Some((10, 100)));
        assert_eq!(parse_range("bytes=100-", 100), None);
        assert_eq!(parse_range("items=1-2", 100), None);
    }

    #[test]
    fn only_hashed_names_are_cached_for_long() {
        assert_eq!(
            cache_control(Path::new("app-0123456789ab.js")),
            "public, max-age=31536000, immutable"
        );
        assert_eq!(
            cache_control(Path::new("app_bg-0123456789ab.wasm")),
            "public, max-age=31536000, immutable"
        );
        assert_eq!(cache_control(Path::new("sw.js")), "no-cache");
        assert_eq!(cache_control(Path::new("index.html")), "no-cache");
    }
}
