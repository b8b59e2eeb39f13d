//! The remote side, over the system `ssh`: a POSIX sh script
//! (`remote.sh`) sent as the command, so a target needs nothing of ours
//! installed: sh, tar, sha256sum, zstd or gzip, and docker or podman.
//!
//! The user's ssh config, agent, known_hosts and jump hosts apply; host keys
//! are never disabled, and an `--ssh-option` that would disable them is
//! refused ([`weak_host_key_option`]) unless `--insecure-host-keys` says so. We add `BatchMode=yes` (no prompt can hang a parallel
//! run) and keep-alives, after the user's own `-o` options, which win
//! (ssh takes the first value it is given for an option).

use super::target::Target;
use crate::engine::EngineChoice;
use crate::error::ExitCode;
use crate::hash::Sha256Digest;
use std::collections::BTreeSet;
use std::ffi::OsString;
use std::io::{self, Read, Write};
use std::process::{Command, Stdio};

const SCRIPT: &str = include_str!("remote.sh");

/// How the ssh client is run.
#[derive(Debug, Clone)]
pub struct Ssh {
    /// The client program: `ssh`, or `$PGHA_SSH`.
    pub program: OsString,
    /// `--ssh-option` values, each passed as `-o VALUE`.
    pub options: Vec<String>,
    /// `--insecure-host-keys`: accept the options [`weak_host_key_option`] refuses.
    pub insecure_host_keys: bool,
}

/// The `--ssh-option` that turns host-key checking off, and why, or
/// `None`. Refused unless `--insecure-host-keys`: the image would go to
/// (and run its bootstrap on) whatever host answers.
/// `StrictHostKeyChecking=accept-new` alone is accepted: it trusts a first
/// contact but still refuses a changed key; with `UserKnownHostsFile=/dev/null`
/// every contact is a first one.
pub fn weak_host_key_option(options: &[String]) -> Option<(String, &'static str)> {
    let parsed: Vec<(String, String, &String)> = options
        .iter()
        .map(|o| {
            let t = o.trim();
            let (k, v) = t
                .split_once(|c: char| c == '=' || c.is_whitespace())
                .unwrap_or((t, ""));
            let v = v.trim_matches(|c: char| c == '=' || c.is_whitespace());
            (k.to_ascii_lowercase(), v.to_ascii_lowercase(), o)
        })
        .collect();
    let find = |key: &str, pred: &dyn Fn(&str) -> bool| {
        parsed
            .iter()
            .find(|(k, v, _)| k == key && pred(v))
            .map(|(_, _, o)| (*o).clone())
    };
    if let Some(o) = find("stricthostkeychecking", &|v| matches!(v, "no" | "off")) {
        return Some((o, "it accepts any host key, also a changed one"));
    }
    if let Some(o) = find("knownhostscommand", &|_| true) {
        return Some((o, "a command decides which host keys are accepted"));
    }
    if find("stricthostkeychecking", &|v| v == "accept-new").is_some()
        && let Some(o) = find("userknownhostsfile", &|v| {
            v.split_whitespace().all(|f| f == "/dev/null")
        })
    {
        return Some((
            o,
            "with accept-new and no known hosts, every host key is accepted",
        ));
    }
    None
}

impl Default for Ssh {
    fn default() -> Self {
        Self {
            program: std::env::var_os("PGHA_SSH").unwrap_or_else(|| "ssh".into()),
            options: Vec::new(),
            insecure_host_keys: false,
        }
    }
}

/// A failure on one host: what happened and what it means.
#[derive(Debug, Clone)]
pub struct HostError {
    pub code: ExitCode,
    pub message: String,
}

impl HostError {
    fn new(code: ExitCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

/// How the host decompresses what it receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    Zstd,
    Gzip,
}

impl Wire {
    fn name(self) -> &'static str {
        match self {
            Wire::Zstd => "zstd",
            Wire::Gzip => "gzip",
        }
    }
}

/// What a host holds.
#[derive(Debug, Clone)]
pub struct Inventory {
    pub engine: String,
    pub wire: Wire,
    pub images: Vec<(String, Vec<Sha256Digest>)>,
    /// Layers received earlier (verified), not yet loaded.
    pub staged: BTreeSet<Sha256Digest>,
    /// Staged layers that no longer hashed to their name: removed by the
    /// host, to be sent again.
    pub evicted: BTreeSet<Sha256Digest>,
}

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

