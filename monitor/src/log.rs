//! Docker's json-file log driver: line splitting, the line format, rotation.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Docker's copier buffer: a line longer than this is logged in pieces of this size, without `\n`.
pub const MAX_LINE: usize = 16 * 1024;

/// Which stream a chunk of output came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    pub fn name(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }

    /// The stream byte of Docker's multiplexed frame header.
    pub fn frame_id(self) -> u8 {
        match self {
            Stream::Stdout => 1,
            Stream::Stderr => 2,
        }
    }
}

/// Cuts a stream of bytes into log messages the way Docker's copier does: at each `\n` (kept),
/// or every [`MAX_LINE`] bytes when no newline comes; what is left at the end is flushed as is.
#[derive(Debug, Default)]
pub struct LineSplitter {
    pending: Vec<u8>,
}

impl LineSplitter {
    /// Feed output; `emit` gets every complete message.
    pub fn push(&mut self, data: &[u8], mut emit: impl FnMut(&[u8])) {
        let mut data = data;
        // Fast path: nothing pending, emit complete lines straight from the input.
        if self.pending.is_empty() {
            loop {
                let window = &data[..data.len().min(MAX_LINE)];
                if let Some(i) = window.iter().position(|&b| b == b'\n') {
                    emit(&data[..=i]);
                    data = &data[i + 1..];
                } else if data.len() >= MAX_LINE {
                    emit(&data[..MAX_LINE]);
                    data = &data[MAX_LINE..];
                } else {
                    break;
                }
            }
            self.pending.extend_from_slice(data);
            return;
        }
        self.pending.extend_from_slice(data);
        let mut start = 0;
        loop {
            let rest = &self.pending[start..];
            let window = &rest[..rest.len().min(MAX_LINE)];
            if let Some(i) = window.iter().position(|&b| b == b'\n') {
                emit(&rest[..=i]);
                start += i + 1;
            } else if rest.len() >= MAX_LINE {
                emit(&rest[..MAX_LINE]);
                start += MAX_LINE;
            } else {
                break;
            }
        }
        self.pending.drain(..start);
        if self.pending.is_empty() {
            // Give the memory back: a long line must not keep its buffer for the container's life.
            self.pending = Vec::new();
        }
    }

    /// Emit what is left (a last line without `\n`), at end of stream.
    pub fn flush(&mut self, mut emit: impl FnMut(&[u8])) {
        if !self.pending.is_empty() {
            emit(&self.pending);
        }
        self.pending = Vec::new();
    }
}

/// Go's `time.RFC3339Nano` in UTC from Unix nanoseconds: `2006-01-02T15:04:05.999999999Z`, trailing
/// zeros of the fraction trimmed, no fraction when it is zero.
pub fn rfc3339_nano(nanos: i64) -> String {
    let mut out = Vec::with_capacity(30);
    push_rfc3339_nano(&mut out, nanos);
    String::from_utf8(out).unwrap_or_default()
}

/// [`rfc3339_nano`] appended to a buffer, by hand: this runs for every log line, and keeping
/// `core::fmt` out of the hot path keeps the monitor's resident code small.
pub fn push_rfc3339_nano(out: &mut Vec<u8>, nanos: i64) {
    fn digits(out: &mut Vec<u8>, v: u64, width: usize) {
        let mut buf = [b'0'; 20];
        let mut v = v;
        let mut i = buf.len();
        while v > 0 && i > 0 {
            i -= 1;
            buf[i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
        let start = (buf.len() - width).min(i);
        out.extend_from_slice(&buf[start..]);
    }
    let secs = nanos.div_euclid(1_000_000_000);
    let frac = nanos.rem_euclid(1_000_000_000) as u64;
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400) as u64;
    let (y, m, d) = civil_from_days(days);
    digits(out, y.max(0) as u64, 4);
    out.push(b'-');
    digits(out, m as u64, 2);
    out.push(b'-');
    digits(out, d as u64, 2);
    out.push(b'T');
    digits(out, sod / 3600, 2);
    out.push(b':');
    digits(out, sod / 60 % 60, 2);
    out.push(b':');
    digits(out, sod % 60, 2);
    if frac != 0 {
        out.push(b'.');
        let mut f = frac;
        let mut width = 9;
        while f.is_multiple_of(10) {
            f /= 10;
            width -= 1;
        }
        digits(out, f, width);
    }
    out.push(b'Z');
}

/// Howard Hinnant's `civil_from_days`: days since 1970-01-01 → (year, month, day).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Append `bytes` as a JSON string the way Docker's jsonlog does (Go's encoder with HTML escaping):
/// invalid UTF-8 becomes U+FFFD; `<`, `>`, `&`, U+2028 and U+2029 are `\u`-escaped.
pub fn push_json_string(out: &mut Vec<u8>, bytes: &[u8]) {
    out.push(b'"');
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '"' => out.extend_from_slice(b"\\\""),
                '\\' => out.extend_from_slice(b"\\\\"),
                '\n' => out.extend_from_slice(b"\\n"),
                '\r' => out.extend_from_slice(b"\\r"),
                '\t' => out.extend_from_slice(b"\\t"),
                '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => push_u_escape(out, c as u32),
                c if (c as u32) < 0x20 => push_u_escape(out, c as u32),
                c => {
                    let mut b = [0u8; 4];
                    out.extend_from_slice(c.encode_utf8(&mut b).as_bytes());
                }
            }
        }
        if !chunk.invalid().is_empty() {
            out.extend_from_slice(b"\\ufffd");
        }
    }
    out.push(b'"');
}

