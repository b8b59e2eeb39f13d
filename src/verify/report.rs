//! The result of a verify run, and its three renderings: a table (terminal),
//! JSON (scripts) and JUnit XML (CI test reporters: GitLab, Jenkins, GitHub).

use serde::Serialize;
use std::fmt::Write as _;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Passed,
    Failed,
    /// Not run: what it needs (e.g. a running leader) is missing, and the
    /// check that says so has failed; or it does not apply to this image.
    Skipped,
}

impl Outcome {
    pub fn word(self) -> &'static str {
        match self {
            Outcome::Passed => "ok",
            Outcome::Failed => "FAILED",
            Outcome::Skipped => "skipped",
        }
    }
}

/// One check: a stable id (`group.name`, used by tests and as the JUnit
/// test case), what it proves, and what was found.
#[derive(Debug, Clone, Serialize)]
pub struct CheckResult {
    pub id: String,
    pub title: String,
    pub outcome: Outcome,
    /// One line: why it failed or was skipped, or a short note when it passed.
    pub message: String,
    /// Further lines (findings, log lines).
    pub details: Vec<String>,
    #[serde(serialize_with = "secs")]
    pub duration: Duration,
}

fn secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64((d.as_secs_f64() * 1000.0).round() / 1000.0)
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub image: String,
    pub image_id: String,
    pub engine: String,
    pub members: u8,
    /// The run's name: prefix of every container, network and volume.
    pub run: String,
    /// RFC 3339, UTC.
    pub started_at: String,
    #[serde(serialize_with = "secs")]
    pub duration: Duration,
    pub passed: bool,
    pub checks: Vec<CheckResult>,
    /// With --keep: the commands that remove what the run left.
    pub kept: Vec<String>,
}

impl Report {
    pub fn failed(&self) -> impl Iterator<Item = &CheckResult> {
        self.checks.iter().filter(|c| c.outcome == Outcome::Failed)
    }

    pub fn check(&self, id: &str) -> Option<&CheckResult> {
        self.checks.iter().find(|c| c.id == id)
    }

    pub fn count(&self, o: Outcome) -> usize {
        self.checks.iter().filter(|c| c.outcome == o).count()
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("report serializes")
    }

    /// Plain lines, one per check (for logs and pipes).
    pub fn lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        for c in &self.checks {
            out.push(format!(
                "{:<7} {:<28} {:>7}  {}{}",
                c.outcome.word(),
                c.id,
                format!("{:.1}s", c.duration.as_secs_f64()),
                c.title,
                if c.message.is_empty() {
                    String::new()
                } else {
                    format!(": {}", c.message)
                }
            ));
        }
        out.push(self.summary());
        out
    }

    /// A table for a terminal: the same, with failure details indented under the row.
    pub fn table(&self) -> String {
        let idw = self.checks.iter().map(|c| c.id.len()).max().unwrap_or(5).max(5);
        let mut s = format!("{:<7}  {:<idw$}  {:>7}  {}\n", "RESULT", "CHECK", "TIME", "WHAT");
        for c in &self.checks {
            let _ = writeln!(
                s,
                "{:<7}  {:<idw$}  {:>7}  {}",
                c.outcome.word(),
                c.id,
                format!("{:.1}s", c.duration.as_secs_f64()),
                c.title
            );
            if c.outcome != Outcome::Passed || !c.message.is_empty() {
                if !c.message.is_empty() {
                    let _ = writeln!(s, "{:9}{:idw$}  {:>7}  → {}", "", "", "", c.message);
                }
                if c.outcome == Outcome::Failed {
                    for d in c.details.iter().take(12) {
                        let _ = writeln!(s, "{:9}{:idw$}  {:>7}    {}", "", "", "", d);
                    }
                }
            }
        }
        s.push_str(&self.summary());
        s.push('\n');
        s
    }

    pub fn summary(&self) -> String {
        format!(
            "{}: {} passed, {} failed, {} skipped in {:.1}s ({} member{}, {})",
            self.image,
            self.count(Outcome::Passed),
            self.count(Outcome::Failed),
            self.count(Outcome::Skipped),
            self.duration.as_secs_f64(),
            self.members,
            if self.members == 1 { "" } else { "s" },
            self.engine
        )
    }

    /// JUnit XML: one `<testsuite>`, each check a `<testcase>` with its
    /// time, a `<failure message=…>` or `<skipped message=…>`, and its
    /// details as the failure's text.
    pub fn junit(&self) -> String {
        let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        let total = self.checks.len();
        let failures = self.count(Outcome::Failed);
        let skipped = self.count(Outcome::Skipped);
        let time = format!("{:.3}", self.duration.as_secs_f64());
        let _ = writeln!(
            x,
            "<testsuites name=\"pgha-image verify\" tests=\"{total}\" failures=\"{failures}\" errors=\"0\" skipped=\"{skipped}\" time=\"{time}\">"
        );
        let _ = writeln!(
            x,
            "  <testsuite name=\"{}\" tests=\"{total}\" failures=\"{failures}\" errors=\"0\" skipped=\"{skipped}\" time=\"{time}\" timestamp=\"{}\">",
            xml_escape(&format!(
                "pgha-image verify {} ({} member{})",
                self.image,
                self.members,
                if self.members == 1 { "" } else { "s" }
            )),
            xml_escape(self.started_at.trim_end_matches('Z'))
        );
        let _ = writeln!(x, "    <properties>");
        for (k, v) in [
            ("image", self.image.as_str()),
            ("image_id", self.image_id.as_str()),
            ("engine", self.engine.as_str()),
            ("run", self.run.as_str()),
        ] {
            let _ = writeln!(x, "      <property name=\"{k}\" value=\"{}\"/>", xml_escape(v));
        }
        let _ = writeln!(x, "    </properties>");
        for c in &self.checks {
            let group = c.id.split('.').next().unwrap_or("verify");
            let _ = write!(
                x,
                "    <testcase name=\"{}\" classname=\"pgha-image.verify.{}\" time=\"{:.3}\"",
                xml_escape(&format!("{}: {}", c.id, c.title)),
                xml_escape(group),
                c.duration.as_secs_f64()
            );
            match c.outcome {
                Outcome::Passed if c.message.is_empty() => x.push_str("/>\n"),
                Outcome::Passed => {
                    let _ = writeln!(
                        x,
                        ">\n      <system-out>{}</system-out>\n    </testcase>",
                        xml_escape(&c.message)
                    );
                }
                Outcome::Failed => {
                    let _ = writeln!(
                        x,
                        ">\n      <failure message=\"{}\" type=\"check\">{}</failure>\n    </testcase>",
                        xml_escape(&c.message),
                        xml_escape(&c.details.join("\n"))
                    );
                }
                Outcome::Skipped => {
                    let _ = writeln!(
                        x,
                        ">\n      <skipped message=\"{}\"/>\n    </testcase>",
                        xml_escape(&c.message)
                    );
                }
            }
        }
        x.push_str("  </testsuite>\n</testsuites>\n");
        x
    }
}