impl Ssh {
    fn command(&self, target: &Target, args: &[&str]) -> Command {
        let mut c = Command::new(&self.program);
        for o in &self.options {
            c.arg("-o").arg(o);
        }
        for o in [
            "BatchMode=yes",
            "ConnectTimeout=20",
            "ServerAliveInterval=5",
            "ServerAliveCountMax=4",
        ] {
            c.arg("-o").arg(o);
        }
        c.arg("-T");
        if let Some(p) = target.port {
            c.arg("-p").arg(p.to_string());
        }
        c.arg(target.destination());
        let mut remote = format!("sh -c {} pgha-ship", quote(SCRIPT));
        for a in args {
            remote.push(' ');
            remote.push_str(&quote(a));
        }
        c.arg(remote);
        c.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        c
    }

    /// Run a remote command, feeding stdin from `feed`; returns its stdout.
    fn run(
        &self,
        target: &Target,
        args: &[&str],
        feed: &mut dyn FnMut(&mut dyn Write) -> io::Result<()>,
    ) -> Result<String, HostError> {
        let mut child = self.command(target, args).spawn().map_err(|e| {
            HostError::new(
                ExitCode::Prerequisite,
                format!("cannot run {:?}: {e} (install openssh-client)", self.program),
            )
        })?;
        let out = collect(child.stdout.take().expect("piped"));
        let err = collect(child.stderr.take().expect("piped"));
        let mut stdin = child.stdin.take().expect("piped");
        let fed = feed(&mut stdin).and_then(|_| stdin.flush());
        drop(stdin);
        let status = child
            .wait()
            .map_err(|e| HostError::new(ExitCode::Failure, format!("waiting for ssh: {e}")))?;
        let stdout = String::from_utf8_lossy(&out.join().unwrap_or_default()).into_owned();
        let stderr = String::from_utf8_lossy(&err.join().unwrap_or_default()).into_owned();
        let tail = last_lines(&stderr, 3);
        match status.code() {
            Some(0) => match fed {
                Ok(()) => Ok(stdout),
                Err(e) => Err(HostError::new(ExitCode::Failure, format!("sending failed: {e}"))),
            },
            Some(255) => Err(HostError::new(
                ExitCode::Failure,
                format!("ssh failed (unreachable, refused or connection lost): {tail}"),
            )),
            Some(92) | Some(93) | Some(96) => Err(HostError::new(ExitCode::Verification, tail)),
            Some(94) => Err(HostError::new(ExitCode::Prerequisite, tail)),
            Some(127) => Err(HostError::new(
                ExitCode::Prerequisite,
                format!("a program the remote side needs is missing: {tail}"),
            )),
            Some(c) => Err(HostError::new(
                ExitCode::Failure,
                format!("remote exit {c}: {tail}"),
            )),
            None => Err(HostError::new(
                ExitCode::Failure,
                format!("ssh was killed ({status}); connection lost"),
            )),
        }
    }

    pub fn inventory(&self, target: &Target, engine: EngineChoice) -> Result<Inventory, HostError> {
        let out = self.run(target, &["inventory", &engine.to_string()], &mut |_| Ok(()))?;
        parse_inventory(&out).ok_or_else(|| {
            HostError::new(
                ExitCode::Failure,
                format!("unexpected answer: {}", last_lines(&out, 3)),
            )
        })
    }

    /// Send one layer from `src` (zstd-compressed), re-encoded with gzip
    /// when the host has no zstd. Returns the bytes put on the wire.
    pub fn receive(
        &self,
        target: &Target,
        layer: &Sha256Digest,
        wire: Wire,
        src: &mut dyn Read,
        on_bytes: &dyn Fn(u64),
    ) -> Result<u64, HostError> {
        let mut sent = 0u64;
        let hex = layer.to_hex();
        self.run(target, &["receive", "-", &hex, wire.name()], &mut |stdin| {
            let mut w = CountingWriter {
                inner: stdin,
                n: &mut sent,
                on_bytes,
            };
            match wire {
                Wire::Zstd => {
                    io::copy(src, &mut w)?;
                }
                Wire::Gzip => {
                    let mut dec = zstd::stream::read::Decoder::new(&mut *src)?;
                    let mut enc = flate2::write::GzEncoder::new(&mut w, flate2::Compression::fast());
                    io::copy(&mut dec, &mut enc)?;
                    enc.finish()?;
                }
            }
            Ok(())
        })?;
        Ok(sent)
    }

