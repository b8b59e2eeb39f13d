//! Verify an export, decompress it ourselves (by magic bytes) and stream it
//! into the engine's `load`, so it works whatever compressions the engine
//! reads. What comes out of the decompressor must start as a tar before
//! anything reaches the engine; a decompression error later is reported as
//! such, not as the engine's complaint about a short stream.

use super::compress::CHUNK;
use super::verify::{Verified, verify};
use super::{Compression, ExportError};
use crate::engine::Engine;
use crate::progress::{Progress, Task};
use serde::Serialize;
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::Path;

/// What `load` did.
#[derive(Debug, Clone, Serialize)]
pub struct LoadOutcome {
    pub reference: String,
    pub image_id: String,
    pub verified: Verified,
}

/// Which compression a file starts with.
pub fn detect_compression(head: &[u8]) -> Option<Compression> {
    if head.starts_with(&[0x1f, 0x8b]) {
        Some(Compression::Gzip)
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Some(Compression::Zstd)
    } else if is_tar_header(head) {
        Some(Compression::None)
    } else {
        None
    }
}

/// A ustar or GNU tar header ("ustar" at 257).
fn is_tar_header(head: &[u8]) -> bool {
    head.len() >= 262 && &head[257..262] == b"ustar"
}

fn read_full(r: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// Passes bytes through, keeping the first read error (a decompression error).
struct Watched<R> {
    inner: R,
    error: Option<String>,
}

impl<R: Read> Read for Watched<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf).inspect_err(|e| {
            self.error.get_or_insert_with(|| e.to_string());
        })
    }
}

/// Verify, then decompress and load into the engine.
pub fn load(engine: &Engine, file: &Path, progress: &Progress) -> Result<LoadOutcome, ExportError> {
    let verified = verify(file, progress)?;
    let mut f = File::open(file).map_err(ExportError::io("opening", file))?;
    let mut head = [0u8; 512];
    let got = read_full(&mut f, &mut head).map_err(ExportError::io("reading", file))?;
    let kind = detect_compression(&head[..got]).ok_or_else(|| ExportError::NotAnArchive {
        path: file.to_path_buf(),
    })?;
    let corrupt = |detail: String| ExportError::Corrupt {
        path: file.to_path_buf(),
        detail,
    };
    let f = File::open(file).map_err(ExportError::io("opening", file))?;
    let task = progress.bytes("load", Some(verified.size));
    let buffered = BufReader::with_capacity(
        CHUNK,
        ProgressReader {
            inner: f,
            task: &task,
        },
    );
    let decoder: Box<dyn Read + '_> = match kind {
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(buffered)),
        Compression::Zstd => {
            Box::new(zstd::stream::read::Decoder::with_buffer(buffered).map_err(|e| corrupt(e.to_string()))?)
        }
        Compression::None => Box::new(buffered),
    };
    let mut reader = Watched {
        inner: decoder,
        error: None,
    };
    // The first tar header, before the engine sees a byte.
    let mut first = vec![0u8; 512];
    let n = read_full(&mut reader, &mut first)
        .map_err(|e| corrupt(format!("its {kind} data ends early or is damaged: {e}")))?;
    if !is_tar_header(&first[..n]) {
        return Err(corrupt(format!("its {kind} data is not a tar archive")));
    }
    first.truncate(n);
    let loaded = {
        let mut stream = (&first[..]).chain(&mut reader);
        engine.load(&mut stream)
    };
    if let Some(e) = reader.error {
        return Err(corrupt(format!("its {kind} data ends early or is damaged: {e}")));
    }
    let loaded = loaded?;
    task.finish("loaded");
    // A file of several images (`export --spec`) is checked image by image,
    // each under its tag; the outcome names the first.
    let several: Vec<(String, Option<String>)> = match &verified.manifest {
        Some(m) if !m.images.is_empty() => m
            .images
            .iter()
            .map(|i| (i.tag.clone(), Some(i.image_id.clone())))
            .collect(),
        Some(m) => vec![(loaded, Some(m.image_id.clone()))],
        None => vec![(loaded, None)],
    };
    let mut first = None;
    for (reference, expected) in several {
        let image_id = engine.image_id(&reference)?;
        if let Some(expected) = expected
            && expected != image_id
        {
            return Err(ExportError::LoadedIdMismatch {
                reference,
                expected,
                actual: image_id,
            });
        }
        first.get_or_insert((reference, image_id));
    }
    let (reference, image_id) = first.expect("at least one image");
    Ok(LoadOutcome {
        reference,
        image_id,
        verified,
    })
}

struct ProgressReader<'a, R> {
    inner: R,
    task: &'a Task,
}

impl<R: Read> Read for ProgressReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.task.inc(n as u64);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn magic_bytes() {
        assert_eq!(detect_compression(&[0x1f, 0x8b, 8]), Some(Compression::Gzip));
        assert_eq!(
            detect_compression(&[0x28, 0xb5, 0x2f, 0xfd, 0]),
            Some(Compression::Zstd)
        );
        let mut tar = vec![0u8; 512];
        tar[257..262].copy_from_slice(b"ustar");
        assert_eq!(detect_compression(&tar), Some(Compression::None));
        assert_eq!(detect_compression(b"hello"), None);
    }
}
