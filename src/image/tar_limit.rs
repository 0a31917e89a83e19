//! A size limit on tar extension headers, as Go's archive/tar has.
//!
//! The tar crate reads the whole data of GNU long-name/long-link (`L`, `K`) and PAX (`x`) entries
//! into memory, whatever size their header claims, so a tiny gzip could make us allocate
//! gigabytes. Go refuses more than 1 MiB there (`maxSpecialFileSize`) with
//! `archive/tar: header field too long`. [`HeaderLimit`] sits between `tar::Archive` and the real
//! reader, follows the tar framing as the bytes pass, and fails at such a header before its data.

use std::io::{self, Read};

use tar::{GnuExtSparseHeader, Header, PaxExtensions};

/// Go's `maxSpecialFileSize`.
pub const MAX_SPECIAL_FILE_SIZE: u64 = 1 << 20;
/// Go's `ErrFieldTooLong`.
pub const FIELD_TOO_LONG: &str = "archive/tar: header field too long";

const BLOCK: usize = 512;

fn too_long() -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, FIELD_TOO_LONG)
}

enum State {
    /// Collecting a header block.
    Header,
    /// Collecting a GNU sparse extension block; `left` bytes of data follow the last one.
    SparseExt { left: u64 },
    /// `left` bytes of entry data (with padding), the first `keep` of them PAX records to keep.
    Data { left: u64, keep: u64 },
    /// Past the end-of-archive block, or at a header the tar crate rejects itself: unchecked.
    Through,
    /// A header was too long; every later read fails too.
    Failed,
}

/// A `Read` wrapper for a tar stream that fails (`InvalidData`, [`FIELD_TOO_LONG`]) as soon as
/// it has passed a whole `L`, `K`, `x` or `g` header claiming more than 1 MiB of data. It only
/// reads when and as much as its caller asks, so the tar parser above sees the same stream.
pub struct HeaderLimit<R> {
    inner: R,
    state: State,
    /// The block being collected and how much of it is in.
    block: Header,
    filled: usize,
    /// Records of the last PAX local header, which apply to the entry the tar crate returns next.
    pax: Option<Vec<u8>>,
}

impl<R> HeaderLimit<R> {
    pub fn new(inner: R) -> Self {
        HeaderLimit {
            inner,
            state: State::Header,
            block: Header::new_old(),
            filled: 0,
            pax: None,
        }
    }

    pub fn into_inner(self) -> R {
        self.inner
    }

    /// Follows the framing over `bytes`, just handed to the caller.
    fn advance(&mut self, mut bytes: &[u8]) -> io::Result<()> {
        while !bytes.is_empty() {
            match &mut self.state {
                State::Through => return Ok(()),
                State::Failed => return Err(too_long()),
                State::Data { left, keep } => {
                    let n = (*left).min(bytes.len() as u64);
                    let k = (*keep).min(n);
                    if let Some(pax) = &mut self.pax {
                        pax.extend_from_slice(&bytes[..k as usize]);
                    }
                    *keep -= k;
                    *left -= n;
                    if *left == 0 {
                        self.state = State::Header;
                    }
                    bytes = &bytes[n as usize..];
                }
                State::Header | State::SparseExt { .. } => {
                    let n = (BLOCK - self.filled).min(bytes.len());
                    self.block.as_mut_bytes()[self.filled..self.filled + n]
                        .copy_from_slice(&bytes[..n]);
                    self.filled += n;
                    bytes = &bytes[n..];
                    if self.filled == BLOCK {
                        self.filled = 0;
                        self.state = match self.state {
                            State::SparseExt { left } => self.sparse_ext(left),
                            _ => self.header()?,
                        };
                    }
                }
            }
        }
        Ok(())
    }