/// Escape for XML text and attributes; characters XML 1.0 forbids are dropped.
fn xml_escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&apos;"),
            '\n' => o.push_str("&#10;"),
            '\t' | '\r' => o.push(' '),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => {}
            c => o.push(c),
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> Report {
        let c = |id: &str, o: Outcome, m: &str| CheckResult {
            id: id.into(),
            title: format!("title of {id}"),
            outcome: o,
            message: m.into(),
            details: vec!["detail <1>".into()],
            duration: Duration::from_millis(1500),
        };
        Report {
            image: "localhost/x:1".into(),
            image_id: "sha256:ab".into(),
            engine: "podman".into(),
            members: 1,
            run: "pgha-verify-1".into(),
            started_at: "2026-11-28T15:00:00Z".into(),
            duration: Duration::from_secs(3),
            passed: false,
            checks: vec![
                c("cluster.leader", Outcome::Passed, ""),
                c("hygiene.secrets", Outcome::Failed, "a \"key\" & <more>\u{1}"),
                c("failover.rejoin", Outcome::Skipped, "one member"),
            ],
            kept: vec![],
        }
    }

    #[test]
    fn junit_escapes_and_counts() {
        let x = report().junit();
        assert!(
            x.contains("tests=\"3\" failures=\"1\" errors=\"0\" skipped=\"1\""),
            "{x}"
        );
        assert!(
            x.contains("message=\"a &quot;key&quot; &amp; &lt;more&gt;\""),
            "{x}"
        );
        assert!(x.contains(">detail &lt;1&gt;</failure>"), "{x}");
        assert!(x.contains("<skipped message=\"one member\"/>"), "{x}");
        assert!(
            x.contains("classname=\"pgha-image.verify.hygiene\" time=\"1.500\""),
            "{x}"
        );
    }

    #[test]
    fn table_and_lines_name_every_check() {
        let r = report();
        let t = r.table();
        for id in ["cluster.leader", "hygiene.secrets", "failover.rejoin"] {
            assert!(t.contains(id), "{t}");
        }
        assert!(t.contains("1 passed, 1 failed, 1 skipped"), "{t}");
        assert_eq!(r.lines().len(), 4);
        let j: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
        assert_eq!(j["checks"][1]["outcome"], "failed");
        assert_eq!(j["checks"][1]["duration"], 1.5);
    }
}