fn push_u_escape(out: &mut Vec<u8>, c: u32) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.extend_from_slice(b"\\u");
    for shift in [12, 8, 4, 0] {
        out.push(HEX[((c >> shift) & 0xf) as usize]);
    }
}

/// One line of the json log, newline included.
pub fn format_line(stream: Stream, text: &[u8], nanos: i64) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() + 80);
    out.extend_from_slice(b"{\"log\":");
    push_json_string(&mut out, text);
    out.extend_from_slice(b",\"stream\":\"");
    out.extend_from_slice(stream.name().as_bytes());
    out.extend_from_slice(b"\",\"time\":\"");
    push_rfc3339_nano(&mut out, nanos);
    out.extend_from_slice(b"\"}\n");
    out
}

/// The renames of one rotation, oldest first: `path.(n-2)` → `path.(n-1)`, …, `path` → `path.1`.
/// With `max_file` ≤ 1 there is none (the file is simply started over). Only the numbered
/// files that `exists` reports are moved, and they are contiguous from 1: a max-file of
/// billions costs as much as the files there are.
pub fn rotation_renames(
    path: &Path,
    max_file: u32,
    exists: impl Fn(&Path) -> bool,
) -> Vec<(PathBuf, PathBuf)> {
    let numbered = |i: u32| {
        let mut s = path.as_os_str().to_owned();
        s.push(format!(".{i}"));
        PathBuf::from(s)
    };
    let mut out = Vec::new();
    if max_file <= 1 {
        return out;
    }
    let present = (1..max_file - 1)
        .take_while(|i| exists(&numbered(*i)))
        .last()
        .unwrap_or(0);
    for i in (1..=present).rev() {
        out.push((numbered(i), numbered(i + 1)));
    }
    out.push((path.to_path_buf(), numbered(1)));
    out
}

/// The json-file writer. Errors are returned to the caller, which keeps the container running.
pub struct JsonLog {
    path: PathBuf,
    max_size: u64,
    max_file: u32,
    file: Option<File>,
    size: u64,
}

impl JsonLog {
    pub fn open(path: &Path, max_size: u64, max_file: u32) -> io::Result<JsonLog> {
        let mut log = JsonLog {
            path: path.to_path_buf(),
            max_size,
            max_file: max_file.max(1),
            file: None,
            size: 0,
        };
        log.reopen()?;
        Ok(log)
    }

