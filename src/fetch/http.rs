//! Downloading one URL into the cache's temp directory: hashing while
//! streaming, with a stall timeout, an overall time limit (a server that
//! trickles a byte now and then never stalls), a size cap (a server that
//! never ends), a redirect limit and retries with backoff on transient
//! failures.

use super::cache::{BUF, Cache};
use super::{FetchError, FetchOptions, Job};
use crate::error::one_line;
use crate::hash::{Hasher, Sha256Digest};
use crate::progress::Task;
use crate::redact::{self, RedactedUrl};
use std::io::{BufWriter, Write};
use std::time::Duration;
use tempfile::NamedTempFile;
use tokio::time::timeout;

/// A finished download: the temp file (deleted on drop), its digest and size.
pub(crate) struct Download {
    pub tmp: NamedTempFile,
    pub sha256: Sha256Digest,
    pub size: u64,
    pub attempts: u32,
}

/// Whether `url`'s host is the loopback interface.
pub(crate) fn is_loopback(url: &reqwest::Url) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// The HTTP client shared by all downloads of one fetch.
///
/// Redirects: at most `max_redirects`; a redirect to `http://` is refused
/// unless `--allow-http`, or unless both the first URL and the target are on
/// the loopback interface (a local mirror the user named).
pub(crate) fn client(opts: &FetchOptions) -> Result<reqwest::Client, FetchError> {
    let max = opts.max_redirects;
    let allow_http = opts.allow_http;
    let policy = reqwest::redirect::Policy::custom(move |attempt| {
        if attempt.previous().len() > max {
            return attempt.error(format!("more than {max} redirects (--max-redirects)"));
        }
        let target = attempt.url();
        let first_loopback = attempt.previous().first().is_some_and(is_loopback);
        if target.scheme() == "http" && !allow_http && !(first_loopback && is_loopback(target)) {
            let msg = format!(
                "redirect to plain http:// URL {} refused (--allow-http)",
                redact::url(target.as_str())
            );
            return attempt.error(msg);
        }
        if target.scheme() != "http" && target.scheme() != "https" {
            let msg = format!(
                "redirect to {} refused: not http(s)",
                redact::url(target.as_str())
            );
            return attempt.error(msg);
        }
        attempt.follow()
    });
    reqwest::Client::builder()
        .redirect(policy)
        .connect_timeout(opts.stall_timeout)
        .user_agent(concat!("pgha-image/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| FetchError::Network {
            name: "-".into(),
            version: "-".into(),
            url: RedactedUrl::new("-"),
            message: format!("cannot set up the HTTP client: {}", one_line(&e)),
            transient: false,
        })
}

/// Download `url` for `job`, retrying transient failures with exponential
/// backoff (`retry_backoff`, doubling, at most 30 s between attempts).
pub(crate) async fn download(
    client: &reqwest::Client,
    job: &Job,
    url: &str,
    cache: &Cache,
    opts: &FetchOptions,
    task: &Task,
) -> Result<Download, FetchError> {
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        let once = timeout(opts.timeout, attempt_once(client, job, url, cache, opts, task));
        let result = once.await.unwrap_or_else(|_| {
            Err(FetchError::TimedOut {
                name: job.name.clone(),
                version: job.version.clone(),
                url: RedactedUrl::new(url),
                limit: opts.timeout,
            })
        });
        match result {
            Ok((tmp, sha256, size)) => {
                return Ok(Download {
                    tmp,
                    sha256,
                    size,
                    attempts: attempt,
                });
            }
            Err(e) if e.is_transient() && attempt <= opts.retries => {
                let wait = opts
                    .retry_backoff
                    .saturating_mul(1 << (attempt - 1).min(16))
                    .min(Duration::from_secs(30));
                task.set_message(format!(
                    "attempt {attempt} failed ({e}); retrying in {:.1}s",
                    wait.as_secs_f32()
                ));
                task.reset();
                tokio::time::sleep(wait).await;
            }
            Err(e) => return Err(e),
        }
    }
}

