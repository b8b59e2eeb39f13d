//! Which Dockerfile stage a failed build step belongs to, read from the
//! engine's log as it streams by. Three log formats are understood:
//!
//! - Podman/Buildah (also what Podman's Docker-compatible API streams to the
//!   `docker` CLI): `[2/3] STEP 2/2: RUN …` lines, the stage named by its
//!   `FROM … AS name` step, and `Error: building at STEP "RUN …": …`.
//! - Docker's legacy builder: `Step 3/7 : FROM … AS name`, then
//!   `The command '…' returned a non-zero code: N`.
//! - BuildKit plain progress: `#8 [ext-foo 2/2] RUN …` and `#8 ERROR: …`, or
//!   the summary ` > [ext-foo 2/2] RUN …:`.
//!
//! Also here, so that build logs are read in one place: the checks of
//! base-provided extensions print `pgha-image: extension NAME: …` (see
//! `dockerfiles/`), and [`step_of`] picks the lines worth a spinner.

use std::collections::HashMap;

#[derive(Debug, Default)]
pub struct StageTracker {
    /// Podman: stage index (1-based) → name from `FROM … AS name`.
    podman_names: HashMap<u32, String>,
    /// Podman: every step seen, (stage index, instruction), in order.
    podman_steps: Vec<(u32, String)>,
    /// Legacy Docker: stage of the step running now, and its index.
    legacy_stage: Option<String>,
    legacy_index: u32,
    /// BuildKit: vertex number → stage name.
    buildkit: HashMap<u32, Option<String>>,
    failed: Option<String>,
}

impl StageTracker {
    pub fn new() -> Self {
        Self::default()
    }

    /// The stage of the failed step, once an error line has been seen.
    pub fn failed_stage(&self) -> Option<&str> {
        self.failed.as_deref()
    }

    pub fn feed(&mut self, line: &str) {
        let line = line.trim_end_matches(['\r', '\n']);
        if self.feed_podman(line) || self.feed_legacy(line) {
            return;
        }
        self.feed_buildkit(line);
    }

    fn feed_podman(&mut self, line: &str) -> bool {
        let t = line.trim_start();
        // "[2/3] STEP 1/2: FROM x AS y" or "STEP 1/2: FROM x" (one stage).
        let (index, rest) = match t.strip_prefix('[').and_then(|r| r.split_once("] ")) {
            Some((frac, rest)) if rest.starts_with("STEP ") => match frac.split_once('/') {
                Some((i, _)) => match i.parse::<u32>() {
                    Ok(i) => (i, rest),
                    Err(_) => return false,
                },
                None => return false,
            },
            _ if t.starts_with("STEP ") => (1, t),
            _ => {
                if let Some(pos) = t.find("building at STEP \"") {
                    let instr = &t[pos + "building at STEP \"".len()..];
                    let instr = instr.split("\": ").next().unwrap_or(instr).trim_end_matches('"');
                    let idx = self
                        .podman_steps
                        .iter()
                        .rev()
                        .find(|(_, s)| s == instr)
                        .or(self.podman_steps.last())
                        .map(|(i, _)| *i);
                    if let Some(i) = idx {
                        self.failed = Some(self.podman_name(i));
                    }
                    return true;
                }
                return false;
            }
        };
        // rest = "STEP j/k: INSTRUCTION"
        let Some((_, instr)) = rest.split_once(": ") else {
            return false;
        };
        if let Some(name) = from_as_name(instr) {
            self.podman_names.insert(index, name);
        }
        self.podman_steps.push((index, instr.to_string()));
        true
    }

    fn podman_name(&self, index: u32) -> String {
        self.podman_names
            .get(&index)
            .cloned()
            .unwrap_or_else(|| format!("stage-{}", index.saturating_sub(1)))
    }