    /// A whole header block is in: what follows it, as `tar::Archive` (`next_entry`) sees it.
    fn header(&mut self) -> io::Result<State> {
        let h = &self.block;
        // No `ignore_zeros` in berth: a zero block ends the archive, the rest is trailing bytes.
        if h.as_bytes().iter().all(|b| *b == 0) {
            return Ok(State::Through);
        }
        // The crate's checksum test; it fails on a mismatch (or a bad size below) by itself.
        let sum = h.as_bytes()[..148]
            .iter()
            .chain(&h.as_bytes()[156..])
            .map(|b| u32::from(*b))
            .sum::<u32>()
            + 8 * 32;
        if h.cksum().ok() != Some(sum) {
            return Ok(State::Through);
        }
        let Ok(mut size) = h.entry_size() else {
            return Ok(State::Through);
        };
        let ty = h.entry_type();
        let extension = ty.is_gnu_longname()
            || ty.is_gnu_longlink()
            || ty.is_pax_local_extensions()
            || ty.is_pax_global_extensions();
        // Like Go, whatever the magic says.
        if extension && size > MAX_SPECIAL_FILE_SIZE {
            return Err(too_long());
        }
        let mut keep = 0;
        let mut sparse_ext = false;
        let recognized = h.as_gnu().is_some() || h.as_ustar().is_some();
        if recognized
            && (ty.is_gnu_longname() || ty.is_gnu_longlink() || ty.is_pax_local_extensions())
        {
            // Read whole by the crate for the entry after it; PAX records are kept for that.
            if ty.is_pax_local_extensions() {
                self.pax = Some(Vec::new());
                keep = size;
            }
        } else {
            // An entry the crate returns: pending PAX records end here, and their `size`
            // overrides the header's unless this is an (unrecognized) extension header.
            let pax = self.pax.take();
            if let Some(s) = pax.as_deref().and_then(pax_size).filter(|_| !extension) {
                size = s;
            }
            // The crate then reads GNU sparse extension blocks, before the data.
            sparse_ext = ty.is_gnu_sparse() && h.as_gnu().is_some_and(|g| g.is_extended());
        }
        // Data is padded to whole blocks; on overflow the crate fails.
        let Some(left) = size.checked_next_multiple_of(BLOCK as u64) else {
            return Ok(State::Through);
        };
        Ok(if sparse_ext {
            State::SparseExt { left }
        } else {
            data(left, keep)
        })
    }

    /// A whole sparse extension block is in: another one, or the data.
    fn sparse_ext(&self, left: u64) -> State {
        let mut ext = GnuExtSparseHeader::new();
        ext.as_mut_bytes().copy_from_slice(self.block.as_bytes());
        if ext.is_extended() {
            State::SparseExt { left }
        } else {
            data(left, 0)
        }
    }
}

fn data(left: u64, keep: u64) -> State {
    if left == 0 {
        State::Header
    } else {
        State::Data { left, keep }
    }
}

/// The tar crate's `pax_extensions_value(a, "size")`: the first `size` record, `None` on any
/// parse error before or in it.
fn pax_size(a: &[u8]) -> Option<u64> {
    for ext in PaxExtensions::new(a) {
        let ext = ext.ok()?;
        if ext.key() != Ok("size") {
            continue;
        }
        return ext.value().ok()?.parse().ok();
    }
    None
}