async fn attempt_once(
    client: &reqwest::Client,
    job: &Job,
    url: &str,
    cache: &Cache,
    opts: &FetchOptions,
    task: &Task,
) -> Result<(NamedTempFile, Sha256Digest, u64), FetchError> {
    let stall = opts.stall_timeout;
    let stalled = |got| FetchError::Stalled {
        name: job.name.clone(),
        version: job.version.clone(),
        url: RedactedUrl::new(url),
        stall,
        got,
    };
    let network = |e: reqwest::Error| {
        if e.is_redirect() {
            FetchError::Redirect {
                name: job.name.clone(),
                version: job.version.clone(),
                url: RedactedUrl::new(url),
                reason: one_line(&e),
            }
        } else {
            FetchError::Network {
                name: job.name.clone(),
                version: job.version.clone(),
                url: RedactedUrl::new(url),
                message: one_line(&e),
                transient: !e.is_builder(),
            }
        }
    };
    let too_large = |size: String| FetchError::TooLarge {
        name: job.name.clone(),
        version: job.version.clone(),
        url: RedactedUrl::new(url),
        limit: opts.max_size,
        size,
    };

    let mut resp = match timeout(stall, client.get(url).send()).await {
        Err(_) => return Err(stalled(0)),
        Ok(Err(e)) => return Err(network(e)),
        Ok(Ok(r)) => r,
    };
    let status = resp.status();
    if status.is_redirection() {
        // The client follows every http(s) redirect the policy allows; one
        // that comes back was not one (e.g. to file:, or no Location).
        let location = resp
            .headers()
            .get(reqwest::header::LOCATION)
            .map(|l| String::from_utf8_lossy(l.as_bytes()).into_owned());
        return Err(FetchError::Redirect {
            name: job.name.clone(),
            version: job.version.clone(),
            url: RedactedUrl::new(url),
            reason: match location {
                Some(l) => format!("HTTP {} to {}: not http(s)", status.as_u16(), redact::url(&l)),
                None => format!("HTTP {} without a Location", status.as_u16()),
            },
        });
    }
    if !status.is_success() {
        return Err(FetchError::Status {
            name: job.name.clone(),
            version: job.version.clone(),
            url: RedactedUrl::new(url),
            status: status.as_u16(),
        });
    }
    let expected_len = resp.content_length();
    if let Some(n) = expected_len {
        if n > opts.max_size {
            return Err(too_large(format!("announced {n} bytes")));
        }
        task.set_length(n);
    }

    let mut tmp = cache.temp_file()?;
    let tmp_path = tmp.path().to_path_buf();
    let mut hasher = Hasher::new();
    {
        let mut out = BufWriter::with_capacity(BUF, tmp.as_file_mut());
        loop {
            let chunk = match timeout(stall, resp.chunk()).await {
                Err(_) => return Err(stalled(hasher.len())),
                Ok(Ok(None)) => break,
                Ok(Ok(Some(b))) => b,
                Ok(Err(e)) => {
                    return Err(match expected_len {
                        Some(n) if hasher.len() < n => FetchError::Truncated {
                            name: job.name.clone(),
                            version: job.version.clone(),
                            url: RedactedUrl::new(url),
                            got: hasher.len(),
                            expected: n,
                        },
                        _ => network(e),
                    });
                }
            };
            let got = hasher.len() + chunk.len() as u64;
            if got > opts.max_size {
                return Err(too_large(format!("more than {got} bytes sent")));
            }
            hasher.update(&chunk);
            out.write_all(&chunk)
                .map_err(FetchError::io("cannot write", tmp_path.clone()))?;
            task.inc(chunk.len() as u64);
        }
        out.flush()
            .map_err(FetchError::io("cannot write", tmp_path.clone()))?;
    }
    let size = hasher.len();
    if let Some(n) = expected_len
        && size != n
    {
        return Err(FetchError::Truncated {
            name: job.name.clone(),
            version: job.version.clone(),
            url: RedactedUrl::new(url),
            got: size,
            expected: n,
        });
    }
    Ok((tmp, hasher.finish(), size))
}
