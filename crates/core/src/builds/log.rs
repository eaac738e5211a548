//! A build's log as it is kept: secrets masked, and cut at a limit with a note saying so.

/// What a build's log keeps at most; the rest is dropped with a note.
pub const LOG_LIMIT: usize = 1024 * 1024;
/// What a masked secret reads as.
pub const MASK: &str = "********";

/// Collects a build's output, masking secrets and stopping at a limit.
#[derive(Debug)]
pub struct BuildLog {
    text: String,
    limit: usize,
    secrets: Vec<String>,
    cut: bool,
    /// Bytes dropped after the cut.
    dropped: u64,
}

impl BuildLog {
    pub fn new(limit: usize) -> BuildLog {
        BuildLog {
            text: String::new(),
            limit,
            secrets: Vec::new(),
            cut: false,
            dropped: 0,
        }
    }

    /// Masks `secret` from now on (values shorter than 4 characters would mask ordinary
    /// words, and are too short to be secrets worth the name).
    pub fn mask(&mut self, secret: &str) {
        if secret.len() >= 4 && !self.secrets.iter().any(|s| s == secret) {
            self.secrets.push(secret.to_owned());
            // Longest first, so a secret containing another is masked whole.
            self.secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        }
    }

    /// Appends one line (a newline is added).
    pub fn line(&mut self, line: &str) {
        let mut masked = line.to_owned();
        for secret in &self.secrets {
            if masked.contains(secret.as_str()) {
                masked = masked.replace(secret.as_str(), MASK);
            }
        }
        masked.push('\n');
        if self.cut {
            self.dropped += masked.len() as u64;
            return;
        }
        if self.text.len() + masked.len() > self.limit {
            let mut room = self.limit.saturating_sub(self.text.len());
            while !masked.is_char_boundary(room) {
                room -= 1;
            }
            self.text.push_str(&masked[..room]);
            self.dropped += (masked.len() - room) as u64;
            self.cut = true;
            self.text.push_str(&format!(
                "\n[berth: the log was cut at {} bytes; the build went on]\n",
                self.limit
            ));
            return;
        }
        self.text.push_str(&masked);
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    pub fn is_cut(&self) -> bool {
        self.cut
    }

    /// The log as kept, with a closing count of what was dropped.
    pub fn finish(mut self) -> String {
        if self.cut {
            self.text
                .push_str(&format!("[berth: {} bytes not kept]\n", self.dropped));
        }
        self.text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_masked_wherever_they_appear() {
        let mut log = BuildLog::new(LOG_LIMIT);
        log.mask("tok3n-abc");
        log.mask("tok3n");
        log.mask("ab");
        log.line("cloning https://x:tok3n-abc@example.com/repo.git");
        log.line("token tok3n and ab stay apart");
        let text = log.finish();
        assert!(!text.contains("tok3n"), "{text}");
        assert!(text.contains(&format!("https://x:{MASK}@example.com")));
        assert!(text.contains("and ab stay"), "short values are not masked");
    }

    #[test]
    fn a_huge_log_is_cut_with_a_note() {
        let mut log = BuildLog::new(100);
        for i in 0..1000 {
            log.line(&format!("line {i} é"));
        }
        assert!(log.is_cut());
        let text = log.finish();
        assert!(text.len() < 300, "{}", text.len());
        assert!(text.contains("the log was cut at 100 bytes"));
        assert!(text.contains("bytes not kept"));
        assert!(text.starts_with("line 0 é\n"));
    }
}
