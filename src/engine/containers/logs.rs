//! `GET /containers/{id}/logs`: read the json-file log the monitor writes (with its rotated
//! files), filter by stream, time and tail, and follow it while the container runs.

use std::fs::File;
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use crate::util::time::parse_rfc3339;

use super::super::{Engine, EngineError, ErrorKind, Result};
use super::resolve;
use super::state::{State, current};

#[derive(Clone, Default)]
pub struct LogOptions {
    pub stdout: bool,
    pub stderr: bool,
    pub since: Option<i64>,
    pub until: Option<i64>,
    /// Last N entries; None = all.
    pub tail: Option<usize>,
    pub timestamps: bool,
    pub follow: bool,
    /// Says whether the client has left, so a quiet follow ends too.
    pub gone: Option<std::sync::Arc<dyn Fn() -> bool + Send + Sync>>,
}

/// One log entry: stream (1 stdout, 2 stderr), time, text.
pub struct Entry {
    pub stream: u8,
    pub time: i64,
    pub text: Vec<u8>,
}

/// What the API needs before streaming: is the output raw (TTY) or multiplexed.
pub struct LogSource {
    pub id: String,
    pub tty: bool,
    path: PathBuf,
    max_file: usize,
}

/// Resolve the container and check its log can be read (errors come before any byte is sent).
pub fn open(engine: &Engine, name: &str, opts: &LogOptions) -> Result<LogSource> {
    if !opts.stdout && !opts.stderr {
        return Err(EngineError::invalid(
            "Bad parameters: you must choose at least one stream",
        ));
    }
    let row = engine.store()?.read(|tx| resolve(tx, name))?;
    let log = super::log_settings(&row.host_config());
    if log.driver == "none" {
        return Err(EngineError::new(
            ErrorKind::NotImplemented,
            "configured logging driver does not support reading",
        ));
    }
    Ok(LogSource {
        tty: row.config().tty,
        path: super::log_path(engine, &row.id),
        id: row.id,
        max_file: log.max_file,
    })
}

fn parse_line(line: &[u8]) -> Option<Entry> {
    let v: Value = serde_json::from_slice(line).ok()?;
    let stream = match v.get("stream").and_then(Value::as_str) {
        Some("stderr") => 2,
        _ => 1,
    };
    let time = v
        .get("time")
        .and_then(Value::as_str)
        .and_then(parse_rfc3339)
        .unwrap_or(0);
    let text = v.get("log").and_then(Value::as_str)?.as_bytes().to_vec();
    Some(Entry { stream, time, text })
}

/// Docker's log timestamp: nine fixed fraction digits.
pub fn timestamp(nanos: i64) -> String {
    let secs = nanos.div_euclid(1_000_000_000);
    let frac = nanos.rem_euclid(1_000_000_000);
    let base = jiff::Timestamp::from_second(secs)
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%S").to_string())
        .unwrap_or_default();
    format!("{base}.{frac:09}Z")
}

fn wanted(opts: &LogOptions, e: &Entry) -> bool {
    (e.stream == 1 && opts.stdout || e.stream == 2 && opts.stderr)
        && opts.since.is_none_or(|s| e.time >= s)
}

/// Send every selected entry to `emit`; with `follow`, keep going until the container stops.
/// `emit(None)` says "flush now": after the backlog and after each burst while following, so
/// a large log goes out in large chunks and a followed one without delay. `emit` returning an
/// error (the client left) ends it quietly.
pub fn stream(
    engine: &Engine,
    src: &LogSource,
    opts: &LogOptions,
    emit: &mut dyn FnMut(Option<&Entry>) -> std::io::Result<()>,
) -> Result<()> {
    // Older rotated files first.
    // Rotated files are numbered from 1 without gaps: stop at the first missing one (a
    // max-file of billions must not mean billions of lookups).
    let mut files: Vec<PathBuf> = (1..src.max_file.max(1))
        .map(|i| PathBuf::from(format!("{}.{i}", src.path.display())))
        .take_while(|p| p.exists())
        .collect();
    files.reverse();
    files.push(src.path.clone());
    // Entries are sent as they are read, so memory stays flat whatever the log's size; for
    // `tail`, a first pass counts the selected entries to know how many to skip (a ring of
    // `tail` entries would hold the whole log for a large `tail`). Both passes read the same
    // open files, so a rotation in between cannot shift what is skipped.
    let mut open: Vec<File> = files.iter().filter_map(|f| File::open(f).ok()).collect();
    let skip = match opts.tail {
        None => 0,
        Some(0) => usize::MAX,
        Some(n) => {
            let mut count = 0usize;
            for_each_entry(&mut open, opts, &mut |_| {
                count += 1;
                true
            });
            for f in &mut open {
                f.seek(SeekFrom::Start(0))?;
            }
            count.saturating_sub(n)
        }
    };
    let mut seen = 0usize;
    let mut ended = false;
    if skip != usize::MAX {
        for_each_entry(&mut open, opts, &mut |e| {
            seen += 1;
            if seen <= skip {
                return true;
            }
            if opts.until.is_some_and(|u| e.time > u) || emit(Some(e)).is_err() {
                ended = true;
                return false;
            }
            true
        });
    }
    if emit(None).is_err() || ended {
        return Ok(());
    }
    if !opts.follow {
        return Ok(());
    }
    follow(engine, src, opts, emit)
}