    fn feed_legacy(&mut self, line: &str) -> bool {
        if let Some(rest) = line.strip_prefix("Step ") {
            if let Some((_, instr)) = rest.split_once(" : ") {
                if instr.trim_start().to_ascii_uppercase().starts_with("FROM ") {
                    self.legacy_index += 1;
                    self.legacy_stage = from_as_name(instr);
                }
                return true;
            }
            return false;
        }
        if line.starts_with("The command '") && line.contains("returned a non-zero code") {
            self.failed = Some(
                self.legacy_stage
                    .clone()
                    .unwrap_or_else(|| format!("stage-{}", self.legacy_index.saturating_sub(1))),
            );
            return true;
        }
        false
    }

    fn feed_buildkit(&mut self, line: &str) {
        if let Some(rest) = line.strip_prefix('#') {
            let Some((num, rest)) = rest.split_once(' ') else {
                return;
            };
            let Ok(num) = num.parse::<u32>() else { return };
            if rest.starts_with('[') {
                if let Some(stage) = buildkit_bracket_stage(rest) {
                    self.buildkit.insert(num, stage);
                }
            } else if rest.starts_with("ERROR")
                && let Some(Some(stage)) = self.buildkit.get(&num)
            {
                self.failed = Some(stage.clone());
            }
        } else if let Some(rest) = line.strip_prefix(" > [")
            && self.failed.is_none()
            && let Some(Some(stage)) = buildkit_bracket_stage(&format!("[{rest}"))
        {
            self.failed = Some(stage);
        }
    }
}

/// The base-provided extension whose check failed, and the check's message
/// line, from the last lines of a log (the last such line wins).
pub fn base_check_failure(lines: &[String]) -> Option<(String, String)> {
    lines.iter().rev().find_map(|l| {
        let rest = l.split("pgha-image: extension ").nth(1)?;
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
            .collect();
        (!name.is_empty()).then(|| (name, l.trim().to_string()))
    })
}

/// A line worth showing on a spinner: the engine's step lines (Podman's
/// `[2/5] STEP 1/3: …` and `STEP …`, legacy Docker's `Step …`, BuildKit's `#8 [ext-x 2/3] …`).
pub fn step_of(line: &str) -> Option<&str> {
    let t = line.trim();
    let is_step = (t.starts_with('[') && t.contains("] STEP "))
        || t.starts_with("STEP ")
        || t.starts_with("Step ")
        || (t.starts_with('#') && t.contains(" ["));
    is_step.then_some(t)
}

/// `FROM image AS name` → `name`.
fn from_as_name(instr: &str) -> Option<String> {
    let words: Vec<&str> = instr.split_whitespace().collect();
    if words.first().map(|w| w.eq_ignore_ascii_case("FROM")) != Some(true) {
        return None;
    }
    let n = words.len();
    (n >= 4 && words[n - 2].eq_ignore_ascii_case("AS")).then(|| words[n - 1].to_string())
}