impl<R: Read> Read for HeaderLimit<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let State::Failed = self.state {
            return Err(too_long());
        }
        let n = self.inner.read(buf)?;
        if let Err(e) = self.advance(&buf[..n]) {
            self.state = State::Failed;
            return Err(e);
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use tar::{Builder, EntryType};

    use super::*;

    /// What the tar crate returns for each entry: path, link name, contents.
    type Listing = Vec<(Vec<u8>, Option<Vec<u8>>, Vec<u8>)>;

    fn list(r: impl Read) -> io::Result<Listing> {
        let mut out = Vec::new();
        for entry in tar::Archive::new(r).entries()? {
            let mut entry = entry?;
            let path = entry.path_bytes().into_owned();
            let link = entry.link_name_bytes().map(|l| l.into_owned());
            let mut data = Vec::new();
            entry.read_to_end(&mut data)?;
            out.push((path, link, data));
        }
        Ok(out)
    }

    /// Hands out a few bytes at a time, so blocks arrive in pieces.
    struct Trickle<'a>(&'a [u8]);
    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = buf.len().min(self.0.len()).min(7);
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    /// A header block of `ty` claiming `size` bytes of data, with a valid checksum.
    fn raw_header(gnu: bool, ty: EntryType, path: &str, size: u64) -> Header {
        let mut h = if gnu {
            Header::new_gnu()
        } else {
            Header::new_ustar()
        };
        h.set_entry_type(ty);
        h.set_path(path).unwrap();
        h.set_mode(0o644);
        h.set_size(size);
        h.set_cksum();
        h
    }

    /// A valid GNU long-name header claiming 2 GiB: what the limit would trip on if it took
    /// data for a header.
    fn trap() -> [u8; BLOCK] {
        *raw_header(true, EntryType::GNULongName, "././@LongLink", 2 << 30).as_bytes()
    }

    fn pad(v: &mut Vec<u8>) {
        v.resize(v.len().next_multiple_of(BLOCK), 0);
    }

    /// A GNU sparse file of six 512-byte chunks at 1024-byte steps, four in the header and two
    /// in an extension block; the last chunk is a trap.
    fn sparse_entry() -> (Vec<u8>, Vec<u8>) {
        let chunks: Vec<Vec<u8>> = (0..6u8)
            .map(|i| {
                if i == 5 {
                    trap().to_vec()
                } else {
                    vec![b'a' + i; BLOCK]
                }
            })
            .collect();
        let mut h = raw_header(true, EntryType::GNUSparse, "sparse", 6 * BLOCK as u64);
        let mut ext = GnuExtSparseHeader::new();
        {
            let gnu = h.as_gnu_mut().unwrap();
            for (i, s) in gnu.sparse.iter_mut().enumerate() {
                s.set_offset(i as u64 * 1024);
                s.set_length(BLOCK as u64);
            }
            for (i, s) in ext.sparse_mut()[..2].iter_mut().enumerate() {
                s.set_offset((i as u64 + 4) * 1024);
                s.set_length(BLOCK as u64);
            }
            gnu.set_is_extended(true);
            gnu.set_real_size(5 * 1024 + BLOCK as u64);
        }
        h.set_cksum();
        let mut raw = h.as_bytes().to_vec();
        raw.extend_from_slice(ext.as_mut_bytes());
        let mut contents = vec![0; 5 * 1024 + BLOCK];
        for (i, c) in chunks.iter().enumerate() {
            raw.extend_from_slice(c);
            contents[i * 1024..i * 1024 + BLOCK].copy_from_slice(c);
        }
        (raw, contents)
    }

    #[test]
    fn same_entries_as_without_limit() {
        let long = format!("{}/file", "d".repeat(600));
        let target = format!("{}/target", "t".repeat(300));
        // Claimed by the header: 3 bytes; by the PAX record: 1024, with a trap at 512.
        let mut payload = vec![b'p'; BLOCK];
        payload.extend_from_slice(&trap());

        let mut b = Builder::new(Vec::new());
        let mut h = Header::new_gnu();
        h.set_mode(0o644);
        h.set_size(5);
        b.append_data(&mut h.clone(), "a", &b"alpha"[..]).unwrap();
        b.append_data(&mut h.clone(), &long, &b"hello"[..]).unwrap();
        let mut l = Header::new_gnu();
        l.set_entry_type(EntryType::Symlink);
        l.set_size(0);
        b.append_link(&mut l, "link", &target).unwrap();
        // PAX records, then a GNU long name (which they skip), then the entry they describe.
        b.append_pax_extensions([("comment", &b"x"[..]), ("size", b"1024")])
            .unwrap();
        let mut p = Header::new_gnu();
        p.set_mode(0o644);
        p.set_size(3);
        let long2 = format!("{long}2");
        b.append_data(&mut p, &long2, &payload[..]).unwrap();
        // Were the PAX `size` still applied here, the data would end at the trap in `t`.
        let mut e = Header::new_gnu();
        e.set_mode(0o644);
        e.set_size(0);
        b.append_data(&mut e, "e", &[][..]).unwrap();
        let mut t = h.clone();
        t.set_size(payload.len() as u64);
        b.append_data(&mut t, "t", &payload[..]).unwrap();
        // A malformed record first: the crate ignores the `size` after it, and so must we.
        b.append_pax_extensions([("bad", &b"\n"[..]), ("size", b"99999")])
            .unwrap();
        b.append_data(&mut h.clone(), "b", &b"bravo"[..]).unwrap();
        // PAX records before a global header: not its size (it is an extension header), and
        // dropped there; were either not so, the data would end at the trap in `t2`.
        b.append_pax_extensions([("size", &b"1536"[..])]).unwrap();
        let g = raw_header(false, EntryType::XGlobalHeader, "g", 16);
        b.append(&g, &b"16 comment=glob\n"[..]).unwrap();
        b.append_data(&mut t.clone(), "t2", &payload[..]).unwrap();
        b.get_mut().extend_from_slice(&sparse_entry().0);
        b.append_data(&mut h.clone(), "c", &b"charl"[..]).unwrap();
        let tar = b.into_inner().unwrap();

        let plain = list(&tar[..]).unwrap();
        let limited = list(HeaderLimit::new(&tar[..])).unwrap();
        assert!(plain == limited);
        assert!(list(HeaderLimit::new(Trickle(&tar))).unwrap() == plain);

        let paths: Vec<_> = plain.iter().map(|e| e.0.clone()).collect();
        let expect = [
            "a",
            long.as_str(),
            "link",
            long2.as_str(),
            "e",
            "t",
            "b",
            "g",
            "t2",
            "sparse",
            "c",
        ];
        assert_eq!(paths, expect.map(|p| p.as_bytes().to_vec()));
        assert_eq!(plain[2].1.as_deref(), Some(target.as_bytes()));
        assert!(plain[3].2 == payload);
        assert!(plain[5].2 == payload);
        assert_eq!(plain[6].2, b"bravo");
        assert!(plain[8].2 == payload);
        assert!(plain[9].2 == sparse_entry().1);
        assert_eq!(plain[10].2, b"charl");
    }

    #[test]
    fn pax_size_as_the_crate_reads_it() {
        for (recs, want) in [
            (&b"11 size=42\n11 size=43\n"[..], Some(42)),
            (b"10 path=a\n11 size=42\n", Some(42)),
            (b"10 path=a\nx\n11 size=42\n", None),
            (b"12 size=42\n", None),
            (b"12 size=4x2\n", None),
            (b"11 size=-1\n", None),
            (b"11 SIZE=42\n", None),
            (b"11 size=42", Some(42)),
            (b"", None),
        ] {
            assert_eq!(pax_size(recs), want, "{:?}", String::from_utf8_lossy(recs));
            // And the tar crate agrees: the entry after these records has that size, or its own.
            let mut tar = raw_header(false, EntryType::XHeader, "pax", recs.len() as u64)
                .as_bytes()
                .to_vec();
            tar.extend_from_slice(recs);
            pad(&mut tar);
            tar.extend_from_slice(raw_header(false, EntryType::Regular, "f", 7).as_bytes());
            let mut archive = tar::Archive::new(&tar[..]);
            let entry = archive.entries().unwrap().next().unwrap().unwrap();
            assert_eq!(entry.size(), want.unwrap_or(7));
        }
    }

    fn first_error(tar: &[u8]) -> Option<io::Error> {
        list(HeaderLimit::new(tar)).err()
    }

    #[test]
    fn refuses_huge_pax_header_at_the_header() {
        let mut tar = raw_header(false, EntryType::XHeader, "pax", 2 << 30)
            .as_bytes()
            .to_vec();
        tar.extend_from_slice(b"30 path=only a little data...\n");
        pad(&mut tar);
        let mut archive = tar::Archive::new(HeaderLimit::new(Cursor::new(&tar[..])));
        let e = archive.entries().unwrap().next().unwrap().err().unwrap();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        assert_eq!(e.to_string(), FIELD_TOO_LONG);
        // Nothing past the header was read, so nothing was buffered.
        assert_eq!(archive.into_inner().into_inner().position(), BLOCK as u64);
    }

    #[test]
    fn limit_is_one_mebibyte() {
        let long_name = |size: u64| {
            let mut tar = raw_header(true, EntryType::GNULongName, "././@LongLink", size)
                .as_bytes()
                .to_vec();
            tar.resize(tar.len() + size as usize - 1, b'n');
            tar.push(0);
            pad(&mut tar);
            let mut b = Builder::new(tar);
            let mut h = Header::new_gnu();
            h.set_size(1);
            b.append_data(&mut h, "short", &b"x"[..]).unwrap();
            b.into_inner().unwrap()
        };
        let ok = list(HeaderLimit::new(&long_name(MAX_SPECIAL_FILE_SIZE)[..])).unwrap();
        assert_eq!(ok.len(), 1);
        assert!(ok[0].0 == vec![b'n'; MAX_SPECIAL_FILE_SIZE as usize - 1]);
        let e = first_error(&long_name(MAX_SPECIAL_FILE_SIZE + 1)).unwrap();
        assert_eq!(e.to_string(), FIELD_TOO_LONG);

        // Every extension type, ustar or GNU, octal or base-256 size.
        for ty in [
            EntryType::GNULongName,
            EntryType::GNULongLink,
            EntryType::XHeader,
            EntryType::XGlobalHeader,
        ] {
            for (gnu, size) in [(false, MAX_SPECIAL_FILE_SIZE + 1), (true, 1 << 40)] {
                let h = raw_header(gnu, ty, "x", size);
                let e = first_error(h.as_bytes()).unwrap();
                assert_eq!(e.to_string(), FIELD_TOO_LONG, "{ty:?} {size}");
            }
        }

        // Ordinary entries may be big: the crate streams them.
        let h = raw_header(true, EntryType::Regular, "big", 2 << 30);
        let mut archive = tar::Archive::new(HeaderLimit::new(&h.as_bytes()[..]));
        let entry = archive.entries().unwrap().next().unwrap().unwrap();
        assert_eq!(entry.size(), 2 << 30);
    }

    #[test]
    fn passes_trailing_bytes_through() {
        let mut b = Builder::new(Vec::new());
        let mut h = Header::new_gnu();
        h.set_size(3);
        b.append_data(&mut h, "a", &b"abc"[..]).unwrap();
        let mut tar = b.into_inner().unwrap();
        let end = tar.len() - BLOCK;
        tar.extend_from_slice(&trap());
        tar.extend_from_slice(b"junk");

        let mut archive = tar::Archive::new(HeaderLimit::new(&tar[..]));
        assert_eq!(archive.entries().unwrap().count(), 1);
        let mut rest = Vec::new();
        archive.into_inner().read_to_end(&mut rest).unwrap();
        assert!(rest == tar[end..]);
    }
}
