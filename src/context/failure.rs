//! Which extension a failed image build was working on, from the tail of the
//! engine's log. The Dockerfile names every builder stage `ext-<name>`, and
//! the checks of base-provided extensions print `pgha-image: extension <name>: …`.

/// The extension whose step failed, if the log says.
///
/// Understands BuildKit (`ERROR [ext-vector 4/4] RUN …`, `> [ext-vector 4/4] RUN …`),
/// Buildah/Podman (`[3/5] STEP 4/4: …` after `[3/5] STEP 1/4: FROM … AS ext-vector`,
/// then `Error: building at STEP …`), and the base checks' own message.
pub fn failed_extension(log: &str) -> Option<String> {
    let lines: Vec<&str> = log.lines().collect();
    // The checks' own message names it outright.
    for l in lines.iter().rev() {
        if let Some(rest) = l.split("pgha-image: extension ").nth(1) {
            let name: String = rest.chars().take_while(|c| is_name_char(*c)).collect();
            if !name.is_empty() {
                return Some(name);
            }
        }
    }
    // BuildKit.
    for l in lines.iter().rev() {
        let t = l.trim_start();
        for marker in ["ERROR [ext-", "> [ext-", "ERROR: [ext-"] {
            if let Some(i) = t.find(marker) {
                let name: String = t[i + marker.len()..]
                    .chars()
                    .take_while(|c| is_name_char(*c))
                    .collect();
                if !name.is_empty() {
                    return Some(name);
                }
            }
        }
    }
    // Buildah / Podman: the stage of the last step before the error.
    let end = lines
        .iter()
        .rposition(|l| l.starts_with("Error: building at STEP") || l.starts_with("error building at STEP"))
        .unwrap_or(lines.len());
    let stage = lines[..end].iter().rev().find_map(|l| stage_prefix(l))?;
    lines.iter().find_map(|l| {
        let rest = l.strip_prefix(&stage)?;
        let from = rest.trim_start().strip_prefix("STEP 1/")?;
        let i = from.find(" AS ext-").or_else(|| from.find(" as ext-"))?;
        let name: String = from[i + 8..].chars().take_while(|c| is_name_char(*c)).collect();
        (!name.is_empty()).then_some(name)
    })
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-'
}

/// `[3/5]` of `[3/5] STEP 4/4: RUN …`.
fn stage_prefix(line: &str) -> Option<String> {
    let end = line.find("] STEP ")?;
    let p = &line[..=end];
    (p.starts_with('[') && p[1..end].split('/').all(|n| n.parse::<u32>().is_ok())).then(|| p.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buildah_log() {
        let log = "[1/4] STEP 1/4: FROM localhost/base AS pgha-pgxs\n\
                   [2/4] STEP 1/4: FROM 756f AS ext-pgtap\n\
                   [2/4] STEP 4/4: RUN make\n--> abc\n\
                   [3/4] STEP 1/4: FROM 756f AS ext-pg_net\n\
                   [3/4] STEP 4/4: RUN set -eux; make\n\
                   worker.c:12: error: curl too old\n\
                   Error: building at STEP \"RUN set -eux; make\": exit status 2\n";
        assert_eq!(failed_extension(log).as_deref(), Some("pg_net"));
        // A failure in a non-extension stage names none.
        let log = "[1/4] STEP 1/4: FROM base AS pgha-pgxs\n[1/4] STEP 4/4: RUN apt-get\n\
                   Error: building at STEP \"RUN apt-get\": exit status 100\n";
        assert_eq!(failed_extension(log), None);
    }

    #[test]
    fn buildkit_log() {
        let log = "#12 [ext-vector 4/4] RUN set -eux\n#12 ERROR: process did not complete\n\
                   ------\n > [ext-vector 4/4] RUN set -eux; make:\n------\nERROR: failed to solve\n";
        assert_eq!(failed_extension(log).as_deref(), Some("vector"));
    }

    #[test]
    fn base_check_message() {
        let log = "[5/5] STEP 5/14: RUN /usr/local/lib/pgha/check-base-extension pg_cron pg_cron 1.6 15\n\
                   pgha-image: extension pg_cron: the base image has version 1.4-1 for PostgreSQL 15\n\
                   Error: building at STEP \"RUN ...\": exit status 1\n";
        assert_eq!(failed_extension(log).as_deref(), Some("pg_cron"));
    }
}