    /// Assemble and load the image on the host under `tmptag`, check its id,
    /// then tag it `tag`. `meta` is a tar of manifest.json and the config.
    #[allow(clippy::too_many_arguments)]
    pub fn load(
        &self,
        target: &Target,
        engine: &str,
        id_hex: &str,
        tag: &str,
        tmptag: &str,
        layers: &[Sha256Digest],
        meta: &[u8],
    ) -> Result<(), HostError> {
        let hexes: Vec<String> = layers.iter().map(Sha256Digest::to_hex).collect();
        let mut args = vec!["load", engine, id_hex, tag, tmptag];
        args.extend(hexes.iter().map(String::as_str));
        self.run(target, &args, &mut |stdin| stdin.write_all(meta))?;
        Ok(())
    }

    /// The host has the image already: only set the tag.
    pub fn tag(&self, target: &Target, engine: &str, id_hex: &str, tag: &str) -> Result<(), HostError> {
        self.run(target, &["tag", engine, id_hex, tag], &mut |_| Ok(()))?;
        Ok(())
    }
}

struct CountingWriter<'a, W: ?Sized> {
    inner: &'a mut W,
    n: &'a mut u64,
    on_bytes: &'a dyn Fn(u64),
}

impl<W: Write + ?Sized> Write for CountingWriter<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        *self.n += n as u64;
        (self.on_bytes)(n as u64);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

fn parse_inventory(text: &str) -> Option<Inventory> {
    let mut engine = None;
    let mut wire = None;
    let mut staged = BTreeSet::new();
    let mut evicted = BTreeSet::new();
    let mut end = false;
    for l in text.lines() {
        let mut w = l.split_whitespace();
        match (w.next(), w.next()) {
            (Some("engine"), Some(e)) => engine = Some(e.to_string()),
            (Some("decompress"), Some("zstd")) => wire = Some(Wire::Zstd),
            (Some("decompress"), Some("gzip")) => wire = Some(Wire::Gzip),
            (Some("staged"), Some(h)) => {
                if let Ok(d) = h.parse() {
                    staged.insert(d);
                }
            }
            (Some("evicted"), Some(h)) => {
                if let Ok(d) = h.parse() {
                    evicted.insert(d);
                }
            }
            (Some("end"), None) => end = true,
            _ => {}
        }
    }
    end.then_some(())?;
    Some(Inventory {
        engine: engine?,
        wire: wire?,
        images: super::layers::parse_images(text),
        staged,
        evicted,
    })
}

fn collect<R: Read + Send + 'static>(mut r: R) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = r.read_to_end(&mut v);
        v
    })
}

fn last_lines(s: &str, n: usize) -> String {
    let v: Vec<&str> = s.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    v[v.len().saturating_sub(n)..].join(" / ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_that_turn_host_key_checking_off_are_found() {
        let v = |o: &[&str]| weak_host_key_option(&o.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        for weak in [
            &["StrictHostKeyChecking=no"][..],
            &["stricthostkeychecking OFF"],
            &[" StrictHostKeyChecking = no"],
            &["KnownHostsCommand=/bin/echo"],
            &["StrictHostKeyChecking=accept-new", "UserKnownHostsFile=/dev/null"],
        ] {
            assert!(v(weak).is_some(), "{weak:?}");
        }
        for fine in [
            &["StrictHostKeyChecking=yes"][..],
            &["StrictHostKeyChecking=accept-new"],
            &["UserKnownHostsFile=/tmp/kh", "GlobalKnownHostsFile=/dev/null"],
            &["UserKnownHostsFile=/dev/null"],
            &["IdentityFile=/root/.ssh/vm", "ProxyJump=bastion"],
        ] {
            assert!(v(fine).is_none(), "{fine:?}");
        }
    }

    #[test]
    fn quoting_survives_the_remote_shell() {
        let s = "a 'b' $c \"d\"";
        let out = Command::new("sh")
            .arg("-c")
            .arg(format!("printf %s {}", quote(s)))
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), s);
    }

    #[test]
    fn the_script_parses() {
        let st = Command::new("sh").args(["-n", "-c", SCRIPT]).status().unwrap();
        assert!(st.success());
    }

    #[test]
    fn inventory_needs_its_end_line() {
        let h = Sha256Digest::from_bytes([1; 32]).to_hex();
        let e = Sha256Digest::from_bytes([2; 32]).to_hex();
        let full = format!(
            "engine docker\ndecompress gzip\nimage sha256:aa sha256:{h}\nstaged {h}\nevicted {e}\nend\n"
        );
        let inv = parse_inventory(&full).unwrap();
        assert_eq!((inv.engine.as_str(), inv.wire), ("docker", Wire::Gzip));
        assert_eq!((inv.images.len(), inv.staged.len(), inv.evicted.len()), (1, 1, 1));
        assert!(parse_inventory(full.trim_end_matches("end\n")).is_none());
    }
}