/// `[ext-foo 2/3] RUN …` → Some(Some("ext-foo")); `[2/3] RUN …` → Some(None);
/// `[internal] load …` → None (not a stage step).
fn buildkit_bracket_stage(s: &str) -> Option<Option<String>> {
    let inner = s.strip_prefix('[')?.split_once(']')?.0;
    let mut words = inner.split_whitespace();
    let first = words.next()?;
    match words.next() {
        Some(frac) if frac.contains('/') => Some(Some(first.to_string())),
        None if first.contains('/') => Some(None),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed(log: &str) -> Option<String> {
        let mut t = StageTracker::new();
        for l in log.lines() {
            t.feed(l);
        }
        t.failed_stage().map(str::to_string)
    }

    #[test]
    fn podman_names_the_stage_of_the_failed_step() {
        let log = "[1/3] STEP 1/2: FROM localhost/pgha-test/debian:bookworm AS ext-bar\n\
                   [1/3] STEP 2/2: RUN echo bar > /bar\n\
                   --> b7e6939ffa5\n\
                   [2/3] STEP 1/2: FROM localhost/pgha-test/debian:bookworm AS ext-foo\n\
                   [2/3] STEP 2/2: RUN echo hello && false\n\
                   hello\n\
                   Error: building at STEP \"RUN echo hello && false\": while running runtime: exit status 1\n";
        assert_eq!(failed(log).as_deref(), Some("ext-foo"));
        // The Docker CLI through Podman's API prints the same without "Error: ".
        assert_eq!(
            failed(&log.replace("Error: building", "building")).as_deref(),
            Some("ext-foo")
        );
    }

    #[test]
    fn podman_parallel_stages_match_the_failed_instruction() {
        let log = "[1/3] STEP 1/2: FROM base AS ext-a\n\
                   [2/3] STEP 1/2: FROM base AS ext-b\n\
                   [1/3] STEP 2/2: RUN make a\n\
                   [2/3] STEP 2/2: RUN make b\n\
                   Error: building at STEP \"RUN make a\": exit status 2\n";
        assert_eq!(failed(log).as_deref(), Some("ext-a"));
    }

    #[test]
    fn podman_single_unnamed_stage() {
        let log = "STEP 1/2: FROM base\nSTEP 2/2: RUN false\nError: building at STEP \"RUN false\": exit status 1\n";
        assert_eq!(failed(log).as_deref(), Some("stage-0"));
    }

    #[test]
    fn docker_legacy_builder() {
        let log = "Step 1/5 : FROM base AS ext-ok\n ---> abc\nStep 2/5 : RUN true\n\
                   Step 3/5 : FROM base AS ext-vector\nStep 4/5 : RUN make\n ---> Running in 1\n\
                   The command '/bin/sh -c make' returned a non-zero code: 2\n";
        assert_eq!(failed(log).as_deref(), Some("ext-vector"));
    }

    #[test]
    fn buildkit_plain_progress() {
        let log = "#1 [internal] load build definition from Dockerfile\n#1 DONE 0.0s\n\
                   #5 [ext-ok 2/2] RUN true\n#5 DONE 0.1s\n\
                   #6 [ext-vector 2/3] RUN make\n#6 0.2 cc -c vector.c\n\
                   #6 ERROR: process \"/bin/sh -c make\" did not complete successfully: exit code: 2\n\
                   ------\n > [ext-vector 2/3] RUN make:\n------\n\
                   ERROR: failed to solve: process \"/bin/sh -c make\" did not complete successfully\n";
        assert_eq!(failed(log).as_deref(), Some("ext-vector"));
        // Only the summary (e.g. a truncated log).
        assert_eq!(
            failed(" > [ext-http 3/4] RUN make:\n").as_deref(),
            Some("ext-http")
        );
    }

    #[test]
    fn base_check_message_names_the_extension() {
        let log: Vec<String> =
            "[5/5] STEP 5/14: RUN /usr/local/lib/pgha/check-base-extension pg_cron pg_cron 1.6 15\n\
                  pgha-image: extension pg_cron: the base image has version 1.4-1 for PostgreSQL 15\n\
                  Error: building at STEP \"RUN ...\": exit status 1\n"
                .lines()
                .map(String::from)
                .collect();
        assert_eq!(failed(&log.join("\n")).as_deref(), Some("stage-4"));
        let (ext, line) = base_check_failure(&log).unwrap();
        assert_eq!(ext, "pg_cron");
        assert!(line.starts_with("pgha-image: extension pg_cron:"));
    }

    #[test]
    fn step_lines() {
        assert!(step_of("[2/5] STEP 1/3: FROM x AS ext-a").is_some());
        assert!(step_of("#8 [ext-x 2/3] RUN make").is_some());
        assert!(step_of("Step 3/7 : RUN make").is_some());
        assert!(step_of("gcc -c x.c").is_none());
    }

    #[test]
    fn success_names_nothing() {
        assert_eq!(
            failed("[1/1] STEP 1/1: FROM base AS ext-a\nCOMMIT x\n--> 123\n"),
            None
        );
    }
}
