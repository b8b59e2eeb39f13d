//! The engine's save → compression → hashing + file, in three overlapping threads.

use super::signal::stopped;
use super::{Compression, DEFAULT_GZIP_LEVEL, DEFAULT_ZSTD_LEVEL};
use crate::hash::{HashingWriter, Sha256Digest};
use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::sync::mpsc::{SyncSender, sync_channel};

pub(crate) const CHUNK: usize = 1 << 20;

/// Sends what is written to it in CHUNK-sized buffers down a channel.
struct ChannelWriter {
    tx: SyncSender<Vec<u8>>,
    buf: Vec<u8>,
}

impl ChannelWriter {
    fn send(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let full = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
        self.tx
            .send(full)
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the file writer stopped"))
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = data.len().min(CHUNK - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == CHUNK {
            self.send()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send()
    }
}

/// Read the save, compress, hash and write, in three threads (reading the
/// engine's pipe, compressing, hashing + writing the file) so that they
/// overlap. Returns (sha256 of the file, its size, uncompressed size).
pub(crate) fn compress_stream(
    save: &mut (dyn Read + Send),
    file: &File,
    compression: Compression,
    level: Option<i32>,
    task: &crate::progress::Task,
) -> io::Result<(Sha256Digest, u64, u64)> {
    std::thread::scope(|s| {
        let (in_tx, in_rx) = sync_channel::<Vec<u8>>(4);
        let (out_tx, out_rx) = sync_channel::<Vec<u8>>(4);
        let reader = s.spawn(move || -> io::Result<u64> {
            let mut total = 0u64;
            loop {
                if stopped() {
                    return Err(io::Error::new(io::ErrorKind::Interrupted, "stopped by a signal"));
                }
                let mut buf = vec![0u8; CHUNK];
                let (mut filled, mut eof) = (0, false);
                while filled < CHUNK {
                    match save.read(&mut buf[filled..]) {
                        Ok(0) => {
                            eof = true;
                            break;
                        }
                        Ok(n) => filled += n,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted && !stopped() => {}
                        Err(e) => return Err(e),
                    }
                }
                buf.truncate(filled);
                total += filled as u64;
                task.inc(filled as u64);
                // A closed channel: the compressor failed; its error is the one reported.
                if (filled > 0 && in_tx.send(buf).is_err()) || eof {
                    return Ok(total);
                }
            }
        });
        let writer = s.spawn(move || -> io::Result<(Sha256Digest, u64)> {
            let mut w = HashingWriter::new(BufWriter::with_capacity(CHUNK, file));
            for chunk in out_rx {
                w.write_all(&chunk)?;
            }
            let (mut inner, digest, n) = w.finish();
            inner.flush()?;
            Ok((digest, n))
        });
        let compressed = (move || -> io::Result<()> {
            let sink = ChannelWriter {
                tx: out_tx,
                buf: Vec::with_capacity(CHUNK),
            };
            let mut sink = match compression {
                Compression::Zstd => {
                    let mut enc = zstd::stream::Encoder::new(sink, level.unwrap_or(DEFAULT_ZSTD_LEVEL))?;
                    enc.include_checksum(true)?;
                    for c in in_rx {
                        enc.write_all(&c)?;
                    }
                    enc.finish()?
                }
                Compression::Gzip => {
                    let mut enc = flate2::write::GzEncoder::new(
                        sink,
                        flate2::Compression::new(level.map_or(DEFAULT_GZIP_LEVEL, |l| l.clamp(0, 9) as u32)),
                    );
                    for c in in_rx {
                        enc.write_all(&c)?;
                    }
                    enc.finish()?
                }
                Compression::None => {
                    let mut sink = sink;
                    for c in in_rx {
                        sink.write_all(&c)?;
                    }
                    sink
                }
            };
            sink.flush()
        })();
        let written = writer
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("file writer panicked")));
        let read = reader
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("reader panicked")));
        // The reader's error first: a stop signal ends the compressor's input early.
        let read = read?;
        let (digest, size) = written?;
        compressed?;
        Ok((digest, size, read))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::progress::Progress;

    fn data() -> Vec<u8> {
        (0..5_000_000u32).map(|i| ((i / 7) % 251) as u8).collect()
    }

    #[test]
    fn compress_stream_round_trips_every_compression() {
        let d = tempfile::tempdir().unwrap();
        let input = data();
        for c in [Compression::Zstd, Compression::Gzip, Compression::None] {
            let path = d.path().join(format!("f{}", c.extension()));
            let f = File::create(&path).unwrap();
            let task = Progress::quiet().bytes("t", None);
            let (digest, size, raw) = compress_stream(&mut &input[..], &f, c, None, &task).unwrap();
            drop(f);
            assert_eq!(raw, input.len() as u64);
            let (on_disk, len) = Sha256Digest::of_file(&path).unwrap();
            assert_eq!((digest, size), (on_disk, len), "{c}");
            let bytes = std::fs::read(&path).unwrap();
            assert_eq!(
                super::super::load::detect_compression(&bytes[..4.min(bytes.len())]).is_some(),
                c != Compression::None
            );
            let back: Vec<u8> = match c {
                Compression::Zstd => zstd::decode_all(&bytes[..]).unwrap(),
                Compression::Gzip => {
                    let mut v = Vec::new();
                    flate2::read::MultiGzDecoder::new(&bytes[..])
                        .read_to_end(&mut v)
                        .unwrap();
                    v
                }
                Compression::None => bytes,
            };
            assert!(back == input, "{c}: round trip differs");
        }
    }

    #[test]
    fn compress_stream_reports_a_write_failure_without_hanging() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("ro");
        std::fs::write(&path, b"").unwrap();
        let read_only = File::open(&path).unwrap();
        let task = Progress::quiet().bytes("t", None);
        let input = data();
        for c in [Compression::Zstd, Compression::None] {
            assert!(
                compress_stream(&mut &input[..], &read_only, c, Some(3), &task).is_err(),
                "{c}"
            );
        }
    }
}
