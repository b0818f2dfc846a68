//! A small static file server for `dist/` on 127.0.0.1: correct MIME types (wasm streaming needs
//! `application/wasm`), the Content-Security-Policy as a header (workers take theirs from it), SPA
//! fallback to `index.html` for page routes, and long caching for content-hashed files.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Component, Path, PathBuf};

/// The policy the app runs under; index.html carries the same one in a meta tag.
pub const CSP: &str = "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; \
     style-src 'self'; img-src 'self' data: blob:; font-src 'self'; worker-src 'self'; \
     manifest-src 'self'; connect-src 'self' https://huggingface.co https://*.huggingface.co \
     https://*.hf.co; object-src 'none'; base-uri 'self'; form-action 'none'";

/// A server running in a background thread.
pub struct Running {
    /// The port it listens on.
    pub port: u16,
}

/// Starts serving `dist` on 127.0.0.1:`port` (0 = any free port) in a background thread.
pub fn spawn(dist: &Path, port: u16) -> Result<Running, String> {
    let listener = TcpListener::bind(("127.0.0.1", port)).map_err(|e| format!("binding: {e}"))?;
    let port = listener
        .local_addr()
        .map_err(|e| format!("local address: {e}"))?
        .port();
    let dist = dist.to_path_buf();
    std::thread::spawn(move || accept_loop(&listener, &dist));
    Ok(Running { port })
}

/// Serves `dist` on 127.0.0.1:`port` until the process is stopped.
pub fn serve_forever(dist: &Path, port: u16) -> Result<(), String> {
    let listener = TcpListener::bind(("127.0.0.1", port))
        .map_err(|e| format!("binding 127.0.0.1:{port}: {e}"))?;
    println!(
        "xtask: serving {} at http://127.0.0.1:{port}/ (Ctrl+C stops)",
        dist.display()
    );
    accept_loop(&listener, dist);
    Ok(())
}

fn accept_loop(listener: &TcpListener, dist: &Path) {
    for stream in listener.incoming().flatten() {
        let dist = dist.to_path_buf();
        std::thread::spawn(move || {
            // A client that hangs up mid-response is not our problem.
            let _ = handle(stream, &dist);
        });
    }
}

fn handle(mut stream: TcpStream, dist: &Path) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    // Drain the headers.
    let mut line = String::new();
    while reader.read_line(&mut line)? > 2 {
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
    match resolve(dist, path) {
        Some(file) => {
            let body = std::fs::read(&file)?;
            let cache = cache_control(&file);
            write_response(
                &mut stream,
                "200 OK",
                mime(&file),
                cache,
                &body,
                method == "HEAD",
            )
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
    let candidate = dist.join(relative);
    if candidate.is_file() {
        return Some(candidate);
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
    let header = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {mime}\r\nContent-Length: {}\r\n\
         Cache-Control: {cache}\r\nContent-Security-Policy: {CSP}\r\n\
         X-Content-Type-Options: nosniff\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(header.as_bytes())?;
    if !head {
        stream.write_all(body)?;
    }
    stream.flush()
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