    fn reopen(&mut self) -> io::Result<()> {
        // 0640 as Docker's json-file logs: only root (and its group) read what containers print.
        let f = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o640)
            .open(&self.path)?;
        self.size = f.metadata()?.len();
        self.file = Some(f);
        Ok(())
    }

    /// Write one message (a line from [`LineSplitter`]).
    pub fn write(&mut self, stream: Stream, text: &[u8], nanos: i64) -> io::Result<()> {
        let line = format_line(stream, text, nanos);
        if self.max_size > 0 && self.size > 0 && self.size + line.len() as u64 > self.max_size {
            self.rotate()?;
        }
        if self.file.is_none() {
            self.reopen()?;
        }
        let f = self
            .file
            .as_mut()
            .ok_or_else(|| io::Error::other("no log"))?;
        f.write_all(&line)?;
        self.size += line.len() as u64;
        Ok(())
    }

    fn rotate(&mut self) -> io::Result<()> {
        self.file = None;
        if self.max_file <= 1 {
            let _ = std::fs::remove_file(&self.path);
        } else {
            for (from, to) in rotation_renames(&self.path, self.max_file, |p| p.exists()) {
                match std::fs::rename(&from, &to) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e),
                }
            }
        }
        self.reopen()
    }

    /// Flush to disk (at exit).
    pub fn sync(&mut self) {
        if let Some(f) = &self.file {
            let _ = f.sync_data();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(chunks: &[&[u8]]) -> Vec<Vec<u8>> {
        let mut s = LineSplitter::default();
        let mut out = Vec::new();
        for c in chunks {
            s.push(c, |l| out.push(l.to_vec()));
        }
        s.flush(|l| out.push(l.to_vec()));
        out
    }

    #[test]
    fn splits_at_newlines_across_chunks() {
        let out = split(&[b"hel", b"lo\nwor", b"ld\n\nlast"]);
        assert_eq!(
            out,
            vec![
                b"hello\n".to_vec(),
                b"world\n".to_vec(),
                b"\n".to_vec(),
                b"last".to_vec()
            ]
        );
    }

    #[test]
    fn long_lines_become_16k_partials() {
        let mut big = vec![b'a'; MAX_LINE * 2 + 10];
        big.push(b'\n');
        let out = split(&[&big[..100], &big[100..]]);
        assert_eq!(out.len(), 3);
        assert_eq!(out[0].len(), MAX_LINE);
        assert!(!out[0].ends_with(b"\n"));
        assert_eq!(out[1].len(), MAX_LINE);
        assert_eq!(out[2].len(), 11);
        assert!(out[2].ends_with(b"\n"));
        let out = split(&[&big]);
        assert_eq!(out.len(), 3);
    }

    #[test]
    fn time_format_is_go_rfc3339nano() {
        assert_eq!(rfc3339_nano(0), "1970-01-01T00:00:00Z");
        assert_eq!(
            rfc3339_nano(1_714_564_800_123_450_000),
            "2024-05-01T12:00:00.12345Z"
        );
        assert_eq!(
            rfc3339_nano(951_782_400_000_000_001),
            "2000-02-29T00:00:00.000000001Z"
        );
        assert_eq!(rfc3339_nano(-1_000_000_000), "1969-12-31T23:59:59Z");
        assert_eq!(
            rfc3339_nano(1_000_000_000_100_000_000),
            "2001-09-09T01:46:40.1Z"
        );
        assert_eq!(
            rfc3339_nano(4_102_444_799_999_999_999),
            "2099-12-31T23:59:59.999999999Z"
        );
    }

    #[test]
    fn lines_are_dockers_json() {
        let l = format_line(
            Stream::Stderr,
            b"a\"b\\<c>\t\x01\xff\n",
            1_500_000_000_000_000_000,
        );
        assert_eq!(
            String::from_utf8(l).unwrap(),
            "{\"log\":\"a\\\"b\\\\\\u003cc\\u003e\\t\\u0001\\ufffd\\n\",\"stream\":\"stderr\",\"time\":\"2017-07-14T02:40:00Z\"}\n"
        );
        let l = format_line(Stream::Stdout, "é\r\n".as_bytes(), 0);
        let v: serde_json::Value = serde_json::from_slice(&l).unwrap();
        assert_eq!(v["log"], "é\r\n");
        assert_eq!(v["stream"], "stdout");
    }

    #[test]
    fn rotation_names_shift_up_to_max_file() {
        let p = Path::new("/l/x-json.log");
        let r = rotation_renames(p, 3, |_| true);
        let r: Vec<(String, String)> = r
            .iter()
            .map(|(a, b)| (a.display().to_string(), b.display().to_string()))
            .collect();
        assert_eq!(
            r,
            vec![
                ("/l/x-json.log.1".into(), "/l/x-json.log.2".into()),
                ("/l/x-json.log".into(), "/l/x-json.log.1".into()),
            ]
        );
        assert!(rotation_renames(p, 1, |_| true).is_empty());
        // Only what is there moves, whatever max-file says.
        let r = rotation_renames(p, u32::MAX, |q| q.to_string_lossy().ends_with(".1"));
        assert_eq!(r.len(), 2);
        assert_eq!(rotation_renames(p, 2, |_| true).len(), 1);
    }

    #[test]
    fn rotates_when_the_file_would_exceed_max_size() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c-json.log");
        let mut log = JsonLog::open(&p, 150, 3).unwrap();
        for i in 0..10 {
            log.write(Stream::Stdout, format!("line {i}\n").as_bytes(), 0)
                .unwrap();
        }
        let n = |s: &str| std::fs::read_to_string(dir.path().join(s)).unwrap();
        assert!(std::fs::metadata(&p).unwrap().len() <= 150);
        assert!(n("c-json.log").contains("line 9"));
        assert!(n("c-json.log.1").contains("line 7") || n("c-json.log.1").contains("line 6"));
        assert!(!dir.path().join("c-json.log.3").exists());
        let mut log = JsonLog::open(&dir.path().join("one.log"), 100, 1).unwrap();
        for i in 0..5 {
            log.write(Stream::Stdout, format!("line {i}\n").as_bytes(), 0)
                .unwrap();
        }
        assert!(!dir.path().join("one.log.1").exists());
        assert!(n("one.log").contains("line 4"));
    }
}