fn running(engine: &Engine, id: &str) -> bool {
    let stored = engine
        .store()
        .and_then(|mut s| {
            s.read(|tx| {
                Ok::<_, EngineError>(
                    crate::store::containers::get(tx, id)?
                        .map(|r| State::parse(&r.state))
                        .unwrap_or_default(),
                )
            })
        })
        .unwrap_or_default();
    current(engine.paths(), id, &stored).is_running()
}

/// Call `f` with each selected entry of `files` in order, until it returns false.
fn for_each_entry(files: &mut [File], opts: &LogOptions, f: &mut dyn FnMut(&Entry) -> bool) {
    for file in files {
        for line in BufReader::new(file).split(b'\n').map_while(|l| l.ok()) {
            let Some(e) = parse_line(&line) else { continue };
            if wanted(opts, &e) && !f(&e) {
                return;
            }
        }
    }
}

/// Tail the current file from its end, across rotations, until the container stops.
fn follow(
    engine: &Engine,
    src: &LogSource,
    opts: &LogOptions,
    emit: &mut dyn FnMut(Option<&Entry>) -> std::io::Result<()>,
) -> Result<()> {
    let open_at_end = |p: &Path| -> Option<(BufReader<File>, u64)> {
        let mut f = File::open(p).ok()?;
        let ino = f.metadata().ok()?.ino();
        f.seek(SeekFrom::End(0)).ok()?;
        Some((BufReader::new(f), ino))
    };
    let mut cur = open_at_end(&src.path);
    let mut partial: Vec<u8> = Vec::new();
    loop {
        if opts.gone.as_ref().is_some_and(|gone| gone()) {
            return Ok(());
        }
        let alive = running(engine, &src.id);
        if let Some((reader, ino)) = cur.as_mut() {
            loop {
                let mut buf = Vec::new();
                let n = reader.read_until(b'\n', &mut buf).unwrap_or(0);
                if n == 0 {
                    if emit(None).is_err() {
                        return Ok(());
                    }
                    break;
                }
                partial.extend_from_slice(&buf);
                if !partial.ends_with(b"\n") {
                    continue;
                }
                let line = std::mem::take(&mut partial);
                if let Some(e) = parse_line(line.trim_ascii_end()) {
                    if opts.until.is_some_and(|u| e.time > u) {
                        return Ok(());
                    }
                    if wanted(opts, &e) && emit(Some(&e)).is_err() {
                        return Ok(());
                    }
                }
            }
            // Rotated: a new file took the name; read it from the start.
            let rotated = std::fs::metadata(&src.path)
                .map(|m| m.ino() != *ino)
                .unwrap_or(false);
            if rotated && let Ok(f) = File::open(&src.path) {
                let ino = f.metadata().map(|m| m.ino()).unwrap_or(0);
                cur = Some((BufReader::new(f), ino));
                continue;
            }
        } else if let Ok(f) = File::open(&src.path) {
            let ino = f.metadata().map(|m| m.ino()).unwrap_or(0);
            cur = Some((BufReader::new(f), ino));
            continue;
        }
        if !alive {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_timestamps_have_nine_digits() {
        assert_eq!(
            timestamp(1_700_000_000_000_000_001),
            "2023-11-14T22:13:20.000000001Z"
        );
        assert_eq!(
            timestamp(1_700_000_000_000_000_000),
            "2023-11-14T22:13:20.000000000Z"
        );
    }

    #[test]
    fn parses_json_file_lines() {
        let e = parse_line(br#"{"log":"hi\n","stream":"stderr","time":"2024-01-01T00:00:00.5Z"}"#)
            .unwrap();
        assert_eq!((e.stream, e.text.as_slice()), (2, &b"hi\n"[..]));
        assert_eq!(e.time, 1_704_067_200_500_000_000);
        assert!(parse_line(b"garbage").is_none());
    }
}
